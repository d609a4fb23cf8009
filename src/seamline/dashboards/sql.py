"""SQL fragments shared by dashboards and alert rules (one definition of "failed", "success"...).

Queries name tables unqualified: the datasource's `defaultDatabase` (seamline) is the
connection's database, so the same SQL runs on any database name.
"""

from __future__ import annotations

from typing import Final

from seamline import outcomes as o
from seamline.outcomes import sql_list

HANDOFFS: Final = "handoffs"
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
