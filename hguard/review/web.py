"""The review web app: a small server-rendered Starlette site where people decide the answers in the queue.

This module serves it (:func:`serve`, :func:`make_server`); the site is built in ``_app`` (routes), ``_auth``
(token, sessions, CSRF, lockout, Host check) and ``_pages`` (templates), and :func:`create_app` is importable here.

Pages: ``/`` (pending items by risk, highest first, with counts per domain; ``?domain=`` filters,
``?order=time`` sorts oldest first), ``/items/{id}`` (question, answer, risk, every signal, the reasons and the
retrieved context, with the verdict form), ``/decided`` (what was decided), ``/login`` and ``/logout``.
No JavaScript and no front-end build: the pages are Jinja2 templates (kept in ``_pages`` so they ship with the
package), autoescaped, because questions, answers and contexts are untrusted text.

Security model, all of it deliberate:

* **Loopback by default.** :func:`serve` binds to 127.0.0.1 and refuses any non-loopback address unless
  ``allow_remote=True`` (with a warning: the pages show questions and answers, and plain HTTP carries the token
  in clear). Requests whose ``Host`` header is not one of the allowed hosts get 400, which stops DNS-rebinding
  pages on other sites from reading the queue through the reviewer's browser.
* **Reading and writing need the token.** The token comes from ``HGUARD_REVIEW_TOKEN`` (at least 16
  characters); without one the server refuses to start, saying how to make one. A reviewer enters the token
  once at ``/login``; the server then sets an HttpOnly, SameSite=Strict session cookie (valid 12 h) holding an
  issue time, a nonce and an HMAC keyed by the token, so no server-side session store is needed and changing
  the token logs everyone out (``/logout`` ends this browser's session: its cookie, or a copy of it, is refused from then on; a restart of the server ends every session). Every page showing queued items
  redirects to ``/login`` without that cookie. ``read_only_open=True`` (``--read-only-open``) is the one
  exception: reading is then open to **every local process** (every user of the machine can see each queued
  question and answer); verdicts still need the token, and without a token nothing can be recorded. It is
  refused on a non-loopback address.
* **Login lockout per client.** Ten wrong tokens within a minute from one client address lock the login for
  that address for the rest of the minute; other addresses still log in. Behind a reverse proxy all clients
  share the proxy's address (forwarded headers are not trusted), so they share one lockout.
* **No cross-site posts.** Every form carries a CSRF token, an HMAC of a random per-browser cookie
  (double submit, keyed by the token); every POST must also carry an ``Origin`` (or, failing that, a
  ``Referer``) of this very server. Either check failing gives 403 with the reason.
* **A verdict is final.** Deciding an item someone already decided answers 409 "already decided by X at T"
  and changes nothing (the queue's compare-and-set guarantees that, not this page).

The reviewer name on the form is what the reviewer says it is: the token proves membership of the reviewing
group, not identity.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..audit import AuditLog
from ..errors import HGuardError, InputError
from ._app import CSRF_COOKIE as CSRF_COOKIE
from ._app import REVIEWER_COOKIE as REVIEWER_COOKIE
from ._app import SESSION_COOKIE as SESSION_COOKIE
from ._app import _LOOPBACK_HOSTS, _with_audit, create_app
from ._auth import MIN_TOKEN_LENGTH as MIN_TOKEN_LENGTH
from ._auth import SESSION_MAX_AGE_S as SESSION_MAX_AGE_S
from ._auth import TOKEN_ENV, _check_token, _is_loopback
from ._pages import _INSTALL_HINT
from .queue import ReviewQueue, refuse_missing_queue

if TYPE_CHECKING:
    import uvicorn

    from ..policy import Policy

__all__ = ["TOKEN_ENV", "cli_main", "create_app", "make_server", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


# --------------------------------------------------------------------------------------------------------------
# serving


def _existing_folder(path: Path, what: str, fix: str) -> None:
    """Refuse a path whose folder does not exist, instead of creating a new, empty queue or log there."""
    if not path.parent.is_dir():
        raise InputError(f"{what} {path} is in a folder that does not exist ({path.parent}); {fix}")


def _require_queue_file(path: Path) -> None:
    """Refuse a queue path with no queue file: a mistyped path is an error, not a new empty queue."""
    if not path.is_file():
        _existing_folder(
            path, "the review queue", "check the path, or pass --policy FILE to use the queue the policy names"
        )  # fmt: skip
        kind = "is a folder, not a queue file" if path.is_dir() else "does not exist"
        raise InputError(
            f"no review queue at {path}: it {kind}; check the path, or pass --policy FILE (the guard creates the "
            "queue at the policy's review.queue when it first routes an answer to review)"
        )


def _open_source(
    source: ReviewQueue | str | os.PathLike[str], audit: AuditLog | str | os.PathLike[str] | None,
    policy: Policy | None = None,
) -> ReviewQueue:
    """A queue (with its audit log) from a ReviewQueue, a policy file (.toml/.yaml/.yml; ``policy``: that
    file, already loaded) or a queue file.

    A queue file must exist: a mistyped path is an error, not a new empty queue. A policy's ``review.queue`` is
    created when missing (as the guard would create it) only if its folder exists and its audit log holds no decision
    promising a review item (:func:`~hguard.review.queue.refuse_missing_queue`: those are in another queue, the one
    the guard wrote; a mistyped ``[review] queue`` path was created empty and served, decided or exported as such).
    """
    if isinstance(audit, (str, os.PathLike)):
        _existing_folder(Path(audit), "the audit log", "check the path, or create the folder first if it is right")
        audit = AuditLog(audit)
    if isinstance(source, ReviewQueue):
        return _with_audit(source, audit)
    if not isinstance(source, (str, os.PathLike)) or str(source) == "":
        raise InputError(
            f"pass a policy file, a review queue file or a ReviewQueue, got {type(source).__name__}: {source!r:.80}"
        )
    path = Path(source)
    if policy is not None or path.suffix.lower() in (".toml", ".yaml", ".yml"):
        from ..policy import load_policy

        policy = policy if policy is not None else load_policy(path)
        queue_path = Path(policy.review.queue)
        # Checked before the audit log is opened: opening it creates its folder, which may be this one.
        if not queue_path.is_file():
            from .._resources import is_packaged_policy

            packaged = is_packaged_policy(path)  # not a file a user should edit
            if packaged:  # `hguard demo` keeps a queue of its own, apart from the default policy's
                from ..demo import review_command

                try:
                    demo = f"; `hguard demo` keeps its own queue: list it with `{review_command()}`"
                except InputError:  # no home folder and no HGUARD_STATE_DIR: the demo has no default folder either
                    demo = ""
            _existing_folder(
                queue_path, f"the review queue (review.queue in {'the default policy' if packaged else path})",
                "nothing has been routed to review under the default policy yet (the guard creates its queue "
                f"there on the first answer `hguard ask` holds){demo}; pass --policy FILE or --queue DB for your "
                "own" if packaged else
                f"correct review.queue in {path}, or create the folder (mkdir -p {queue_path.parent})",
            )  # fmt: skip
        if audit is None:
            audit = AuditLog.from_policy(policy)
        if not queue_path.is_file():  # created only where its log promises no item yet: else a mistyped path
            refuse_missing_queue(queue_path, audit.history(), audit.path, f"in {path}")
        return ReviewQueue(queue_path, audit=audit)
    _require_queue_file(path)
    return ReviewQueue(path, audit=audit)


def make_server(
    source: ReviewQueue | str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    audit: AuditLog | str | os.PathLike[str] | None = None,
    allow_remote: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    log_level: str = "info",
    read_only_open: bool = False,
    public_url: str | None = None,
) -> uvicorn.Server:
    """A configured, not yet started uvicorn server for the review site (``.run()`` starts it).

    ``source``: a ReviewQueue, a policy file or an existing queue file (see :func:`_open_source`). ``token``:
    the review token; None reads ``HGUARD_REVIEW_TOKEN``, and with neither the server is refused unless
    ``read_only_open=True`` (see :func:`create_app`). Only loopback addresses are accepted for ``host`` unless
    ``allow_remote=True``. ``public_url``: the https address a TLS proxy in front serves the site at (see
    :func:`create_app`).
    """
    try:
        import uvicorn
    except ImportError as e:
        raise HGuardError(f"hguard review serve needs uvicorn ({e}); {_INSTALL_HINT}") from e
    if not isinstance(host, str) or not host:
        raise InputError(f"host must be a host name or address, got {host!r}; e.g. 127.0.0.1")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port must be an integer in [0, 65535], got {port!r}; e.g. {DEFAULT_PORT}")
    remote = not _is_loopback(host)
    if remote and not allow_remote:
        raise InputError(
            f"refusing to serve the review queue on {host}: it shows private questions and answers and is meant "
            "for this machine only (127.0.0.1). Pass allow_remote=True (--allow-remote) if other machines must "
            "reach it, preferably behind a TLS proxy"
        )
    if remote and read_only_open:
        raise InputError(
            f"refusing --read-only-open on {host}: it would show every queued question and answer, without a login, "
            "to any machine that reaches the server; drop --read-only-open (read_only_open=True) and log in with "
            f"{TOKEN_ENV}"
        )
    if remote:
        warnings.warn(
            f"the review queue is served on {host}, reachable from other machines, over plain HTTP: the token and "
            "the reviewed text travel unencrypted unless a TLS proxy sits in front",
            UserWarning,
            stacklevel=2,
        )
    policy = None
    if isinstance(source, (str, os.PathLike)) and str(source):  # a wrong path is named before the token
        if Path(source).suffix.lower() in (".toml", ".yaml", ".yml"):
            from ..policy import load_policy

            policy = load_policy(os.fspath(source))
        else:
            _require_queue_file(Path(source))
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    _check_token(token, read_only_open)  # before the queue is opened: a refused start touches nothing
    queue = _open_source(source, audit, policy)
    if allowed_hosts is None:
        allowed_hosts = ["*"] if remote else sorted({*_LOOPBACK_HOSTS, host.strip("[]")})
    state = policy.monitor.state if policy is not None else None
    app = create_app(
        queue, token=token, allowed_hosts=allowed_hosts, read_only_open=read_only_open, monitor_state=state,
        public_url=public_url,
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False, lifespan="off"
    )
    return uvicorn.Server(config)


def serve(
    source: ReviewQueue | str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    audit: AuditLog | str | os.PathLike[str] | None = None,
    allow_remote: bool = False,
    allowed_hosts: Sequence[str] | None = None,
    read_only_open: bool = False,
    public_url: str | None = None,
) -> None:
    """Serve the review site until interrupted (see :func:`make_server` for the arguments)."""
    make_server(
        source, host, port, token=token, audit=audit, allow_remote=allow_remote, allowed_hosts=allowed_hosts,
        read_only_open=read_only_open, public_url=public_url,
    ).run()  # fmt: skip


def cli_main(argv: list[str]) -> int:
    """The ``hguard review`` command; it lives in :mod:`hguard.cli.review` (kept here for old imports)."""
    from ..cli.review import main

    return main(argv)
