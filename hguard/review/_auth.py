"""The review site's access control: the review token, stateless sessions and CSRF tokens (HMACs keyed by
the token), the per-client login lockout, and the middleware that refuses foreign Host names and adds the
security headers. See :mod:`hguard.review.web` for the security model."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import InputError

TOKEN_ENV = "HGUARD_REVIEW_TOKEN"
MIN_TOKEN_LENGTH = 16
SESSION_MAX_AGE_S = 12 * 3600
_LOGIN_FAILURES_PER_MINUTE = 10
_LOGIN_WINDOW_S = 60.0
_MAX_TRACKED_CLIENTS = 10_000  # bounds the lockout table when many addresses try wrong tokens

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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _lockout_key(client: str) -> str:
    """Whose wrong tokens count together: every loopback address is one client (any local process can connect
    from any of 127.0.0.0/8, so a lockout per address let one guess 10 tokens a minute from each)."""
    return "loopback" if _is_loopback(client) else client


class _Auth:
    """Stateless sessions and CSRF tokens, all HMACs keyed by (keys derived from) the review token, and the
    per-client login lockout."""

    def __init__(self, token: str | None, *, read_only_open: bool = False) -> None:
        self.writable = token is not None
        self.read_only_open = bool(read_only_open)
        secret = token.encode("utf-8") if token is not None else secrets.token_bytes(32)
        self._token = secret if token is not None else None
        # a fresh salt per server process: a restart ends every session, so a session logged out here (held in
        # memory only) cannot come back with a copy of its cookie after a restart
        self._session_key = hmac.new(secret, b"hguard-review-session-v1" + secrets.token_bytes(16), hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"hguard-review-csrf-v1", hashlib.sha256).digest()
        # client address -> times of its latest wrong tokens (only the last few matter for the lockout)
        self._failures: dict[str, collections.deque[float]] = {}
        # sessions logged out (their random part -> when they would have expired): refused until then
        self._ended: dict[str, float] = {}
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
        client = _lockout_key(client)
        with self._lock:
            times = self._recent(client, time.monotonic())
            return times is not None and len(times) >= _LOGIN_FAILURES_PER_MINUTE

    def note_failure(self, client: str) -> None:
        client = _lockout_key(client)
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
        with self._lock:
            if parts[1] in self._ended:
                return False
        return -60 <= age <= SESSION_MAX_AGE_S

    def end_session(self, value: str | None) -> None:
        """Log a session out on this server: its cookie is refused from now on (a copy of it too) until it would
        have expired. Changing the token ends every session, on every server."""
        if not self.session_ok(value):
            return
        assert value is not None
        started, nonce, _ = value.split(".")
        now = time.time()
        with self._lock:
            for old in [k for k, until in self._ended.items() if until < now]:
                del self._ended[old]
            self._ended[nonce] = int(started) + SESSION_MAX_AGE_S

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

        started = False

        async def send_with_headers(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:  # the server's own 500 page (outside this middleware) had none of the headers
            if not started:
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *_SECURITY_HEADERS]})  # fmt: skip
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
            raise  # the traceback goes to the server's console, never to the client


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
