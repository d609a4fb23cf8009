"""Each alert rule, executed on the real engine, fires exactly when its threshold is crossed.

A rule is evaluated the way Grafana does: query A over the rule's relative time range ending at the
evaluation time, string columns → labels, `value` → Reduce(last) (one number per row) → Threshold.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from dashboards_engine import handoff, insert_handoffs, insert_health, new_database, query, render
from support.clock import utc_now

from seamline.dashboards import alerts
from seamline.read import alerting

# Evaluation time: now (rows older than the 30-day TTL would be dropped), on a whole minute like the per-minute
# rollup the baselines read, so each call falls in the minute bucket it was placed in.
T = utc_now(timedelta(minutes=1))
SPECS = {s.uid: s for s in alerts.RULES}


def evaluate(client: Any, uid: str, at: datetime = T) -> dict[tuple[tuple[str, str], ...], tuple[float, bool]]:
    """labels → (value, firing) for every series the rule returns."""
    spec = SPECS[uid]
    sql = render(spec.sql, frm=at - timedelta(seconds=spec.window_s), to=at)
    names, types, rows = query(client, sql)
    numeric = [n for n, t in zip(names, types, strict=True) if "String" not in t]
    # Grafana turns every numeric column into its own series: exactly one, named value.
    assert numeric == ["value"], (names, types)
    out = {}
    for row in rows:
        labels = tuple(
            sorted((k, str(v)) for k, v, t in zip(names, row.values(), types, strict=True) if k != "value" and "String" in t)
        )
        value = float(row["value"])
        firing = value > spec.threshold if spec.op == "gt" else value < spec.threshold
        out[labels] = (value, firing)
    # `seamline alerts check` runs the same text (the plugin's expansion) and judges every series the same way.
    assert alerting.rule_sql(spec, at) == sql
    ours = {
        tuple(sorted((k, v) for k, v in ev.labels.items() if k not in spec.static_labels)): (ev.value, ev.firing)
        for ev in alerting.evaluate_rows(spec, rows)
        if ev.value is not None
    }
    assert ours == out
    return out


def by_handoff(result: dict[tuple[tuple[str, str], ...], tuple[float, bool]]) -> dict[str, tuple[float, bool]]:
    return {dict(k)["handoff"]: v for k, v in result.items()}


def calls(name: str, n: int, *, at: datetime, spread_s: float = 200, **values: Any) -> list[dict[str, Any]]:
    """n calls of a handoff spread over `spread_s` seconds before `at`."""
    return [handoff(name, at - timedelta(seconds=spread_s * (i + 1) / (n + 1)), **values) for i in range(n)]


def mixed(
    name: str, ok: int, failed: int, *, at: datetime = T, failure: dict[str, Any] | None = None, spread_s: float = 200
) -> list[dict[str, Any]]:
    bad = failure or {"outcome": "silent_failure", "error_class": "contract", "violations": ["assert:ok"]}
    return calls(name, ok, at=at, spread_s=spread_s) + calls(name, failed, at=at, spread_s=spread_s, **bad)


def test_success_rate_warning_and_critical_split_at_95_and_80() -> None:
    c = new_database("alert_success")
    rows = (
        mixed("h96", 48, 2)
        + mixed("h94", 47, 3)
        + mixed("h80", 80, 20)
        + mixed("h79", 79, 21)
        + mixed("small", 0, 19)  # below the minimum sample: never judged
        + calls("h96", 30, at=T, outcome="unvalidated")  # unknown outcomes do not count either way
        + mixed("h96", 0, 50, at=T - timedelta(minutes=6))  # outside the 5-minute window
    )
    insert_handoffs(c, rows)
    warn = by_handoff(evaluate(c, "seamline-success-rate-warning"))
    crit = by_handoff(evaluate(c, "seamline-success-rate-critical"))
    assert warn == {"h96": (96.0, False), "h94": (94.0, True), "h80": (80.0, True)}
    assert crit == {"h96": (96.0, False), "h94": (94.0, False), "h80": (80.0, False), "h79": (79.0, True)}
    assert "small" not in warn and "small" not in crit


def test_silent_failure_rate_above_five_percent() -> None:
    c = new_database("alert_silent")
    http_error = {"outcome": "http_error", "status": 500, "error_class": "server_error"}
    insert_handoffs(
        c,
        mixed("hi", 94, 6, spread_s=500)
        + mixed("lo", 95, 5, spread_s=500)
        + mixed("small", 10, 9, spread_s=500)
        + mixed("loud", 50, 50, failure=http_error, spread_s=500),
    )
    got = by_handoff(evaluate(c, "seamline-silent-failure-rate"))
    assert got == {"hi": (6.0, True), "lo": (5.0, False), "loud": (0.0, False)}  # small: below the minimum sample


def test_latency_p95_against_seven_day_baseline_excluding_last_hour() -> None:
    c = new_database("alert_latency")
    rows: list[dict[str, Any]] = []
    for name in ("slow", "steady"):
        for day in range(1, 7):  # baseline: 100 ms
            rows += calls(name, 40, at=T - timedelta(days=day), spread_s=3000, duration_ms=100.0)
    # The last hour is slow for "slow" too: were it part of the baseline, the ratio would drop below 2.
    rows += calls("slow", 300, at=T - timedelta(minutes=15), spread_s=2400, duration_ms=250.0)
    rows += calls("slow", 30, at=T, spread_s=500, duration_ms=250.0)
    rows += calls("steady", 30, at=T, spread_s=500, duration_ms=150.0)
    rows += calls("nobase", 50, at=T - timedelta(days=2), duration_ms=100.0)  # 50 < 100 baseline calls
    rows += calls("nobase", 30, at=T, spread_s=500, duration_ms=900.0)
    rows += calls("quiet", 5, at=T, spread_s=500, duration_ms=900.0)  # too few calls now
    insert_handoffs(c, rows)
    got = by_handoff(evaluate(c, "seamline-latency-p95-baseline"))
    assert set(got) == {"slow", "steady"}
    assert got["slow"] == (2.5, True)
    assert got["steady"] == (1.5, False)


def test_volume_above_150_percent_of_same_hour_over_previous_days() -> None:
    c = new_database("alert_volume")
    rows: list[dict[str, Any]] = []
    for name, now_calls in (("surge", 31), ("normal", 29)):
        for day in range(1, 8):
            rows += calls(name, 20, at=T - timedelta(days=day, minutes=5), spread_s=3000)
            rows += calls(name, 200, at=T - timedelta(days=day, hours=6), spread_s=3000)  # other hours do not count
        rows += calls(name, now_calls, at=T - timedelta(minutes=5), spread_s=3000)
    for day in (1, 2):  # only two days of history: no baseline yet
        rows += calls("young", 20, at=T - timedelta(days=day, minutes=5), spread_s=3000)
    rows += calls("young", 100, at=T - timedelta(minutes=5), spread_s=3000)
    insert_handoffs(c, rows)
    got = by_handoff(evaluate(c, "seamline-volume-above-normal"))
    assert got == {"surge": (155.0, True), "normal": (145.0, False)}


def test_error_rate_above_half_over_ten_minutes() -> None:
    c = new_database("alert_errors")
    err = {"outcome": "transport_error", "status": 0, "error_class": "timeout"}
    insert_handoffs(
        c,
        mixed("down", 4, 6, failure=err, spread_s=500)
        + mixed("half", 5, 5, failure=err, spread_s=500)
        + mixed("few", 0, 9, failure=err, spread_s=500)
        + mixed("contract", 0, 20, spread_s=500),
    )
    got = by_handoff(evaluate(c, "seamline-error-rate"))
    assert got == {"down": (60.0, True), "half": (50.0, False), "contract": (0.0, False)}


REFUSED = {"outcome": "refused", "status": 413, "error_class": "too_large", "duration_ms": 1.0}
UNKNOWN = {"outcome": "refused", "status": 404, "error_class": "unknown_upstream", "duration_ms": 1.0}


def test_refused_calls_never_fire_the_success_rate_rules() -> None:
    c = new_database("alert_success_refused")
    rows = (
        mixed("flood", 20, 0)
        + calls("flood", 60, at=T, **REFUSED)
        + calls("flood", 20, at=T, **UNKNOWN)  # 20 % ok if refusals counted
        + calls("refused_only", 40, at=T, **REFUSED)  # no validated call at all: nothing to judge
        + mixed("sick", 15, 10)
        + calls("sick", 100, at=T, **REFUSED)  # refusals neither hide nor worsen a real failure
    )
    insert_handoffs(c, rows)
    warn = by_handoff(evaluate(c, "seamline-success-rate-warning"))
    crit = by_handoff(evaluate(c, "seamline-success-rate-critical"))
    assert warn == {"flood": (100.0, False)}
    assert crit == {"flood": (100.0, False), "sick": (60.0, True)}
    silent = by_handoff(evaluate(c, "seamline-silent-failure-rate"))
    assert silent == {"flood": (0.0, False), "sick": (40.0, True)}


def test_refused_calls_neither_fire_nor_dilute_the_error_rate() -> None:
    c = new_database("alert_errors_refused")
    err = {"outcome": "transport_error", "status": 0, "error_class": "timeout"}
    insert_handoffs(
        c,
        calls("refusing", 12, at=T, spread_s=500)
        + calls("refusing", 40, at=T, spread_s=500, **REFUSED)  # 77 % non-2xx, 0 % errors
        + mixed("down", 4, 6, failure=err, spread_s=500)
        + calls("down", 30, at=T, spread_s=500, **UNKNOWN)  # 60 %, not 15 %
        + calls("only_refused", 30, at=T, spread_s=500, **REFUSED),  # no upstream call: below the minimum sample
    )
    got = by_handoff(evaluate(c, "seamline-error-rate"))
    assert got == {"refusing": (0.0, False), "down": (60.0, True)}


def test_auth_failure_burst_more_than_ten_in_five_minutes() -> None:
    c = new_database("alert_auth")
    auth = {"outcome": "http_error", "status": 401, "error_class": "auth"}
    expired = {"outcome": "http_error", "status": 401, "error_class": "auth_expired"}
    rows = (
        calls("crm.get", 6, at=T, **auth)
        + calls("crm.get", 5, at=T, **expired)
        + calls("billing.charge", 10, at=T, **auth)
        + calls("billing.charge", 20, at=T - timedelta(minutes=10), **auth)
    )
    insert_handoffs(c, rows)
    got = evaluate(c, "seamline-auth-failure-burst")
    assert got == {
        (("handoff", "crm.get"), ("upstream", "crm")): (11.0, True),  # auth + auth_expired together
        (("handoff", "billing.charge"), ("upstream", "billing")): (10.0, False),  # older failures are outside the window
    }


def test_run_loop_more_than_n_calls_of_one_handoff() -> None:
    c = new_database("alert_loop")
    n = alerts.LOOP_MAX_CALLS
    rows = calls("crm.update", n + 1, at=T, spread_s=800, run_id="run-loop") + calls(
        "crm.get", n, at=T, spread_s=800, run_id="run-busy"
    )
    rows += calls("crm.get", 3, at=T, run_id="run-other") + calls("crm.update", 2, at=T, run_id="run-fine")
    insert_handoffs(c, rows)
    got = {dict(k)["handoff"]: (dict(k)["run_id"], v) for k, v in evaluate(c, "seamline-run-loop").items()}
    assert got == {"crm.update": ("run-loop", (float(n + 1), True)), "crm.get": ("run-busy", (float(n), False))}


def test_circuit_open_fires_on_a_refusal_in_the_window_and_not_on_one_just_before() -> None:
    c = new_database("alert_circuit")
    refused = {"outcome": "refused", "status": 503, "error_class": "circuit_open", "guard": "circuit_open"}
    window = SPECS["seamline-circuit-open"].window_s
    rows = calls("billing.charge", 1, at=T - timedelta(seconds=window - 30), spread_s=20, **refused)  # just inside
    rows += calls("crm.update", 1, at=T - timedelta(seconds=window + 10), spread_s=5, **refused)  # just before it
    rows += calls("crm.update", 30, at=T, outcome="http_error", status=503, error_class="server_error")  # the 503s
    rows += calls("email.send", 30, at=T)
    insert_handoffs(c, rows)
    got = {dict(k)["upstream"]: v for k, v in evaluate(c, "seamline-circuit-open").items()}
    assert got == {"billing": (1.0, True)}


def test_missing_heartbeat_fires_and_silence_is_alerting() -> None:
    c = new_database("alert_heartbeat")
    assert evaluate(c, "seamline-heartbeat-missing") == {}  # no rows → NoData …
    assert SPECS["seamline-heartbeat-missing"].no_data == "Alerting"  # … which alerts: silence is the failure
    insert_health(
        c,
        [{"ts": T - timedelta(seconds=s), "proxy_instance": "alive"} for s in (60, 120, 180)]
        + [{"ts": T - timedelta(seconds=s), "proxy_instance": "stale"} for s in (300, 360)],
    )
    got = {dict(k)["proxy_instance"]: v for k, v in evaluate(c, "seamline-heartbeat-missing").items()}
    assert got == {"alive": (60.0, False), "stale": (300.0, True)}


def test_spool_backlog_that_never_drains_and_dropped_events() -> None:
    c = new_database("alert_spool")
    rows = []
    for i, (stuck, draining, dropped_lossy) in enumerate(((5, 5, 0), (6, 0, 1), (7, 3, 4))):
        ts = T - timedelta(minutes=8 - 3 * i)
        rows += [
            {"ts": ts, "proxy_instance": "stuck", "spool_records": stuck},
            {"ts": ts, "proxy_instance": "draining", "spool_records": draining},
            {"ts": ts, "proxy_instance": "lossy", "dropped": dropped_lossy},
            {"ts": ts, "proxy_instance": "fine", "dropped": 2},
        ]
    rows += [{"ts": T - timedelta(minutes=1), "proxy_instance": "new", "spool_records": 9}]
    insert_health(c, rows)
    backlog = {dict(k)["proxy_instance"]: v for k, v in evaluate(c, "seamline-spool-backlog").items()}
    assert backlog == {"stuck": (5.0, True), "draining": (0.0, False), "lossy": (0.0, False), "fine": (0.0, False)}
    dropped = {dict(k)["proxy_instance"]: v for k, v in evaluate(c, "seamline-events-dropped").items()}
    assert dropped["lossy"] == (4.0, True) and dropped["fine"] == (0.0, False) and not dropped["stuck"][1]


@pytest.mark.parametrize("spec", alerts.RULES, ids=[s.uid for s in alerts.RULES])
def test_every_rule_has_labels_annotations_and_deliberate_states(spec: alerts.RuleSpec) -> None:
    doc = alerts.provisioning_rules()
    rule = next(r for g in doc["groups"] for r in g["rules"] if r["uid"] == spec.uid)
    assert rule["labels"]["severity"] in ("warning", "critical")
    handoff_label = "handoff" in rule["labels"] or "SELECT handoff" in spec.sql or "c.handoff AS handoff" in spec.sql
    assert handoff_label, "every alert carries a handoff label (static 'all' for sidecar-level rules)"
    assert set(rule["annotations"]) >= {"summary", "description", "runbook_url", "run_view", "__dashboardUid__"}
    assert rule["annotations"]["runbook_url"].endswith(f"#{spec.anchor}")
    assert rule["annotations"]["run_view"].startswith("/d/")
    assert rule["noDataState"] in ("OK", "NoData", "Alerting") and rule["execErrState"] in ("OK", "Error", "Alerting")
    assert [q["refId"] for q in rule["data"]] == ["A", "B", "C"] and rule["condition"] == "C"
    assert rule["data"][0]["relativeTimeRange"] == {"from": spec.window_s, "to": 0}
    assert "$__conditionalAll" not in spec.sql  # a frontend macro: alert rules never see it
