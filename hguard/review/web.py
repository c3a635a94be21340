"""The review web app: a small server-rendered Starlette site where people decide the answers in the queue.

Pages: ``/`` (pending items by risk, highest first, with counts per domain; ``?domain=`` filters,
``?order=time`` sorts oldest first), ``/items/{id}`` (question, answer, risk, every signal, the reasons and the
retrieved context, with the verdict form), ``/decided`` (what was decided), ``/login`` and ``/logout``.
No JavaScript and no front-end build: the pages are Jinja2 templates (kept in this file so they ship with the
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
  the token logs everyone out (``/logout`` only drops this browser's cookie). Every page showing queued items
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

import base64
import collections
import hashlib
import hmac
import ipaddress
import json
import math
import os
import secrets
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ..audit import AuditLog
from ..errors import HGuardError, InputError, ReviewQueueError
from .queue import NO_DOMAIN, AlreadyDecided, ItemNotFound, ReviewItem, ReviewQueue

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

__all__ = ["TOKEN_ENV", "cli_main", "create_app", "make_server", "serve"]

TOKEN_ENV = "HGUARD_REVIEW_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MIN_TOKEN_LENGTH = 16
SESSION_MAX_AGE_S = 12 * 3600
SESSION_COOKIE = "hguard_review_session"
CSRF_COOKIE = "hguard_review_csrf"
REVIEWER_COOKIE = "hguard_reviewer"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_MAX_BODY = 2 * 1024 * 1024
_LOGIN_FAILURES_PER_MINUTE = 10
_LOGIN_WINDOW_S = 60.0
_MAX_TRACKED_CLIENTS = 10_000  # bounds the lockout table when many addresses try wrong tokens
_NO_DOMAIN_PARAM = "-"
_INSTALL_HINT = "install the review extra: pip install 'hguard[review]' (starlette, uvicorn, jinja2, python-multipart)"

_SECURITY_HEADERS = [
    # No script runs on these pages at all; untrusted text that escaped escaping still could not execute.
    (b"content-security-policy",
     b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin: our own POSTs carry a Referer for the cross-site check, other sites learn nothing.
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# templates

_BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}Review queue{% endblock %} · hguard</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { background: #1d2430; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.2rem; align-items: center; }
header a, header button { color: #fff; text-decoration: none; font: inherit; }
header .brand { font-weight: 700; }
header .right { margin-left: auto; display: flex; gap: .8rem; align-items: center; }
header button { background: none; border: 1px solid #fff6; border-radius: 4px; padding: .1rem .6rem; cursor: pointer; }
main { max-width: 72rem; margin: 1.2rem auto; padding: 0 1.2rem; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
.risk { font-variant-numeric: tabular-nums; font-weight: 600; }
.risk.high { color: #b42318; } .risk.mid { color: #b54708; } .risk.low { color: #067647; } .risk.none { color: #6b7280; }
.banner, .msg { padding: .6rem .9rem; border-radius: 6px; margin: 0 0 1rem; }
.banner { background: #fff4e5; border: 1px solid #f5c27a; }
.msg.ok { background: #e8f6ee; border: 1px solid #8fd1a8; }
.msg.error { background: #fdecec; border: 1px solid #f0a3a3; }
.filters a { margin-right: .6rem; } .filters a.active { font-weight: 700; text-decoration: none; color: #1d2430; }
.text { white-space: pre-wrap; background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: .7rem .9rem;
        margin: 0; font: inherit; overflow-wrap: anywhere; }
.context { max-height: 24rem; overflow: auto; font-family: ui-monospace, monospace; font-size: .85rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.meta dt { color: #6b7280; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
form.verdict { background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: 1rem; display: grid; gap: .8rem; }
form.verdict label { display: grid; gap: .2rem; font-weight: 600; }
input[type=text], input[type=password], textarea { font: inherit; padding: .4rem .5rem; border: 1px solid #c5cbd3; border-radius: 4px; }
textarea { min-height: 4.5rem; }
.buttons { display: flex; gap: .6rem; flex-wrap: wrap; }
button.act { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid transparent; cursor: pointer; color: #fff; }
button.correct { background: #067647; } button.hallucinated { background: #b42318; } button.corrected { background: #1f5fbf; }
button.plain { background: #1d2430; }
.muted { color: #6b7280; } .count { font-variant-numeric: tabular-nums; }
ul.reasons { margin: 0; padding-left: 1.2rem; }
</style>
</head>
<body>
<header>
  <a class="brand" href="/">hguard review</a>
  <a href="/">Pending</a>
  <a href="/decided">Decided</a>
  <span class="right">
  {% if logged_in %}
    <span>signed in</span>
    <form method="post" action="/logout" style="margin:0">
      <input type="hidden" name="csrf_token" value="{{ csrf }}">
      <button type="submit">Log out</button>
    </form>
  {% elif writable %}
    <a href="/login?next={{ request_path|urlencode }}">Log in</a>
  {% else %}
    <span>read-only</span>
  {% endif %}
  </span>
</header>
<main>
{% if not writable %}
<p class="banner">Read-only and open: started with --read-only-open and no review token, so any local process
can read this queue and verdicts cannot be recorded. Set {{ token_env }} (16 characters or more) and restart
<code>hguard review serve</code> to record verdicts.</p>
{% endif %}
{% if message %}<p class="msg {{ message_kind }}" role="status" id="message">{{ message }}</p>{% endif %}
{% block content %}{% endblock %}
</main>
</body>
</html>
"""

_INDEX = """{% extends "base.html" %}
{% block content %}
<h1>Pending review <span class="muted count">({{ total_pending }})</span></h1>
<table class="counts" id="counts">
<thead><tr><th>Domain</th><th>Pending</th><th>Decided</th><th>Monitor</th></tr></thead>
<tbody>
{% for row in counts %}
<tr><td><a href="/?domain={{ row.param|urlencode }}&amp;order={{ order }}">{{ row.label }}</a></td>
<td class="count">{{ row.pending }}</td><td class="count">{{ row.decided }}</td>
<td class="monitor-state">{{ row.state }}</td></tr>
{% else %}
<tr><td colspan="3" class="muted">The queue is empty.</td></tr>
{% endfor %}
</tbody>
</table>
<p class="filters">
Domain:
<a href="/?order={{ order }}" class="{{ 'active' if domain_param is none else '' }}">all</a>
{% for row in counts %}<a href="/?domain={{ row.param|urlencode }}&amp;order={{ order }}"
 class="{{ 'active' if domain_param == row.param else '' }}">{{ row.label }}</a>{% endfor %}
&nbsp; Sort:
<a href="{{ self_url(order='risk') }}" class="{{ 'active' if order == 'risk' else '' }}">highest risk first</a>
<a href="{{ self_url(order='time') }}" class="{{ 'active' if order == 'time' else '' }}">oldest first</a>
</p>
<table id="pending">
<thead><tr><th>Risk</th><th>Domain</th><th>Question</th><th>Answer</th><th>Why review</th><th>Time</th></tr></thead>
<tbody>
{% for item in items %}
<tr data-item-id="{{ item.id }}">
<td class="risk {{ item.risk|risk_class }}">{{ item.risk|fmt_risk }}</td>
<td>{{ item.domain or "(none)" }}</td>
<td><a href="/items/{{ item.id|urlencode }}">{{ item.question|truncate(140) }}</a></td>
<td>{{ item.answer|truncate(140) }}</td>
<td>{% if item.spot_check %}<strong class="spot-check">spot-check</strong> {% endif %}{{ item.reasons[0]|truncate(120) if item.reasons else "" }}</td>
<td class="muted">{{ item.time[:19]|replace("T", " ") }}</td>
</tr>
{% else %}
<tr><td colspan="6" class="muted">Nothing is waiting for review{{ " in this domain" if domain_param is not none else "" }}.</td></tr>
{% endfor %}
</tbody>
</table>
{% if truncated %}<p class="muted">Showing the first {{ items|length }}.</p>{% endif %}
{% endblock %}
"""

_ITEM = """{% extends "base.html" %}
{% block title %}Item {{ item.id|truncate(24) }}{% endblock %}
{% block content %}
<h1>Review item <span class="muted">{{ item.id }}</span></h1>
<dl class="meta">
<dt>Risk</dt><dd class="risk {{ item.risk|risk_class }}" id="risk">{{ item.risk|fmt_risk }}</dd>
<dt>Domain</dt><dd>{{ item.domain or "(none)" }}</dd>
<dt>Kind</dt><dd id="kind">{{ "spot-check of an accepted answer (the user got it)" if item.spot_check else "routed to review" }}</dd>
<dt>Decided by the guard</dt><dd>{{ item.time }}</dd>
<dt>Status</dt><dd id="status">{{ item.status }}</dd>
<dt>Model fingerprint</dt><dd>{{ item.model_fingerprint or "(not recorded)" }}</dd>
<dt>Probe</dt><dd>{{ item.probe_id or "(none)" }}</dd>
<dt>Audit record</dt><dd>{{ item.audit_id }}</dd>
</dl>
<h2>Question</h2>
<pre class="text" id="question">{{ item.question }}</pre>
<h2>Answer</h2>
<pre class="text" id="answer">{{ item.answer }}</pre>
<h2>Why it was sent to review</h2>
{% if item.reasons %}<ul class="reasons" id="reasons">{% for r in item.reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{% else %}<p class="muted">No reasons recorded.</p>{% endif %}
<h2>Signals</h2>
{% if item.signals %}
<table id="signals"><thead><tr><th>Signal</th><th>Value</th></tr></thead><tbody>
{% for name, value in item.signals|dictsort %}<tr><td>{{ name }}</td><td>{{ value|fmt_value }}</td></tr>{% endfor %}
</tbody></table>
{% else %}<p class="muted">No signals recorded.</p>{% endif %}
<h2>Retrieved context</h2>
{% if item.context is not none %}<pre class="text context" id="context">{{ item.context }}</pre>
{% else %}<p class="muted">No context was retrieved for this answer.</p>{% endif %}

<h2>Verdict</h2>
{% if item.verdict %}
<dl class="meta" id="verdict">
<dt>Verdict</dt><dd>{{ item.verdict.verdict }}</dd>
<dt>By</dt><dd>{{ item.verdict.reviewer }}</dd>
<dt>At</dt><dd>{{ item.verdict.decided_at }}</dd>
{% if item.verdict.corrected_answer is not none %}<dt>Corrected answer</dt><dd>{{ item.verdict.corrected_answer }}</dd>{% endif %}
{% if item.verdict.note %}<dt>Note</dt><dd>{{ item.verdict.note }}</dd>{% endif %}
{% if item.verdict.audit_record_id %}<dt>Audit record</dt><dd>{{ item.verdict.audit_record_id }}</dd>{% endif %}
</dl>
{% elif not writable %}
<p class="muted">Verdicts cannot be recorded in read-only mode.</p>
{% elif not logged_in %}
<p><a href="/login?next={{ request_path|urlencode }}">Log in with the review token</a> to record a verdict.</p>
{% else %}
<form class="verdict" method="post" action="/items/{{ item.id|urlencode }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<label>Your name <input type="text" name="reviewer" value="{{ form.reviewer }}" maxlength="200" required></label>
<label>Note (optional) <textarea name="note">{{ form.note }}</textarea></label>
<div class="buttons">
<button class="act correct" type="submit" name="verdict" value="correct">Correct</button>
<button class="act hallucinated" type="submit" name="verdict" value="hallucinated">Hallucinated</button>
</div>
<label>Better answer (when you know it) <textarea name="corrected_answer">{{ form.corrected_answer }}</textarea></label>
<div class="buttons">
<button class="act corrected" type="submit" name="verdict" value="corrected">Save the corrected answer</button>
</div>
</form>
{% endif %}
{% endblock %}
"""

_DECIDED = """{% extends "base.html" %}
{% block title %}Decided{% endblock %}
{% block content %}
<h1>Decided <span class="muted count">(latest {{ items|length }})</span></h1>
<table id="decided">
<thead><tr><th>When</th><th>Verdict</th><th>By</th><th>Risk</th><th>Domain</th><th>Question</th></tr></thead>
<tbody>
{% for item in items %}
<tr><td class="muted">{{ item.verdict.decided_at[:19]|replace("T", " ") }}</td><td>{{ item.verdict.verdict }}</td>
<td>{{ item.verdict.reviewer }}</td><td class="risk {{ item.risk|risk_class }}">{{ item.risk|fmt_risk }}</td>
<td>{{ item.domain or "(none)" }}</td>
<td><a href="/items/{{ item.id|urlencode }}">{{ item.question|truncate(140) }}</a></td></tr>
{% else %}
<tr><td colspan="6" class="muted">No verdicts yet.</td></tr>
{% endfor %}
</tbody>
</table>
{% endblock %}
"""

_LOGIN = """{% extends "base.html" %}
{% block title %}Log in{% endblock %}
{% block content %}
<h1>Log in</h1>
{% if writable %}
<form class="verdict" method="post" action="/login" style="max-width:28rem">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>Review token <input type="password" name="token" autocomplete="current-password" required></label>
<div class="buttons"><button class="act plain" type="submit">Log in</button></div>
</form>
<p class="muted">The token is the value of {{ token_env }} on the machine running the server.</p>
{% endif %}
{% endblock %}
"""

_ERROR = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block content %}<h1>{{ title }}</h1><p><a href="/">Back to the queue</a></p>{% endblock %}
"""

TEMPLATES = {
    "base.html": _BASE,
    "index.html": _INDEX,
    "item.html": _ITEM,
    "decided.html": _DECIDED,
    "login.html": _LOGIN,
    "error.html": _ERROR,
}


def _fmt_risk(risk: float | None) -> str:
    return "unscored" if risk is None else f"{risk:.3f}"


def _risk_class(risk: float | None) -> str:
    if risk is None:
        return "none"
    return "high" if risk >= 0.5 else "mid" if risk >= 0.2 else "low"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if value is None:
        return "(none)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _jinja_env() -> Any:
    try:
        import jinja2
    except ImportError as e:
        raise HGuardError(f"the review web app needs jinja2 ({e}); {_INSTALL_HINT}") from e
    # Autoescape every template whatever its name: all of them render untrusted questions and answers.
    env = jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["fmt_risk"] = _fmt_risk
    env.filters["risk_class"] = _risk_class
    env.filters["fmt_value"] = _fmt_value
    return env


# --------------------------------------------------------------------------------------------------------------
# tokens, sessions, CSRF


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class _Auth:
    """Stateless sessions and CSRF tokens, all HMACs keyed by (keys derived from) the review token, and the
    per-client login lockout."""

    def __init__(self, token: str | None, *, read_only_open: bool = False) -> None:
        self.writable = token is not None
        self.read_only_open = bool(read_only_open)
        secret = token.encode("utf-8") if token is not None else secrets.token_bytes(32)
        self._token = secret if token is not None else None
        self._session_key = hmac.new(secret, b"hguard-review-session-v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"hguard-review-csrf-v1", hashlib.sha256).digest()
        # client address -> times of its latest wrong tokens (only the last few matter for the lockout)
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def check_token(self, given: str) -> bool:
        if self._token is None:
            return False
        return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(), hashlib.sha256(self._token).digest())

    def can_read(self, session_cookie: str | None) -> bool:
        return self.read_only_open or self.session_ok(session_cookie)

    def _recent(self, client: str, now: float) -> collections.deque[float] | None:
        times = self._failures.get(client)
        while times and now - times[0] > _LOGIN_WINDOW_S:
            times.popleft()
        if times is not None and not times:
            del self._failures[client]
            return None
        return times

    def login_locked(self, client: str) -> bool:
        with self._lock:
            times = self._recent(client, time.monotonic())
            return times is not None and len(times) >= _LOGIN_FAILURES_PER_MINUTE

    def note_failure(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                if len(self._failures) >= _MAX_TRACKED_CLIENTS:
                    for other in list(self._failures):
                        self._recent(other, now)
                    while len(self._failures) >= _MAX_TRACKED_CLIENTS:  # still full: forget the stalest client
                        del self._failures[min(self._failures, key=lambda c: self._failures[c][-1])]
                times = self._failures[client] = collections.deque(maxlen=_LOGIN_FAILURES_PER_MINUTE)
            times.append(now)

    def new_session(self) -> str:
        body = f"{int(time.time())}.{_b64(secrets.token_bytes(18))}"
        mac = hmac.new(self._session_key, body.encode("ascii"), hashlib.sha256).digest()
        return f"{body}.{_b64(mac)}"

    def session_ok(self, value: str | None) -> bool:
        if not self.writable or not value:
            return False
        parts = value.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return False
        body = f"{parts[0]}.{parts[1]}"
        mac = _b64(hmac.new(self._session_key, body.encode("ascii", "replace"), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, parts[2]):
            return False
        age = time.time() - int(parts[0])
        return -60 <= age <= SESSION_MAX_AGE_S

    def csrf_for(self, seed: str) -> str:
        return _b64(hmac.new(self._csrf_key, seed.encode("utf-8"), hashlib.sha256).digest())

    def csrf_ok(self, seed: str | None, given: Any) -> bool:
        if not seed or not isinstance(given, str) or not given:
            return False
        return hmac.compare_digest(self.csrf_for(seed), given)


def _host_of(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class _GuardMiddleware:
    """Rejects requests for foreign Host names (DNS rebinding) and adds the security headers to every answer."""

    def __init__(self, app: Any, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allow_any = "*" in allowed_hosts
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = _host_of(headers.get(b"host", b"").decode("latin-1")).lower()
        if not self.allow_any and host not in self.allowed:
            body = (
                f"Host {host!r} is not served here (allowed: {', '.join(sorted(self.allowed))}); open the review "
                "page by one of those names, or start the server with --allowed-host NAME"
            ).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), *_SECURITY_HEADERS]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --------------------------------------------------------------------------------------------------------------
# the app


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


_MAKE_TOKEN = f"export {TOKEN_ENV}=$(python -c 'import secrets;print(secrets.token_urlsafe(32))')"


def _check_token(token: Any, read_only_open: bool) -> str | None:
    if token is None:
        if read_only_open:
            return None
        raise InputError(
            f"no review token is configured ({TOKEN_ENV} is unset or empty) and reading the queue needs one; make "
            f"one with: {_MAKE_TOKEN} and start again, or pass --read-only-open (read_only_open=True) to let any "
            "local process read every queued question and answer, with verdicts disabled"
        )
    if not isinstance(token, str) or len(token.strip()) < MIN_TOKEN_LENGTH:
        shown = f"a {type(token).__name__}" if not isinstance(token, str) else f"{len(token)} characters"
        raise InputError(
            f"the review token must be a string of at least {MIN_TOKEN_LENGTH} characters (got {shown}); make one "
            f"with: {_MAKE_TOKEN}"
        )
    return token


def create_app(
    queue: ReviewQueue,
    *,
    token: str | None,
    audit: AuditLog | None = None,
    allowed_hosts: Sequence[str] | None = None,
    read_only_open: bool = False,
    monitor_state: str | os.PathLike[str] | None = None,
) -> Starlette:
    """The review site for ``queue``. Reading and verdicts need ``token`` (None is refused with InputError)
    unless ``read_only_open=True``, which lets anyone who reaches the server read the queue (verdicts still need
    the token; with ``token=None`` none can be recorded). ``audit`` logs verdicts (unless the queue has its own
    log). ``allowed_hosts``: Host names served (default: the loopback names).
    ``monitor_state``: the monitor's state file, to show each domain's state (normal or tightened)."""
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
    if not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise InputError(f"allowed_hosts must be a non-empty list of host names, got {allowed_hosts!r}")
    auth = _Auth(token, read_only_open=read_only_open)
    env = _jinja_env()
    from ..monitor import MonitorState

    states = MonitorState(monitor_state)

    def state_of(domain: str | None) -> str:
        st = states.get(domain)
        if st is None or st.state == "normal":
            return "normal" if monitor_state is not None and domain is not None else ""
        return f"tightened since {st.since}: {st.reason}"

    def cookie(response: Response, request: Request, key: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            key, value, max_age=max_age, path="/", httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
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
            return "/?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())

        ctx.setdefault("message", None)
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
                  429: "Too many attempts", 500: "Not recorded"}  # fmt: skip
        return render(request, "error.html", status, title=titles.get(status, "Error"), message=message,
                      message_kind="error")  # fmt: skip

    def same_origin(request: Request) -> str | None:
        """Why a POST is refused as cross-site, or None when it comes from our own pages."""
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
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

    async def index(request: Request) -> Response:
        if (refusal := login_first(request)) is not None:
            return refusal
        order = request.query_params.get("order", "risk")
        if order not in ("risk", "time"):
            return error(request, 400, f"order must be 'risk' or 'time', got {order!r}")
        domain_param = request.query_params.get("domain") or None
        limit = 500
        items = await run_in_threadpool(queue.pending, domain_filter(domain_param), order, limit + 1)
        counts = await run_in_threadpool(queue.counts)
        rows = [
            {"label": d if d is not None else "(no domain)", "param": d if d is not None else _NO_DOMAIN_PARAM,
             "pending": c["pending"], "decided": c["decided"], "state": state_of(d)}
            for d, c in counts.items()
        ]  # fmt: skip
        message = None
        done = request.query_params.get("done")
        if done:
            item = await run_in_threadpool(queue.get, done)
            if item is not None and item.verdict is not None:
                message = f"Recorded: {item.verdict.verdict} by {item.verdict.reviewer} on item {item.id}."
        return render(
            request, "index.html",
            items=items[:limit], truncated=len(items) > limit, counts=rows, order=order, domain_param=domain_param,
            total_pending=sum(c["pending"] for c in counts.values()), message=message,
        )  # fmt: skip

    async def decided_page(request: Request) -> Response:
        if (refusal := login_first(request)) is not None:
            return refusal
        items = await run_in_threadpool(lambda: queue.decided(limit=1000, newest_first=True))
        return render(request, "decided.html", items=items)

    def item_page(request: Request, item: ReviewItem, status: int = 200, message: str | None = None,
                  kind: str = "ok", form: dict[str, str] | None = None) -> Response:  # fmt: skip
        form = dict(form or {})
        form.setdefault("reviewer", request.cookies.get(REVIEWER_COOKIE, ""))
        form.setdefault("note", "")
        form.setdefault("corrected_answer", "")
        return render(request, "item.html", status, item=item, message=message, message_kind=kind, form=form)

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
        if request.method == "GET":
            return item_page(request, found)
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
            return item_page(request, current or found, 409, str(e), "error")
        except ItemNotFound as e:
            return error(request, 404, str(e))
        except InputError as e:
            return item_page(request, found, 400, f"Not recorded: {e}", "error", values)
        except ReviewQueueError as e:
            return item_page(request, found, 500, f"Not recorded: {e}", "error", values)
        response = RedirectResponse(f"/?done={quote(verdict.item_id, safe='')}", status_code=303)
        cookie(response, request, REVIEWER_COOKIE, verdict.reviewer, 30 * 24 * 3600)
        return response

    def safe_next(value: Any) -> str:
        # Only paths on this server: "//evil.example" or "https://..." would make login an open redirect.
        if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
            return value
        return "/"

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
            return render(
                request, "login.html", 403, next=nxt, message_kind="error",
                message=f"wrong review token; use the value of {TOKEN_ENV} set where the server runs",
            )  # fmt: skip
        response = RedirectResponse(nxt, status_code=303)
        cookie(response, request, SESSION_COOKIE, auth.new_session(), SESSION_MAX_AGE_S)
        return response

    async def logout(request: Request) -> Response:
        form, refusal = await checked_form(request, need_session=False)
        if refusal is not None:
            return refusal
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
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


# --------------------------------------------------------------------------------------------------------------
# serving


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _existing_folder(path: Path, what: str, fix: str) -> None:
    """Refuse a path whose folder does not exist, instead of creating a new, empty queue or log there."""
    if not path.parent.is_dir():
        raise InputError(f"{what} {path} is in a folder that does not exist ({path.parent}); {fix}")


def _open_source(
    source: ReviewQueue | str | os.PathLike[str], audit: AuditLog | str | os.PathLike[str] | None
) -> ReviewQueue:
    """A queue (with its audit log) from a ReviewQueue, a policy file (.toml/.yaml/.yml) or a queue file.

    A queue file must exist: a mistyped path is an error, not a new empty queue. A policy's ``review.queue`` is
    created when missing (as the guard would create it) only if its folder exists.
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
    if path.suffix.lower() in (".toml", ".yaml", ".yml"):
        from ..policy import load_policy

        policy = load_policy(path)
        queue_path = Path(policy.review.queue)
        # Checked before the audit log is opened: opening it creates its folder, which may be this one.
        if not queue_path.is_file():
            _existing_folder(
                queue_path, f"the review queue (review.queue in {path})",
                f"correct review.queue in {path}, or create the folder (mkdir -p {queue_path.parent})",
            )  # fmt: skip
        if audit is None:
            audit = AuditLog.from_policy(policy)
        return ReviewQueue(queue_path, audit=audit)
    if not path.is_file():
        _existing_folder(
            path, "the review queue", "check the path, or pass --policy FILE to use the queue the policy names"
        )  # fmt: skip
        kind = "is a folder, not a queue file" if path.is_dir() else "does not exist"
        raise InputError(
            f"no review queue at {path}: it {kind}; check the path, or pass --policy FILE (the guard creates the "
            "queue at the policy's review.queue when it first routes an answer to review)"
        )
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
) -> uvicorn.Server:
    """A configured, not yet started uvicorn server for the review site (``.run()`` starts it).

    ``source``: a ReviewQueue, a policy file or an existing queue file (see :func:`_open_source`). ``token``:
    the review token; None reads ``HGUARD_REVIEW_TOKEN``, and with neither the server is refused unless
    ``read_only_open=True`` (see :func:`create_app`). Only loopback addresses are accepted for ``host`` unless
    ``allow_remote=True``.
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
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    _check_token(token, read_only_open)  # before the queue is opened: a refused start touches nothing
    queue = _open_source(source, audit)
    if allowed_hosts is None:
        allowed_hosts = ["*"] if remote else sorted({*_LOOPBACK_HOSTS, host.strip("[]")})
    state = None
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in (".toml", ".yaml", ".yml"):
        from ..policy import load_policy

        state = load_policy(source).monitor.state
    app = create_app(
        queue, token=token, allowed_hosts=allowed_hosts, read_only_open=read_only_open, monitor_state=state
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
) -> None:
    """Serve the review site until interrupted (see :func:`make_server` for the arguments)."""
    make_server(
        source, host, port, token=token, audit=audit, allow_remote=allow_remote, allowed_hosts=allowed_hosts,
        read_only_open=read_only_open,
    ).run()  # fmt: skip



def cli_main(argv: list[str]) -> int:
    """The ``hguard review`` command; it lives in :mod:`hguard.cli.review` (kept here for old imports)."""
    from ..cli.review import main

    return main(argv)
