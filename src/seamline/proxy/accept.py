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
