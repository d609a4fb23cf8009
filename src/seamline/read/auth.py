"""Access control of the admin listener: a bearer token for programs, a session cookie for the run pages.

- With a token (`admin.token`): every route but the probes (/healthz, /readyz, and /metrics unless
  `admin.protect_metrics`) needs `Authorization: Bearer <token>` or the session cookie. A browser gets the cookie by
  posting the token to the login form the 401 page shows, or by opening a run page once with `?token=…` (then it is
  redirected to the same address without it, so the token leaves the address bar and the history).
- The cookie holds an expiry and an HMAC of it keyed by the token (never the token): HttpOnly, SameSite=Strict,
  Path=/runs (and the same value as `seamline_admin_handoffs`, Path=/handoffs, for the overview page); changing the
  token ends every session.
- Without a token (loopback only, enforced by the config), the same routes answer only requests whose Host is a
  loopback name: a web page cannot read them through DNS rebinding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from seamline.config.admin import Admin, is_loopback_host
from seamline.errors import problem
from seamline.read.web import render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

COOKIE = "seamline_admin"
COOKIE_PATH = "/runs"
# The same session for the overview page: a cookie's Path is a prefix, so /handoffs gets its own (same value).
OVERVIEW_COOKIE = "seamline_admin_handoffs"
OVERVIEW_PATH = "/handoffs"
BROWSER_PATHS = (COOKIE_PATH, OVERVIEW_PATH)
LOGIN_PATH = "/login"
PROBES = frozenset({"/healthz", "/readyz"})
_REALM = 'Bearer realm="seamline-admin"'
_MAX_TOKEN_FIELD = 4096


def session_value(token: str, expires: int) -> str:
    """`<expiry>.<HMAC-SHA256(token, expiry)>`: proves the token was shown, without holding it."""
    mac = hmac.new(token.encode(), f"seamline-admin-session:{expires}".encode(), hashlib.sha256).digest()
    return f"{expires}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def session_valid(token: str, value: str, now: float) -> bool:
    expires_text, _, _ = value.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    return expires > now and hmac.compare_digest(session_value(token, expires).encode(), value.encode())


def token_matches(token: str, offered: str) -> bool:
    """Constant-time comparison (of digests, so the time does not depend on the lengths either)."""
    return hmac.compare_digest(hashlib.sha256(offered.encode()).digest(), hashlib.sha256(token.encode()).digest())


def local_next(raw: str) -> str:
    """A redirect target that stays on this listener: an absolute path, never `//host` or a scheme."""
    if not raw.startswith("/") or raw.startswith("//") or "\\" in raw or any(ord(c) < 0x20 for c in raw):
        return "/runs"
    return raw


class AdminAuth:
    """The admin app's middleware and login handler, for one `admin` config."""

    def __init__(self, config: Admin, *, clock: Callable[[], float] = time.time) -> None:
        self.token = config.secret()
        self.protect_metrics = config.protect_metrics
        self.ttl = int(config.session_ttl)
        self.clock = clock

    def open_route(self, path: str) -> bool:
        return path in PROBES or (path == "/metrics" and not self.protect_metrics) or (path == LOGIN_PATH and bool(self.token))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.open_route(request.path):
            return await handler(request)
        if self.token is None:
            if "Host" in request.headers and not is_loopback_host(request.url.host or ""):
                return problem(
                    421,
                    "admin-host-not-loopback",
                    "Admin listener answers loopback host names only",
                    "without admin.token this listener only answers requests for localhost, 127.0.0.1 or [::1]; "
                    "set admin.token to reach it under another name",
                )
            return await handler(request)
        if request.method == "GET" and "token" in request.query and request.path.startswith(BROWSER_PATHS):
            return self._login_from_query(request)  # a link carrying the token: trade it for the cookie
        verdict = self._authenticate(request)
        if verdict is True:
            return await handler(request)
        return self.unauthorized(request, wrong=verdict is None)

    def _authenticate(self, request: web.Request) -> bool | None:
        """True: authenticated; None: credentials offered but wrong; False: none offered."""
        assert self.token is not None
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, offered = auth.partition(" ")
            return True if scheme.lower() == "bearer" and token_matches(self.token, offered.strip()) else None
        cookie = request.cookies.get(COOKIE) or request.cookies.get(OVERVIEW_COOKIE)
        if cookie is not None:
            return True if session_valid(self.token, cookie, self.clock()) else None
        return False

    def _login_from_query(self, request: web.Request) -> web.StreamResponse:
        assert self.token is not None
        if not token_matches(self.token, request.query.get("token", "")):
            return self.unauthorized(request, wrong=True)
        return self._signed_in(request, URL.build(path=request.path, query=_without_token(request)).path_qs)

    async def login(self, request: web.Request) -> web.StreamResponse:
        """POST /login (form: token, next): the session cookie, then 303 to `next`."""
        if self.token is None:
            raise web.HTTPNotFound()
        form = await request.post()
        offered, target = str(form.get("token", ""))[:_MAX_TOKEN_FIELD], local_next(str(form.get("next", "/runs")))
        if not token_matches(self.token, offered):
            return self.unauthorized(request, wrong=True, next_path=target, html=True)
        return self._signed_in(request, target)

    def _signed_in(self, request: web.Request, target: str) -> web.StreamResponse:
        assert self.token is not None
        headers = {"Location": target, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        resp = web.Response(status=303, headers=headers)
        value = session_value(self.token, int(self.clock()) + self.ttl)
        # The run pages' cookie last: clients that fold both Set-Cookie headers into one line still parse it whole.
        for name, path in ((OVERVIEW_COOKIE, OVERVIEW_PATH), (COOKIE, COOKIE_PATH)):
            resp.set_cookie(name, value, max_age=self.ttl, path=path, httponly=True, samesite="Strict", secure=request.secure)
        return resp

    def unauthorized(
        self, request: web.Request, *, wrong: bool, next_path: str | None = None, html: bool | None = None
    ) -> web.StreamResponse:
        """401: problem+json for programs, the login form for a browser on a run page; nothing of the request echoed."""
        challenge = _REALM + (', error="invalid_token"' if wrong else "")
        if html is None:
            html = request.path.startswith(BROWSER_PATHS) and "text/html" in request.headers.get("Accept", "")
        if html:
            nonce = secrets.token_urlsafe(16)
            target = local_next(next_path or URL.build(path=request.path, query=_without_token(request)).path_qs)
            page = render.login_page(next_path=target, wrong=wrong)
            resp = render_html(page, nonce, status=401)
            resp.headers["WWW-Authenticate"] = challenge
            return resp
        detail = (
            "the admin token was not accepted"
            if wrong
            else "this admin route needs the admin token: send Authorization: Bearer <token> (admin.token)"
        )
        return problem(401, "admin-unauthorized", "Admin token required", detail, headers={"WWW-Authenticate": challenge})


def _without_token(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.query.items() if k != "token"}


def render_html(text: str, nonce: str, status: int = 200) -> web.Response:
    """An admin HTML page with the run pages' headers (CSP with a per-response script nonce, no sniffing, no referrer)."""
    resp = web.Response(status=status, text=text, content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
        "img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def setup_auth(app: web.Application, config: Admin) -> AdminAuth:
    """Guard every route of the admin `app` as `config` says (call before the app starts)."""
    auth = AdminAuth(config)
    app.middlewares.append(auth.middleware)
    if auth.token is not None:
        app.router.add_post(LOGIN_PATH, auth.login)
    return auth
