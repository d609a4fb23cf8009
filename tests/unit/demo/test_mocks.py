"""The demo mocks: realistic JSON, and seeded failure injection that is deterministic and covers every kind."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from seamline.config.models import Config
from seamline.demo import FAULT_KINDS, MockFleet, demo_config, plan_fault, start_mocks
from seamline.demo.mocks import BY_HANDOFF, ENDPOINTS, LOST_ANSWER_S, SYNC_ENDPOINTS


@pytest.fixture
async def fleet():
    f = MockFleet(seed=3, failure_rate=1.0, hang_s=5.0, slow_s=(0.001, 0.002))
    await f.start()
    yield f
    await f.stop()


def _find(kind: str, handoff: str, seed: int = 3) -> str:
    """An order number for which `handoff` gets `kind` at attempt 1 (bounded search)."""
    for i in range(500):
        if plan_fault(seed, 1.0, handoff, str(i), 1) == kind:
            return str(i)
    raise AssertionError(f"no order gets {kind} on {handoff}")


def test_plan_is_deterministic_and_seed_dependent():
    orders = [str(i) for i in range(200)]
    plan = lambda seed: [plan_fault(seed, 0.3, e.handoff, o, 1) for e in ENDPOINTS for o in orders]  # noqa: E731
    assert plan(7) == plan(7)
    assert plan(7) != plan(8)
    faults = [f for f in plan(7) if f]
    assert 0.2 < len(faults) / len(plan(7)) < 0.4  # refunds never fail, the rest at ~30 %


def test_failure_rate_bounds():
    assert all(plan_fault(1, 0.0, e.handoff, str(i), 1) is None for e in ENDPOINTS for i in range(50))
    assert all(plan_fault(1, 1.0, "billing.charge", str(i), 1) for i in range(50))


def test_every_fault_kind_is_planned_somewhere():
    kinds = {plan_fault(11, 0.5, e.handoff, str(i), a) for e in ENDPOINTS for i in range(100) for a in (1, 2)}
    assert set(FAULT_KINDS) <= kinds


async def _post(f: MockFleet, handoff: str, order: str, body: dict, *, timeout: float = 5.0) -> httpx.Response:
    ep = BY_HANDOFF[handoff]
    async with httpx.AsyncClient(timeout=timeout) as c:
        return await c.post(f.urls[ep.service] + ep.path, json=body, headers={"X-Demo-Order": order, "X-Run-ID": f"r-{order}"})


async def test_each_failure_kind_is_served(fleet):
    r = await _post(
        fleet, "crm.create_contact", _find("drop_field", "crm.create_contact"), {"email": "a@example.com", "name": "A"}
    )
    assert r.status_code == 201 and "email" not in r.json() and r.json()["id"].startswith("ct_")

    r = await _post(
        fleet, "billing.charge", _find("declined", "billing.charge"), {"amount": 100, "currency": "eur", "invoice": "in_1"}
    )
    assert r.status_code == 200 and r.json()["status"] == "declined" and r.json()["amount"] == 100

    r = await _post(fleet, "billing.create_invoice", _find("auth_expired", "billing.create_invoice"), {"amount": 1})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token", error_description="The access token expired"'

    r = await _post(fleet, "email.send_welcome", _find("rate_limited", "email.send_welcome"), {"to": "a@example.com"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"

    r = await _post(fleet, "provisioning.create_account", _find("server_error", "provisioning.create_account"), {"plan": "team"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"

    r = await _post(fleet, "provisioning.create_account", _find("slow", "provisioning.create_account"), {"plan": "team"})
    assert r.status_code == 201 and r.json()["status"] == "active" and r.json()["plan"] == "team"

    with pytest.raises(httpx.ReadTimeout):
        await _post(fleet, "billing.charge", _find("timeout", "billing.charge"), {"amount": 1}, timeout=0.2)

    # A lost answer: the charge succeeds, but only after the app's own charge timeout.
    r = await _post(fleet, "billing.charge", _find("lost_answer", "billing.charge"), {"amount": 100, "currency": "eur"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded" and r.elapsed.total_seconds() >= LOST_ANSWER_S

    kinds = {i.fault for i in fleet.injections}
    assert kinds == set(FAULT_KINDS)
    assert {i.run_id for i in fleet.injections} >= {"r-" + _find("declined", "billing.charge")}


async def test_healthy_calls_return_realistic_json():
    urls, stop = await start_mocks(seed=1, failure_rate=0.0)
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.post(urls["billing"] + "/v1/invoices", json={"customer": "ct_1", "amount": 4900, "currency": "eur"})
            inv = r.json()
            assert r.status_code == 201 and inv["status"] == "open" and inv["amount"] == 4900 and inv["id"].startswith("in_")
            r = await c.post(urls["billing"] + "/v1/charges", json={"invoice": inv["id"], "amount": 4900, "currency": "eur"})
            assert r.json()["status"] == "succeeded"
            r = await c.post(urls["email"] + "/v1/messages", json={"to": "a@example.com", "template": "welcome"})
            assert r.status_code == 202 and r.json()["to"] == "a@example.com"
            r = await c.post(urls["crm"] + "/v1/contacts", content=b"not json")
            assert r.status_code == 400
    finally:
        await stop()


async def test_stop_releases_a_hanging_timeout():
    f = MockFleet(seed=3, failure_rate=1.0, hang_s=60.0)
    await f.start()
    order = _find("timeout", "billing.charge")
    pending = asyncio.ensure_future(_post(f, "billing.charge", order, {"amount": 1}, timeout=30))
    await asyncio.wait_for(f.hanging.wait(), 10)
    await f.stop()
    assert (await pending).status_code == 504


def test_demo_config_validates_with_a_contract_per_handoff():
    cfg = Config(
        **demo_config({s: f"http://127.0.0.1:{9000 + i}" for i, s in enumerate(("crm", "billing", "provisioning", "email"))})
    )
    assert set(cfg.handoffs) == {e.handoff for e in ENDPOINTS + SYNC_ENDPOINTS}
    assert cfg.loops.block  # the demo stops its sync loop
    for name, h in cfg.handoffs.items():
        assert h.contract is not None and h.contract.status, name
    charge = cfg.handoffs["billing.charge"]
    assert charge.safety == "never_repeat"
    assert charge.contract.assert_ == {"payment_succeeded": "response.body.status == 'succeeded'"}
    assert cfg.handoffs["crm.create_contact"].contract.echo == ["email"]
    assert all(u.allow_private for u in cfg.upstreams.values())
