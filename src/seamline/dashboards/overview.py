"""Handoff overview: is each handoff doing its business job, and how does today compare with normal?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb

from seamline import outcomes as o
from seamline.dashboards import recovery
from seamline.dashboards.common import OVERVIEW_UID, RUNS_URL, shell
from seamline.dashboards.panels import PanelIds, multi_variable, stat_panel, table_panel, time_series
from seamline.dashboards.sql import (
    BUSINESS_SUCCESS_PCT,
    HANDOFFS,
    HTTP_SUCCESS_PCT,
    IS_FAILED,
    IS_REFUSED,
    IS_UPSTREAM_CALL,
    R_BUSINESS_SUCCESS_PCT,
    ROLLUP,
    handoff_health_sql,
    handoff_trend_sql,
    var_filter,
    where,
)

VARS = ("tenant", "source_app", "upstream", "handoff")
F = where(*VARS)
# The rollup's time column is `minute`.
RF = where(*VARS, time_column="minute")

# Rates from the per-minute rollup (outcome and error_class are rollup keys). Seamline's own refusals are left
# out of both: the upstream never judged them (they have their own panel).
R_BUSINESS = R_BUSINESS_SUCCESS_PCT
R_HTTP = (
    f"round(100 * (sumIf(calls, {IS_UPSTREAM_CALL}) - sumIf(status_4xx, {IS_UPSTREAM_CALL})"
    f" - sumIf(status_5xx, {IS_UPSTREAM_CALL}) - sumIf(calls, outcome = '{o.TRANSPORT_ERROR}'))"
    f" / nullIf(sumIf(calls, {IS_UPSTREAM_CALL}), 0), 2)"
)


def build() -> dsb.Dashboard:
    ids = PanelIds()
    d = shell(
        OVERVIEW_UID,
        "Seamline / Handoff overview",
        "Per handoff: volume against its 7-day baseline, HTTP vs business success (the silent-failure gap), "
        "latency percentiles, error classes, Seamline's own refusals, retries, the most frequent contract violations, "
        "and what the guards prevented (duplicates, pauses, circuit opens, loops stopped, retry success, time to recovery).",
    )
    for name, label in (("tenant", "Tenant"), ("source_app", "Source app"), ("upstream", "Upstream"), ("handoff", "Handoff")):
        d = d.with_variable(multi_variable(name, label))

    d = d.with_row(dsb.Row("At a glance"))
    d = d.with_panel(stat_panel(ids, "Calls", f"SELECT count() AS calls FROM {HANDOFFS} WHERE {F}", w=4))
    d = d.with_panel(
        stat_panel(
            ids,
            "HTTP success",
            f"SELECT {HTTP_SUCCESS_PCT} AS http_success FROM {HANDOFFS} WHERE {F}",
            unit="percent",
            w=4,
            steps=[(None, "red"), (80, "orange"), (95, "green")],
            description="Share of calls answered 2xx/3xx: what plain HTTP monitoring sees. "
            "Calls Seamline refused itself are left out.",
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Business success",
            f"SELECT {BUSINESS_SUCCESS_PCT} AS business_success FROM {HANDOFFS} WHERE {F}",
            unit="percent",
            w=4,
            steps=[(None, "red"), (80, "orange"), (95, "green")],
            description="Share of validated calls whose outcome is ok (contract, assertions, echo checks passed). "
            "Unvalidated calls and calls Seamline refused itself are left out.",
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Silent failures",
            f"SELECT countIf(outcome = '{o.SILENT_FAILURE}') AS silent_failures FROM {HANDOFFS} WHERE {F}",
            w=4,
            steps=[(None, "green"), (1, "red")],
            description="2xx answers that failed in business terms (e.g. a payment 200 with status declined).",
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Refused by Seamline",
            f"SELECT countIf({IS_REFUSED}) AS refused FROM {HANDOFFS} WHERE {F}",
            w=4,
            steps=[(None, "green"), (1, "orange")],
            description="Calls Seamline answered itself (unknown upstream, refused target, body too large, unknown client "
            "token, not implemented, malformed request): the app's or the configuration's problem, never the upstream's, "
            "so no success or error rate counts them.",
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "p95 latency",
            f"SELECT round(quantile(0.95)(duration_ms), 1) AS p95_ms FROM {HANDOFFS} WHERE {F} AND {IS_UPSTREAM_CALL}",
            unit="ms",
            w=4,
        )
    )

    d = d.with_row(dsb.Row("Handoff health"))
    d = d.with_panel(
        table_panel(
            ids,
            "Handoff health",
            handoff_health_sql(var_filter(*VARS)),
            description="One row per handoff, worst first: the same query as Seamline's /handoffs page and `seamline top`.",
            w=24,
            h=8,
            links={"handoff": ("Failed runs of this handoff", f"{RUNS_URL}?var-handoff=${{__value.raw}}&${{__url_time_range}}")},
            units={"http_success_pct": "percent", "business_success_pct": "percent", "p50_ms": "ms", "p95_ms": "ms"},
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Business success by handoff",
            handoff_trend_sql(var_filter(*VARS)),
            description="Per handoff and interval, from the per-minute rollup: the sparklines of /handoffs.",
            unit="percent",
            w=24,
        )
    )

    d = d.with_row(dsb.Row("Volume and success"))
    d = d.with_panel(
        time_series(
            ids,
            "Volume vs 7-day baseline",
            f"SELECT $__timeInterval(minute) AS time, handoff, sum(calls) AS calls FROM {ROLLUP} WHERE {RF} "
            "GROUP BY time, handoff ORDER BY time",
            # Baseline: the same clock time on each of the previous 7 days, averaged.
            f"SELECT toStartOfInterval(toDateTime(minute) + toIntervalDay(k), INTERVAL $__interval_s second) AS time, "
            f"concat(handoff, ' (7-day baseline)') AS series, sum(calls) / 7 AS baseline "
            f"FROM {ROLLUP} ARRAY JOIN [1, 2, 3, 4, 5, 6, 7] AS k "
            f"WHERE minute >= $__fromTime - INTERVAL 7 DAY AND minute <= $__toTime - INTERVAL 1 DAY "
            f"AND minute + toIntervalDay(k) >= $__fromTime AND minute + toIntervalDay(k) <= $__toTime "
            f"AND {var_filter(*VARS)} GROUP BY time, series ORDER BY time",
            description="Calls per interval and handoff; "
            "dashed reference: the average of the same clock time over the previous 7 days.",
            w=24,
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "HTTP success vs business success",
            f"SELECT $__timeInterval(minute) AS time, {R_HTTP} AS http_success, {R_BUSINESS} AS business_success "
            f"FROM {ROLLUP} WHERE {RF} GROUP BY time ORDER BY time",
            description="The gap between the two lines is the silent-failure gap: calls HTTP monitoring counts as fine. "
            "Calls Seamline refused itself are in neither line.",
            unit="percent",
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Silent-failure gap by handoff",
            f"SELECT handoff, count() AS calls, {HTTP_SUCCESS_PCT} AS http_success_pct, "
            f"{BUSINESS_SUCCESS_PCT} AS business_success_pct, "
            f"round(http_success_pct - business_success_pct, 2) AS gap_pp, "
            f"countIf(outcome = '{o.SILENT_FAILURE}') AS silent_failures, countIf({IS_FAILED}) AS failed, "
            f"countIf({IS_REFUSED}) AS refused "
            f"FROM {HANDOFFS} WHERE {F} GROUP BY handoff ORDER BY gap_pp DESC, failed DESC",
            w=12,
            h=8,
            links={"handoff": ("Failed runs of this handoff", f"{RUNS_URL}?var-handoff=${{__value.raw}}&${{__url_time_range}}")},
            units={"http_success_pct": "percent", "business_success_pct": "percent"},
        )
    )

    d = d.with_row(dsb.Row("Latency"))
    d = d.with_panel(
        time_series(
            ids,
            "Latency p50 / p95 / p99",
            f"SELECT $__timeInterval(minute) AS time, "
            f"quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_q) AS q, q[1] AS p50, q[3] AS p95, q[4] AS p99 "
            f"FROM {ROLLUP} WHERE {RF} AND {IS_UPSTREAM_CALL} GROUP BY time ORDER BY time",
            unit="ms",
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Latency by handoff",
            f"SELECT handoff, count() AS calls, round(quantile(0.5)(duration_ms), 1) AS p50_ms, "
            f"round(quantile(0.95)(duration_ms), 1) AS p95_ms, round(quantile(0.99)(duration_ms), 1) AS p99_ms, "
            f"round(max(duration_ms), 1) AS max_ms "
            f"FROM {HANDOFFS} WHERE {F} AND {IS_UPSTREAM_CALL} GROUP BY handoff ORDER BY p95_ms DESC",
            w=12,
            h=8,
        )
    )

    d = d.with_row(dsb.Row("Errors, retries, violations"))
    d = d.with_panel(
        time_series(
            ids,
            "Error classes over time",
            f"SELECT $__timeInterval(minute) AS time, error_class, sum(calls) AS calls FROM {ROLLUP} "
            f"WHERE {RF} AND error_class != '{o.NONE}' AND {IS_UPSTREAM_CALL} GROUP BY time, error_class ORDER BY time",
            description="Error classes of the calls that reached the upstream; Seamline's own refusals are on the right.",
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Refused by Seamline over time",
            f"SELECT $__timeInterval(minute) AS time, concat('refused: ', error_class) AS series, sum(calls) AS calls "
            f"FROM {ROLLUP} WHERE {RF} AND {IS_REFUSED} GROUP BY time, series ORDER BY time",
            description="Calls Seamline answered itself, by reason (unknown_upstream, refused, too_large, unauthorized, "
            "not_implemented, bad_request…). Not upstream failures: fix the caller or the configuration.",
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Retries (attempt > 1)",
            f"SELECT $__timeInterval(minute) AS time, handoff, sum(retries) AS retries FROM {ROLLUP} "
            f"WHERE {RF} GROUP BY time, handoff HAVING retries > 0 ORDER BY time",
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Attempts by handoff",
            f"SELECT handoff, count() AS calls, countIf(attempt > 1) AS retries, "
            f"round(100 * retries / calls, 2) AS retry_pct, max(attempt) AS max_attempt, "
            f"uniqExactIf(idempotency_key, idempotency_key != '') AS idempotency_keys "
            f"FROM {HANDOFFS} WHERE {F} GROUP BY handoff ORDER BY retries DESC",
            w=12,
            h=8,
            units={"retry_pct": "percent"},
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Top violations",
            f"SELECT violation, handoff, count() AS events, max(ts) AS last_seen "
            f"FROM {HANDOFFS} ARRAY JOIN violations AS violation WHERE {F} "
            f"GROUP BY violation, handoff ORDER BY events DESC LIMIT 50",
            w=24,
            h=8,
        )
    )
    return recovery.add_row(d, ids)
