"""The Exchange: all state of one proxied call, carried through the stages (one object, one place)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seamline.outcomes import NONE
from seamline.proxy.routing import Target
from seamline.proxy.tracecontext import TraceContext


@dataclass(slots=True)
class BodyTap:
    """Keeps the first `cap` bytes of a streamed body and counts the true size (never buffers whole)."""

    cap: int
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0
    total: int = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        n = len(chunk)
        self.total += n
        room = self.cap - self.kept
        if room > 0 and n:
            part = chunk if n <= room else chunk[:room]
            self.chunks.append(part if type(part) is bytes else bytes(part))  # a mutable buffer may change after
            self.kept += len(part)

    @property
    def data(self) -> bytes:
        if len(self.chunks) > 1:
            self.chunks = [b"".join(self.chunks)]
        return self.chunks[0] if self.chunks else b""

    @property
    def truncated(self) -> bool:
        return self.total > self.kept


@dataclass(slots=True)
class Exchange:
    """One inbound request and (at most) one upstream attempt."""

    ts_us: int  # wall-clock start, µs since epoch
    t0: float  # perf_counter at start
    mode: str  # reverse | forward | connect | websocket
    method: str
    run_id: str = ""
    run_id_source: str = ""
    trace: TraceContext | None = None
    span_id: str = ""  # our CLIENT span (sent upstream as parent-id)
    traceparent: str = ""  # the header sent upstream (echoed back to the app)
    target: Target | None = None
    handoff: str = ""
    upstream: str = ""
    url: str = ""
    tenant: str = ""
    source_app: str = ""
    attempt: int = 1
    idempotency_key: str = ""
    request_headers: list[tuple[str, str]] = field(default_factory=list)  # as sent upstream
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    request_tap: BodyTap | None = None
    response_tap: BodyTap | None = None
    status: int = 0
    ttfb_s: float = 0.0
    duration_s: float = 0.0
    error_class: str = NONE  # seamline.outcomes
    error_detail: str = ""
    error_status: int = 0  # our own problem+json status when we answered instead of the upstream
    request_violations: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    spans: tuple[Any, Any] | None = None  # (SERVER, CLIENT) OpenTelemetry spans while the call runs; never on the wire


# -- wire form (to build the event in the engine process; see seamline.record.offload) ------------------------------

WireExchange = tuple[Any, ...]


def to_wire(ex: Exchange) -> WireExchange:
    """The exchange as a tuple of plain values (marshal-able), without its Target (the receiver resolves it again).

    Header names become plain `str`: aiohttp's `istr` names (a str subclass) are not marshal-able.
    """
    tc, rq, rs = ex.trace, ex.request_tap, ex.response_tap
    return (
        ex.ts_us, ex.t0, ex.mode, ex.method, ex.run_id, ex.run_id_source,
        (tc.trace_id, tc.caller_span_id, tc.flags, tc.tracestate, tc.started_here) if tc is not None else None,
        ex.span_id, ex.traceparent, ex.handoff, ex.upstream, ex.url, ex.tenant, ex.source_app, ex.attempt,
        ex.idempotency_key, [(str(k), v) for k, v in ex.request_headers], [(str(k), v) for k, v in ex.response_headers],
        (rq.cap, rq.data, rq.total) if rq is not None else None,
        (rs.cap, rs.data, rs.total) if rs is not None else None,
        ex.status, ex.ttfb_s, ex.duration_s, ex.error_class, ex.error_detail, ex.error_status,
        ex.request_violations, ex.attributes, ex.extra,
    )  # fmt: skip


def from_wire(w: WireExchange) -> Exchange:
    """The inverse of `to_wire` (target None: set it from the receiver's Router)."""
    (ts_us, t0, mode, method, run_id, run_id_source, tc, span_id, traceparent, handoff, upstream, url, tenant,
     source_app, attempt, idempotency_key, req_h, resp_h, rq, rs, status, ttfb_s, duration_s, error_class,
     error_detail, error_status, request_violations, attributes, extra) = w  # fmt: skip
    return Exchange(
        ts_us=ts_us, t0=t0, mode=mode, method=method, run_id=run_id, run_id_source=run_id_source,
        trace=TraceContext(*tc) if tc is not None else None, span_id=span_id, traceparent=traceparent,
        handoff=handoff, upstream=upstream, url=url, tenant=tenant, source_app=source_app, attempt=attempt,
        idempotency_key=idempotency_key, request_headers=req_h, response_headers=resp_h,
        request_tap=_tap(rq), response_tap=_tap(rs), status=status, ttfb_s=ttfb_s, duration_s=duration_s,
        error_class=error_class, error_detail=error_detail, error_status=error_status,
        request_violations=request_violations, attributes=attributes, extra=extra,
    )  # fmt: skip


def _tap(t: tuple[int, bytes, int] | None) -> BodyTap | None:
    if t is None:
        return None
    cap, data, total = t
    return BodyTap(cap, [data] if data else [], len(data), total)
