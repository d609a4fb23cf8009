"""The "Guards / recovery" row of the handoff overview: what the guards prevented and how fast handoffs recover.

The seeds' recovery metrics, read from the `guards_1m` rollup (schema 3; keys handoff, upstream, tenant, source_app,
guard, error_class, outcome) except where an order of calls is needed (circuit opens, time to recovery), which
read `handoffs` over the dashboard's range:
- duplicates prevented: calls the duplicate guard answered itself (`guard IN DUPLICATES_PREVENTED`);
- retry success after a first failure: calls whose first attempt failed and a retry ended ok, over the calls retried;
- pauses: calls answered 409 outcome-unknown (the first call's outcome is unknown: a human checks, nothing repeats);
- circuit opens: each run of consecutive circuit-open refusals of an upstream counts as one opening;
- loops stopped: calls refused 429 loop-suspected (`loops.block`), next to the calls only flagged;
- time to recovery: from a handoff's first failure to its next success.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb

from seamline import outcomes as o
from seamline.dashboards.panels import PanelIds, stat_panel, table_panel, time_series
from seamline.dashboards.sql import GUARDS, HANDOFFS, IS_RUN_FAILED, where

VARS = ("tenant", "source_app", "upstream", "handoff")
GF = where(*VARS, time_column="minute")
F = where(*VARS)

IS_DUPLICATE_PREVENTED = f"guard IN {o.sql_list(o.DUPLICATES_PREVENTED)}"
IS_PAUSE = f"error_class = '{o.OUTCOME_UNKNOWN}'"
IS_LOOP_STOPPED = f"guard = '{o.GUARD_LOOP_BLOCKED}'"
RETRY_SUCCESS_PCT = "round(100 * sum(retries_ok) / nullIf(uniqMerge(retried_calls), 0), 2)"
# One opening per run of consecutive circuit-open refusals of an upstream (the row before it, in time, was not one).
CIRCUIT_OPENS = (
    "SELECT upstream, countIf(refused AND NOT before) AS circuit_opens FROM ("
    f"SELECT upstream, error_class = '{o.CIRCUIT_OPEN}' AS refused, "
    f"lagInFrame(error_class = '{o.CIRCUIT_OPEN}', 1, false) OVER (PARTITION BY upstream ORDER BY ts, event_id "
    "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS before "
    f"FROM {HANDOFFS} WHERE {F}) GROUP BY upstream"
)
# A handoff's failures that follow a success (or open the range), each with the time of the next success. The next
# success is a running min over the rows after this one in *descending* time (a frame that only grows as the window
# moves, so ClickHouse adds one row per step): a frame "1 FOLLOWING AND UNBOUNDED FOLLOWING" in ascending order is
# recomputed for every row (measured: 13.7 s over 7 days at 1M rows, see docs/benchmarks.md).
RECOVERIES = (
    "SELECT handoff, dateDiff('millisecond', ts, next_ok) / 1000 AS recovery_s FROM ("
    f"SELECT handoff, ts, {IS_RUN_FAILED} AS failed, "
    f"lagInFrame({IS_RUN_FAILED}, 1, false) OVER (PARTITION BY handoff ORDER BY ts, event_id "
    "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS failed_before, "
    f"min(if(outcome = '{o.OK}', ts, NULL)) OVER (PARTITION BY handoff ORDER BY ts DESC, event_id DESC "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS next_ok "
    f"FROM {HANDOFFS} WHERE {F}) WHERE failed AND NOT failed_before AND next_ok IS NOT NULL"
)


def add_row(d: dsb.Dashboard, ids: PanelIds) -> dsb.Dashboard:
    """The row and its panels, appended to the dashboard `d`."""
    d = d.with_row(dsb.Row("Guards / recovery"))
    d = d.with_panel(
        stat_panel(
            ids, "Duplicates prevented",
            f"SELECT sumIf(calls, {IS_DUPLICATE_PREVENTED}) AS duplicates_prevented FROM {GUARDS} WHERE {GF}",
            description="Repeats of never_repeat/safe_once calls the duplicate guard answered itself (the first call's "
            "response replayed, or 409/422): each one a double charge or double booking that did not happen.",
            steps=[(None, "green")],
        )
    )  # fmt: skip
    d = d.with_panel(
        stat_panel(
            ids, "Retry success after a first failure", f"SELECT {RETRY_SUCCESS_PCT} AS retry_success FROM {GUARDS} WHERE {GF}",
            unit="percent",
            description="Of the calls whose first attempt failed and that the sidecar retried, the share a retry "
            "completed ok.",
            steps=[(None, "red"), (50, "orange"), (90, "green")],
        )
    )  # fmt: skip
    d = d.with_panel(
        stat_panel(
            ids, "Pauses (outcome unknown)", f"SELECT sumIf(calls, {IS_PAUSE}) AS pauses FROM {GUARDS} WHERE {GF}",
            description="Repeats answered 409 outcome-unknown: the first call timed out or was cut after it was sent, so "
            "it may have taken effect. Seamline does not guess: check the upstream by the external IDs in the answer.",
            steps=[(None, "green"), (1, "orange")],
        )
    )  # fmt: skip
    d = d.with_panel(
        stat_panel(
            ids, "Circuit opens", f"SELECT sum(circuit_opens) AS circuit_opens FROM ({CIRCUIT_OPENS})",
            description="Times an upstream's circuit breaker opened (each run of consecutive circuit-open refusals counts "
            "once); the Prometheus counter seamline_circuit_transitions_total{to=\"open\"} counts them per replica.",
            steps=[(None, "green"), (1, "red")],
        )
    )  # fmt: skip
    d = d.with_panel(
        stat_panel(
            ids, "Loops stopped", f"SELECT sumIf(calls, {IS_LOOP_STOPPED}) AS loops_stopped FROM {GUARDS} WHERE {GF}",
            description="Calls refused 429 loop-suspected: a run called one handoff more than loops.max_calls_per_run "
            "times (loops.block). Calls only flagged are in the table.",
            steps=[(None, "green"), (1, "orange")],
        )
    )  # fmt: skip
    d = d.with_panel(
        stat_panel(
            ids, "Median time to recovery",
            f"SELECT round(quantile(0.5)(recovery_s), 1) AS median_recovery_s FROM ({RECOVERIES})",
            unit="s",
            description="From a handoff's first failure to its next successful call, the median over the range.",
        )
    )  # fmt: skip
    d = d.with_panel(
        time_series(
            ids, "Guard decisions over time",
            f"SELECT $__timeInterval(minute) AS time, guard, sum(calls) AS calls FROM {GUARDS} "
            f"WHERE {GF} AND guard != '' GROUP BY time, guard ORDER BY time",
            description="What the guards did, by decision (seamline.outcomes GUARD_*): replayed, blocked_in_flight, "
            "blocked_unknown, key_reused, circuit_open, rate_queued, loop_blocked, retried…",
            bars=True, stacked=True,
        )
    )  # fmt: skip
    d = d.with_panel(
        table_panel(
            ids, "Recovery by handoff",
            f"SELECT if(g.handoff != '', g.handoff, r.handoff) AS handoff, g.duplicates_prevented, g.pauses, "
            f"g.circuit_refusals, g.loops_stopped, "
            f"g.flagged AS loop_flagged, g.retried AS retried_calls, g.retry_success_pct, g.replays, g.replays_ok, "
            f"r.recoveries, r.avg_recovery_s, r.max_recovery_s FROM ("
            f"SELECT handoff, sumIf(calls, {IS_DUPLICATE_PREVENTED}) AS duplicates_prevented, "
            f"sumIf(calls, {IS_PAUSE}) AS pauses, sumIf(calls, error_class = '{o.CIRCUIT_OPEN}') AS circuit_refusals, "
            f"sumIf(calls, {IS_LOOP_STOPPED}) AS loops_stopped, sum(loop_flagged) AS flagged, "
            f"uniqMerge(retried_calls) AS retried, {RETRY_SUCCESS_PCT} AS retry_success_pct, "
            f"sum(replays) AS replays, sum(replays_ok) AS replays_ok FROM {GUARDS} WHERE {GF} GROUP BY handoff) AS g "
            f"FULL OUTER JOIN (SELECT handoff, count() AS recoveries, round(avg(recovery_s), 1) AS avg_recovery_s, "
            f"round(max(recovery_s), 1) AS max_recovery_s FROM ({RECOVERIES}) GROUP BY handoff) AS r ON r.handoff = g.handoff "
            "ORDER BY g.duplicates_prevented + g.pauses + g.loops_stopped DESC, handoff",
            description="Per handoff: duplicates prevented, pauses, circuit-open refusals, loops stopped and flagged, "
            "retry success, replays (seamline replay), and time from a first failure to the next success.",
            w=24, h=8,
            units={"retry_success_pct": "percent", "avg_recovery_s": "s", "max_recovery_s": "s"},
        )
    )  # fmt: skip
    return d
