"""Route stage: the request target → one configured upstream, handoff and upstream URL, or a refusal.

The rules (reverse, forward and CONNECT forms; path tricks; never an open proxy) live in `seamline.proxy.routing`;
this stage adds the mode of the call and a bounded cache: routing is pure, so a repeated (method, target) skips
the path checks, the URL build and the handoff match (≈ 3 µs), and the URL's text (`str(URL)` is rebuilt from its
parts on every call, ≈ 1–4 µs). Long targets are not kept, a full cache starts over, and refusals are never cached
(they are raised every time).
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from seamline import errors
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound
from seamline.proxy.routing import Router, Target
from seamline.proxy.websocket import mark, websocket_offer

_CACHE_MAX = 4096
_CACHE_KEY_MAX = 512
_ABSOLUTE = ("http://", "https://", "HTTP://", "HTTPS://", "ws://", "wss://", "WS://", "WSS://")


class Route:
    name = "route"
    essential = True

    def __init__(self, config: Config) -> None:
        self.router = Router(config)
        self._targets: dict[tuple[str, str], tuple[Target, str]] = {}  # → the target and its URL's text

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        ws = bool(heads.seen.get("upgrade")) and websocket_offer(
            http.method, heads.all("upgrade"), heads.all("connection"), http.body_exists
        )
        try:
            target, url = self._lookup(ex, http.method, http.raw_path)
        finally:
            if ws:
                mark(ex)  # refused or not, a WebSocket handshake is recorded as one
        ex.target = target
        ex.upstream = target.upstream_name
        ex.handoff = target.handoff.name
        ex.url = url

    def resolve(self, ex: Exchange, method: str, raw: str) -> Target:
        """The target of one request (sets the exchange's mode: reverse | forward | connect)."""
        return self._lookup(ex, method, raw)[0]

    def _lookup(self, ex: Exchange, method: str, raw: str) -> tuple[Target, str]:
        """The target and the URL recorded for it (`host:port` for CONNECT)."""
        if method == "CONNECT":
            ex.mode = "connect"
            target = self._resolve_connect(raw)
            return target, f"{target.url.host}:{target.url.port}"
        forward = raw.startswith(_ABSOLUTE)
        if forward:
            ex.mode = "forward"
        key = (method, raw)
        hit = self._targets.get(key)
        if hit is not None:
            return hit
        if forward:
            try:
                url = URL(raw, encoded=True)
            except ValueError:
                raise errors.BadRequest("malformed absolute-form request target") from None
            if url.raw_user is not None or url.raw_password is not None:
                # RFC 9110 §4.2.4: userinfo in an http(s) target is an error (a phishing disguise of the authority).
                # Recorded without it: the credentials never reach the row.
                ex.url = str(url.with_user(None))[:2048]
                raise errors.BadRequest("userinfo (user@ or user:password@) is not allowed in the request target")
            if url.scheme == "ws":  # aiohttp's ws_connect through a proxy: a ws:// URI is http:// (RFC 6455 §3)
                url = url.with_scheme("http")
            target = self.router.resolve_forward(method, url)
        else:
            target = self.router.resolve_reverse(method, raw)
        found = (target, str(target.url))
        if len(raw) <= _CACHE_KEY_MAX:
            if len(self._targets) >= _CACHE_MAX:
                self._targets.clear()
            self._targets[key] = found
        return found

    def _resolve_connect(self, authority: str) -> Target:
        if "@" in authority:
            raise errors.BadRequest("userinfo (user@) is not allowed in a CONNECT target")
        host, _, port_s = authority.rpartition(":")
        host = host.strip("[]").lower()
        if not host or not port_s.isdigit():
            raise errors.BadRequest("CONNECT target must be host:port")
        name = self.router.upstream_for_host(host, int(port_s))
        if name is None:
            raise self.router.unconfigured_host(host, int(port_s))
        up = self.router.upstreams[name]
        route = self.router.handoff_for(name, "CONNECT", "")
        return Target(name, up, route, URL.build(scheme="tcp", host=host, port=int(port_s)), "", "")
