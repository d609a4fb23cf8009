"""Upstream health: auth failures and expired tokens, 429s with Retry-After, timeouts, latency vs baseline."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb

from seamline import outcomes as o
from seamline.dashboards.common import UPSTREAMS_UID, shell
from seamline.dashboards.panels import PanelIds, multi_variable, stat_panel, table_panel, time_series
from seamline.dashboards.sql import (
    ERROR_PCT,
    HANDOFFS,
    IS_AUTH_FAILURE,
    IS_REFUSED,
    IS_TIMEOUT,
    IS_UPSTREAM_CALL,
    var_filter,
    where,
)
from seamline.outcomes import sql_list

ROLLUP = "handoffs_1m"
VARS = ("upstream", "handoff")
F = where(*VARS)
RF = where(*VARS, time_column="minute")


def build() -> dsb.Dashboard:
    ids = PanelIds()
    d = shell(
        UPSTREAMS_UID,
        "Seamline / Upstream health",
        "Per upstream: authentication, rate limiting, timeouts and latency against its 7-day baseline.",
    )
    d = d.with_variable(multi_variable("upstream", "Upstream")).with_variable(multi_variable("handoff", "Handoff"))

    d = d.with_panel(
        stat_panel(
            ids,
            "Auth failures",
            f"SELECT countIf({IS_AUTH_FAILURE}) AS auth_failures FROM {HANDOFFS} WHERE {F}",
            w=6,
            steps=[(None, "green"), (1, "orange")],
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Expired tokens",
            f"SELECT countIf(error_class = '{o.AUTH_EXPIRED}') AS expired_tokens FROM {HANDOFFS} WHERE {F}",
            w=6,
            steps=[(None, "green"), (1, "red")],
            description="401s whose WWW-Authenticate says the token expired (invalid_token): rotate credentials.",
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "429 rate limited",
            f"SELECT countIf(status = 429) AS rate_limited FROM {HANDOFFS} WHERE {F}",
            w=6,
            steps=[(None, "green"), (1, "orange")],
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Timeouts",
            f"SELECT countIf({IS_TIMEOUT}) AS timeouts FROM {HANDOFFS} WHERE {F}",
            w=6,
            steps=[(None, "green"), (1, "orange")],
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Auth failures by upstream",
            f"SELECT $__timeInterval(minute) AS time, concat(upstream, ' ', error_class) AS series, sum(calls) AS calls "
            f"FROM {ROLLUP} WHERE {RF} AND {IS_AUTH_FAILURE} GROUP BY time, series ORDER BY time",
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Timeouts and connection errors by upstream",
            f"SELECT $__timeInterval(minute) AS time, concat(upstream, ' ', error_class) AS series, sum(calls) AS calls "
            # Transport classes only: a target Seamline refused (error_class refused) never reached the upstream.
            f"FROM {ROLLUP} WHERE {RF} AND error_class IN {sql_list(sorted(o.TRANSPORT_CLASSES))} "
            f"GROUP BY time, series ORDER BY time",
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "429s by upstream",
            f"SELECT $__timeInterval(ts) AS time, upstream, count() AS rate_limited FROM {HANDOFFS} "
            f"WHERE {F} AND status = 429 GROUP BY time, upstream ORDER BY time",
            bars=True,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Rate limiting and Retry-After",
            f"SELECT upstream, count() AS rate_limited, countIf(retry_after_s >= 0) AS with_retry_after, "
            f"round(avgIf(retry_after_s, retry_after_s >= 0), 1) AS avg_retry_after_s, "
            f"maxIf(retry_after_s, retry_after_s >= 0) AS max_retry_after_s, max(ts) AS last_seen "
            f"FROM {HANDOFFS} WHERE {F} AND status = 429 GROUP BY upstream ORDER BY rate_limited DESC",
            w=12,
            h=8,
            units={"avg_retry_after_s": "s", "max_retry_after_s": "s"},
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "p95 latency vs 7-day baseline",
            f"SELECT $__timeInterval(minute) AS time, upstream, "
            f"arrayElement(quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_q), 3) AS p95 "
            f"FROM {ROLLUP} WHERE {RF} AND {IS_UPSTREAM_CALL} GROUP BY time, upstream ORDER BY time",
            # A flat reference per upstream: p95 over the 7 days before the range.
            f"SELECT t.time AS time, concat(b.upstream, ' (7-day p95)') AS series, b.p95 AS baseline FROM ("
            f"SELECT upstream, arrayElement(quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_q), 3) AS p95 "
            f"FROM {ROLLUP} WHERE minute >= $__fromTime - INTERVAL 7 DAY AND minute < $__fromTime "
            f"AND {var_filter(*VARS)} AND {IS_UPSTREAM_CALL} GROUP BY upstream) AS b "
            f"CROSS JOIN (SELECT arrayJoin([$__fromTime, $__toTime]) AS time) AS t ORDER BY time",
            unit="ms",
            w=24,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Upstream summary",
            f"SELECT upstream, count() AS calls, {ERROR_PCT} AS error_pct, "
            f"countIf({IS_AUTH_FAILURE}) AS auth_failures, countIf(status = 429) AS rate_limited, "
            f"countIf({IS_TIMEOUT}) AS timeouts, countIf({IS_REFUSED}) AS refused_by_seamline, "
            f"round(quantileIf(0.95)(duration_ms, {IS_UPSTREAM_CALL}), 1) AS p95_ms, "
            f"round(quantileIf(0.95)(ttfb_ms, {IS_UPSTREAM_CALL}), 1) AS p95_ttfb_ms "
            f"FROM {HANDOFFS} WHERE {F} GROUP BY upstream ORDER BY error_pct DESC",
            description="error_pct: HTTP or transport errors among the calls Seamline did not refuse itself; "
            "refused_by_seamline counts those (they are not the upstream's failures, nor in its latency).",
            units={"error_pct": "percent", "p95_ms": "ms", "p95_ttfb_ms": "ms"},
        )
    )
    return d
