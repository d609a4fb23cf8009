"""The proxy's request path, in order (response stages run in reverse):

1. accept      — limits, client token, mode (reverse | forward | CONNECT), route → Target
2. correlate   — run ID and W3C trace context: accept, mint, inject upstream, echo back
3. capture     — headers as sent, first N KiB of each body (streamed, never buffered whole)
4. forward     — one pooled aiohttp client per upstream; errors → problem+json with an error class
5. validate    — the handoff's contract (see `seamline.stages.validate`)
6. record      — one immutable event to the recorder; never blocks, never raises into the request
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from seamline import errors
from seamline import outcomes as o
from seamline.config.models import Config
from seamline.capture.error_text import safe_error_text
from seamline.exchange import BodyTap, Exchange
from seamline.proxy.forward import Forwarder, classify_client_error
from seamline.ids import is_valid_run_id, mint_run_id, new_span_id
from seamline.proxy.metrics import ProxyMetrics
from seamline.capture.redact import RedactionPolicy
from seamline.proxy.redirects import REWRITTEN_HEADERS, RedirectBase, rewrite_location
from seamline.proxy.responses import ExactResponse, ExactStreamResponse
from seamline.proxy.routing import Router, Target
from seamline.proxy.spans import Telemetry
from seamline.proxy.tracecontext import TraceContext, incoming_context
from seamline.proxy.tlsprobe import TLS_HINT, answers_tls
from seamline.proxy.tunnel import run_tunnel
from seamline.proxy.request_body import BodyDeadlines, read_known_body, send_continue, stream_body
from seamline.proxy.websocket import WebSocketRelay, mark, upgrade_headers, websocket_offer

log = logging.getLogger("seamline.proxy")

# RFC 9110 §7.6.1 (+ the proxy-only auth headers, which are for this hop).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)
# Request headers we rewrite or consume ourselves (HTTP2-Settings only ever goes with an h2c Upgrade offer).
_REQUEST_DROP = HOP_BY_HOP | {"host", "traceparent", "tracestate", "expect", "content-length", "http2-settings"}
_SEAMLINE_PREFIX = "x-seamline-"
_SMALL_BODY = 64 * 1024
# Resolved targets by (method, request target): routing is pure, so a repeated call skips the path checks, the
# URL build and the handoff match (≈ 3 µs). Bounded: long targets are not kept, and a full cache starts over.
_TARGET_CACHE_MAX = 4096
_TARGET_CACHE_KEY_MAX = 512


def connection_tokens(headers: Any) -> set[str]:
    """Header names listed in Connection (they are hop-by-hop too)."""
    return _tokens(headers.getall("Connection", ()))


def _tokens(values: Any) -> set[str]:
    out: set[str] = set()
    for v in values:
        for tok in v.split(","):
            tok = tok.strip().lower()
            if tok:
                out.add(tok)
    return out


# Inbound request headers the stages read (lowercase; the run-ID header is added per config).
_WATCHED = frozenset(
    {
        "connection", "content-length", "transfer-encoding", "host", "upgrade", "traceparent", "tracestate",
        "baggage", "x-correlation-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
        "x-seamline-app", "x-seamline-tenant", "x-seamline-attempt", "x-seamline-token", "idempotency-key", "expect",
    }
)
_NONE: tuple[str, ...] = ()


class Inbound:
    """One pass over the inbound headers: the values the stages read, and the headers relayed upstream.

    (Measured: one pass instead of a `getall` per header name the stages read saves ≈ 3 µs a request.)
    """

    __slots__ = ("seen", "relay")

    def __init__(self, headers: Any, run_header_l: str, watched: frozenset[str]) -> None:
        seen: dict[str, list[str]] = {}
        relay: list[tuple[str, str]] = []
        for k, v in headers.items():
            kl = k.lower()
            if kl in watched:
                got = seen.get(kl)
                if got is None:
                    seen[kl] = [v]
                else:
                    got.append(v)
            if kl in _REQUEST_DROP or kl == run_header_l or kl.startswith(_SEAMLINE_PREFIX):
                continue
            relay.append((k, v))
        conn = seen.get("connection")
        if conn:
            listed = _tokens(conn)
            relay = [(k, v) for k, v in relay if k.lower() not in listed]
        self.seen = seen
        self.relay = relay

    def all(self, name_l: str) -> list[str] | tuple[str, ...]:
        """Every value of a watched header, in order (like `getall`)."""
        return self.seen.get(name_l, _NONE)

    def first(self, name_l: str) -> str:
        got = self.seen.get(name_l)
        return got[0] if got else ""


def baggage_member(values: list[str], key: str) -> str | None:
    """The (percent-decoded) value of one W3C baggage member, or None."""
    for line in values:
        for member in line.split(","):
            k, sep, v = member.partition("=")
            if sep and k.strip() == key:
                return unquote(v.split(";", 1)[0].strip())
    return None


class ProxyHandler:
    """The low-level aiohttp handler (`web.Server(handler)`): every request lands here."""

    def __init__(
        self,
        config: Config,
        *,
        forwarder: Forwarder,
        metrics: ProxyMetrics,
        telemetry: Telemetry,
        on_complete: Callable[[Exchange], None] | None,
        validator: Any = None,
        websockets: WebSocketRelay | None = None,
    ) -> None:
        self.config = config
        self.websockets = websockets or WebSocketRelay(config, forwarder.deadlines)
        self.router = Router(config)
        self._targets: dict[tuple[str, str], Target] = {}
        self.forwarder = forwarder
        self.metrics = metrics
        self.telemetry = telemetry
        self.on_complete = on_complete
        self.validator = validator
        srv = config.server
        self.run_header = srv.run_id_header
        self._run_header_l = srv.run_id_header.lower()
        self._watched = _WATCHED | {self._run_header_l}
        self._response_drop = HOP_BY_HOP | {self._run_header_l, "traceparent"}
        self.max_body = srv.max_request_body_bytes
        self.tokens = dict(srv.client_tokens)
        self.capture_cap = config.capture.max_body_bytes
        self._error_policy = RedactionPolicy.from_config(config.capture)
        self._redirects = {n: RedirectBase.of(n, up.url) for n, up in config.upstreams.items() if up.rewrite_redirects}
        self._caps = {
            n: (h.capture.max_body_bytes if h.capture.max_body_bytes is not None else self.capture_cap)
            for n, h in config.handoffs.items()
        }

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        ex = Exchange(ts_us=time.time_ns() // 1000, t0=time.perf_counter(), mode="reverse", method=request.method)
        self.metrics.in_flight += 1
        try:
            return await self._handle(request, ex)
        finally:
            self.metrics.in_flight -= 1
            ex.duration_s = time.perf_counter() - ex.t0
            self.metrics.observe(ex.handoff or "unrouted", ex.status or ex.error_status, ex.error_class, ex.duration_s)
            if self.on_complete is not None:
                # Validate + record after aiohttp has written the response (a returned Response is sent
                # after this handler exits): the app never waits for redaction, contracts or the event.
                asyncio.get_running_loop().call_soon(self._complete, ex)

    def _complete(self, ex: Exchange) -> None:
        assert self.on_complete is not None
        try:
            self.on_complete(ex)
        except Exception:  # a broken concern must never break traffic
            self.metrics.stage_errors.labels("record").inc()
            log.exception("record stage failed", extra={"run_id": ex.run_id})

    # -- stages -----------------------------------------------------------------------------

    def _correlate(self, heads: Inbound, ex: Exchange) -> None:
        values = heads.all(self._run_header_l)
        if values:
            if len(values) == 1 and is_valid_run_id(values[0]):
                ex.run_id, ex.run_id_source = values[0], "header"
            else:
                ex.run_id, ex.run_id_source = mint_run_id(), "replaced"
                ex.attributes["run_id_invalid"] = "1"
        else:
            corr = heads.all("x-correlation-id")
            bag = baggage_member(heads.all("baggage"), "run_id")
            if len(corr) == 1 and is_valid_run_id(corr[0]):
                ex.run_id, ex.run_id_source = corr[0], "correlation"
            elif bag is not None and is_valid_run_id(bag):
                ex.run_id, ex.run_id_source = bag, "baggage"
            elif corr or bag is not None:
                ex.run_id, ex.run_id_source = mint_run_id(), "replaced"
                ex.attributes["run_id_invalid"] = "1"
            else:
                ex.run_id, ex.run_id_source = mint_run_id(), "generated"
        ex.trace = incoming_context(heads.all("traceparent"), heads.all("tracestate"))
        app = heads.first("x-seamline-app")
        ex.source_app = app if app and is_valid_run_id(app) else ""
        tenant = heads.first("x-seamline-tenant")
        ex.tenant = tenant if tenant and is_valid_run_id(tenant) else ""
        attempt = heads.first("x-seamline-attempt")
        if attempt.isdigit() and 0 < int(attempt) < 65536:
            ex.attempt = int(attempt)
        ex.idempotency_key = heads.first("idempotency-key")[:256]

    def _authenticate(self, heads: Inbound, ex: Exchange) -> None:
        if not self.tokens:
            return
        token = heads.first("x-seamline-token")
        app = self.tokens.get(token)
        if app is None:
            raise errors.Unauthorized("send a configured token in X-Seamline-Token")
        ex.source_app = app

    def _resolve(self, request: web.BaseRequest, ex: Exchange) -> Target:
        raw = request.raw_path
        method = request.method
        if method == "CONNECT":
            ex.mode = "connect"
            return self._resolve_connect(raw)
        forward = raw.startswith(("http://", "https://", "HTTP://", "HTTPS://", "ws://", "wss://", "WS://", "WSS://"))
        if forward:
            ex.mode = "forward"
        key = (method, raw)
        target = self._targets.get(key)
        if target is not None:
            return target
        if forward:
            try:
                url = URL(raw, encoded=True)
            except ValueError:
                raise errors.BadRequest("malformed absolute-form request target") from None
            if url.scheme == "ws":  # aiohttp's ws_connect through a proxy: a ws:// URI is http:// (RFC 6455 §3)
                url = url.with_scheme("http")
            target = self.router.resolve_forward(method, url)
        else:
            target = self.router.resolve_reverse(method, raw)
        if len(raw) <= _TARGET_CACHE_KEY_MAX:  # only targets that resolved: refusals are raised every time
            if len(self._targets) >= _TARGET_CACHE_MAX:
                self._targets.clear()
            self._targets[key] = target
        return target

    def _resolve_connect(self, authority: str) -> Target:
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

    def _upstream_headers(self, request: web.BaseRequest, heads: Inbound, ex: Exchange, target: Target) -> CIMultiDict[str]:
        # Host first (RFC 9112 §3.2): the upstream's host, bracketed if IPv6, without a default port.
        out: CIMultiDict[str] = CIMultiDict(Host=target.url.host_port_subcomponent or "")
        out.extend(heads.relay)
        cl = heads.all("content-length")
        if cl and "chunked" not in heads.first("transfer-encoding").lower():
            out["Content-Length"] = cl[0]
        out[self.run_header] = ex.run_id
        assert ex.trace is not None
        ex.traceparent = ex.trace.child(ex.span_id).header()
        out["traceparent"] = ex.traceparent
        if ex.trace.tracestate:
            out["tracestate"] = ex.trace.tracestate
        peer = request.remote or ""
        prior = ", ".join(heads.all("x-forwarded-for"))
        out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        prior_proto = ", ".join(heads.all("x-forwarded-proto"))
        out["X-Forwarded-Proto"] = f"{prior_proto}, {request.scheme}" if prior_proto else request.scheme
        host_in = heads.first("host")
        if host_in:
            prior_host = ", ".join(heads.all("x-forwarded-host"))
            out["X-Forwarded-Host"] = f"{prior_host}, {host_in}" if prior_host else host_in
        for k, v in target.upstream.headers.items():
            out[k] = v
        return out

    def _echo_headers(self, ex: Exchange) -> dict[str, str]:
        h = {self.run_header: ex.run_id}
        if ex.traceparent:
            h["traceparent"] = ex.traceparent
        elif ex.trace is not None:
            h["traceparent"] = ex.trace.child(ex.span_id or new_span_id()).header()
        return h

    # -- the request ------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest, ex: Exchange) -> web.StreamResponse:
        server_span = client_span = None
        try:
            heads = Inbound(request.headers, self._run_header_l, self._watched)
            self._correlate(heads, ex)
            tel = self.telemetry
            self._authenticate(heads, ex)
            ws = bool(heads.seen.get("upgrade")) and websocket_offer(
                request.method, heads.all("upgrade"), heads.all("connection"), request.body_exists
            )
            try:
                target = self._resolve(request, ex)
            finally:
                if ws:
                    mark(ex)  # refused or not, a WebSocket handshake is recorded as one
            ex.target = target
            ex.upstream = target.upstream_name
            ex.handoff = target.handoff.name
            if tel.enabled:
                attrs = {"http.request.method": request.method, "seamline.run_id": ex.run_id, "seamline.handoff": ex.handoff}
                server_span = tel.start_server_span(ex.trace, f"{request.method} {ex.handoff}", attrs)  # type: ignore[arg-type]
                trace_id, _ = tel.ids(server_span)
                if ex.trace is not None and ex.trace.started_here:
                    ex.trace = TraceContext(trace_id, "", ex.trace.flags, None, True)
                client_span = tel.start_client_span(server_span, f"{request.method} {ex.handoff}", {
                    **attrs,
                    "server.address": target.url.host or "",
                    "server.port": target.url.port or 0,
                    "url.path": target.path,
                })
                ex.span_id = tel.ids(client_span)[1]
            else:
                ex.span_id = new_span_id()
            if ex.mode == "connect":
                return await self._tunnel(request, ex, target)
            if ws:
                return await self._websocket(request, heads, ex, target)
            return await self._forward(request, heads, ex, target)  # other upgrade offers (h2c…) are declined
        except errors.ProxyError as err:
            if not ex.url:  # refused before an upstream URL existed: keep what was asked for (redacted when recorded)
                ex.url = request.raw_path[:2048]
            return self._problem(ex, err)
        finally:
            if client_span is not None:
                self._end_span(client_span, ex)
            if server_span is not None:
                self._end_span(server_span, ex, server=True)

    def _problem(self, ex: Exchange, err: errors.ProxyError) -> web.Response:
        if not ex.run_id:
            ex.run_id, ex.run_id_source = mint_run_id(), "generated"
        if ex.trace is None:
            ex.trace = incoming_context([], [])
        if not ex.span_id:
            ex.span_id = new_span_id()
        ex.error_class = err.error_class
        err.detail = ex.error_detail = self._safe(err.detail)
        ex.error_status = err.status
        return errors.problem_response(err, run_id=ex.run_id, trace_id=ex.trace.trace_id, headers=self._echo_headers(ex))

    def _safe(self, text: str) -> str:
        """An error text as it may be shown, stored, logged and put on a span (see seamline.error_text)."""
        return safe_error_text(text, self._error_policy)

    def _end_span(self, span: Any, ex: Exchange, server: bool = False) -> None:
        from opentelemetry.trace import Status, StatusCode

        status = ex.status or ex.error_status
        if status:
            span.set_attribute("http.response.status_code", status)
        if ex.error_class != o.NONE:
            span.set_attribute("error.type", ex.error_class)
            span.set_status(Status(StatusCode.ERROR, ex.error_detail[:200]))
        span.end()

    async def _forward(self, request: web.BaseRequest, heads: Inbound, ex: Exchange, target: Target) -> web.StreamResponse:
        cap = self._caps.get(ex.handoff, self.capture_cap)
        ex.request_tap = BodyTap(cap)
        ex.response_tap = BodyTap(cap)
        ex.url = str(target.url)
        if self.max_body is not None and request.content_length is not None and request.content_length > self.max_body:
            raise errors.PayloadTooLarge(f"request body of {request.content_length} bytes exceeds {self.max_body}")
        headers = self._upstream_headers(request, heads, ex, target)
        ex.request_headers = list(headers.items())
        data: Any = None
        timing: BodyDeadlines | None = None
        if request.body_exists:
            task = asyncio.current_task()
            assert task is not None
            t = target.upstream.timeouts
            timing = BodyDeadlines(self.forwarder.deadlines, task, t.request_body_idle, t.read, min(t.total, t.read))
            await send_continue(request, heads.first("expect"))
            if self.validator is not None and self.validator.enforces_request(ex.handoff):
                data = await self._precheck(request, ex, timing)
            elif request.content_length is not None and request.content_length <= _SMALL_BODY:
                # Small, known-length body: read it (bounded) so headers + body leave in one write.
                data = await read_known_body(request, request.content_length, timing)
                ex.request_tap.feed(data)
            else:
                data = stream_body(request, ex.request_tap, timing, self.max_body)
        elif request.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"
        try:
            upstream_resp = await self.forwarder.send(target, request.method, headers, data)
        except errors.ProxyError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every client failure is classified
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = classify_client_error(exc)
            if isinstance(exc, aiohttp.ServerDisconnectedError) and target.url.scheme == "http":
                up = target.upstream
                if await answers_tls(target.url.host or "", target.url.port or 80, up.allow_private, up.timeouts.connect):
                    err = errors.UpstreamError(TLS_HINT, "tls")
            raise err from None
        finally:
            if timing is not None:
                timing.answered = True
        ex.ttfb_s = time.perf_counter() - ex.t0
        return await self._relay_response(request, ex, upstream_resp)

    async def _precheck(self, request: web.BaseRequest, ex: Exchange, timing: BodyDeadlines) -> Any:
        """`enforce: request`: read the body up to the cap, validate, then forward it (or 422)."""
        assert ex.request_tap is not None and self.validator is not None
        tap = ex.request_tap
        head: list[bytes] = []
        while tap.total <= tap.cap:
            chunk = await timing.read_chunk(request)
            if not chunk:
                break
            tap.feed(chunk)
            head.append(chunk)
            if self.max_body is not None and tap.total > self.max_body:
                raise errors.PayloadTooLarge(f"request body exceeds {self.max_body} bytes")
        if not tap.truncated:
            violations = self.validator.check_request(ex, request)
            if violations:
                ex.request_violations = violations
                # Only real violations reject: a validator that crashed says nothing about the request.
                if self.validator.rejects(ex.handoff, violations):
                    raise errors.ContractRejected(
                        "the request breaks the contract of handoff " + repr(ex.handoff), violations=violations
                    )
        return stream_body(request, tap, timing, self.max_body, head)

    async def _relay_response(self, request: web.BaseRequest, ex: Exchange, resp: aiohttp.ClientResponse) -> web.StreamResponse:
        ex.status = resp.status
        # Hop-by-hop headers dropped; the echoed run ID and traceparent replace any the upstream sent.
        drop = self._response_drop
        if "Connection" in resp.headers:
            drop = drop | connection_tokens(resp.headers)
        items = list(resp.headers.items())
        ex.response_headers = items
        oh = [(k, v) for k, v in items if k.lower() not in drop]  # aiohttp copies it into the response's multidict
        if ex.mode == "reverse" and ("Location" in resp.headers or "Content-Location" in resp.headers):
            base = self._redirects.get(ex.upstream)
            if base is not None:
                self._rewrite_redirects(request, base, oh)
        oh.extend(self._echo_headers(ex).items())
        tap = ex.response_tap
        assert tap is not None
        length = resp.content_length
        deadlines = self.forwarder.deadlines
        task = asyncio.current_task()
        assert task is not None
        read_s = ex.target.upstream.timeouts.read if ex.target else 10.0
        loop = asyncio.get_running_loop()
        if length is not None and length <= _SMALL_BODY and request.method != "HEAD" and resp.status not in (204, 304):
            # Small, known-length body: one write for headers + body (streaming it costs 3 syscalls).
            deadlines.arm(task, loop.time() + read_s)
            try:
                body = await resp.content.readexactly(length) if length else b""
            except asyncio.CancelledError:
                if not deadlines.expired(task):
                    raise
                resp.release()
                ex.status = 0  # we answer instead of the upstream
                raise classify_client_error(TimeoutError("upstream body read deadline")) from None
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                err = classify_client_error(e)
                ex.status = 0  # we answer instead of the upstream
                resp.release()
                raise err from None
            finally:
                deadlines.disarm(task)
                resp.release()
            tap.feed(body)
            return ExactResponse(status=resp.status, reason=resp.reason, body=body, headers=oh)
        out = ExactStreamResponse(status=resp.status, reason=resp.reason, headers=oh)
        try:
            try:
                await out.prepare(request)
            except (ConnectionError, RuntimeError) as e:
                ex.error_class, ex.error_detail = o.CLIENT_DISCONNECTED, self._safe(str(e))
                return out
            try:
                try:
                    while True:
                        deadlines.arm(task, loop.time() + read_s)  # per-chunk read deadline
                        chunk = await resp.content.readany()
                        if not chunk:
                            break
                        tap.feed(chunk)
                        await out.write(chunk)
                except asyncio.CancelledError:
                    if not deadlines.expired(task):
                        raise
                    raise TimeoutError("upstream body read deadline") from None
                finally:
                    deadlines.disarm(task)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                # The status line is gone already: abort the client connection so it sees a broken body.
                err = classify_client_error(e)
                ex.error_class, ex.error_detail = err.error_class, self._safe("upstream failed mid-body: " + err.detail)
                if request.transport is not None:
                    request.transport.close()
                return out
            except ConnectionError as e:
                ex.error_class, ex.error_detail = o.CLIENT_DISCONNECTED, self._safe(str(e))
                return out
            await out.write_eof()
            return out
        finally:
            resp.release()

    def _rewrite_redirects(self, request: web.BaseRequest, base: RedirectBase, headers: list[tuple[str, str]]) -> None:
        """Location/Content-Location under the upstream's base URL → the Seamline route (see seamline.redirects)."""
        host = request.headers.get("Host")
        origin = f"{request.scheme}://{host}" if host else ""
        for i, (k, v) in enumerate(headers):
            if k.title() in REWRITTEN_HEADERS:
                headers[i] = (k, rewrite_location(v, base, origin))

    async def _websocket(self, request: web.BaseRequest, heads: Inbound, ex: Exchange, target: Target) -> web.StreamResponse:
        """The opening handshake relayed; a 101 turns the connection into a frame relay (`seamline.websocket`)."""
        cap = self._caps.get(ex.handoff, self.capture_cap)
        ex.request_tap, ex.response_tap = BodyTap(cap), BodyTap(cap)
        ex.url = str(target.url)
        headers = self._upstream_headers(request, heads, ex, target)
        headers.update(upgrade_headers(heads.all("upgrade")))
        ex.request_headers = list(headers.items())
        resp = await self.websockets.handshake(target, headers)
        ex.ttfb_s = time.perf_counter() - ex.t0
        if resp.status != 101:
            return await self._relay_response(request, ex, resp)  # declined (403, 426…): an ordinary response
        drop = self._response_drop | connection_tokens(resp.headers)
        return await self.websockets.relay(request, ex, resp, drop, self._echo_headers(ex))

    async def _tunnel(self, request: web.BaseRequest, ex: Exchange, target: Target) -> web.StreamResponse:
        ex.url = f"{target.url.host}:{target.url.port}"
        return await run_tunnel(request, ex, target, self.metrics, self._echo_headers(ex))
