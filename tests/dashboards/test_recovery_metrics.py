"""The recovery metrics (Guards / recovery row, and the rules on them) on the real engine: exact figures from a
crafted set of rows, with rows just over and under each rule's threshold and rows outside the window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dashboards_engine import ALL, handoff, insert_handoffs, new_database, query, render
from support.clock import utc_now
from test_alert_rules import evaluate

from seamline import outcomes as o
from seamline.dashboards import alerts
from seamline.dashboards.generate import DASHBOARDS, dashboard_json

NOW = utc_now(timedelta(minutes=1))
FROM = NOW - timedelta(hours=1)
ALL_VARS = {"tenant": ALL, "source_app": ALL, "upstream": ALL, "handoff": ALL}


def panel(client: Any, title: str, variables: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    d = dashboard_json(DASHBOARDS["handoff-overview.json"])
    (sql,) = [t["rawSql"] for p in d["panels"] if p.get("title") == title for t in p["targets"]]
    return query(client, render(sql, frm=FROM, to=NOW, interval_s=300, variables=variables or ALL_VARS))[2]


def at(minutes_ago: float) -> Any:
    return NOW - timedelta(minutes=minutes_ago)


def rows() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # Duplicates prevented: each decision of DUPLICATES_PREVENTED once; key_missing and store_down are not prevented.
    for i, g in enumerate((*o.DUPLICATES_PREVENTED, o.GUARD_KEY_MISSING, o.GUARD_STORE_DOWN_OPEN)):
        out.append(handoff("billing.charge", at(30 - i * 0.1), guard=g, outcome="replayed" if g == "replayed" else "refused"))
    # Retries: two calls failed first; one recovered on its 3rd attempt, one did not.
    a1 = handoff("crm.get", at(20), outcome="http_error", status=503, guard="retried")
    b1 = handoff("crm.get", at(19), outcome="http_error", status=503, guard="retried")
    out += [a1, b1,
            handoff("crm.get", at(19.9), outcome="http_error", status=503, guard="retried", retry_of=a1["event_id"], attempt=2),
            handoff("crm.get", at(19.8), retry_of=a1["event_id"], attempt=3),
            handoff("crm.get", at(18.9), outcome="http_error", status=503, retry_of=b1["event_id"], attempt=2)]  # fmt: skip
    # Pauses: one 409 outcome-unknown on billing.refund.
    out.append(handoff("billing.refund", at(10), outcome="refused", status=409, error_class=o.OUTCOME_UNKNOWN,
                       guard=o.GUARD_BLOCKED_UNKNOWN))  # fmt: skip
    # Circuit: two openings of email (refusals, an ok probe between), one of sms.
    for m, outcome in ((9, "refused"), (8.9, "refused"), (8, "ok"), (7, "refused")):
        extra = {"error_class": o.CIRCUIT_OPEN, "status": 503, "guard": o.GUARD_CIRCUIT_OPEN} if outcome == "refused" else {}
        out.append(handoff("email.send", at(m), outcome=outcome, **extra))
    out.append(handoff("sms.send", at(6), outcome="refused", error_class=o.CIRCUIT_OPEN, status=503, guard="circuit_open"))
    # Loops: one call stopped, two only flagged.
    out.append(handoff("crm.sync", at(5), outcome="refused", status=429, error_class=o.LOOP_SUSPECTED,
                       guard=o.GUARD_LOOP_BLOCKED, loop_suspected=True))  # fmt: skip
    out += [handoff("crm.sync", at(5.5 + i / 10), loop_suspected=True) for i in range(2)]
    # Time to recovery: ledger.post fails at -40 min and -39 min, recovers at -38 min (120 s from the first failure).
    out += [handoff("ledger.post", at(41)), handoff("ledger.post", at(40), outcome="http_error", status=500),
            handoff("ledger.post", at(39), outcome="http_error", status=500), handoff("ledger.post", at(38))]  # fmt: skip
    # Outside the range: never counted.
    out.append(handoff("billing.charge", NOW - timedelta(hours=2), guard="replayed", outcome="replayed"))
    return out


def test_recovery_panels_count_exactly_what_the_guards_did() -> None:
    c = new_database("recovery_panels")
    insert_handoffs(c, rows())
    # Each decision once, plus the pause (a blocked_unknown repeat is a duplicate prevented too).
    assert panel(c, "Duplicates prevented") == [{"duplicates_prevented": len(o.DUPLICATES_PREVENTED) + 1}]
    assert panel(c, "Retry success after a first failure") == [{"retry_success": 50.0}]
    assert panel(c, "Pauses (outcome unknown)") == [{"pauses": 1}]
    assert panel(c, "Circuit opens") == [{"circuit_opens": 3}]
    assert panel(c, "Loops stopped") == [{"loops_stopped": 1}]
    table = {r["handoff"]: r for r in panel(c, "Recovery by handoff")}
    assert table["ledger.post"]["recoveries"] == 1 and table["ledger.post"]["max_recovery_s"] == 120.0  # no guard, listed
    assert table["ledger.post"]["duplicates_prevented"] == 0
    assert table["crm.sync"]["loop_flagged"] == 3 and table["crm.sync"]["loops_stopped"] == 1
    assert table["crm.get"]["retried_calls"] == 2 and table["crm.get"]["retry_success_pct"] == 50.0
    assert table["email.send"]["circuit_refusals"] == 3 and table["billing.refund"]["pauses"] == 1
    one = {**ALL_VARS, "handoff": ["billing.refund"]}
    assert panel(c, "Duplicates prevented", one) == [{"duplicates_prevented": 1}]
    decisions = {(r["guard"]) for r in panel(c, "Guard decisions over time")}
    assert {"replayed", "retried", "circuit_open", "loop_blocked", "blocked_unknown"} <= decisions


def test_time_to_recovery_runs_from_the_first_failure_to_the_next_success() -> None:
    c = new_database("recovery_ttr")
    insert_handoffs(c, rows())
    # ledger.post: 120 s; email.send: its first circuit refusal (-9 min) to the ok probe (-8 min): 60 s; crm.get: its
    # first failure (-20 min) to its first ok (-19.8 min): 12 s. Failures never followed by a success do not count
    # (crm.get's second call, email.send's second opening, the guards' refusals).
    assert panel(c, "Median time to recovery") == [{"median_recovery_s": 60.0}]
    table = {r["handoff"]: r for r in panel(c, "Recovery by handoff")}
    assert (table["crm.get"]["recoveries"], table["crm.get"]["avg_recovery_s"]) == (1, 12.0)
    assert (table["email.send"]["recoveries"], table["email.send"]["max_recovery_s"]) == (1, 60.0)


def test_pause_loop_and_duplicate_rules_fire_over_their_thresholds_only() -> None:
    c = new_database("recovery_rules")
    base = [
        handoff("billing.refund", at(5), outcome="refused", status=409, error_class=o.OUTCOME_UNKNOWN, guard="blocked_unknown"),
        handoff("billing.old", at(20), outcome="refused", status=409, error_class=o.OUTCOME_UNKNOWN, guard="blocked_unknown"),
        handoff("crm.sync", at(3), outcome="refused", status=429, error_class=o.LOOP_SUSPECTED, guard="loop_blocked"),
        handoff("crm.flagged", at(3), loop_suspected=True),
    ]  # fmt: skip
    spike = alerts.DUPLICATES_SPIKE
    base += [handoff("billing.charge", at(1 + i / 100), guard="replayed", outcome="replayed") for i in range(spike + 1)]
    base += [handoff("billing.quiet", at(1 + i / 100), guard="key_reused", outcome="refused") for i in range(spike)]
    insert_handoffs(c, base)
    by = {dict(k)["handoff"]: v for k, v in evaluate(c, "seamline-pauses", at=NOW).items()}
    assert by == {"billing.refund": (1.0, True)}  # billing.old is outside the 15 minutes
    by = {dict(k)["handoff"]: v for k, v in evaluate(c, "seamline-loop-stopped", at=NOW).items()}
    assert by == {"crm.sync": (1.0, True)}  # only flagged: no alert
    by = {dict(k)["handoff"]: v for k, v in evaluate(c, "seamline-duplicates-spike", at=NOW).items()}
    assert by == {"billing.charge": (spike + 1.0, True), "billing.quiet": (float(spike), False),
                  "billing.refund": (1.0, False)}  # fmt: skip
