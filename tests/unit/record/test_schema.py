"""The DDL: generated from event.COLUMNS, valid on the real engine, versioned and idempotent migrations."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from support.chdb_path import unique_database
from support.clock import now_us
from support.schema_template import TEMPLATE_TABLES, schema_copy

from seamline.config.models import Storage
from seamline.event.columns import COLUMNS, new_event
from seamline.record.rows import INSERT_SETTINGS, encode_event, seal
from seamline.record.schema import (
    MIGRATIONS,
    RECODED_V4,
    SCHEMA_VERSION,
    Ctx,
    current_version,
    migrate,
    recoded_columns,
    statements,
)
from seamline.record.store import Store

BODY_COLUMNS = tuple(c.name for c in COLUMNS if c.body)
META_COLUMNS = tuple(c.name for c in COLUMNS if not c.body)
HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US


async def test_migrate_creates_every_table_and_is_idempotent(db: tuple[Store, str]) -> None:
    store, name = db
    assert await current_version(store, name) == 0
    assert await migrate(store, name) == SCHEMA_VERSION
    assert await migrate(store, name) == SCHEMA_VERSION
    tables = {r["name"] for r in await store.query("SELECT name FROM system.tables WHERE database = {d:String}", {"d": name})}
    assert tables >= {
        "handoffs", "handoffs_1m", "handoffs_1m_mv", "seamline_health", "schema_migrations",
        "otel_traces", "otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv",
    }  # fmt: skip
    versions = await store.query(f"SELECT version FROM `{name}`.schema_migrations FINAL ORDER BY version")
    assert [r["version"] for r in versions] == list(range(1, SCHEMA_VERSION + 1))  # every version, in order, none skipped
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    assert [m.version for m in MIGRATIONS][-1] == SCHEMA_VERSION


async def test_a_version_1_store_gets_the_columns_added_since(db: tuple[Store, str]) -> None:
    """An install made before the guards (schema 1: no guard columns, version 1 recorded) is brought up to date in
    place, its rows kept, with the new columns where the current DDL puts them."""
    store, name = db
    await migrate(store, name)
    added = [c for c in COLUMNS if c.since > 1]
    assert added, "no column has been added since version 1"
    for table in ("guards_1m_mv", "guards_1m"):  # version 3's rollup (its MV reads the guard columns)
        await store.command(f"DROP TABLE `{name}`.`{table}`")
    for c in added:  # back to a version-1 table
        await store.command(f"ALTER TABLE `{name}`.handoffs DROP COLUMN `{c.name}`")
    old_row = {k: v for k, v in new_event(event_id=str(uuid.uuid4()), ts=now_us(), run_id="run-old").items()
               if k not in {c.name for c in added}}  # fmt: skip
    await store.insert_json("handoffs", encode_event(old_row), settings=INSERT_SETTINGS)
    await store.command(f"ALTER TABLE `{name}`.schema_migrations DELETE WHERE version > 1 SETTINGS mutations_sync = 1")
    assert await current_version(store, name) == 1
    assert await migrate(store, name) == SCHEMA_VERSION
    cols = await store.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'handoffs' ORDER BY position", {"d": name}
    )
    assert [(c["name"], c["type"]) for c in cols] == [(c.name, c.ch_type) for c in COLUMNS]
    [old] = await store.query(f"SELECT run_id, guard, retry_of FROM `{name}`.handoffs")
    assert old == {"run_id": "run-old", "guard": "", "retry_of": ""}


async def test_handoffs_columns_follow_event_columns(db: tuple[Store, str]) -> None:
    store, name = db
    await migrate(store, name)
    cols = await store.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'handoffs' ORDER BY position", {"d": name}
    )
    assert [(c["name"], c["type"]) for c in cols] == [(c.name, c.ch_type) for c in COLUMNS]


async def test_bodies_have_a_shorter_ttl_than_rows(db: tuple[Store, str]) -> None:
    store, name = db
    await migrate(store, name, ttl_days=30, body_ttl_days=7)
    [row] = await store.query(
        "SELECT create_table_query AS q FROM system.tables WHERE database = {d:String} AND name = 'handoffs'", {"d": name}
    )
    q = row["q"]
    for col in ("request_body", "response_body", "request_headers", "response_headers"):
        assert re.search(rf"`{col}` [^`]*TTL toDateTime\(ts\) \+ toIntervalDay\(7\)", q), col
    assert q.count("toIntervalDay(30)") == 1  # the row TTL


async def test_otel_traces_matches_the_collector_exporter_columns(db: tuple[Store, str]) -> None:
    store, name = db
    await migrate(store, name)
    cols = await store.query(
        "SELECT name FROM system.columns WHERE database = {d:String} AND table = 'otel_traces' ORDER BY position", {"d": name}
    )
    assert [c["name"] for c in cols] == [
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
        "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
        "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId", "Links.TraceState",
        "Links.Attributes",
    ]  # fmt: skip


async def test_cluster_variant_parses_and_uses_replicated_and_distributed(db: tuple[Store, str]) -> None:
    store, _ = db
    ddl = statements("prod", cluster="main")
    for stmt in ddl:
        await store.query("SELECT formatQuery({q:String}) AS f", {"q": stmt})  # the engine's own parser
    text = "\n".join(ddl)
    assert "ON CLUSTER `main`" in text
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/prod/handoffs', '{replica}')" in text
    assert "ENGINE = Distributed(`main`, `prod`, `handoffs_local`, cityHash64(run_id))" in text
    assert "non_replicated_deduplication_window" not in text


def test_single_node_handoffs_deduplicates_resent_blocks() -> None:
    [handoffs] = [s for s in statements("db") if "`db`.`handoffs` (" in s]
    assert "non_replicated_deduplication_window = 10000" in handoffs
    assert "PARTITION BY toDate(ts)" in handoffs


# ---- retention: the TTL clauses as behaviour on the engine ------------------------------------------------------


async def engine_now_us(store: Store) -> int:
    """The engine's clock in µs: TTLs are judged by it, so rows are aged against it rather than Python's."""
    [row] = await store.query("SELECT toUnixTimestamp64Micro(now64(6)) AS us")
    return int(row["us"])


async def apply_ttls(store: Store, table: str) -> None:
    """Merge every part now, as a background merge eventually would, applying row and column TTLs on the way."""
    await store.command(f"OPTIMIZE TABLE `{store.database}`.`{table}` FINAL", settings={"optimize_throw_if_noop": 1})


async def insert_events(store: Store, events: list[dict[str, Any]]) -> None:
    """The sink's own write: JSONEachRow rows sealed into one batch, with the recorder's insert settings."""
    batch = seal([encode_event(e) for e in events], [e["event_id"] for e in events])
    await store.insert_json("handoffs", batch.payload, settings={**INSERT_SETTINGS, "insert_deduplication_token": batch.token})


def full_event(run_id: str, ts_us: int, **values: Any) -> dict[str, Any]:
    """An event with bodies, headers and non-default metadata, so a column TTL that clears too much shows."""
    values = {"tenant": "acme", **values}
    return new_event(
        event_id=str(uuid.uuid4()), ts=ts_us, run_id=run_id, run_id_source="header", trace_id=uuid.uuid4().hex,
        span_id=uuid.uuid4().hex[:16], source_app="shop", handoff="billing.charge", upstream="billing",
        step="charge", mode="reverse", attempt=2, idempotency_key="k-1", method="POST", url="http://billing.test/v1/charges",
        route="/v1/charges", status=402, duration_ms=12.5, ttfb_ms=4.0, outcome="http_error", error_class="client_error",
        error_detail="declined", violations=["assert:paid"], external_ids={"charge_id": "ch_1"}, retry_after_s=3.0,
        request_headers={"content-type": "application/json"}, response_headers={"x-request-id": "req-1"},
        request_body='{"amount":100}', response_body='{"error":"declined"}', request_content_type="application/json",
        response_content_type="application/json", request_bytes=14, response_bytes=20, proxy_instance="seamline-a",
        attributes={"k": "v"}, **values,
    )  # fmt: skip


async def stored_rows(store: Store) -> dict[str, dict[str, Any]]:
    """run_id → every column of its row, in the event's own types (event_id as text, ts as µs)."""
    cols = ", ".join(
        "toString(event_id) AS event_id" if c == "event_id" else "toUnixTimestamp64Micro(ts) AS ts" if c == "ts" else f"`{c}`"
        for c in (c.name for c in COLUMNS)
    )
    return {r["run_id"]: r for r in await store.query(f"SELECT {cols} FROM `{store.database}`.handoffs")}


@pytest.mark.parametrize("retention", [{}, {"ttl_days": 3, "body_ttl_days": 1}], ids=["defaults", "short"])
async def test_ttls_clear_old_bodies_and_headers_then_drop_old_rows(
    db: tuple[Store, str], storage: Callable[..., Storage], retention: dict[str, int]
) -> None:
    store, name = db
    s = storage(**retention)
    await migrate(store, name, ttl_days=s.ttl_days, body_ttl_days=s.body_ttl_days)  # as the recorder does at start
    now = await engine_now_us(store)
    body_ttl, row_ttl = s.body_ttl_days * DAY_US, s.ttl_days * DAY_US
    ages = {  # an hour either side of each TTL
        "fresh": HOUR_US,
        "bodies-kept": body_ttl - HOUR_US,
        "bodies-cleared": body_ttl + HOUR_US,
        "row-kept": row_ttl - HOUR_US,
        "row-dropped": row_ttl + HOUR_US,
    }
    events = {run: full_event(run, now - age) for run, age in ages.items()}
    await insert_events(store, list(events.values()))
    await apply_ttls(store, "handoffs")
    rows = await stored_rows(store)
    assert set(rows) == {"fresh", "bodies-kept", "bodies-cleared", "row-kept"}
    assert rows["fresh"] == events["fresh"] and rows["bodies-kept"] == events["bodies-kept"]
    cleared = {c.name: c.default for c in COLUMNS if c.body}
    for run in ("bodies-cleared", "row-kept"):
        assert {c: rows[run][c] for c in BODY_COLUMNS} == cleared, run
        assert {c: rows[run][c] for c in META_COLUMNS} == {c: events[run][c] for c in META_COLUMNS}, run


async def test_every_table_drops_rows_older_than_ttl_days(db: tuple[Store, str], storage: Callable[..., Storage]) -> None:
    store, name = db
    s = storage(ttl_days=2, body_ttl_days=1)
    await migrate(store, name, ttl_days=s.ttl_days, body_ttl_days=s.body_ttl_days)
    now = await engine_now_us(store)
    old = now - s.ttl_days * DAY_US - HOUR_US
    await insert_events(
        store, [full_event("new", now - HOUR_US, tenant="new"), full_event("old", old, tenant="old")]
    )  # the MV copies both into handoffs_1m
    await store.command(
        f"INSERT INTO `{name}`.seamline_health (ts, proxy_instance) "
        "VALUES (fromUnixTimestamp64Micro({new:Int64}), 'new'), (fromUnixTimestamp64Micro({old:Int64}), 'old')",
        parameters={"new": now - HOUR_US, "old": old},
    )
    await store.command(
        f"INSERT INTO `{name}`.otel_traces (Timestamp, TraceId, SpanId, ServiceName) "
        "VALUES (fromUnixTimestamp64Micro({new:Int64}), 'new', 'a', 'app'), "
        "(fromUnixTimestamp64Micro({old:Int64}), 'old', 'b', 'app')",
        parameters={"new": now - HOUR_US, "old": old},
    )  # the MV copies both into otel_traces_trace_id_ts
    keys = {
        "handoffs": "run_id",
        "handoffs_1m": "tenant",
        "seamline_health": "proxy_instance",
        "otel_traces": "TraceId",
        "otel_traces_trace_id_ts": "TraceId",
    }
    left = {}
    for table, key in keys.items():
        await apply_ttls(store, table)
        left[table] = {r["k"] for r in await store.query(f"SELECT {key} AS k FROM `{name}`.`{table}`")}
    assert left == {table: {"new"} for table in keys}


async def guard_totals(store: Store, name: str) -> dict[str, int]:
    [row] = await store.query(
        f"SELECT sum(calls) AS n, sumIf(calls, guard = 'replayed') AS replayed, sum(retries_ok) AS ok_retries, "
        f"uniqMerge(retried_calls) AS chains FROM `{name}`.guards_1m"
    )
    return {k: int(v) for k, v in row.items()}


def ev(run_id: str, ts_us: int, **values: Any) -> dict[str, Any]:
    return {**full_event(run_id, ts_us), **values}


async def test_a_version_2_store_gets_the_guards_rollup_filled_from_its_rows(db: tuple[Store, str]) -> None:
    """Migration 3 on a store with rows in place: `guards_1m` holds them (once, even when the migration is run
    again after a crash), rows a guard never touched stay out, and new rows flow in through the MV."""
    store, name = db
    await migrate(store, name)
    for table in ("guards_1m_mv", "guards_1m"):  # back to a version-2 store
        await store.command(f"DROP TABLE `{name}`.`{table}`")
    await store.command(f"ALTER TABLE `{name}`.schema_migrations DELETE WHERE version > 2 SETTINGS mutations_sync = 1")
    t = now_us()
    first = str(uuid.uuid4())
    await insert_events(store, [
        ev("plain", t, outcome="ok", attempt=1),  # no guard: not in the rollup
        ev("dup", t, guard="replayed", outcome="replayed"),
        ev("retry", t, event_id=first, outcome="http_error", guard="retried", attempt=1),
        ev("retry", t + 1000, retry_of=first, outcome="ok", attempt=2),
    ])  # fmt: skip
    assert await current_version(store, name) == 2
    assert await migrate(store, name) == SCHEMA_VERSION
    assert await guard_totals(store, name) == {"n": 3, "replayed": 1, "ok_retries": 1, "chains": 1}
    ctx_statements = [s for s in statements(name) if "guards_1m" in s]
    for stmt in ctx_statements:  # the migration re-run (it crashed before recording its version): no double count
        await store.command(stmt)
    assert (await guard_totals(store, name))["n"] == 3
    await insert_events(store, [ev("loop", t, guard="loop_blocked", outcome="refused", error_class="loop_suspected")])
    assert (await guard_totals(store, name))["n"] == 4


async def test_the_tests_schema_copy_is_the_schema_statements_create(db: tuple[Store, str]) -> None:
    """The read-side tests get their schema copied from a template (tests/support/schema_template.py, to save
    ~1 s each): the copy must be what `statements()` creates, table for table, down to codecs, TTLs and settings."""
    store, name = db
    for stmt in statements(name):
        await store.command(stmt)
    copy = unique_database("schema_copy")
    await schema_copy(store, copy)

    async def ddl(database: str) -> dict[str, str]:
        rows = await store.query(TEMPLATE_TABLES, {"db": database})
        return {r["name"]: r["create_table_query"].replace(database, "<db>") for r in rows}

    made, copied = await ddl(name), await ddl(copy)
    assert set(made) >= {"handoffs", "handoffs_1m_mv", "guards_1m", "guards_1m_mv", "otel_traces_trace_id_ts_mv"}
    assert copied == made
    assert "TTL toDateTime(ts) + toIntervalDay(7)" in made["handoffs"]
    assert "non_replicated_deduplication_window" in made["handoffs"]
    await store.command(f"DROP DATABASE `{copy}`")


# ---- migration 4: codecs per column, in place ---------------------------------------------------------------------


async def column_codecs(store: Store, name: str) -> dict[str, str]:
    rows = await store.query(
        "SELECT name, compression_codec AS codec FROM system.columns WHERE database = {d:String} AND table = 'handoffs'",
        {"d": name},
    )
    return {r["name"]: r["codec"] for r in rows}


async def test_a_version_3_store_gets_the_codecs_of_version_4_in_place(db: tuple[Store, str]) -> None:
    """A store made before migration 4 (its ID, URL, size and duration columns on the default codec) is re-declared
    in place: same columns and types, the new codecs, its rows kept and readable, the rollups still fed."""
    store, name = db
    await migrate(store, name)
    fresh = await column_codecs(store, name)
    assert "ZSTD(1)" in fresh["trace_id"] and "T64" in fresh["response_bytes"], fresh  # a new install has them
    assert fresh["event_id"] == "" and "ZSTD(3)" in fresh["response_body"]  # unchanged: a UUID, and the bodies
    for col in RECODED_V4:  # back to the default codec, as schema 1-3 declared them
        await store.command(f"ALTER TABLE `{name}`.handoffs MODIFY COLUMN `{col}` REMOVE CODEC")
    reverted = await column_codecs(store, name)
    assert all(reverted[c] == "" for c in RECODED_V4)
    await store.command(f"ALTER TABLE `{name}`.schema_migrations DELETE WHERE version >= 4 SETTINGS mutations_sync = 1")
    t = now_us()
    old = full_event("run-old", t, retry_of=str(uuid.uuid4()), guard_wait_ms=1.5)
    await insert_events(store, [old])
    assert await current_version(store, name) < 4
    assert await migrate(store, name) == SCHEMA_VERSION
    assert await column_codecs(store, name) == fresh
    cols = await store.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'handoffs' ORDER BY position", {"d": name}
    )
    assert [(c["name"], c["type"]) for c in cols] == [(c.name, c.ch_type) for c in COLUMNS]
    await insert_events(store, [full_event("run-new", t + 1000)])
    await apply_ttls(store, "handoffs")  # old part (default codec) and new part merged into one with the new codecs
    rows = await stored_rows(store)
    assert {c: rows["run-old"][c] for c in RECODED_V4} == {c: old[c] for c in RECODED_V4}
    assert set(rows) == {"run-old", "run-new"}
    [rollup] = await store.query(f"SELECT sum(calls) AS n FROM `{name}`.handoffs_1m")
    assert rollup["n"] == 2
    for stmt in recoded_columns(Ctx(name), RECODED_V4):  # re-run after a crash before its version was recorded: a no-op
        await store.command(stmt)
    assert await column_codecs(store, name) == fresh
