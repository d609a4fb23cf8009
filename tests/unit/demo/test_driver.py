"""The demo workflow driver straight against the mocks (no proxy): retries, never_repeat, compensation; and its
wait for an external sidecar to be ready."""

from __future__ import annotations

import io

import pytest
from aiohttp import web
from rich.console import Console
from support.servers import free_ports, serve

from seamline.demo import MockFleet, plan_fault, run_demo
from seamline.demo.driver import SAFETY, SidecarUnavailable, wait_for_sidecar


@pytest.fixture
async def fleet():
    f = MockFleet(seed=5, failure_rate=0.35, hang_s=5.0, slow_s=(0.001, 0.002))
    await f.start()
    yield f
    await f.stop()


async def test_runs_follow_each_steps_safety(fleet):
    out = io.StringIO()
    summary = await run_demo(
        runs=40,
        seed=5,
        failure_rate=0.35,
        upstream_urls=fleet.urls,
        concurrency=8,
        request_timeout_s=0.3,
        console=Console(file=out, force_terminal=False),
        run_prefix="t",
    )
    assert summary.runs == 40 and summary.ok + summary.failed == 40
    assert summary.failed > 0 and summary.ok > 0
    for r in summary.results:
        attempts = {}
        for handoff, attempt, _ in r.calls:
            attempts[handoff] = max(attempts.get(handoff, 0), attempt)
        # never_repeat: a second attempt only after the app's own timeout on the first (same Idempotency-Key; through
        # Seamline the duplicate guard answers it, straight at the mocks it charges again: the double charge).
        charges = [status for h, _, status in r.calls if h == "billing.charge"]
        assert len(charges) <= 2 and (len(charges) < 2 or charges[0] == 0), r.calls
        for handoff, n in attempts.items():
            assert n == 1 or SAFETY[handoff] == "safe_to_repeat" or handoff == "billing.charge"
        # The run's fate follows the planned faults exactly.
        if r.ok:
            assert all(
                plan_fault(5, 0.35, h, r.order, a) in (None, "slow", "declined", "drop_field")
                for h, a, _ in r.calls
                if a == max(a2 for h2, a2, _ in r.calls if h2 == h)
            )
        if r.failed_step == "provisioning.create_account":
            assert r.refunded and ("billing.refund", 1, 200) in r.calls
        if r.failed_step == "billing.charge" and r.error_class == "timeout":
            assert r.needs_reconciliation
    assert set(summary.failed_by_class) <= {"timeout", "server_error", "rate_limited", "auth_expired"}
    assert summary.silent_failures_caught is None  # nothing recorded without Seamline in between
    assert len(summary.trace_commands) == 3 and all(c.startswith("seamline trace order-") for c in summary.trace_commands)
    summary.render(Console(file=out, force_terminal=False, width=120))
    text = out.getvalue()
    assert "runs failed" in text and "seamline trace order-" in text


async def test_same_seed_same_fates(fleet):
    kw = {
        "runs": 25,
        "seed": 5,
        "failure_rate": 0.35,
        "upstream_urls": fleet.urls,
        "request_timeout_s": 0.3,
        "progress": False,
        "console": Console(file=io.StringIO()),
    }
    a = await run_demo(**kw, run_prefix="a")
    b = await run_demo(**kw, run_prefix="b")
    fate = lambda s: [(r.order, r.ok, r.failed_step, r.error_class, r.calls) for r in s.results]  # noqa: E731
    assert fate(a) == fate(b)


async def test_waiting_for_a_sidecar_that_is_not_there_gives_up_with_the_reason():
    (port,) = free_ports(1)
    with pytest.raises(SidecarUnavailable, match=f"127.0.0.1:{port}.*within 0s"):
        await wait_for_sidecar(f"http://127.0.0.1:{port}", None, 0)


async def test_waiting_uses_readyz_and_a_503_is_not_ready():
    state = {"ready": False}

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response(state, status=200 if state["ready"] else 503)

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    async with serve(app) as admin:
        with pytest.raises(SidecarUnavailable, match="HTTP 503"):
            await wait_for_sidecar("http://127.0.0.1:1", admin, 0)
        state["ready"] = True
        assert await wait_for_sidecar("http://127.0.0.1:1", admin, 0) == f"{admin}/readyz"


async def test_waiting_on_the_proxy_port_alone_needs_only_a_listener():
    async with serve(web.Application()) as proxy:
        assert await wait_for_sidecar(proxy, None, 0) == proxy
