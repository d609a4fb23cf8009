"""The wire form of an Exchange (how a finished exchange reaches the engine process to be built)."""

from __future__ import annotations

import marshal
import time
from dataclasses import fields

from multidict import istr

from seamline.exchange import BodyTap, Exchange
from seamline.proxy.tracecontext import TraceContext
from seamline.record.wire import from_wire, to_wire


def full_exchange() -> Exchange:
    """Every field set to a non-default value (a new field left out of the wire form fails the test below)."""
    req, resp = BodyTap(8), BodyTap(64)
    for chunk in (b"abcd", b"efghij"):
        req.feed(chunk)
    resp.feed(b'{"ok": true}')
    return Exchange(
        ts_us=time.time_ns() // 1_000, t0=12.5, mode="forward", method="PATCH", run_id="run-1", run_id_source="header",
        trace=TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, "k=v", False),
        span_id="b7ad6b7169203331", traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01",
        target=None, handoff="crm.update", upstream="crm", url="http://crm.example/c/1?x=1", tenant="acme",
        source_app="app", attempt=3, idempotency_key="idem-1",
        request_headers=[(istr("X-Forwarded-For"), "10.0.0.1"), ("Authorization", "Bearer abcdefgh")],
        response_headers=[("Content-Type", "application/json")], request_tap=req, response_tap=resp, status=502,
        ttfb_s=0.25, duration_s=0.5, error_class="upstream_5xx", error_detail="bad gateway", error_status=502,
        request_violations=["schema:$.a"], attributes={"k": "v"}, extra={"tunnel": (10, 20)},
        event_id="0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4", guard="loop_blocked", loop_suspected=True, retry_of="e-first",
        replay_of="e-orig", guard_wait_s=0.125,
    )  # fmt: skip


def test_round_trip_keeps_every_field_but_the_target() -> None:
    ex = full_exchange()
    back = from_wire(marshal.loads(marshal.dumps(to_wire(ex))))  # marshal: plain values only (no istr, no objects)
    for f in fields(Exchange):
        a, b = getattr(ex, f.name), getattr(back, f.name)
        if isinstance(a, BodyTap):
            assert (b.cap, b.data, b.total, b.truncated) == (a.cap, a.data, a.total, a.truncated), f.name
        elif f.name == "extra":
            assert b == {"tunnel": [10, 20]} or b == a
        else:
            assert b == a, f.name
    assert back.request_tap.truncated and back.request_tap.data == b"abcdefgh"
    assert all(type(k) is str for k, _ in back.request_headers)


def test_missing_parts_stay_missing() -> None:
    ex = Exchange(ts_us=1, t0=0.0, mode="connect", method="CONNECT")
    back = from_wire(to_wire(ex))
    assert back.trace is None and back.request_tap is None and back.response_tap is None


def test_the_fixture_sets_every_field_so_a_field_left_off_the_wire_fails() -> None:
    ex, default = full_exchange(), Exchange(ts_us=0, t0=0.0, mode="", method="")
    unset = {f.name for f in fields(Exchange) if getattr(ex, f.name) == getattr(default, f.name)}
    # Never on the wire: the receiver resolves the target; spans stay live; the guards' working state (the body read
    # whole, the replay capture, whether anything was sent, the earlier attempts — each sent as its own exchange) is
    # done with before the exchange is handed over.
    assert unset <= {"target", "spans", "request_body", "replay_capture", "not_sent", "prior_attempts"}
