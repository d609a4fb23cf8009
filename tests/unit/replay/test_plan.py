"""What a replay would send, from a recorded row and the config (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import proxy_config

from seamline.replay.plan import Refusal, failed_events, plan

CFG = proxy_config(
    {"billing": "http://127.0.0.1:1/api"},
    handoffs={
        "billing.charge": {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"},
        "billing.get": {"upstream": "billing", "match": "GET /v1/charges/{id}"},
    },
)


def row(**kw: Any) -> dict[str, Any]:
    base = {"event_id": "e1", "run_id": "r1", "mode": "reverse", "handoff": "billing.get", "upstream": "billing",
            "method": "GET", "url": "http://127.0.0.1:1/api/v1/charges/ch_1?expand=x", "outcome": "http_error",
            "request_body": "", "request_bytes": 0, "request_truncated": False, "idempotency_key": "",
            "request_headers": {}}  # fmt: skip
    return {**base, **kw}


def refusal(**kw: Any) -> str:
    with pytest.raises(Refusal) as info:
        plan(CFG, row(**kw.pop("r", {})), **kw)
    return info.value.slug


def test_the_target_is_the_reverse_route_under_the_upstream_and_headers_are_the_safe_ones() -> None:
    req = plan(CFG, row(request_headers={"accept": "application/json", "authorization": "Bearer [REDACTED]",
                                         "cookie": "a=[REDACTED]", "x-custom": "v"}))  # fmt: skip
    assert req.target == "/billing/v1/charges/ch_1?expand=x"
    assert req.headers == (("accept", "application/json"),) and req.body == b""


def test_bodies_not_held_whole_or_redacted_are_refused() -> None:
    post = {"method": "POST", "handoff": "billing.other", "request_bytes": 10}
    assert refusal(r={**post, "request_truncated": True, "request_body": '{"a":'}) == "replay-body-not-captured"
    assert refusal(r={**post, "request_body": "[binary 10 bytes image/png]"}, force=True) == "replay-body-not-captured"
    assert refusal(r={**post, "request_body": ""}) == "replay-body-not-captured"
    assert refusal(r={**post, "request_body": '{"card":"[REDACTED]"}'}) == "replay-body-redacted"
    assert refusal(r={"url": "http://127.0.0.1:1/api/v1/charges/1?token=[REDACTED]"}) == "replay-body-redacted"
    assert refusal(r={"mode": "connect"}) == "replay-not-possible"
    assert refusal(r={"url": "http://elsewhere/v1"}) == "replay-not-possible"


def test_step_safety_decides_force_and_key() -> None:
    charge = {"handoff": "billing.charge", "method": "POST", "request_body": "{}", "request_bytes": 2,
              "idempotency_key": "orig"}  # fmt: skip
    assert refusal(r=charge) == "replay-needs-force"
    assert refusal(r=charge, force=True) == "replay-needs-idempotency-key"  # the original key is not enough
    assert plan(CFG, row(**charge), force=True, idempotency_key="new").idempotency_key == "new"
    # An unconfigured handoff: GET is safe_to_repeat, POST is treated as never_repeat.
    assert plan(CFG, row(handoff="billing.other", safety="")).safety == "safe_to_repeat"
    assert refusal(r={**charge, "handoff": "billing.other", "safety": ""}) == "replay-needs-force"
    assert refusal(r=charge, force=True, idempotency_key="bad\nkey") == "bad-request"


def test_failed_events_skip_calls_that_recovered() -> None:
    rows = [
        {"event_id": "a1", "outcome": "http_error"},
        {"event_id": "a2", "outcome": "ok", "retry_of": "a1"},  # retried by the sidecar: recovered
        {"event_id": "b1", "outcome": "transport_error"},
        {"event_id": "b2", "outcome": "http_error", "retry_of": "b1"},  # the last attempt of call b
        {"event_id": "c1", "outcome": "refused"},
        {"event_id": "c2", "outcome": "ok", "replay_of": "c1"},  # replayed already: recovered
        {"event_id": "d1", "outcome": "ok"},
    ]
    assert [r["event_id"] for r in failed_events(rows)] == ["b2"]
