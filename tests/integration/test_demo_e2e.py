"""`seamline demo` end to end on the embedded store: the summary and the recorded rows match the planned faults."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from support.chdb_path import chdb_url, unique_database

from seamline.demo.cli import demo
from seamline.demo.driver import DemoSummary
from seamline.demo.mocks import plan_fault
from seamline.record.store import open_store

SEED, RATE, RUNS = 11, 0.3, 30

# planned fault -> (outcome, error_class) Seamline must record
HTTP_EXPECTED = {
    None: ("ok", "none"),
    "slow": ("ok", "none"),
    "server_error": ("http_error", "server_error"),
    "rate_limited": ("http_error", "rate_limited"),
    "timeout": ("transport_error", "timeout"),
    "lost_answer": ("ok", "none"),  # the app gave up on the charge; Seamline got its answer
}
CONTRACT_EXPECTED = {
    "declined": ("silent_failure", "contract"),
    "drop_field": ("silent_failure", "contract"),
    "auth_expired": ("http_error", "auth_expired"),
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[DemoSummary, list[dict[str, Any]], str, list[dict[str, Any]]]:
    """One demo through a real sidecar, and every row it recorded (module-scoped: it takes a few seconds)."""
    import asyncio

    async def go() -> tuple[DemoSummary, list[dict[str, Any]], str, list[dict[str, Any]]]:
        database = unique_database("demo")
        out = io.StringIO()
        summary = await demo(
            runs=RUNS,
            seed=SEED,
            failure_rate=RATE,
            admin_port=0,
            progress=False,
            storage={
                "clickhouse_url": chdb_url(),
                "database": database,
                "spool_dir": str(tmp_path_factory.mktemp("spool")),
                "flush_interval_ms": 50,
            },
            console=Console(file=out, force_terminal=False, width=160),
        )
        store = open_store(chdb_url(), database)
        try:
            rows = await store.query(
                "SELECT run_id, handoff, attempt, status, outcome, error_class, violations, retry_after_s, "
                "external_ids, request_headers, trace_id, guard FROM handoffs WHERE run_id LIKE 'order-%' ORDER BY ts"
            )
            loop_rows = await store.query(
                "SELECT handoff, status, outcome, error_class, guard, loop_suspected FROM handoffs "
                "WHERE run_id LIKE 'sync-loop-%' ORDER BY ts"
            )
        finally:
            await store.close()
        return summary, rows, out.getvalue(), loop_rows

    return asyncio.run(go())


def _calls(summary: DemoSummary):
    for r in summary.results:
        for handoff, attempt, _ in r.calls:
            yield r.run_id, handoff, attempt, plan_fault(SEED, RATE, handoff, r.order, attempt)


@pytest.mark.slow
def test_every_call_is_recorded_with_its_http_class(demo_run):
    summary, rows, text, _ = demo_run
    assert len(rows) == summary.calls == sum(1 for _ in _calls(summary))
    by_key = {(row["run_id"], row["handoff"], row["attempt"]): row for row in rows}
    kinds = set()
    for run_id, handoff, attempt, fault in _calls(summary):
        kinds.add(fault)
        row = by_key[(run_id, handoff, attempt)]
        if handoff == "billing.charge" and attempt > 1:  # the app's retry of a charge: the duplicate guard answers it
            assert row["guard"] in ("replayed", "blocked_unknown", "blocked_in_flight"), (run_id, row)
            continue
        if fault in HTTP_EXPECTED:
            assert (row["outcome"], row["error_class"]) == HTTP_EXPECTED[fault], (run_id, handoff, attempt, fault)
        if handoff.startswith("billing."):
            assert "demo-sk-live" not in str(row["request_headers"])  # the demo token is redacted
    assert {"declined", "drop_field", "timeout", "server_error"} <= kinds  # the seed exercises the interesting kinds
    assert summary.failed == sum(1 for r in summary.results if not r.ok) > 0
    failed_runs = {row["run_id"] for row in rows if row["outcome"] not in ("ok", "unvalidated")}
    assert summary.seamline_failed_runs == len(failed_runs)
    traces: dict[str, set[str]] = {}
    for row in rows:
        traces.setdefault(row["run_id"], set()).add(row["trace_id"])
    assert all(len(t) == 1 for t in traces.values())  # the app's traceparent: one trace per run
    assert "runs failed" in text and "seamline trace order-" in text and "--admin-url" in text


@pytest.mark.slow
def test_a_retried_charge_is_replayed_not_charged_again_and_the_summary_shows_recovery(demo_run):
    summary, rows, text, _ = demo_run
    by_key = {(row["run_id"], row["handoff"], row["attempt"]): row for row in rows}
    lost = [r for r in summary.results if plan_fault(SEED, RATE, "billing.charge", r.order, 1) == "lost_answer"]
    assert lost, "the seed plans no lost charge answer"
    for r in lost:
        first, retry = by_key[(r.run_id, "billing.charge", 1)], by_key[(r.run_id, "billing.charge", 2)]
        assert first["outcome"] == "ok" and first["external_ids"]["charge_id"].startswith("ch_")
        # Answered from the first charge's response: the upstream was not called again (no second charge).
        assert (retry["guard"], retry["outcome"], retry["status"]) == ("replayed", "replayed", first["status"])
        assert r.charge_replayed and r.failed_step != "billing.charge"  # the run went on with the first charge
    assert summary.recovery is not None
    assert summary.recovery["duplicates_prevented"] >= len(lost) and summary.recovery["loops_stopped"] == 1
    assert summary.recovery["pauses"] == sum(1 for row in rows if row["guard"] == "blocked_unknown")
    for line in ("duplicates prevented", "retries recovered", "pauses", "circuit opens", "loops stopped"):
        assert line in text
    assert "retried charge(s) answered from the first, not charged again" in text


@pytest.mark.slow
def test_contracts_catch_silent_failures_expired_tokens_and_retry_after(demo_run):
    summary, rows, text, _ = demo_run
    by_key = {(row["run_id"], row["handoff"], row["attempt"]): row for row in rows}
    for run_id, handoff, attempt, fault in _calls(summary):
        row = by_key[(run_id, handoff, attempt)]
        if fault in CONTRACT_EXPECTED:
            assert (row["outcome"], row["error_class"]) == CONTRACT_EXPECTED[fault], (run_id, handoff, attempt, fault)
        if fault == "declined":
            assert "assert:payment_succeeded" in row["violations"]
        if fault == "drop_field":
            assert "echo:missing:email" in row["violations"]
        if fault == "rate_limited":
            assert row["retry_after_s"] == 2.0
        if handoff == "billing.charge" and fault is None and row["guard"] == "":  # not a retry the guard answered
            assert row["external_ids"]["charge_id"].startswith("ch_")
    # No silent failure passes as ok, and the summary counts exactly the runs the store holds.
    silent_runs = {row["run_id"] for row in rows if row["outcome"] == "silent_failure"}
    assert summary.silent_failures_caught == len(silent_runs) > 0
    assert summary.silent_unnoticed == len(silent_runs & {r.run_id for r in summary.results if r.ok})
    assert "silent failures caught" in text


@pytest.mark.slow
def test_the_sync_loop_is_stopped_at_the_threshold(demo_run):
    summary, _, text, loop_rows = demo_run
    assert summary.loop is not None and summary.loop.stopped_by == "loop_suspected" and summary.loop.status == 429
    limit = 20  # the default loops.max_calls_per_run; the demo config sets block: true
    assert summary.loop.calls == 2 * limit + 1 and summary.loop.rounds == limit  # not 847 round trips
    forwarded = [r for r in loop_rows if r["guard"] != "loop_blocked"]
    assert len(forwarded) == 2 * limit and all(r["status"] == 200 and not r["loop_suspected"] for r in forwarded)
    (blocked,) = [r for r in loop_rows if r["guard"] == "loop_blocked"]
    assert (blocked["handoff"], blocked["outcome"], blocked["error_class"], blocked["loop_suspected"]) == (
        "billing.update_customer", "refused", "loop_suspected", 1,
    )  # fmt: skip
    assert "sync loop stopped" in text and f"seamline trace {summary.loop.run_id}" in text
