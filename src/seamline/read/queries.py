"""Reading runs back from the `handoffs` table: one run's handoffs, and a list of recent runs.

Every value that comes from a caller is bound as a ClickHouse query parameter
(`{name:Type}`), never formatted into the SQL text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from seamline import outcomes as o
from seamline.event.columns import COLUMN_NAMES

# Worst first is the highest number; `worst_outcome` of a run is the outcome with the highest rank.
# A refusal ranks with the caller's own mistakes (just above a request-contract violation): any upstream failure
# in the same run is worse news.
OUTCOME_SEVERITY: dict[str, int] = {
    "": 0,
    o.OK: 0,
    o.UNVALIDATED: 1,
    o.CONTRACT_VIOLATION: 2,
    o.REFUSED: 3,
    o.HTTP_ERROR: 4,
    o.SILENT_FAILURE: 5,
    o.TRANSPORT_ERROR: 6,
}
# A run failed when one of its steps did not succeed, Seamline's refusals included (`seamline runs --failed`
# lists them; `refused` counts them apart).
FAILED_OUTCOMES: tuple[str, ...] = o.RUN_FAILED_OUTCOMES
KNOWN_OUTCOMES: tuple[str, ...] = (o.OK, o.UNVALIDATED, *FAILED_OUTCOMES)

DEFAULT_RUN_LIMIT = 5_000
MAX_LIST_LIMIT = 1_000

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class QueryStore(Protocol):
    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...


def _table(database: str | None, table: str = "handoffs") -> str:
    if database is None:
        return table
    if not _IDENT_RE.match(database):
        raise ValueError(f"invalid database name {database!r}")
    return f"`{database}`.{table}"


def _utc(value: Any) -> Any:
    """ClickHouse returns naive datetimes for DateTime64(…, 'UTC') depending on the client's tz mode."""
    return _as_utc(value) if isinstance(value, datetime) else value


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _severity_sql(column: str = "outcome") -> str:
    keys = ", ".join(f"'{k}'" for k in OUTCOME_SEVERITY)
    vals = ", ".join(str(v) for v in OUTCOME_SEVERITY.values())
    return f"transform({column}, [{keys}], [{vals}], 0)"


_FAILED_SQL = o.sql_list(FAILED_OUTCOMES)
_NO_ERROR_CLASS_SQL = o.sql_list(("", o.NONE))


def worst_outcome(outcomes: list[str]) -> str:
    """The most severe outcome of a list ('' when empty)."""
    return max(outcomes, key=lambda x: OUTCOME_SEVERITY.get(x, 0), default="")


async def get_run(
    store: QueryStore, run_id: str, *, database: str | None = None, limit: int = DEFAULT_RUN_LIMIT
) -> list[dict[str, Any]]:
    """Every recorded handoff of one run, oldest first (empty when the run is unknown)."""
    cols = ", ".join(COLUMN_NAMES)
    sql = f"SELECT {cols} FROM {_table(database)} WHERE run_id = {{run_id:String}} ORDER BY ts, event_id LIMIT {{limit:UInt32}}"
    rows = await store.query(sql, {"run_id": run_id, "limit": int(limit)})
    for row in rows:
        row["ts"] = _utc(row.get("ts"))
    return rows


def resolve_since(since: timedelta | datetime | None, *, now: datetime | None = None) -> datetime | None:
    """A lower time bound from a window (`timedelta`, counted back from now) or an instant."""
    if since is None:
        return None
    if isinstance(since, timedelta):
        return (now or datetime.now(UTC)) - since
    return _as_utc(since)


async def list_runs(
    store: QueryStore,
    *,
    since: timedelta | datetime | None = None,
    outcome: str | None = None,
    handoff: str | None = None,
    failed: bool = False,
    limit: int = 50,
    database: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One row per run with activity since `since`, most recent first.

    `outcome` / `handoff` keep runs having at least one handoff with that outcome / name;
    `failed` keeps runs with at least one failed handoff (see `FAILED_OUTCOMES`; `refused` counts Seamline's own
    refusals among them).
    Counts cover the handoffs inside the window.
    """
    where: list[str] = []
    having: list[str] = []
    params: dict[str, Any] = {"limit": max(1, min(int(limit), MAX_LIST_LIMIT))}
    lower = resolve_since(since, now=now)
    if lower is not None:
        where.append("ts >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')")
        params["since_us"] = int(lower.timestamp() * 1_000_000)
    if outcome:
        having.append("countIf(outcome = {outcome:String}) > 0")
        params["outcome"] = outcome
    if handoff:
        having.append("countIf(handoff = {handoff:String}) > 0")
        params["handoff"] = handoff
    if failed:
        having.append("failed > 0")
    sql = f"""
        SELECT
            run_id,
            min(ts) AS first_ts,
            max(ts) AS last_ts,
            (max(toUnixTimestamp64Micro(ts) + toInt64(duration_ms * 1000)) - min(toUnixTimestamp64Micro(ts))) / 1000
                AS duration_ms,
            count() AS handoffs,
            countIf(outcome IN {_FAILED_SQL}) AS failed,
            countIf(outcome = '{o.REFUSED}') AS refused,
            argMax(outcome, {_severity_sql()}) AS worst_outcome,
            argMax(outcome, ts) AS last_outcome,
            arraySort(groupUniqArrayIf(error_class, error_class NOT IN {_NO_ERROR_CLASS_SQL})) AS error_classes,
            arraySort(groupUniqArrayIf(handoff, outcome IN {_FAILED_SQL})) AS failed_handoffs,
            arraySort(groupUniqArrayIf(handoff, outcome = '{o.SILENT_FAILURE}')) AS silent_handoffs,
            any(source_app) AS source_app,
            any(tenant) AS tenant
        FROM {_table(database)}
        {"WHERE " + " AND ".join(where) if where else ""}
        GROUP BY run_id
        {"HAVING " + " AND ".join(having) if having else ""}
        ORDER BY last_ts DESC, run_id
        LIMIT {{limit:UInt32}}
    """
    rows = await store.query(sql, params)
    for row in rows:
        row["first_ts"] = _utc(row.get("first_ts"))
        row["last_ts"] = _utc(row.get("last_ts"))
        row["handoffs"] = int(row["handoffs"])
        row["failed"] = int(row["failed"])
        row["refused"] = int(row["refused"])
        row["duration_ms"] = float(row["duration_ms"])
    return rows


def summarize_run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Run-level figures from `get_run` rows, plus `offset_ms` added to each row (from the first start)."""
    if not rows:
        return {"handoffs": 0, "failed": 0, "refused": 0, "worst_outcome": "", "last_outcome": "", "error_classes": []}
    t0 = rows[0]["ts"]
    end = t0
    for row in rows:
        start = row["ts"]
        row["offset_ms"] = round((start - t0).total_seconds() * 1000, 3)
        finish = start + timedelta(milliseconds=float(row.get("duration_ms") or 0))
        end = max(end, finish)
    outcomes = [r.get("outcome") or "" for r in rows]
    return {
        "first_ts": t0,
        "last_ts": rows[-1]["ts"],
        "duration_ms": round((end - t0).total_seconds() * 1000, 3),
        "handoffs": len(rows),
        "failed": sum(1 for x in outcomes if x in FAILED_OUTCOMES),
        "refused": outcomes.count(o.REFUSED),
        "worst_outcome": worst_outcome(outcomes),
        "last_outcome": outcomes[-1],
        "error_classes": sorted({r.get("error_class") or "" for r in rows} - {"", o.NONE}),
        "trace_ids": sorted({r.get("trace_id") or "" for r in rows} - {""}),
    }


# -- recorded calls, bodies included (`seamline contracts suggest | diff`) ---------------------------------------------

MAX_CALLS_PAGE = 1_000
# What a contract is learned from and checked against: the call, its status, its captured bodies and the drift the
# sidecar recorded. Headers stay out: they are not needed, and the fewer payload columns leave the store the better.
CALL_COLUMNS: tuple[str, ...] = (
    "event_id",
    "run_id",
    "ts",
    "handoff",
    "upstream",
    "method",
    "url",
    "route",
    "status",
    "outcome",
    "idempotency_key",
    "request_content_type",
    "request_body",
    "request_truncated",
    "response_content_type",
    "response_body",
    "response_truncated",
    "response_bytes",
    "violations",
    "unknown_fields",
    "missing_fields",
)
# Calls the upstream answered: Seamline's own answers and the duplicate guard's replays say nothing about its API.
_NOT_ANSWERED_SQL = o.sql_list((o.REFUSED, o.REPLAYED))


def _calls_filter(
    *,
    upstream: str | None,
    handoff: str | None,
    since: timedelta | datetime | None,
    outcomes: tuple[str, ...] | None,
    now: datetime | None,
) -> tuple[list[str], dict[str, Any]]:
    where = ["status > 0", f"outcome NOT IN {_NOT_ANSWERED_SQL}"]
    params: dict[str, Any] = {}
    lower = resolve_since(since, now=now)
    if lower is not None:
        where.append("ts >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')")
        params["since_us"] = int(lower.timestamp() * 1_000_000)
    if upstream:
        where.append("upstream = {upstream:String}")
        params["upstream"] = upstream
    if handoff:
        where.append("handoff = {handoff:String}")
        params["handoff"] = handoff
    if outcomes:
        where.append("outcome IN {outcomes:Array(String)}")
        params["outcomes"] = list(outcomes)
    return where, params


async def list_calls(
    store: QueryStore,
    *,
    upstream: str | None = None,
    handoff: str | None = None,
    since: timedelta | datetime | None = None,
    outcomes: tuple[str, ...] | None = None,
    after: tuple[int, str] | None = None,
    limit: int = 200,
    database: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One page of answered calls, newest first, with their captured bodies: `{calls, total, next}`.

    Newest first, so a reader that stops after N calls has the most recent ones. `after` is the `next` of the
    previous page (ts in µs, event_id): keyset paging, so a page costs the same however deep it is, and calls
    recorded meanwhile neither shift nor repeat a page. `total` counts every matching call (for a progress bar),
    on the first page only (None on the others).
    """
    where, params = _calls_filter(upstream=upstream, handoff=handoff, since=since, outcomes=outcomes, now=now)
    total: int | None = None
    if after is None:
        count_sql = f"SELECT count() AS n FROM {_table(database)} WHERE {' AND '.join(where)}"
        total = int((await store.query(count_sql, dict(params)))[0]["n"])
    if after is not None:
        where.append("(toUnixTimestamp64Micro(ts), toString(event_id)) < ({after_us:Int64}, {after_id:String})")
        params["after_us"], params["after_id"] = int(after[0]), str(after[1])
    params["limit"] = max(1, min(int(limit), MAX_CALLS_PAGE))
    sql = (
        f"SELECT {', '.join(CALL_COLUMNS)}, toUnixTimestamp64Micro(ts) AS ts_us FROM {_table(database)} "
        f"WHERE {' AND '.join(where)} ORDER BY ts DESC, toString(event_id) DESC LIMIT {{limit:UInt32}}"
    )
    rows = await store.query(sql, params)
    for row in rows:
        row["event_id"] = str(row["event_id"])
        row["ts"] = _utc(row.get("ts"))
        row["ts_us"] = int(row["ts_us"])
        row["status"] = int(row["status"])
        row["response_bytes"] = int(row["response_bytes"])
    last = rows[-1] if len(rows) == params["limit"] else None
    return {"calls": rows, "total": total, "next": f"{last['ts_us']}:{last['event_id']}" if last else None}


def parse_cursor(text: str) -> tuple[int, str]:
    """The `next` of a `list_calls` page back into (ts µs, event_id); ValueError when it is not one."""
    ts, sep, event_id = text.partition(":")
    if not sep or not ts.isdigit() or not 1 <= len(event_id) <= 64:
        raise ValueError(f"{text!r} is not a cursor from a previous page")
    return int(ts), event_id
