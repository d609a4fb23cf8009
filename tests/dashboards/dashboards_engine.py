"""The real engine for dashboard tests: chdb through clickhouse-connect, the real schema, the plugin's macros.

`render()` expands a panel or rule query the way Grafana + grafana-clickhouse-datasource 4.x do:
frontend first (`$__conditionalAll`, then template variables), backend macros last.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import clickhouse_connect
from support.chdb_path import unique_database  # tests/ is on sys.path (tests/conftest.py)
from support.schema_template import schema_copy_sync

from seamline.event.columns import COLUMN_NAMES, new_event

ALL = "$__all"
Variables = Mapping[str, Sequence[str] | str]


def chdb_path() -> str:
    """The process-wide chdb directory shared with the rest of the suite.

    tests/support/chdb_path.py may be imported under two names (`support.…` and `tests.support.…`); each copy
    would pick its own directory and chdb can open only one per process, so settle on one and share it.
    """
    import support.chdb_path as ours

    copies = [m for name, m in list(sys.modules.items()) if name.endswith("support.chdb_path")]
    path = next((m._path for m in copies if getattr(m, "_path", None)), None) or ours.chdb_path()
    for m in copies:
        m._path = path
    return path


def new_database(hint: str) -> Any:
    """A fresh database holding the current schema (`schema.statements()`, copied from the process's template:
    support/schema_template.py); returns its client."""
    db = unique_database(f"dash_{hint}")
    admin = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path()}")
    schema_copy_sync(admin, db)
    return clickhouse_connect.get_client(dsn=f"chdb://{chdb_path()}", database=db)


def insert_handoffs(client: Any, rows: list[dict[str, Any]]) -> None:
    client.insert("handoffs", [[r[c] for c in COLUMN_NAMES] for r in rows], column_names=list(COLUMN_NAMES))


def handoff(handoff: str, ts: datetime, **values: Any) -> dict[str, Any]:
    """One event row with sensible defaults (upstream = handoff's first segment)."""
    values.setdefault("upstream", handoff.split(".", 1)[0])
    values.setdefault("outcome", "ok")
    values.setdefault("status", 200)
    values.setdefault("method", "POST")
    values.setdefault("duration_ms", 50.0)
    values.setdefault("url", f"https://{values['upstream']}.example/v1/x")
    values.setdefault("run_id", f"run-{uuid.uuid4().hex[:12]}")
    values.setdefault("span_id", uuid.uuid4().hex[:16])
    values.setdefault("trace_id", uuid.uuid4().hex)
    return new_event(event_id=str(uuid.uuid4()), handoff=handoff, ts=ts, **values)


HEALTH_COLUMNS = (
    "ts",
    "proxy_instance",
    "version",
    "store",
    "ready",
    "sink_up",
    "reasons",
    "queue_depth",
    "spool_bytes",
    "spool_records",
    "rows_written",
    "batches_written",
    "rows_replayed",
    "dropped",
    "spool_corrupt",
    "uptime_s",
)


def insert_health(client: Any, rows: list[dict[str, Any]]) -> None:
    defaults: dict[str, Any] = {
        "version": "0.1.0",
        "store": "server",
        "ready": True,
        "sink_up": True,
        "reasons": [],
        "queue_depth": 0,
        "spool_bytes": 0,
        "spool_records": 0,
        "rows_written": 0,
        "batches_written": 0,
        "rows_replayed": 0,
        "dropped": 0,
        "spool_corrupt": 0,
        "uptime_s": 60.0,
    }
    full = [{**defaults, **r} for r in rows]
    client.insert("seamline_health", [[r[c] for c in HEALTH_COLUMNS] for r in full], column_names=list(HEALTH_COLUMNS))


# ---- macro expansion -------------------------------------------------------------------------------------------


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Split the arguments of a macro call at top-level commas; returns (args, index after ')')."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return [a.strip() for a in args], i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise ValueError(f"unbalanced macro call at {open_paren}: {sql[open_paren : open_paren + 60]!r}")


def _is_all(value: Sequence[str] | str | None) -> bool:
    if value is None or value == ALL or value == "":
        return True
    return not isinstance(value, str) and (len(value) == 0 or list(value) == [ALL])


def apply_conditional_all(sql: str, variables: Variables) -> str:
    """The plugin's frontend `$__conditionalAll(cond, $var)`: cond, or 1=1 when $var is All or empty."""
    macro = "$__conditionalAll("
    idx = sql.rfind(macro)
    while idx != -1:
        args, end = _macro_args(sql, idx + len(macro) - 1)
        assert len(args) == 2, args
        name = args[1].lstrip("$")
        assert name in variables, f"query uses undefined variable ${name}"
        phrase = "1=1" if _is_all(variables[name]) else args[0]
        sql = sql[:idx] + phrase + sql[end:]
        idx = sql.rfind(macro)
    return sql


def _quote(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def apply_variables(sql: str, variables: Variables) -> str:
    """Grafana's template interpolation: `${v:singlequote}` → 'a','b'; `$v` / `${v}` → raw (one value)."""

    def values(name: str) -> list[str]:
        assert name in variables, f"query uses undefined variable ${name}"
        v = variables[name]
        return [v] if isinstance(v, str) else list(v)

    sql = re.sub(r"\$\{(\w+):singlequote\}", lambda m: ",".join(_quote(x) for x in values(m.group(1))), sql)
    sql = re.sub(r"\$\{(\w+)\}", lambda m: ",".join(values(m.group(1))), sql)
    return re.sub(r"\$(?!__)(\w+)", lambda m: ",".join(values(m.group(1))), sql)


def apply_backend_macros(sql: str, frm: datetime, to: datetime, interval_s: int) -> str:
    """pkg/macros of grafana-clickhouse-datasource (F, T in unix seconds, interval ≥ 1 s)."""
    f, t, n = int(frm.timestamp()), int(to.timestamp()), max(int(interval_s), 1)
    out = sql
    for name, fn in (
        ("timeFilter", lambda c: f"{c} >= toDateTime({f}) AND {c} <= toDateTime({t})"),
        ("timeInterval", lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {n} second)"),
    ):
        macro = f"$__{name}("
        idx = out.find(macro)
        while idx != -1:
            args, end = _macro_args(out, idx + len(macro) - 1)
            out = out[:idx] + fn(args[0]) + out[end:]
            idx = out.find(macro)
    out = re.sub(r"\$__fromTime\b", f"toDateTime({f})", out)
    out = re.sub(r"\$__toTime\b", f"toDateTime({t})", out)
    out = re.sub(r"\$__interval_s\b", str(n), out)
    return out


def render(sql: str, *, frm: datetime, to: datetime, interval_s: int = 60, variables: Variables | None = None) -> str:
    """A panel/rule query as the database receives it; fails if anything `$`-ish is left over."""
    variables = variables or {}
    out = apply_conditional_all(sql, variables)
    out = apply_variables(out, variables)
    out = apply_backend_macros(out, frm, to, interval_s)
    assert "$" not in out, f"unexpanded macro or variable in: {out}"
    return out


def query(client: Any, sql: str) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(column names, column types, rows as dicts)."""
    r = client.query(sql)
    rows = [dict(zip(r.column_names, row, strict=True)) for row in r.result_rows]
    if r.column_names:
        return list(r.column_names), [t.name for t in r.column_types], rows
    # An empty result may come back without its header: ask the engine for the shape.
    shape = client.query(f"DESCRIBE TABLE ({sql})").result_rows
    return [c[0] for c in shape], [c[1] for c in shape], rows
