"""SQL shared by the Grafana dashboards, the alert rules and Seamline's own readers (one definition of "failed",
"success"…, and the handoff-health queries the `/handoffs` page, `seamline top` and the overview dashboard run).

Queries are written with the Grafana ClickHouse plugin's macros (`$__timeFilter(ts)`, `$__fromTime`…): Grafana expands
them itself, Seamline with `seamline.read.macros.expand`. They name tables unqualified: the datasource's
`defaultDatabase` (seamline) is the connection's database, so the same SQL runs on any database name. This module is
plain text (no Grafana SDK): the sidecar imports it.
"""

from __future__ import annotations

from typing import Final

from seamline import outcomes as o
from seamline.outcomes import sql_list

HANDOFFS: Final = "handoffs"
GUARDS: Final = "guards_1m"  # the guards' per-minute rollup (schema 3, record/schema.py)
HEALTH: Final = "seamline_health"
TRACES: Final = "otel_traces"

# Business failure of a call that was made: every outcome that is neither `ok`, `unvalidated` nor `refused`.
FAILED_OUTCOMES: Final = sql_list(o.FAILED_OUTCOMES)
IS_FAILED: Final = f"outcome IN {FAILED_OUTCOMES}"
# A run's step that did not succeed, Seamline's refusals included (the Runs dashboard, like `seamline runs --failed`).
RUN_FAILED_OUTCOMES: Final = sql_list(o.RUN_FAILED_OUTCOMES)
IS_RUN_FAILED: Final = f"outcome IN {RUN_FAILED_OUTCOMES}"
# Seamline answered itself (unknown upstream, refused target, too large…): the upstream was never judged.
IS_REFUSED: Final = f"outcome = '{o.REFUSED}'"
# Calls that reached the upstream's judgement: the denominator of every upstream-health rate (HTTP, errors).
IS_UPSTREAM_CALL: Final = f"outcome != '{o.REFUSED}'"
# Calls whose business outcome is known (the denominator of every business rate).
IS_VALIDATED: Final = f"outcome NOT IN {sql_list(o.NOT_JUDGED_OUTCOMES)}"
# Plain HTTP monitoring's idea of success: a 2xx/3xx answer arrived.
IS_HTTP_OK: Final = "status >= 200 AND status < 400"
IS_ERROR: Final = f"outcome IN {sql_list(o.ERROR_OUTCOMES)}"
IS_AUTH_FAILURE: Final = f"error_class IN {sql_list(sorted(o.AUTH_CLASSES))}"
IS_TIMEOUT: Final = f"error_class = '{o.TIMEOUT}'"

BUSINESS_SUCCESS_PCT: Final = f"round(100 * countIf(outcome = '{o.OK}') / nullIf(countIf({IS_VALIDATED}), 0), 2)"
HTTP_SUCCESS_PCT: Final = f"round(100 * countIf({IS_HTTP_OK} AND {IS_UPSTREAM_CALL}) / nullIf(countIf({IS_UPSTREAM_CALL}), 0), 2)"
# Upstream error rate: HTTP or transport errors among the calls Seamline did not refuse.
ERROR_PCT: Final = f"round(100 * countIf({IS_ERROR}) / nullIf(countIf({IS_UPSTREAM_CALL}), 0), 2)"

# Rates from the per-minute rollup `handoffs_1m` (outcome and error_class are rollup keys).
ROLLUP: Final = "handoffs_1m"
R_BUSINESS_SUCCESS_PCT: Final = f"round(100 * sumIf(calls, outcome = '{o.OK}') / nullIf(sumIf(calls, {IS_VALIDATED}), 0), 2)"

# Handoff health, one row per handoff: what on-call asks first (which handoff fails, how badly).
HAS_ERROR_CLASS: Final = f"error_class NOT IN ('', '{o.NONE}')"
# The upstream pushing back (429) and Seamline's own limiter holding the call back both mean "throttled".
IS_RATE_LIMITED: Final = f"error_class IN {sql_list((o.RATE_LIMITED, o.RATE_LIMITED_LOCALLY))}"
IS_AUTH_EXPIRED: Final = f"error_class = '{o.AUTH_EXPIRED}'"
IS_DUPLICATE_PREVENTED: Final = f"guard IN {sql_list(sorted(o.DUPLICATES_PREVENTED))}"


def handoff_health_sql(filters: str = "1=1") -> str:
    """Per handoff over `$__timeFilter(ts)`: volume, HTTP vs business success, latency, errors, guards; worst first.

    `filters` narrows the rows (the dashboard's variables; Grafana renders "All" as 1=1, Seamline passes 1=1).
    """
    return (
        f"SELECT handoff, count() AS calls, {HTTP_SUCCESS_PCT} AS http_success_pct, "
        f"{BUSINESS_SUCCESS_PCT} AS business_success_pct, "
        f"countIf({IS_VALIDATED}) AS validated, countIf(outcome = '{o.OK}') AS ok, "
        f"countIf(outcome = '{o.SILENT_FAILURE}') AS silent_failures, "
        f"countIf({IS_FAILED}) AS failed, countIf({IS_REFUSED}) AS refused, "
        f"round(quantileIf(0.5)(duration_ms, {IS_UPSTREAM_CALL}), 1) AS p50_ms, "
        f"round(quantileIf(0.95)(duration_ms, {IS_UPSTREAM_CALL}), 1) AS p95_ms, "
        f"arrayElement(topKIf(1)(error_class, {HAS_ERROR_CLASS}), 1) AS top_error_class, "
        f"countIf({IS_RATE_LIMITED}) AS rate_limited, countIf({IS_AUTH_EXPIRED}) AS auth_expired, "
        f"countIf({IS_DUPLICATE_PREVENTED}) AS duplicates_prevented, "
        # The most recent failed run: where on-call clicks first.
        f"argMaxIf(run_id, ts, {IS_RUN_FAILED} AND run_id != '') AS last_failed_run "
        f"FROM {HANDOFFS} WHERE $__timeFilter(ts) AND {filters} GROUP BY handoff "
        "ORDER BY business_success_pct ASC NULLS LAST, http_success_pct ASC NULLS LAST, failed DESC, handoff"
    )


def handoff_trend_sql(filters: str = "1=1") -> str:
    """Per handoff and `$__interval_s` bucket (from the rollup): calls (`volume`; `calls` is the rollup column) and
    business success, for sparklines."""
    return (
        f"SELECT $__timeInterval(minute) AS time, handoff, sum(calls) AS volume, "
        f"{R_BUSINESS_SUCCESS_PCT} AS business_success_pct "
        f"FROM {ROLLUP} WHERE $__timeFilter(minute) AND {filters} GROUP BY time, handoff ORDER BY time, handoff"
    )


# Dashboard variable name -> column. Each is a multi-value variable with "All".
VARIABLE_COLUMNS: Final = {
    "tenant": "tenant",
    "source_app": "source_app",
    "upstream": "upstream",
    "handoff": "handoff",
}


def var_filter(*names: str) -> str:
    """`$__conditionalAll(col IN (${v:singlequote}), $v) AND ...` for the given variables (1=1 when All)."""
    parts = [f"$__conditionalAll({VARIABLE_COLUMNS[n]} IN (${{{n}:singlequote}}), ${n})" for n in names]
    return " AND ".join(parts) if parts else "1=1"


def where(*variables: str, time_column: str = "ts") -> str:
    """The usual WHERE clause: the dashboard's time range plus variable filters."""
    return f"$__timeFilter({time_column}) AND {var_filter(*variables)}"


def values_query(column: str, table: str = HANDOFFS) -> str:
    """A variable's options: distinct non-empty values seen in the time range."""
    return f"SELECT DISTINCT {column} FROM {table} WHERE $__timeFilter(ts) AND {column} != '' ORDER BY {column} LIMIT 1000"
