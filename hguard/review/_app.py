"""The review site itself: routes, page rendering, login, verdict posting. See :mod:`hguard.review.web`."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote, unquote, urlsplit

from ..audit import AuditLog, append_written, sink_failed_after
from ..errors import AuditError, HGuardError, InputError, ReviewQueueError, error_text
from ._auth import _MAKE_TOKEN, SESSION_MAX_AGE_S, TOKEN_ENV, _Auth, _b64, _check_token, _GuardMiddleware
from ._items import EVALUATION_FILTER_SAID, EVALUATION_MARK, evaluation_said, shown_domain
from ._pages import _INSTALL_HINT, _jinja_env
from .queue import NO_DOMAIN, AlreadyDecided, AuditLogUnavailable, ItemNotFound, ReviewItem, ReviewQueue, VerdictRefused

if TYPE_CHECKING:
    from starlette.applications import Starlette

SESSION_COOKIE = "hguard_review_session"
CSRF_COOKIE = "hguard_review_csrf"
REVIEWER_COOKIE = "hguard_reviewer"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_MAX_BODY = 2 * 1024 * 1024
_NO_DOMAIN_PARAM = "-"
_log = logging.getLogger(__name__)


def _with_audit(queue: ReviewQueue, audit: AuditLog | None) -> ReviewQueue:
    if audit is None:
        return queue
    if not isinstance(audit, AuditLog):
        raise InputError(f"audit must be an AuditLog or None, got {type(audit).__name__}; pass AuditLog('audit.jsonl')")
    if queue.audit is not None:
        if Path(queue.audit.path).resolve() != Path(audit.path).resolve():
            raise InputError(
                f"the queue already logs verdicts to {queue.audit.path}, and audit={audit.path} names another "
                "log; pass only one of them"
            )
        return queue
    return ReviewQueue(queue.path, audit=audit, busy_timeout=queue.busy_timeout)


def _check_audit_at_start(audit: AuditLog) -> None:
    """The checks a guard makes on its log when it starts (:meth:`AuditLog.check_writable`: a file this process can
    append to, the key, the anchor), made before the site serves: every login and verdict is recorded there, and a log
    that would refuse them is said once, naming it, the cause and the fix, not at the first login or verdict, with how to
    serve the queue read-only meanwhile (no token: nothing is recorded, and the log is not checked)."""
    try:
        audit.check_writable()
    except Exception as e:  # an AuditError names the cause and the fix; anything else (an OSError reading it), its type
        cause = str(e) if isinstance(e, HGuardError) else error_text(e)
        log = "" if str(audit.path) in cause else f" {audit.path}"  # named once: the cause most often names it
        why = (
            f"not serving the review queue: every login and verdict is recorded in the audit log{log}, which "
            f"would refuse them: {cause}; or, to serve the queue read-only "
            f"meanwhile (no login or verdict, so nothing recorded), start it with --read-only-open (read_only_open=True) "
            f"and {TOKEN_ENV} unset (token=None)"
        )
        raise (type(e)(why) if isinstance(e, AuditError) else AuditError(why)) from e


def _public_origin(public_url: str | None) -> str | None:
    """The origin (``scheme://host[:port]``, lower case) of ``public_url``; InputError for anything else."""
    if public_url is None:
        return None
    parts = urlsplit(public_url) if isinstance(public_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise InputError(f"public_url must be the address reviewers open, scheme and host only (e.g. "
                         f"https://review.example.org or https://review.example.org:8443), got {public_url!r}")
    default = {"https": 443, "http": 80}[parts.scheme]  # a browser's Origin leaves the default port out
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{parts.hostname}{port}".lower()


def _folders_of(*paths: str | os.PathLike[str] | None) -> list[str]:
    """The folders of ``paths`` (as given and resolved), each ending in a separator, longest first."""
    out: set[str] = set()
    for p in paths:
        if p is None:
            continue
        for q in (Path(p).absolute(), Path(p).resolve()):
            out.add(str(q.parent).rstrip(os.sep) + os.sep)
    return sorted(out, key=len, reverse=True)


def _without_folders(message: str | None, folders: Sequence[str]) -> str | None:
    """``message`` with ``folders`` cut from the paths it names: a reviewer's page shows file names only."""
    if not message:
        return message
    for f in folders:
        if f != os.sep:
            message = message.replace(f, "")
    return message


def create_app(
    queue: ReviewQueue,
    *,
    token: str | None,
    audit: AuditLog | None = None,
    allowed_hosts: Sequence[str] | None = None,
    read_only_open: bool = False,
    monitor_state: str | os.PathLike[str] | None = None,
    public_url: str | None = None,
) -> Starlette:
    """The review site for ``queue``. Reading and verdicts need ``token`` (None is refused with InputError)
    unless ``read_only_open=True``, which lets anyone who reaches the server read the queue (verdicts still need
    the token; with ``token=None`` none can be recorded). ``audit`` logs verdicts (unless the queue has its own
    log); a log that would refuse the logins and verdicts recorded in it (the key, the anchor, a file this process cannot
    write) is refused here, with AuditError, as a guard refuses it when it starts. ``allowed_hosts``: Host names served (default: the loopback names).
    ``monitor_state``: the monitor's state file, to show each domain's state (normal or tightened).
    ``public_url``: the address reviewers open when a TLS proxy sits in front (``https://review.example``): posts
    must come from it (the server itself sees plain HTTP, so a browser's https Origin was refused), its host is
    served, and the cookies are ``Secure`` when it is https."""
    try:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.middleware import Middleware
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, RedirectResponse, Response
        from starlette.routing import Route
    except ImportError as e:
        raise HGuardError(f"the review web app needs starlette ({e}); {_INSTALL_HINT}") from e
    if not isinstance(queue, ReviewQueue):
        raise InputError(f"queue must be a ReviewQueue, got {type(queue).__name__}; pass ReviewQueue('review.sqlite3')")
    if not isinstance(read_only_open, bool):
        raise InputError(f"read_only_open must be True or False, got {read_only_open!r}")
    token = _check_token(token, read_only_open)
    queue = _with_audit(queue, audit)
    hosts = list(allowed_hosts) if allowed_hosts is not None else list(_LOOPBACK_HOSTS)
    public = _public_origin(public_url)
    if public is not None:
        hosts.append(urlsplit(public).hostname or "")
    if not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise InputError(f"allowed_hosts must be a non-empty list of host names, got {allowed_hosts!r}")
    auth = _Auth(token, read_only_open=read_only_open)
    if queue.audit is not None and auth.writable:  # read-only (no token): no login or verdict is ever written
        _check_audit_at_start(queue.audit)
    env = _jinja_env()
    from ..monitor import MonitorState

    states = MonitorState(monitor_state)

    # a refusal shown on the page names the queue's and the log's files, not the server's folders
    folders = _folders_of(queue.path, queue.audit.path if queue.audit is not None else None, monitor_state)

    def state_of(domain: str | None) -> str:
        st = states.get(domain)
        if st is None or st.state == "normal":
            return "normal" if monitor_state is not None and domain is not None else ""
        return f"tightened since {st.since}: {st.reason}"

    def secure(request: Request) -> bool:
        """Whether cookies are Secure: served over https here, or behind a TLS proxy at an https ``public_url``."""
        return request.url.scheme == "https" or (public or "").startswith("https:")

    def cookie(response: Response, request: Request, key: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            key, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=secure(request),
        )  # fmt: skip

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        seed = request.cookies.get(CSRF_COOKIE)
        new_seed = seed is None or len(seed) < 16 or len(seed) > 100
        if new_seed:
            seed = _b64(secrets.token_bytes(24))
        assert seed is not None
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")

        def self_url(**changes: str) -> str:
            params = dict(request.query_params)
            params.pop("done", None)
            params.update(changes)
            return request.url.path + "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())

        ctx["message"] = _without_folders(ctx.get("message"), folders)
        ctx.setdefault("message_kind", "ok")
        html = env.get_template(name).render(
            writable=auth.writable,
            logged_in=auth.session_ok(request.cookies.get(SESSION_COOKIE)),
            csrf=auth.csrf_for(seed),
            token_env=TOKEN_ENV,
            request_path=path,
            self_url=self_url,
            **ctx,
        )
        response = HTMLResponse(html, status_code=status)
        if new_seed:
            cookie(response, request, CSRF_COOKIE, seed, None)
        return response

    def error(request: Request, status: int, message: str) -> HTMLResponse:
        titles = {400: "Bad request", 403: "Refused", 404: "Not found", 409: "Already decided", 413: "Too large",
                  429: "Too many attempts", 500: "Not recorded", 503: "Audit log unavailable"}  # fmt: skip
        return render(request, "error.html", status, title=titles.get(status, "Error"), message=message,
                      message_kind="error")  # fmt: skip

    def same_origin(request: Request) -> str | None:
        """Why a POST is refused as cross-site, or None when it comes from our own pages."""
        own = public or f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        origin = request.headers.get("origin")
        if origin is not None:
            if origin.lower() != own:
                return f"cross-site request refused: Origin {origin!r} is not this server ({own})"
            return None
        referer = request.headers.get("referer")
        if referer:
            parts = urlsplit(referer)
            if f"{parts.scheme}://{parts.netloc}".lower() != own:
                return f"cross-site request refused: Referer {referer!r} is not this server ({own})"
            return None
        return (
            "request refused: it has neither an Origin nor a Referer header, so it cannot be told apart from a "
            "cross-site post; submit the form from the review pages"
        )

    async def checked_form(request: Request, *, need_session: bool) -> tuple[Any, Response | None]:
        """The POSTed form, or the refusal to send instead."""
        if not auth.writable:
            return None, error(
                request, 403,
                f"read-only: started with --read-only-open and no review token, so nothing can be recorded; "
                f"make one with: {_MAKE_TOKEN} and restart hguard review serve",
            )  # fmt: skip
        why = same_origin(request)
        if why is not None:
            return None, error(request, 403, why)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > _MAX_BODY):
            return None, error(request, 413, f"the form is {length} bytes; the limit is {_MAX_BODY}")
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=_MAX_BODY)
        except Exception as e:  # multipart's parse errors have no common base class worth naming
            return None, error(request, 400, f"the form could not be read ({e}); submit it from the review page")
        if not auth.csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf_token")):
            return None, error(
                request, 403,
                "the form's CSRF token is missing or does not match this browser's; reload the page and submit again",
            )  # fmt: skip
        if need_session and not auth.session_ok(request.cookies.get(SESSION_COOKIE)):
            return None, error(
                request, 403,
                "not logged in (or the session expired): log in at /login with the review token, then submit again",
            )  # fmt: skip
        return form, None

    def login_first(request: Request) -> Response | None:
        """The redirect to /login for a reader without a session (nothing from the queue is shown), else None."""
        if auth.can_read(request.cookies.get(SESSION_COOKIE)):
            return None
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(path, safe='')}", status_code=303)

    def client_of(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def domain_filter(param: str | None) -> Any:
        if param is None or param == "":
            return None
        return NO_DOMAIN if param == _NO_DOMAIN_PARAM else param

    def domain_of(request: Request) -> str | None:
        """``?domain=NAME`` (``-``: the items without one) of the pending and the decided page; None: every domain."""
        return request.query_params.get("domain") or None

    def in_domain(counts: dict[str | None, dict[str, int]], domain_param: str, status: str) -> int:
        """How many ``status`` items :meth:`ReviewQueue.counts` holds in the domain ``domain_param`` names."""
        return sum(c[status] for d, c in counts.items()
                   if d == domain_param or (d is None and domain_param == _NO_DOMAIN_PARAM))

    def domain_rows(counts: dict[str | None, dict[str, int]],
                    apart: dict[str | None, dict[str, int]] | None = None) -> list[dict[str, Any]]:
        """Each domain of the queue as the pages' counts and domain links show it."""
        return [
            {"label": shown_domain(d), "param": d if d is not None else _NO_DOMAIN_PARAM,
             "pending": c["pending"], "decided": c["decided"], "state": state_of(d),
             "evaluation": (apart or {}).get(d)}
            for d, c in counts.items()
        ]  # fmt: skip

    def filters_said(evaluation_param: str | None, domain_param: str | None) -> str:
        """What the filters leave, for a page's heading ("" with none)."""
        return ", ".join(x for x in (EVALUATION_FILTER_SAID.get(evaluation_param or ""), None if domain_param is None
                                     else "in " + shown_domain(None if domain_param == _NO_DOMAIN_PARAM else domain_param))
                         if x)  # fmt: skip

    def evaluation_of(items: list[ReviewItem], with_counts: bool = False,
                      ) -> tuple[dict[str, bool | None], dict[str | None, dict[str, int]], str | None]:
        """Which ``items`` are an evaluation's (:meth:`ReviewQueue.for_evaluation`, as ``hguard review list`` marks
        them), and, ``with_counts``, how many of each domain's (:meth:`ReviewQueue.evaluation_counts`), from one read of
        the audit log; where it could not be read, none is (each taken as live: a user may wait) and why, said."""
        if queue.audit is None:
            return queue.for_evaluation(items), {}, None
        try:
            if not with_counts:
                return queue.for_evaluation(items), {}, None
            everything = queue.item_keys()  # the whole queue's, without the text: read for the counts only
            records = queue.decision_records(everything)
            return queue.for_evaluation(items, records), queue.evaluation_counts(records, everything) or {}, None
        except AuditLogUnavailable as e:  # the queue is still listed; the reviewer and the operator are told
            _log.error("review list: which items are an evaluation's not told: %s", e, exc_info=e)
            return {it.id: None for it in items}, {}, (
                f"Which items are an evaluation's (served to no user) cannot be told: {e}. Each is taken as live (a "
                "user may wait).")

    def evaluation_filter(request: Request) -> tuple[str | None, Response | None]:
        """``?evaluation=exclude|only`` of the pending and the decided page (None: every item), or the 400 refusing it."""
        param = request.query_params.get("evaluation") or None
        if param not in (None, "exclude", "only"):
            return None, error(request, 400, f"evaluation must be 'exclude' or 'only', got {param!r}")
        if param is not None and queue.audit is None:  # which are an evaluation's is in the log alone
            return None, error(request, 400, f"evaluation={param} needs the audit log holding the guard's decisions "
                               "(an item's decision says whether its answer was served): start hguard review serve "
                               "with --policy FILE, or --audit LOG")  # fmt: skip
        return param, None

    async def index(request: Request) -> Response:
        if (refusal := login_first(request)) is not None:
            return refusal
        order = request.query_params.get("order", "risk")
        if order not in ("risk", "time"):
            return error(request, 400, f"order must be 'risk' or 'time', got {order!r}")
        evaluation_param, refused = evaluation_filter(request)
        if refused is not None:
            return refused
        domain_param = domain_of(request)
        limit = 500
        checked_order = cast(Literal["risk", "time"], order)  # checked just above
        items = await run_in_threadpool(queue.pending, domain_filter(domain_param), checked_order,
                                        None if evaluation_param else limit + 1)  # the filter first, then the limit
        counts = await run_in_threadpool(queue.counts)
        evaluation, apart, unread = await run_in_threadpool(evaluation_of, items, True)
        total_pending = sum(c["pending"] for c in counts.values())
        shown_pending = total_pending  # how many the filters leave (the heading says both where they leave fewer)
        if evaluation_param is not None:
            if unread is not None:  # the filter cannot be applied: said, not a list that reads as filtered
                return error(request, 503, unread)
            items = [it for it in items if bool(evaluation[it.id]) == (evaluation_param == "only")]
            shown_pending = len(items)  # read without the limit: every item the filters leave
        elif domain_param is not None:
            shown_pending = in_domain(counts, domain_param, "pending")
        rows = domain_rows(counts, apart)
        message = None
        done = request.query_params.get("done")
        if done:
            item = await run_in_threadpool(queue.get, done)
            if item is not None and item.verdict is not None:
                message = f"Recorded: {item.verdict.verdict} by {item.verdict.reviewer} on item {item.id}."
        if unread is not None:
            message = f"{message} {unread}" if message else unread
        return render(
            request, "index.html",
            items=items[:limit], truncated=len(items) > limit, counts=rows, order=order, domain_param=domain_param,
            total_pending=total_pending, shown_pending=shown_pending, message=message,
            message_kind="error" if unread is not None else "ok", evaluation=evaluation,
            evaluation_param=evaluation_param, evaluation_mark=EVALUATION_MARK, has_audit=queue.audit is not None,
            evaluation_query=f"&evaluation={evaluation_param}" if evaluation_param else "",
            filter_said=filters_said(evaluation_param, domain_param),
        )  # fmt: skip

    async def decided_page(request: Request) -> Response:
        if (refusal := login_first(request)) is not None:
            return refusal
        evaluation_param, refused = evaluation_filter(request)
        if refused is not None:
            return refused
        domain_param = domain_of(request)
        limit = 1000  # the filters first, then the limit, as on the pending page
        items = await run_in_threadpool(lambda: queue.decided(domain_filter(domain_param), newest_first=True,
                                                              limit=None if evaluation_param else limit))
        counts = await run_in_threadpool(queue.counts)
        evaluation, _, unread = await run_in_threadpool(evaluation_of, items)
        total_decided = shown_decided = sum(c["decided"] for c in counts.values())
        if evaluation_param is not None:
            if unread is not None:  # the filter cannot be applied: said, not a list that reads as filtered
                return error(request, 503, unread)
            items = [it for it in items if bool(evaluation[it.id]) == (evaluation_param == "only")]
            shown_decided = len(items)  # read without the limit: every item the filters leave
        elif domain_param is not None:
            shown_decided = in_domain(counts, domain_param, "decided")
        return render(request, "decided.html", items=items[:limit], shown_decided=shown_decided,
                      total_decided=total_decided, evaluation=evaluation, evaluation_mark=EVALUATION_MARK,
                      evaluation_param=evaluation_param, has_audit=queue.audit is not None,
                      counts=domain_rows(counts), domain_param=domain_param,
                      evaluation_query=f"&evaluation={evaluation_param}" if evaluation_param else "",
                      filter_said=filters_said(evaluation_param, domain_param), message=unread,
                      message_kind="error")  # fmt: skip

    async def item_page(request: Request, item: ReviewItem, status: int = 200, message: str | None = None,
                        kind: str = "ok", form: dict[str, str] | None = None,
                        history: list[dict] | None = None) -> Response:  # fmt: skip
        form = dict(form or {})
        form.setdefault("reviewer", unquote(request.cookies.get(REVIEWER_COOKIE, "")))
        form.setdefault("note", "")
        form.setdefault("corrected_answer", "")
        try:  # whether a user waits on it, as `hguard review show` says it
            evaluation = (await run_in_threadpool(queue.for_evaluation, [item]))[item.id]
            said = evaluation_said(evaluation, queue.audit is not None)
        except AuditLogUnavailable:  # a page refusing a verdict for it (503) says why; the item is taken as live
            evaluation, said = None, "cannot be told: the audit log could not be read; take it as live: a user may wait"
        return render(request, "item.html", status, item=item, message=message, message_kind=kind, form=form,
                      history=history, evaluation=evaluation, evaluation_mark=EVALUATION_MARK, evaluation_said=said)

    async def item(request: Request) -> Response:
        # Access first, then the lookup: a 404 must not tell a stranger which ids exist.
        form = None
        if request.method == "GET":
            refusal = login_first(request)
        else:
            form, refusal = await checked_form(request, need_session=True)
        if refusal is not None:
            return refusal
        item_id = request.path_params["item_id"]
        found = await run_in_threadpool(queue.get, item_id)
        if found is None:
            return error(request, 404, f"no review item {item_id!r} in this queue; it may have been typed wrong")
        if request.method == "GET":  # say before the reviewer reads it when a verdict on it would be refused
            try:
                refused, history = await run_in_threadpool(queue.opened, item_id)
            except AuditLogUnavailable as e:  # not shown without its check and earlier turns; the operator is told too
                _log.error("review item %r not shown: %s", item_id, e, exc_info=e)
                return error(request, 503, str(e))
            return await item_page(request, found, message=refused and f"A verdict cannot be recorded here: {refused}",
                                   kind="error", history=history)  # fmt: skip
        assert form is not None  # checked_form returns the form whenever it refuses nothing
        values = {k: str(form.get(k) or "") for k in ("verdict", "reviewer", "note", "corrected_answer")}
        try:
            verdict = await run_in_threadpool(
                lambda: queue.decide(
                    item_id, verdict=values["verdict"], reviewer=values["reviewer"],  # type: ignore[arg-type]
                    corrected_answer=values["corrected_answer"] or None, note=values["note"] or None,
                )
            )  # fmt: skip
        except AlreadyDecided as e:
            current = await run_in_threadpool(queue.get, item_id)
            return await item_page(request, current or found, 409, str(e), "error")
        except ItemNotFound as e:
            return error(request, 404, str(e))
        except InputError as e:
            return await item_page(request, found, 400, f"Not recorded: {e}", "error", values)
        except VerdictRefused as e:  # the queue no longer matches the log, or an earlier verdict is pending
            return await item_page(request, found, 409, f"Not recorded: {e}", "error", values)
        except ReviewQueueError as e:  # the queue could not be written, or the log read or written: the operator is told too
            _log.error("verdict %s by %r on review item %r not recorded: %s", values["verdict"], values["reviewer"],
                       item_id, e, exc_info=e)  # fmt: skip
            # the form is kept: the reviewer submits it again once the log (503) or the queue (500) is fixed
            status = 503 if isinstance(e, AuditLogUnavailable) else 500
            return await item_page(request, found, status, f"Not recorded: {e}", "error", values)
        response = RedirectResponse(f"/?done={quote(verdict.item_id, safe='')}", status_code=303)
        # percent-encoded: a header is Latin-1, and a name such as "Łukasz" made the recorded verdict answer 500
        cookie(response, request, REVIEWER_COOKIE, quote(verdict.reviewer, safe=""), 30 * 24 * 3600)
        return response

    def safe_next(value: Any) -> str:
        # Only paths on this server: "//evil.example" or "https://..." would make login an open redirect.
        if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
            return value
        return "/"

    def log_event(kind: str, fields: dict) -> str | None:
        """A login (``review_login``) or a failed one (``review_login_failed``) put in the queue's audit log when it has
        one: None once on record (or with no log), else why it is not, said to this module's logger too (the operator's
        view; a refused login's page says it too, a failed one's does not). A record written whose append raised after
        it (the anchor, an AuditLog subclass's mirror) stands: what failed is logged as a warning
        (:func:`hguard.audit.append_written`)."""
        if queue.audit is None:
            return None
        what = "review login" if kind == "review_login" else "failed review login"
        try:
            receipt, failed = append_written(queue.audit, fields, kind=kind)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the record is not in the log: said, never passed over
            why = f"the audit log {queue.audit.path} could not be written ({error_text(exc)})"
            _log.error("%s from %s %s because %s; fix the audit log", what, fields.get("client"),
                       "refused: it could not be recorded" if kind == "review_login" else "was not recorded", why)  # fmt: skip
            return why
        if failed is not None:
            _log.warning("%s", sink_failed_after(f"the {what} from {fields.get('client')}", receipt, failed))
        return None

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "login.html", next=safe_next(request.query_params.get("next")))
        form, refusal = await checked_form(request, need_session=False)
        if refusal is not None:
            return refusal
        nxt = safe_next(form.get("next"))
        client = client_of(request)
        if auth.login_locked(client):
            return render(request, "login.html", 429, next=nxt, message_kind="error",
                          message="too many wrong tokens from this address in the last minute; wait a minute and "
                                  "try again")  # fmt: skip
        given = form.get("token")
        if not isinstance(given, str) or not auth.check_token(given):
            auth.note_failure(client)
            # on record for an auditor (at most the lockout's count per address and minute), the last one saying so
            # not on record: said in the server's log only (log_event), never on the page, which would tell someone
            # guessing tokens that its guesses go unlogged; the lockout counts them all the same
            await run_in_threadpool(
                log_event, "review_login_failed", {"client": client, "locked": auth.login_locked(client)})  # fmt: skip
            return render(request, "login.html", 403, next=nxt, message_kind="error",
                          message=f"wrong review token; use the value of {TOKEN_ENV} set where the server runs")  # fmt: skip
        # no session without its record: an auditor relies on the log holding every login that read the queue
        unrecorded = await run_in_threadpool(log_event, "review_login", {"client": client})
        if unrecorded is not None:
            return render(request, "login.html", 503, next=nxt, message_kind="error",
                          message=f"Not logged in: this login could not be recorded because {unrecorded}; fix the "
                                  "audit log and log in again")  # fmt: skip
        response = RedirectResponse(nxt, status_code=303)
        cookie(response, request, SESSION_COOKIE, auth.new_session(), SESSION_MAX_AGE_S)
        return response

    async def logout(request: Request) -> Response:
        form, refusal = await checked_form(request, need_session=False)
        if refusal is not None:
            return refusal
        auth.end_session(request.cookies.get(SESSION_COOKIE))  # a copy of the cookie no longer reads the queue
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure(request))
        return response

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/decided", decided_page, methods=["GET"]),
            Route("/items/{item_id:path}", item, methods=["GET", "POST"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[Middleware(_GuardMiddleware, allowed_hosts=hosts)],
    )
    app.state.queue = queue
    app.state.writable = auth.writable
    app.state.read_only_open = auth.read_only_open
    return app
