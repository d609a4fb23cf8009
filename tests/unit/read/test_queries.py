"""Run queries on the real chdb engine, against the schema from `record.schema.statements()`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.handoff_rows import T0, fresh_store, handoff_row, insert_rows

from seamline.read import queries as runs


@pytest.fixture
async def store(request):
    store, _ = await fresh_store(request.node.name)
    yield store
    await store.close()


def _ok_run(run_id: str, start_ms: float = 0.0) -> list[dict]:
    return [
        handoff_row(run_id, "crm.create_contact", at_ms=start_ms, duration_ms=40, status=201),
        handoff_row(run_id, "billing.create_invoice", at_ms=start_ms + 50, duration_ms=30, status=201),
    ]


async def test_get_run_returns_handoffs_in_start_order_with_payloads(store):
    rows = [
        handoff_row(
            "r-1",
            "billing.charge",
            at_ms=120,
            duration_ms=80,
            outcome="silent_failure",
            error_class="contract",
            violations=["assert:payment_succeeded"],
            response_body='{"id":"ch_1","status":"declined"}',
            external_ids={"charge_id": "ch_1"},
        ),
        handoff_row("r-1", "crm.create_contact", at_ms=0, duration_ms=40, request_headers={"authorization": "[REDACTED]"}),
        handoff_row("r-other", "crm.create_contact", at_ms=5),
    ]
    await insert_rows(store, rows)
    got = await runs.get_run(store, "r-1")
    assert [r["handoff"] for r in got] == ["crm.create_contact", "billing.charge"]
    assert got[0]["ts"] == T0 and got[0]["ts"].tzinfo is not None
    assert got[1]["violations"] == ["assert:payment_succeeded"]
    assert got[1]["external_ids"] == {"charge_id": "ch_1"}
    assert got[0]["request_headers"] == {"authorization": "[REDACTED]"}
    summary = runs.summarize_run(got)
    assert got[1]["offset_ms"] == 120.0
    assert summary["duration_ms"] == 200.0
    assert summary["worst_outcome"] == "silent_failure"
    assert summary["failed"] == 1 and summary["error_classes"] == ["contract"]


async def test_get_run_of_unknown_run_is_empty(store):
    await insert_rows(store, _ok_run("r-1"))
    assert await runs.get_run(store, "nope") == []


async def test_run_id_is_bound_not_interpolated(store):
    await insert_rows(store, _ok_run("r-1"))
    assert await runs.get_run(store, "' OR 1=1 --") == []
    assert await runs.get_run(store, "r-1' OR '1'='1") == []
    assert await runs.list_runs(store, handoff="x' OR 1=1 --", since=None) == []


async def test_list_runs_summarises_each_run_most_recent_first(store):
    rows = [
        *_ok_run("r-ok", 0),
        handoff_row("r-bad", "crm.create_contact", at_ms=1000, duration_ms=20),
        handoff_row(
            "r-bad", "billing.charge", at_ms=1030, duration_ms=500, status=0, outcome="transport_error", error_class="timeout"
        ),
        handoff_row(
            "r-bad",
            "billing.create_invoice",
            at_ms=1600,
            duration_ms=5,
            status=429,
            outcome="http_error",
            error_class="rate_limited",
        ),
    ]
    await insert_rows(store, rows)
    got = await runs.list_runs(store, since=None, limit=10)
    assert [r["run_id"] for r in got] == ["r-bad", "r-ok"]
    bad, ok = got
    assert bad["handoffs"] == 3 and bad["failed"] == 2
    assert bad["worst_outcome"] == "transport_error"
    assert bad["last_outcome"] == "http_error"
    assert bad["error_classes"] == ["rate_limited", "timeout"]
    assert bad["failed_handoffs"] == ["billing.charge", "billing.create_invoice"]
    assert bad["first_ts"] == T0 + timedelta(milliseconds=1000)
    assert bad["duration_ms"] == pytest.approx(605.0)
    assert ok["failed"] == 0 and ok["worst_outcome"] == "ok" and ok["error_classes"] == []


async def test_list_runs_filters(store):
    rows = [
        *_ok_run("r-ok", 0),
        handoff_row("r-silent", "billing.charge", at_ms=10, outcome="silent_failure", error_class="contract"),
        handoff_row("r-http", "email.send_welcome", at_ms=20, status=500, outcome="http_error", error_class="server_error"),
    ]
    await insert_rows(store, rows)
    ids = lambda rs: sorted(r["run_id"] for r in rs)  # noqa: E731
    assert ids(await runs.list_runs(store, failed=True)) == ["r-http", "r-silent"]
    assert ids(await runs.list_runs(store, outcome="silent_failure")) == ["r-silent"]
    assert ids(await runs.list_runs(store, handoff="crm.create_contact")) == ["r-ok"]
    assert ids(await runs.list_runs(store, handoff="billing.charge", failed=True)) == ["r-silent"]
    assert len(await runs.list_runs(store, limit=1)) == 1


async def test_list_runs_since_window(store):
    rows = [
        handoff_row("r-old", "crm.create_contact", at_ms=0),
        handoff_row("r-new", "crm.create_contact", at_ms=3_600_000),
    ]
    await insert_rows(store, rows)
    now = T0 + timedelta(hours=1, minutes=5)
    got = await runs.list_runs(store, since=timedelta(minutes=30), now=now)
    assert [r["run_id"] for r in got] == ["r-new"]
    got = await runs.list_runs(store, since=T0 + timedelta(seconds=1))
    assert [r["run_id"] for r in got] == ["r-new"]
    assert len(await runs.list_runs(store, since=timedelta(hours=2), now=now)) == 2


async def test_runs_with_refusals_count_as_failed_and_are_labelled_refused(store):
    rows = (
        _ok_run("r-ok", 0)
        + _ok_run("r-refused", 100)
        + [
            handoff_row("r-refused", "", at_ms=200, duration_ms=1, status=404, outcome="refused", error_class="unknown_upstream"),
            handoff_row("r-mixed", "billing.charge", at_ms=300, status=0, outcome="transport_error", error_class="timeout"),
            handoff_row(
                "r-mixed", "billing.charge", at_ms=400, duration_ms=1, status=413, outcome="refused", error_class="too_large"
            ),
        ]
    )
    await insert_rows(store, rows)
    got = {r["run_id"]: r for r in await runs.list_runs(store, failed=True)}
    assert sorted(got) == ["r-mixed", "r-refused"]
    refused = got["r-refused"]
    assert (refused["failed"], refused["refused"], refused["worst_outcome"]) == (1, 1, "refused")
    assert refused["error_classes"] == ["unknown_upstream"]
    mixed = got["r-mixed"]
    assert (mixed["failed"], mixed["refused"], mixed["worst_outcome"]) == (2, 1, "transport_error")
    assert [r["run_id"] for r in await runs.list_runs(store, outcome="refused")] == ["r-mixed", "r-refused"]
    summary = runs.summarize_run(await runs.get_run(store, "r-refused"))
    assert (summary["failed"], summary["refused"], summary["worst_outcome"]) == (1, 1, "refused")
    assert (await runs.list_runs(store, since=None))[-1]["refused"] == 0


def test_a_refusal_ranks_below_every_upstream_failure():
    assert runs.worst_outcome(["ok", "refused", "contract_violation"]) == "refused"
    assert runs.worst_outcome(["refused", "http_error"]) == "http_error"
    assert "refused" in runs.KNOWN_OUTCOMES and "refused" in runs.FAILED_OUTCOMES


def test_worst_outcome_ranks_transport_errors_above_silent_failures():
    assert runs.worst_outcome(["ok", "silent_failure", "http_error"]) == "silent_failure"
    assert runs.worst_outcome(["silent_failure", "transport_error"]) == "transport_error"
    assert runs.worst_outcome([]) == ""


async def test_list_calls_pages_newest_first_without_gaps_and_keeps_only_answered_calls(store):
    rows = [handoff_row("r-1", "crm.create_contact", at_ms=i * 10, response_body=f'{{"n":{i}}}') for i in range(7)]
    rows[3]["ts"] = rows[2]["ts"]  # two calls at the same instant: the cursor's event_id breaks the tie
    rows += [
        handoff_row("r-2", "crm.create_contact", at_ms=1, status=0, outcome="transport_error"),  # never answered
        handoff_row("r-2", "crm.create_contact", at_ms=2, outcome="refused", status=0),
        handoff_row("r-2", "crm.create_contact", at_ms=3, outcome="replayed"),  # the guard's copy of another call
        handoff_row("r-3", "billing.charge", at_ms=4),
    ]
    await insert_rows(store, rows)
    seen: list[str] = []
    after, totals = None, []
    while True:
        page = await runs.list_calls(store, handoff="crm.create_contact", after=after, limit=3)
        totals.append(page["total"])
        seen += [c["event_id"] for c in page["calls"]]
        if page["next"] is None:
            break
        after = runs.parse_cursor(page["next"])
    assert totals[0] == 7 and all(t is None for t in totals[1:])
    assert sorted(seen) == sorted(r["event_id"] for r in rows[:7]) and len(seen) == 7  # each once
    first = (await runs.list_calls(store, upstream="crm", limit=1))["calls"][0]
    assert first["event_id"] == rows[6]["event_id"] and first["response_body"] == '{"n":6}'  # newest first, bodies in
    assert {"run_id", "response_truncated", "unknown_fields", "response_bytes"} <= set(first)
    assert (await runs.list_calls(store, upstream="billing"))["total"] == 1
    assert (await runs.list_calls(store, since=timedelta(minutes=1)))["total"] == 0  # T0 is two hours ago


def test_parse_cursor_refuses_what_no_page_gave():
    assert runs.parse_cursor("1700000000000000:0190-abc") == (1700000000000000, "0190-abc")  # date-ok: parsing only, no clock
    for bad in ("", "abc:def", "123", "12:"):
        with pytest.raises(ValueError, match="not a cursor"):
            runs.parse_cursor(bad)
