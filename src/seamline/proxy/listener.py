"""The listeners under hostile or unlucky clients: what happens before a request reaches a handler.

aiohttp's low-level server (`web.Server`) creates one protocol object (`RequestHandler`) per connection; `Listener`
makes that a `ListenerProtocol`, which adds, per connection:

- a header deadline (`server.header_timeout`): the clock starts at the first byte of a request head; a head still
  incomplete then (slowloris: one byte a second) gets 408 problem+json and the connection is closed. A connection
  with no request bytes pending is idle, and idle ones are closed silently after `server.keepalive_timeout`
  (aiohttp's own timer, armed at accept and after each response: a client that never sends is idle too);
- a cap on open connections (`server.max_connections`, per listener). Beyond it a connection is still accepted, and
  its request is answered 503 problem+json with `Retry-After: 1` and `Connection: close` (it has `header_timeout` to
  send one, else it is closed silently). Refusing at accept, as nginx does when worker_connections run out (it
  closes the new connection) or Envoy's overload manager (`reject_incoming_connections`), leaves the client a reset
  it cannot tell from a network fault; a typed 503 says "Seamline is full, retry", as nginx's `limit_conn` does
  (503 by default) and Envoy's `stop_accepting_requests`. The cost is one short-lived socket per excess client,
  bounded by the header deadline; keep the cap under the open-files limit so accept itself never fails;
- aiohttp's answers to what its HTTP parser rejects (bad request line, header, version, characters, sizes) and to
  a handler that raised, replaced: problem+json echoing nothing of the request, one throttled warning line per kind
  (`seamline.proxy.parse_errors`), counted in `seamline_http_parse_errors_total{kind}`.

This uses aiohttp's protocol internals (`_waiter`, `_request_handler`, `_next_keepalive_close_time`, the server's
`_kwargs`/`_loop`); aiohttp is pinned below 4 and tests/integration/test_listener_limits.py exercises each of them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry, Counter, Gauge

from seamline import errors
from seamline import outcomes as o
from seamline.config.models import Server
from seamline.proxy.parse_errors import ThrottledLog, classify_parse_error

log = logging.getLogger("seamline.listener")

_SLUG = {400: "bad-request", 431: "request-header-fields-too-large", 505: "http-version-not-supported"}


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    header_timeout: float
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def from_config(cls, server: Server) -> ListenerLimits:
        return cls(server.header_timeout, server.keepalive_timeout, server.max_connections)


class ListenerMetrics:
    """What the listeners refused, and how many connections each holds now."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.parse_errors = Counter(
            "seamline_http_parse_errors", "Requests aiohttp's HTTP parser rejected (both listeners).", ["kind"], registry=registry
        )
        self.rejected = Counter(
            "seamline_listener_rejections",
            "Requests or connections a listener limit answered or closed.",
            ["listener", "reason"],
            registry=registry,
        )
        self.open = Gauge("seamline_connections_open", "Open client connections.", ["listener"], registry=registry)


class Listener(web.Server):
    """aiohttp's low-level server whose connections are `ListenerProtocol`s (see the module docstring)."""

    def __init__(
        self, handler: Any, *, name: str, limits: ListenerLimits, metrics: ListenerMetrics, throttle: ThrottledLog, **kwargs: Any
    ) -> None:
        kwargs["keepalive_timeout"] = limits.keepalive_timeout
        super().__init__(handler, **kwargs)
        self.name = name
        self.limits = limits
        self.metrics = metrics
        self.throttle = throttle
        self.open_connections = 0
        self._open_gauge = metrics.open.labels(name)

    def __call__(self) -> RequestHandler:
        return ListenerProtocol(self, loop=self._loop, **self._kwargs)

    def opened(self) -> bool:
        """Count a new connection; False when it is over `max_connections` (it is still counted while open)."""
        over = self.open_connections >= self.limits.max_connections
        self.open_connections += 1
        self._open_gauge.inc()
        return not over

    def closed(self) -> None:
        self.open_connections -= 1
        self._open_gauge.dec()


class ListenerAppRunner(web.AppRunner):
    """`web.AppRunner` for an Application (the admin listener) served by a `Listener`."""

    def __init__(
        self,
        app: web.Application,
        *,
        name: str,
        limits: ListenerLimits,
        metrics: ListenerMetrics,
        throttle: ThrottledLog,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._listener_args: dict[str, Any] = {"name": name, "limits": limits, "metrics": metrics, "throttle": throttle}

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's startup and freezes it; only its handler is kept
        return Listener(
            plain.request_handler, request_factory=plain.request_factory, **self._listener_args, **plain._kwargs
        )  # fmt: skip


class ListenerProtocol(RequestHandler):
    """One client connection: header deadline, connection cap, and Seamline's answers for unreadable requests."""

    __slots__ = ("_counted", "_head_started", "_header_timer", "_listener", "_lost")

    def __init__(self, manager: Listener, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._listener = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        self._counted = False
        self._lost: asyncio.Future[None] | None = None  # made on demand (`lost()`): done when the connection closes

    def _peer(self) -> str:
        peer = self.peername
        return str(peer[0]) if isinstance(peer, tuple) and peer else "?"

    # -- connection cap ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        within = self._listener.opened()
        self._counted = True
        if not within:
            # Before start() reads it: every request on this connection gets the 503 instead of the handler.
            self._request_handler = self._answer_over_capacity
        super().connection_made(transport)
        if not within:
            self._arm_header_timer()  # shed soon: it gets header_timeout to send its request, from now

    def lost(self) -> asyncio.Future[None]:
        """Done once this connection is closed: a guard that holds a call (a backoff, a queue) stops waiting for a
        client that left (aiohttp cancels no handler for that: `handler_cancellation` is off)."""
        if self._lost is None:
            self._lost = self._loop.create_future()
            if self.transport is None:
                self._lost.set_result(None)
        return self._lost

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._cancel_header_timer()
        if self._counted:
            self._counted = False
            self._listener.closed()
        super().connection_lost(exc)

    async def _answer_over_capacity(self, request: web.BaseRequest) -> web.StreamResponse:
        lst = self._listener
        lst.metrics.rejected.labels(lst.name, "max_connections").inc()
        lst.throttle.warning(
            "max_connections",
            "%s listener: %d connections open, over server.max_connections=%d: answered 503 to %s",
            lst.name, lst.open_connections, lst.limits.max_connections, self._peer(),
        )  # fmt: skip
        resp = errors.problem(
            503, "overloaded", "Seamline is at one of its configured limits",
            f"this listener holds {lst.open_connections} connections, over server.max_connections "
            f"({lst.limits.max_connections}); retry shortly",
            headers={"Retry-After": "1"}, error_class=o.OVERLOADED,
        )  # fmt: skip
        resp.force_close()
        return resp

    # -- header deadline -----------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if data and not self._force_close and not self._close:
                # start() waits for a request head and these bytes did not complete one: the head has begun.
                self._head_started = True
                if self._header_timer is None:
                    self._arm_header_timer()
        elif self._header_timer is not None:
            self._cancel_header_timer()  # the head is complete (or a request is being handled)

    def _arm_header_timer(self) -> None:
        loop = self._loop
        deadline = loop.time() + self._listener.limits.header_timeout
        self._header_timer = loop.call_at(deadline, self._header_deadline)
        # aiohttp's idle timer must not cut a head that is still within its own deadline (it reschedules itself).
        self._next_keepalive_close_time = max(self._next_keepalive_close_time, deadline + 1.0)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._head_started = False

    def _header_deadline(self) -> None:
        self._header_timer = None
        waiter = self._waiter
        transport = self.transport
        if transport is None or self._force_close or waiter is None or waiter.done():
            return  # a request is being handled: its body and answer have deadlines of their own
        lst = self._listener
        if self._head_started:
            lst.metrics.rejected.labels(lst.name, "header_timeout").inc()
            seconds = lst.limits.header_timeout
            lst.throttle.warning(
                "header_timeout",
                "%s listener: request head from %s not complete within server.header_timeout (%g s): 408, closed",
                lst.name, self._peer(), seconds,
            )  # fmt: skip
            transport.write(
                raw_problem(
                    408, "Request Timeout", "request-header-timeout", "The client did not send its request headers in time",
                    f"the request line and headers did not arrive within {seconds:g} s (server.header_timeout)",
                    o.CLIENT_TIMEOUT,
                )
            )  # fmt: skip
        else:
            lst.metrics.rejected.labels(lst.name, "max_connections").inc()  # an excess connection that sent nothing
        self.force_close()  # the transport flushes the answer before it closes

    # -- what never reached a handler ----------------------------------------------------------------------------

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's answer for a parser error (400) or a handler that raised (500/504), as problem+json."""
        if request.writer.output_size > 0:  # as aiohttp: the response has begun, the connection is broken
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        lst = self._listener
        if isinstance(exc, HttpProcessingError) or status == 400:
            err = classify_parse_error(exc)
            lst.metrics.parse_errors.labels(err.kind).inc()
            lst.throttle.warning(
                "parse:" + err.kind,
                "%s listener: malformed request from %s (%s): answered %d",
                lst.name, self._peer(), err.kind, err.status,
            )  # fmt: skip
            title = "Malformed request" if err.status == 400 else _TITLES.get(err.status, "Malformed request")
            resp = errors.problem(
                err.status, _SLUG.get(err.status, "bad-request"), title, err.detail, kind=err.kind, error_class=o.BAD_REQUEST
            )
        else:
            if status == 500:  # Seamline's own bug: the traceback is what fixes it
                log.error("%s listener: the request handler raised", lst.name, exc_info=exc)
            resp = errors.problem(
                status, "internal", "Internal error", "Seamline failed to handle this request; its log has the cause",
                error_class=o.INTERNAL,
            )  # fmt: skip
        resp.headers["Connection"] = "close"  # said, not only implied by aiohttp's HTTP/1.0 status line here
        resp.force_close()
        return resp


_TITLES = {431: "Request header fields too large", 505: "HTTP version not supported"}


def raw_problem(status: int, reason: str, slug: str, title: str, detail: str, error_class: str) -> bytes:
    """A whole problem+json response as bytes, for a connection no handler owns (it is closed after)."""
    body = orjson.dumps(
        {"type": errors.PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, "error_class": error_class}
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
