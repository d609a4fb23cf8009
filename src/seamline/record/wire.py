"""The wire form of an Exchange: plain values (marshal-able) to build its event in the engine process.

See `seamline.record.offload`: both the sender and the receiver (run in the engine process by `Engine.run`).
"""

from __future__ import annotations

from typing import Any

from seamline.exchange import BodyTap, Exchange
from seamline.proxy.tracecontext import TraceContext

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
        ex.event_id, ex.guard, ex.loop_suspected, ex.retry_of, ex.replay_of, ex.guard_wait_s,
    )  # fmt: skip


def from_wire(w: WireExchange) -> Exchange:
    """The inverse of `to_wire` (target None: set it from the receiver's Router)."""
    (ts_us, t0, mode, method, run_id, run_id_source, tc, span_id, traceparent, handoff, upstream, url, tenant,
     source_app, attempt, idempotency_key, req_h, resp_h, rq, rs, status, ttfb_s, duration_s, error_class,
     error_detail, error_status, request_violations, attributes, extra,
     event_id, guard, loop_suspected, retry_of, replay_of, guard_wait_s) = w  # fmt: skip
    return Exchange(
        ts_us=ts_us, t0=t0, mode=mode, method=method, run_id=run_id, run_id_source=run_id_source,
        trace=TraceContext(*tc) if tc is not None else None, span_id=span_id, traceparent=traceparent,
        handoff=handoff, upstream=upstream, url=url, tenant=tenant, source_app=source_app, attempt=attempt,
        idempotency_key=idempotency_key, request_headers=req_h, response_headers=resp_h,
        request_tap=_tap(rq), response_tap=_tap(rs), status=status, ttfb_s=ttfb_s, duration_s=duration_s,
        error_class=error_class, error_detail=error_detail, error_status=error_status,
        request_violations=request_violations, attributes=attributes, extra=extra,
        event_id=event_id, guard=guard, loop_suspected=loop_suspected, retry_of=retry_of, replay_of=replay_of,
        guard_wait_s=guard_wait_s,
    )  # fmt: skip


def _tap(t: tuple[int, bytes, int] | None) -> BodyTap | None:
    if t is None:
        return None
    cap, data, total = t
    return BodyTap(cap, [data] if data else [], len(data), total)
