"""SQL fragments shared by dashboards and alert rules (one definition of "failed", "success"...).

Queries name tables unqualified: the datasource's `defaultDatabase` (seamline) is the
connection's database, so the same SQL runs on any database name.
"""

from __future__ import annotations

from typing import Final

HANDOFFS: Final = "handoffs"
HEALTH: Final = "seamline_health"
TRACES: Final = "otel_traces"

# Business failure: every outcome that is neither `ok` nor `unvalidated`.
FAILED_OUTCOMES: Final = "('silent_failure', 'contract_violation', 'http_error', 'transport_error')"
IS_FAILED: Final = f"outcome IN {FAILED_OUTCOMES}"
# Calls whose business outcome is known (the denominator of every business rate).
IS_VALIDATED: Final = "outcome != 'unvalidated'"
# Plain HTTP monitoring's idea of success: a 2xx/3xx answer arrived.
IS_HTTP_OK: Final = "status >= 200 AND status < 400"
IS_ERROR: Final = "outcome IN ('http_error', 'transport_error')"
IS_AUTH_FAILURE: Final = "error_class IN ('auth', 'auth_expired')"

BUSINESS_SUCCESS_PCT: Final = f"round(100 * countIf(outcome = 'ok') / nullIf(countIf({IS_VALIDATED}), 0), 2)"
HTTP_SUCCESS_PCT: Final = f"round(100 * countIf({IS_HTTP_OK}) / nullIf(count(), 0), 2)"

# Dashboard variable name -> column. Each is a multi-value variable with "All".
VARIABLE_COLUMNS: Final = {
    "tenant": "tenant",
    "source_app": "source_app",
    "upstream": "upstream",
    "handoff": "handoff",
}


def var_filter(*names: str) -> str:
    """`$__conditionalAll(col IN (${v:singlequote}), $v) AND ...` for the given variables (1=1 when All)."""
    parts = [
        f"$__conditionalAll({VARIABLE_COLUMNS[n]} IN (${{{n}:singlequote}}), ${n})" for n in names
    ]
    return " AND ".join(parts) if parts else "1=1"


def where(*variables: str, time_column: str = "ts") -> str:
    """The usual WHERE clause: the dashboard's time range plus variable filters."""
    return f"$__timeFilter({time_column}) AND {var_filter(*variables)}"


def values_query(column: str, table: str = HANDOFFS) -> str:
    """A variable's options: distinct non-empty values seen in the time range."""
    return (
        f"SELECT DISTINCT {column} FROM {table} "
        f"WHERE $__timeFilter(ts) AND {column} != '' ORDER BY {column} LIMIT 1000"
    )
