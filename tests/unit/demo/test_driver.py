"""The demo workflow driver straight against the mocks (no proxy): retries, never_repeat, compensation."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from seamline.demo import MockFleet, plan_fault, run_demo
from seamline.demo.driver import SAFETY


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
        assert attempts.get("billing.charge", 1) == 1  # never_repeat: never a second attempt
        for handoff, n in attempts.items():
            assert n == 1 or SAFETY[handoff] == "safe_to_repeat"
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
