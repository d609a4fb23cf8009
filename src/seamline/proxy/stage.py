"""What a stage of the request path is: one concern, entry points named after the event that calls them.

In the spirit of mitmproxy's addons and Envoy's filter chain: `request` runs in order before the upstream is called
(raise a `ProxyError` to answer instead; most stages decide at once, so the hook is plain and returns None, and a
stage that must wait returns an awaitable the handler awaits: an `async def` hook would create and await a
coroutine per stage per request for nothing), `response` runs on the upstream's response headers before they go back to
the client, `done` runs once the exchange is over (the answer sent or failed), `after` once the client has its
answer (nothing there can delay it), and `settle` once the upstream's answer (or the refusal) is known, before the
handler returns it: a whole-body response is still unsent, a streamed one was relayed (the duplicate guard stores
the result there, so a retry that follows the answer finds it). Each hook takes the `Exchange`, which carries all
state of one call. The handler calls the hooks from static tuples (no dynamic dispatch) and isolates a hook that
raises anything else: logged, counted in `seamline_stage_errors{stage}`, and the traffic goes on (`essential`
request stages answer 500 instead, because the call cannot go on without them).

A request stage that must answer with a complete response of its own that is not an error (the duplicate guard's
replay of a stored response) raises `Respond(response)`: the handler sends that response as is, runs the settle and
done stages, and records the call with what the stage set on the exchange (status, headers, taps, `guard`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from aiohttp import web

from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound

Headers = list[tuple[str, str]]


class RequestStage(Protocol):
    name: str
    essential: bool

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> Awaitable[None] | None:
        """None when done; a stage that must wait (a shared store, say) returns its awaitable instead."""


class Respond(Exception):
    """Raised by a request stage to answer the call itself with `response` (the upstream is not called)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("answered by a request stage")
        self.response = response


class SettleStage(Protocol):
    name: str

    def settle(self, ex: Exchange) -> Awaitable[None] | None:
        """None when there is nothing to do; else the awaitable the handler awaits before returning the answer."""


class ResponseStage(Protocol):
    name: str

    def response(self, ex: Exchange, http: web.BaseRequest, headers: Headers) -> None: ...


class DoneStage(Protocol):
    name: str

    def done(self, ex: Exchange) -> None: ...
