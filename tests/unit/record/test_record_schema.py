"""The DDL: generated from event.COLUMNS, valid on the real engine, versioned and idempotent migrations."""

from __future__ import annotations

import re

from support.recording import db  # noqa: F401  (fixture)

from seamline.event import COLUMNS
from seamline.record.schema import SCHEMA_VERSION, current_version, migrate, statements
from seamline.record.store import Store


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
    versions = await store.query(f"SELECT version FROM `{name}`.schema_migrations FINAL")
    assert [r["version"] for r in versions] == [SCHEMA_VERSION]


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
    [row] = await store.query("SELECT create_table_query AS q FROM system.tables WHERE database = {d:String} AND name = 'handoffs'", {"d": name})
    q = row["q"]
    for col in ("request_body", "response_body", "request_headers", "response_headers"):
        assert re.search(rf"`{col}` [^`]*TTL toDateTime\(ts\) \+ toIntervalDay\(7\)", q), col
    assert q.count("toIntervalDay(30)") == 1  # the row TTL


async def test_otel_traces_matches_the_collector_exporter_columns(db: tuple[Store, str]) -> None:
    store, name = db
    await migrate(store, name)
    cols = await store.query("SELECT name FROM system.columns WHERE database = {d:String} AND table = 'otel_traces' ORDER BY position", {"d": name})
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
