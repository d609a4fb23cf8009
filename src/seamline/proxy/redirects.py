"""Reverse mode: redirects that point back at the upstream are rewritten to the Seamline route. Pure.

As nginx's default `proxy_redirect`: a `Location`/`Content-Location` under the upstream's base URL (absolute, or
an absolute path under its base path) becomes the route that reaches the same resource through Seamline, so a
client that follows redirects stays routed and recorded. Anything else (another host, a path outside the base
path, a relative reference, which already resolves against the routed URL) passes unchanged. The strings are
edited, never re-encoded: what the upstream percent-encoded stays so. `rewrite_location` is pure.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from seamline.config.models import Config
from seamline.exchange import Exchange

REWRITTEN_HEADERS = ("Location", "Content-Location")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectBase(NamedTuple):
    """One upstream's base URL, split once at start-up, and the Seamline route prefix that reaches it."""

    scheme: str
    host: str
    port: int
    path: str  # base path without a trailing '/', '' for the root
    route: str  # '/<upstream name>'

    @classmethod
    def of(cls, name: str, base_url: URL) -> RedirectBase:
        port = base_url.port or _DEFAULT_PORTS.get(base_url.scheme, 0)
        return cls(base_url.scheme, (base_url.host or "").lower(), port, base_url.raw_path.rstrip("/"), "/" + name)


def rewrite_location(value: str, base: RedirectBase, origin: str) -> str:
    """The Seamline form of one Location value (`origin`: `scheme://host[:port]` the client used, or '')."""
    v = value.strip()
    if v.startswith("/") and not v.startswith("//"):
        rest = _under(v, base.path)
        return value if rest is None else base.route + rest
    try:
        parts = urlsplit(v)
    except ValueError:
        return value
    if parts.scheme.lower() != base.scheme or not parts.netloc or "@" in parts.netloc:
        return value
    try:
        host, port = (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:  # a port that is not a number
        return value
    if host != base.host or port != base.port:
        return value
    tail = v[len(parts.scheme) + 3 + len(parts.netloc) :] or "/"
    if not tail.startswith("/"):  # '?q' or '#f' straight after the authority
        tail = "/" + tail
    rest = _under(tail, base.path)
    if rest is None:
        return value
    # Without the client's Host (HTTP/1.0) an absolute path is a valid Location too (RFC 9110 §10.2.2).
    return origin + base.route + rest


def _under(path_and_more: str, base_path: str) -> str | None:
    """The part after `base_path` when the reference is under it (on a segment boundary), else None."""
    if not base_path:
        return path_and_more
    if not path_and_more.startswith(base_path):
        return None
    rest = path_and_more[len(base_path) :]
    if rest and rest[0] not in "/?#":
        return None  # /apiv2 is not under /api
    return rest if rest.startswith("/") else "/" + rest if rest else "/"


class RewriteRedirects:
    """Response stage (reverse mode): `rewrite_location` on Location/Content-Location, per upstream's
    `rewrite_redirects`. The client's own Host names the origin of an absolute rewrite."""

    name = "rewrite_redirects"

    def __init__(self, config: Config) -> None:
        self.bases = {n: RedirectBase.of(n, up.url) for n, up in config.upstreams.items() if up.rewrite_redirects}

    def response(self, ex: Exchange, http: web.BaseRequest, headers: list[tuple[str, str]]) -> None:
        if ex.mode != "reverse":
            return
        base = self.bases.get(ex.upstream)
        if base is None:
            return
        origin = ""
        for i, (k, v) in enumerate(headers):
            if len(k) in (8, 16) and k.title() in REWRITTEN_HEADERS:
                if not origin:
                    host = http.headers.get("Host")
                    origin = f"{http.scheme}://{host}" if host else ""
                headers[i] = (k, rewrite_location(v, base, origin))
