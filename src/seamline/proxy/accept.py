"""Accept stages: who may call (client tokens) and how much it may send (a declared body over the limit)."""

from __future__ import annotations

from aiohttp import web

from seamline import errors
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound


class Authenticate:
    """With `server.client_tokens`, a call must carry a known `X-Seamline-Token`; its app becomes `source_app`."""

    name = "authenticate"
    essential = True

    def __init__(self, config: Config) -> None:
        self.tokens = dict(config.server.client_tokens)

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        if not self.tokens:
            return
        app = self.tokens.get(heads.first("x-seamline-token"))
        if app is None:
            raise errors.Unauthorized("send a configured token in X-Seamline-Token")
        ex.source_app = app


class BodyLimit:
    """A request whose Content-Length is over `server.max_request_body_bytes` gets 413 before any byte is read
    (a streamed body that grows past it is cut by `seamline.proxy.request_body`)."""

    name = "body_limit"
    essential = True

    def __init__(self, config: Config) -> None:
        self.max_body = config.server.max_request_body_bytes

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        limit = self.max_body
        if limit is not None and ex.mode != "connect" and http.content_length is not None and http.content_length > limit:
            raise errors.PayloadTooLarge(f"request body of {http.content_length} bytes exceeds {limit}")


# aiohttp's request StreamReader pauses the socket at twice its 64 KiB read buffer: what a streamed body can hold
# in memory on top of what Seamline keeps of it (the capture cap).
_STREAM_BUFFER = 2 * 64 * 1024


class InflightBodies:
    """A budget for the memory in-flight request bodies hold (`server.max_inflight_body_bytes`): over it → 503.

    Each request with a body reserves, once routed, what Seamline may hold of it: its Content-Length, or for a
    streamed or long one its capture cap plus aiohttp's read buffer (a streamed body flows through, it is not
    kept); released when the exchange is over. Reserving up front answers before any byte is read, so the cap
    holds however fast clients send.
    """

    name = "inflight_bodies"
    essential = True

    def __init__(self, config: Config) -> None:
        self.limit = config.server.max_inflight_body_bytes
        cap = config.capture.max_body_bytes
        self._hold = {
            n: (h.capture.max_body_bytes if h.capture.max_body_bytes is not None else cap) + _STREAM_BUFFER
            for n, h in config.handoffs.items()
        }
        self._default_hold = cap + _STREAM_BUFFER
        self.used = 0
        self._held: dict[int, int] = {}  # id(exchange) → bytes reserved

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        if not http.body_exists or ex.mode == "connect":
            return
        hold = self._hold.get(ex.handoff, self._default_hold)
        need = hold if http.content_length is None else min(http.content_length, hold)
        if self.used + need > self.limit:
            raise errors.Overloaded(
                f"in-flight request bodies hold {self.used} of server.max_inflight_body_bytes ({self.limit}) bytes; "
                f"this one needs {need}; retry shortly"
            )
        self.used += need
        self._held[id(ex)] = need

    def done(self, ex: Exchange) -> None:
        self.used -= self._held.pop(id(ex), 0)
