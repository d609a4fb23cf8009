"""Build `handoffs` rows for read-side tests and load them into a fresh database on the real engine."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from seamline.event.columns import COLUMN_NAMES, new_event
from seamline.record.store import Store, open_store
from support.chdb_path import chdb_url, unique_database
from support.clock import utc_now
from support.schema_template import schema_copy

# Two hours ago: the rows a test places at T0 + up to an hour are all in the past yet far inside every TTL.
T0 = utc_now() - timedelta(hours=2)


def handoff_row(run_id: str, handoff: str, *, at_ms: float, duration_ms: float = 10.0, **values: Any) -> dict[str, Any]:
    """One event dict; `at_ms` is the start offset from T0 (override `ts` to place it elsewhere)."""
    upstream = handoff.split(".", 1)[0]
    values.setdefault("ts", T0 + timedelta(milliseconds=at_ms))
    values.setdefault("outcome", "ok")
    values.setdefault("status", 200)
    values.setdefault("method", "POST")
    values.setdefault("url", f"http://127.0.0.1:1/{upstream}/v1/x")
    return new_event(
        event_id=str(uuid.uuid4()),
        run_id=run_id,
        handoff=handoff,
        upstream=upstream,
        duration_ms=duration_ms,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        **values,
    )


async def fresh_store(hint: str) -> tuple[Store, str]:
    """A store on the process-wide chdb path with a new database holding the current schema (copied from the
    process's template, see support/schema_template.py)."""
    database = unique_database(hint)
    store = open_store(chdb_url(), database)
    await schema_copy(store, database)
    return store, database


async def insert_rows(store: Store, rows: list[dict[str, Any]]) -> None:
    await store.insert("handoffs", [[r[c] for c in COLUMN_NAMES] for r in rows], COLUMN_NAMES)
