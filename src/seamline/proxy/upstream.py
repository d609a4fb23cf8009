"""The upstream call, the last stage of the request path: an HTTP exchange (forward), a WebSocket or a CONNECT
tunnel. Builds the request as sent upstream (headers, body with its deadlines), and hands the response to the relay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from seamline import errors
from seamline.config.models import Config
from seamline.exchange import BodyTap, Exchange
from seamline.guards.retry import Attempted, Retries, RetryPolicy
from seamline.proxy.forward import Forwarder, classify_client_error, nothing_sent
from seamline.proxy.inbound import Inbound, connection_tokens
from seamline.proxy.metrics import ProxyMetrics
from seamline.proxy.relay import SMALL_BODY, Relay
from seamline.proxy.request_body import BodyDeadlines, read_known_body, send_continue, stream_body
from seamline.proxy.routing import Target
from seamline.proxy.tlsprobe import TLS_HINT, answers_tls
from seamline.proxy.tunnel import run_tunnel
from seamline.proxy.websocket import WebSocketRelay, upgrade_headers
from seamline.validate.validator import Validator


def upstream_headers(
    http: web.BaseRequest, heads: Inbound, ex: Exchange, run_header: str, added: dict[str, str], via: str = ""
) -> CIMultiDict[str]:
    """The request headers as sent upstream: Host first, the caller's end-to-end headers (a Via among them),
    correlation, X-Forwarded-*, Seamline's own Via member (`seamline.proxy.via`), then the upstream's configured
    headers (`added`). Pure."""
    target = ex.target
    assert target is not None and ex.trace is not None
    # Host first (RFC 9112 §3.2): the upstream's host, bracketed if IPv6, without a default port.
    out: CIMultiDict[str] = CIMultiDict(Host=target.url.host_port_subcomponent or "")
    out.extend(heads.relay)
    cl = heads.all("content-length")
    if cl and "chunked" not in heads.first("transfer-encoding").lower():
        out["Content-Length"] = cl[0]
    out[run_header] = ex.run_id
    ex.traceparent = ex.trace.child(ex.span_id).header()
    out["traceparent"] = ex.traceparent
    if ex.trace.tracestate:
        out["tracestate"] = ex.trace.tracestate
    peer = http.remote or ""
    prior = ", ".join(heads.all("x-forwarded-for"))
    out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    prior_proto = ", ".join(heads.all("x-forwarded-proto"))
    out["X-Forwarded-Proto"] = f"{prior_proto}, {http.scheme}" if prior_proto else http.scheme
    host_in = heads.first("host")
    if host_in:
        prior_host = ", ".join(heads.all("x-forwarded-host"))
        out["X-Forwarded-Host"] = f"{prior_host}, {host_in}" if prior_host else host_in
    if via:
        out.add("Via", via)  # after the caller's Via lines: the same list, this hop appended (RFC 9110 §7.6.3)
    for k, v in added.items():
        out[k] = v
    return out


@dataclass(slots=True)
class UpstreamCall:
    """Calls the upstream for one exchange and returns the response to send back."""

    config: Config
    forwarder: Forwarder
    websockets: WebSocketRelay
    relay: Relay
    metrics: ProxyMetrics
    validator: Validator | None
    echo_headers: Callable[[Exchange], dict[str, str]]
    via: str = ""  # Seamline's own Via member, from the Via stage
    retries: Retries | None = None  # the retry guard (None: every call is sent once)
    run_header: str = field(init=False)
    max_body: int | None = field(init=False)
    capture_cap: int = field(init=False)
    _caps: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        self.run_header = cfg.server.run_id_header
        self.max_body = cfg.server.max_request_body_bytes
        self.capture_cap = cap = cfg.capture.max_body_bytes
        self._caps = {
            n: (h.capture.max_body_bytes if h.capture.max_body_bytes is not None else cap) for n, h in cfg.handoffs.items()
        }

    async def call(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> web.StreamResponse:
        if ex.mode == "connect":
            return await run_tunnel(http, ex, ex.target, self.metrics, self.echo_headers(ex))  # type: ignore[arg-type]
        cap = self._caps.get(ex.handoff, self.capture_cap)
        ex.request_tap, ex.response_tap = BodyTap(cap), BodyTap(cap)
        headers = upstream_headers(http, heads, ex, self.run_header, ex.target.upstream.headers, self.via)  # type: ignore[union-attr]
        if ex.mode == "websocket":
            return await self._websocket(ex, http, heads, headers)
        return await self._forward(ex, http, heads, headers)  # other upgrade offers (h2c…) are declined

    async def _forward(
        self, ex: Exchange, http: web.BaseRequest, heads: Inbound, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        target = ex.target
        assert target is not None and ex.request_tap is not None
        ex.request_headers = list(headers.items())
        policy = self.retries.policy_for(target, http.method) if self.retries is not None else None
        data: Any = None
        timing: BodyDeadlines | None = None
        if ex.request_body is not None:
            # Read whole by a request stage (the duplicate guard, which answered Expect: 100-continue): sent as is.
            data = ex.request_body
            ex.request_tap.feed(data)
            if self.validator is not None and self.validator.enforces_request(ex.handoff):
                self._check_request(ex, http)
        elif http.body_exists:
            _, task = self.forwarder.deadlines.here()
            t = target.upstream.timeouts
            timing = BodyDeadlines(self.forwarder.deadlines, task, t.request_body_idle, t.read, min(t.total, t.read))
            await send_continue(http, heads.first("expect"))
            length = http.content_length
            if policy is not None and length is not None and length <= policy.max_body_bytes:
                # A call that may be retried: its body read whole, so it can be sent again.
                data = await read_known_body(http, length, timing) if length else b""
                ex.request_tap.feed(data)
                if self.validator is not None and self.validator.enforces_request(ex.handoff):
                    self._check_request(ex, http)
            else:
                policy = None  # a streamed body cannot be sent twice
                if self.validator is not None and self.validator.enforces_request(ex.handoff):
                    data = await self._precheck(ex, http, timing)
                elif length is not None and length <= SMALL_BODY:
                    # Small, known-length body: read it (bounded) so headers + body leave in one write.
                    data = await read_known_body(http, length, timing)
                    ex.request_tap.feed(data)
                else:
                    data = stream_body(http, ex.request_tap, timing, self.max_body)
        else:
            if http.method in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = "0"
            if self.validator is not None and self.validator.enforces_parameters(ex.handoff):
                self._check_request(ex, http)  # no body, but parameters (an OpenAPI operation's path and query)
        if policy is not None:
            assert self.retries is not None
            try:
                last = await self.retries.run(ex, policy, partial(self._attempt, ex, policy, headers, data), http)
            finally:
                if timing is not None:
                    timing.answered = True
            if last.error is not None:
                raise last.error
            assert last.response is not None
            return await self.relay.relay(ex, http, last.response)
        try:
            upstream_resp = await self.forwarder.send(target, http.method, headers, data)
        except errors.ProxyError:
            raise
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if timing is not None and timing.failure is not None:
                raise timing.failure from None  # the client's body was refused: whatever aiohttp says came of it
            raise await self._classify(exc, target, ex) from None
        finally:
            if timing is not None:
                timing.answered = True
        ex.ttfb_s = time.perf_counter() - ex.t0
        return await self.relay.relay(ex, http, upstream_resp)

    async def _attempt(self, ex: Exchange, policy: RetryPolicy, headers: CIMultiDict[str], data: bytes | None) -> Attempted:
        """One attempt of a call that may be retried: its outcome as a value, for the retry guard to judge."""
        target = ex.target
        assert target is not None and self.retries is not None and ex.trace is not None
        if ex.retry_of:  # a retry: its own span is the parent the upstream sees
            ex.traceparent = headers["traceparent"] = ex.trace.child(ex.span_id).header()
            ex.request_headers = list(headers.items())
        try:
            resp = await self.forwarder.send(target, ex.method, headers, data)
        except errors.ProxyError as err:
            return Attempted(error=err)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a value the guard judges
            return self.retries.classify(policy, Attempted(error=await self._classify(exc, target, ex)), exc)
        ex.ttfb_s = time.perf_counter() - ex.t0
        return self.retries.classify(policy, Attempted(response=resp))

    async def _classify(self, exc: BaseException, target: Target, ex: Exchange) -> errors.ProxyError:
        """The upstream client's failure as Seamline's error; `ex.not_sent` says whether the upstream can have acted."""
        err = classify_client_error(exc)
        ex.not_sent = nothing_sent(exc)
        if isinstance(exc, aiohttp.ServerDisconnectedError) and target.url.scheme == "http":
            up = target.upstream
            if await answers_tls(target.url.host or "", target.url.port or 80, up.allow_private, up.timeouts.connect):
                err = errors.UpstreamError(TLS_HINT, "tls")
                ex.not_sent = True  # a TLS server cannot have acted on a plain-text request
        return err

    async def _precheck(self, ex: Exchange, http: web.BaseRequest, timing: BodyDeadlines) -> Any:
        """`enforce: request`: read the body up to the cap, validate, then forward it (or 422)."""
        assert ex.request_tap is not None and self.validator is not None
        tap = ex.request_tap
        head: list[bytes] = []
        while tap.total <= tap.cap:
            chunk = await timing.read_chunk(http)
            if not chunk:
                break
            tap.feed(chunk)
            head.append(chunk)
            if self.max_body is not None and tap.total > self.max_body:
                raise errors.PayloadTooLarge(f"request body exceeds {self.max_body} bytes")
        self._check_request(ex, http)
        return stream_body(http, tap, timing, self.max_body, head)

    def _check_request(self, ex: Exchange, http: web.BaseRequest) -> None:
        """`enforce: request` on the captured body (when it was captured whole): 422 if it breaks the contract."""
        assert ex.request_tap is not None and self.validator is not None
        if ex.request_tap.truncated:
            return
        violations = self.validator.check_request(ex, http)
        if violations:
            ex.request_violations = violations
            # Only real violations reject: a validator that crashed says nothing about the request.
            if self.validator.rejects(ex.handoff, violations):
                raise errors.ContractRejected(
                    "the request breaks the contract of handoff " + repr(ex.handoff), violations=violations
                )

    async def _websocket(
        self, ex: Exchange, http: web.BaseRequest, heads: Inbound, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        """The opening handshake relayed; a 101 turns the connection into a frame relay (`seamline.proxy.websocket`)."""
        assert ex.target is not None
        headers.update(upgrade_headers(heads.all("upgrade")))
        ex.request_headers = list(headers.items())
        resp = await self.websockets.handshake(ex.target, headers)
        ex.ttfb_s = time.perf_counter() - ex.t0
        if resp.status != 101:
            return await self.relay.relay(ex, http, resp)  # declined (403, 426…): an ordinary response
        drop = self.relay.drop | connection_tokens(resp.headers)
        return await self.websockets.relay(http, ex, resp, drop, self.echo_headers(ex))
