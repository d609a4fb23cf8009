"""Seamline's ClickHouse DDL, generated from `seamline.event.COLUMNS`, and its versioned migrations.

Tables (database `db`): `handoffs` (one row per proxied call), `handoffs_1m` (per-minute rollup fed by
`handoffs_1m_mv`), `guards_1m` (per-minute rollup of what the guards did, fed by `guards_1m_mv`), `seamline_health`
(heartbeats), `schema_migrations`, and `otel_traces` (+ `otel_traces_trace_id_ts` and its MV) exactly as the OTel
Collector's clickhouse exporter writes them (it runs with create_schema: false).

With `cluster="name"` every table is created ON CLUSTER as `<name>_local` (ReplicatedMergeTree) and a Distributed
table takes the canonical name, so queries and inserts are unchanged; MVs read and write the shard-local tables.

Layout of `handoffs`, chosen by measurement at 1M and 10M rows (bench/queries.py; numbers in LAYOUT_NOTES):
ORDER BY (toStartOfHour(ts), run_id, ts), daily partitions — one run's lookup ~20-27 ms and a one-hour per-handoff
aggregation ~12-18 ms at 10M rows, where ORDER BY (handoff, ts) took 152 ms for the run.

Cluster caveat (no cluster was available here): inserts go through the Distributed `handoffs` sharded by run_id;
replicated tables deduplicate by insert_deduplication_token per shard block — verify on your ClickHouse version.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seamline.event.columns import COLUMNS
from seamline.outcomes import GUARD_CLASSES, OK, sql_list

if TYPE_CHECKING:
    from seamline.record.store import Store

log = logging.getLogger("seamline.record.schema")

SCHEMA_VERSION = 4

# Deduplication memory of plain MergeTree (blocks): a batch re-sent by the spool after an outage of up to
# this many other batches is still recognised by its insert_deduplication_token.
DEDUP_WINDOW = 10_000

LAYOUT_NOTES = """
bench/queries.py, chdb 26.9, 2 vCPU shared with other jobs (load avg 2.5-6 during the runs), rows of ~2.2 KB with
two ~1 KB JSON bodies, 200-row runs over 10 min, 20 handoffs, 6 days; "run" = SELECT * … WHERE run_id = ? ORDER BY ts
(200 rows with bodies), "agg" = one hour, per handoff: count, p50, p95, success rate. Medians of interleaved rounds.

| layout                                                    | run 1M | agg 1M | run 10M | agg 10M | disk 10M |
|-----------------------------------------------------------|--------|--------|---------|---------|----------|
| A  ORDER BY (handoff, ts)                                 |  192   |  5.0   |  152    |  18.0   | 1851 MiB |
| C  A + bloom_filter(run_id) + index_granularity_bytes 1Mi |   96   |  4.5   |   94    |  24.6   | 1847 MiB |
| G  ORDER BY (toStartOfHour(ts), run_id, ts)   <- shipped  |   25   |  5.6   |   27 19*|  18 12* | 1679 MiB |
| K  G + bloom_filter(run_id)                               |   24   |  4.5   |   37 29*|  16 12* | 1679 MiB |
| I  ORDER BY (run_id, ts) (daily partitions)               |   21   |  5.7   |   22    |  24.7   | 1676 MiB |
| S  shipped DDL (G + bloom_filter(trace_id), codecs)       |   22   |  3.9   |   22    |  13.1   | 1683 MiB |
(ms; * = second, quieter run of G and K alone, 5 rounds; S measured against A in a third run: A 118/4.1, 129/17.2.)
Earlier 1M-only runs: bloom(run_id) alone 99 ms;
index_granularity_bytes 256 KiB 68 ms; projection (SELECT _part_offset ORDER BY run_id) 95-102 ms (not used by
the planner here); ORDER BY (hour, run_id) with 1 MiB granules 31 ms.

Why A is slow: a run's rows sit in ~20 granules (one per handoff), and every granule drags ~8k rows of bodies.
G keeps a run contiguous inside its hour: the primary key leaves ~1 candidate granule per hour, PREWHERE on run_id
reads only that small sorted column, and bodies are read for 1-2 granules. A bloom filter (K) prunes candidates
to 1 but reading the index costs more than it saves at this size. Time-range queries prune on the hour prefix
(unlike I, which must scan whole days). Dashboards over days read the `handoffs_1m` rollup instead.
"""

# The winning layout (see LAYOUT_NOTES).
HANDOFFS_ORDER_BY = "(toStartOfHour(ts), run_id, ts)"
HANDOFFS_INDEXES = ("INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1",)
HANDOFFS_PROJECTIONS: tuple[str, ...] = ()
HANDOFFS_SETTINGS = "index_granularity = 8192"


@dataclass(frozen=True)
class Ctx:
    """Everything a DDL builder needs: database, TTLs and the optional cluster."""

    database: str
    ttl_days: int = 30
    body_ttl_days: int = 7
    cluster: str | None = None

    def name(self, table: str) -> str:
        """Physical (shard-local in cluster mode) table name, qualified."""
        return f"`{self.database}`.`{table}_local`" if self.cluster else f"`{self.database}`.`{table}`"

    def public(self, table: str) -> str:
        """Canonical (Distributed in cluster mode) table name, qualified."""
        return f"`{self.database}`.`{table}`"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def engine(self, table: str, kind: str = "MergeTree") -> str:
        if not self.cluster:
            return f"{kind}"
        return f"Replicated{kind}('/clickhouse/tables/{{shard}}/{self.database}/{table}', '{{replica}}')"

    def distributed(self, table: str, sharding_key: str) -> list[str]:
        """The Distributed table over `<table>_local`, in cluster mode only."""
        if not self.cluster:
            return []
        return [
            f"CREATE TABLE IF NOT EXISTS {self.public(table)}{self.on_cluster} AS {self.name(table)}\n"
            f"ENGINE = Distributed(`{self.cluster}`, `{self.database}`, `{table}_local`, {sharding_key})"
        ]


# Codecs of `handoffs` per column; the others keep ClickHouse's default (LZ4). Bodies and headers (body columns):
# BODY_CODEC. Measured with bench/engine_levers.py --paired (realistic rows, 30k per lever, merged to one part):
# random hex and free text (trace/span IDs, URLs with IDs, idempotency keys) are ~half their size under ZSTD(1),
# which entropy-codes where LZ4 only finds repeats (trace_id 32 -> 16 B/row); sizes and status as T64 + ZSTD(1),
# durations and the maps of IDs as ZSTD(1): 370 -> 312 B/row on disk (-16 %; -38 % of what stays once the bodies'
# TTL has cleared them), insert and merge CPU within the noise. Not taken: event_id (a UUID: 16 random bytes, no
# codec gains), Gorilla on durations (larger than ZSTD(1)), DoubleDelta on ts (equal), ZSTD(6) or LZ4 on bodies
# (-5 % disk for +50 % merge CPU; +36 % disk).
BODY_CODEC = "ZSTD(3)"
_ID_TEXT = ("run_id", "trace_id", "span_id", "parent_span_id", "url", "idempotency_key", "retry_of", "replay_of", "error_detail")
COLUMN_CODECS: dict[str, str] = {
    "ts": "Delta, ZSTD(1)",
    **dict.fromkeys(_ID_TEXT, "ZSTD(1)"),
    **dict.fromkeys(("status", "attempt", "request_bytes", "response_bytes"), "T64, ZSTD(1)"),
    **dict.fromkeys(("duration_ms", "ttfb_ms", "retry_after_s", "guard_wait_ms"), "ZSTD(1)"),
    **dict.fromkeys(("external_ids", "attributes"), "ZSTD(1)"),
}
# The columns whose codec migration 4 set (LZ4 before): re-declared in place on older stores.
RECODED_V4: tuple[str, ...] = tuple(n for n in COLUMN_CODECS if n != "ts")


def _column_ddl(ctx: Ctx) -> list[str]:
    out = []
    for c in COLUMNS:
        line = f"`{c.name}` {c.ch_type}"
        codec = COLUMN_CODECS.get(c.name) or (BODY_CODEC if c.body else None)
        if codec:
            line += f" CODEC({codec})"
        if c.body:
            line += f" TTL toDateTime(ts) + INTERVAL {ctx.body_ttl_days} DAY"
        out.append(line)
    return out


def handoffs_ddl(
    ctx: Ctx,
    *,
    table: str = "handoffs",
    order_by: str = HANDOFFS_ORDER_BY,
    indexes: tuple[str, ...] = HANDOFFS_INDEXES,
    projections: tuple[str, ...] = HANDOFFS_PROJECTIONS,
    settings: str = HANDOFFS_SETTINGS,
) -> list[str]:
    """`handoffs`: one row per call; layout parameters exist so bench/queries.py can compare candidates."""
    body = ",\n    ".join(_column_ddl(ctx) + list(indexes) + list(projections))
    dedup = "" if ctx.cluster else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.name(table)}{ctx.on_cluster} (\n    {body}\n)\n"
        f"ENGINE = {ctx.engine(table)}\n"
        f"PARTITION BY toDate(ts)\n"
        f"ORDER BY {order_by}\n"
        f"TTL toDateTime(ts) + INTERVAL {ctx.ttl_days} DAY\n"
        f"SETTINGS {settings}{dedup}, ttl_only_drop_parts = 0",
        *ctx.distributed(table, "cityHash64(run_id)"),
    ]


_ROLLUP_KEYS = ("handoff", "upstream", "tenant", "source_app", "outcome", "error_class")


def rollup_ddl(ctx: Ctx) -> list[str]:
    """`handoffs_1m`: per minute and handoff/upstream/tenant/source_app/outcome/error_class; MV from `handoffs`.

    Read with sum(calls), sum(duration_sum)/sum(calls), max(duration_max),
    quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_q) (an array: [p50, p90, p95, p99]).
    `errors` counts every outcome but ok, Seamline's own refusals included (their 4xx/5xx land in status_4xx /
    status_5xx too): upstream-health readers filter on the `outcome` key (seamline.outcomes) instead.
    """
    keys = ",\n    ".join(f"`{k}` LowCardinality(String)" for k in _ROLLUP_KEYS)
    dedup = "" if ctx.cluster else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    key_list = ", ".join(_ROLLUP_KEYS)
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.name('handoffs_1m')}{ctx.on_cluster} (\n"
        f"    `minute` DateTime('UTC'),\n    {keys},\n"
        f"    `calls` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `errors` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `status_5xx` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `status_4xx` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `retries` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `duration_sum` SimpleAggregateFunction(sum, Float64),\n"
        f"    `duration_max` SimpleAggregateFunction(max, Float64),\n"
        f"    `ttfb_sum` SimpleAggregateFunction(sum, Float64),\n"
        f"    `request_bytes` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `response_bytes` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `duration_q` AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64),\n"
        f"    `ttfb_q` AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float64)\n"
        f")\nENGINE = {ctx.engine('handoffs_1m', 'AggregatingMergeTree')}\n"
        f"PARTITION BY toDate(minute)\n"
        f"ORDER BY (handoff, minute, upstream, tenant, source_app, outcome, error_class)\n"
        f"TTL minute + INTERVAL {ctx.ttl_days} DAY\n"
        f"SETTINGS index_granularity = 8192{dedup}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{ctx.database}`.`handoffs_1m_mv`{ctx.on_cluster}\n"
        f"TO {ctx.name('handoffs_1m')} AS\n"
        f"SELECT toStartOfMinute(ts) AS minute, {key_list},\n"
        f"    count() AS calls,\n"
        f"    countIf(outcome != '{OK}') AS errors,\n"
        f"    countIf(status >= 500) AS status_5xx,\n"
        f"    countIf(status >= 400 AND status < 500) AS status_4xx,\n"
        f"    countIf(attempt > 1) AS retries,\n"
        f"    sum(duration_ms) AS duration_sum,\n"
        f"    max(duration_ms) AS duration_max,\n"
        f"    sum(ttfb_ms) AS ttfb_sum,\n"
        f"    sum(request_bytes) AS request_bytes,\n"
        f"    sum(response_bytes) AS response_bytes,\n"
        f"    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration_ms) AS duration_q,\n"
        f"    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ttfb_ms) AS ttfb_q\n"
        f"FROM {ctx.name('handoffs')}\n"
        f"GROUP BY minute, {key_list}",
        *ctx.distributed("handoffs_1m", "cityHash64(handoff)"),
    ]


_GUARD_KEYS = ("handoff", "upstream", "tenant", "source_app", "guard", "error_class", "outcome")
# The rows a guard touched: a decision, a loop flag, a retry or replay attempt, or one of the guards' refusals.
GUARDED_ROWS = (
    f"guard != '' OR loop_suspected OR retry_of != '' OR replay_of != '' OR error_class IN {sql_list(sorted(GUARD_CLASSES))}"
)


def _guards_select(ctx: Ctx, where: str) -> str:
    key_list = ", ".join(_GUARD_KEYS)
    return (
        f"SELECT toStartOfMinute(ts) AS minute, {key_list},\n"
        f"    count() AS calls,\n"
        f"    countIf(loop_suspected) AS loop_flagged,\n"
        f"    countIf(retry_of != '') AS retries,\n"
        f"    countIf(retry_of != '' AND outcome = '{OK}') AS retries_ok,\n"
        f"    uniqStateIf(retry_of, retry_of != '') AS retried_calls,\n"
        f"    countIf(replay_of != '') AS replays,\n"
        f"    countIf(replay_of != '' AND outcome = '{OK}') AS replays_ok,\n"
        f"    sum(guard_wait_ms) AS guard_wait_sum,\n"
        f"    max(guard_wait_ms) AS guard_wait_max\n"
        f"FROM {ctx.name('handoffs')}\n"
        f"WHERE {where}\n"
        f"GROUP BY minute, {key_list}"
    )


def guards_rollup_ddl(ctx: Ctx) -> list[str]:
    """`guards_1m` (schema 3): what the guards did, per minute and handoff/upstream/tenant/source_app/guard/error_class/outcome,
    over the rows a guard touched only (`GUARDED_ROWS`); MV `guards_1m_mv` from `handoffs`.

    Read with sum(calls) (e.g. `guard IN DUPLICATES_PREVENTED`: duplicates prevented; error_class outcome_unknown:
    pauses), sum(retries_ok) / uniqMerge(retried_calls) (retry success: calls whose first attempt failed and a
    retry ended ok), sum(loop_flagged), sum(replays_ok), sum(guard_wait_sum), max(guard_wait_max).
    Upgrading a store (migration 3): the table is created, filled once from the rows already in `handoffs` (only
    while it is still empty, so a migration that is re-run after a crash does not count them twice), then the MV
    starts feeding it. In cluster mode the fill is left to the operator (INSERT … SELECT per shard).
    The MV reads the guard columns: a later migration that drops or retypes one must drop the MV first
    (ClickHouse refuses ALTER … DROP COLUMN of a column an MV references).
    """
    keys = ",\n    ".join(f"`{k}` LowCardinality(String)" for k in _GUARD_KEYS)
    dedup = "" if ctx.cluster else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    table = ctx.name("guards_1m")
    backfill = (
        []
        if ctx.cluster
        else [f"INSERT INTO {table}\n" + _guards_select(ctx, f"({GUARDED_ROWS}) AND (SELECT count() FROM {table}) = 0")]
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {table}{ctx.on_cluster} (\n"
        f"    `minute` DateTime('UTC'),\n    {keys},\n"
        f"    `calls` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `loop_flagged` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `retries` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `retries_ok` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `retried_calls` AggregateFunction(uniq, String),\n"
        f"    `replays` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `replays_ok` SimpleAggregateFunction(sum, UInt64),\n"
        f"    `guard_wait_sum` SimpleAggregateFunction(sum, Float64),\n"
        f"    `guard_wait_max` SimpleAggregateFunction(max, Float64)\n"
        f")\nENGINE = {ctx.engine('guards_1m', 'AggregatingMergeTree')}\n"
        f"PARTITION BY toDate(minute)\n"
        f"ORDER BY (handoff, minute, upstream, tenant, source_app, guard, error_class, outcome)\n"
        f"TTL minute + INTERVAL {ctx.ttl_days} DAY\n"
        f"SETTINGS index_granularity = 8192{dedup}",
        *backfill,
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{ctx.database}`.`guards_1m_mv`{ctx.on_cluster}\n"
        f"TO {table} AS\n" + _guards_select(ctx, GUARDED_ROWS),
        *ctx.distributed("guards_1m", "cityHash64(handoff)"),
    ]


def health_ddl(ctx: Ctx) -> list[str]:
    """`seamline_health`: one heartbeat row per instance per interval, so a silent sidecar is visible."""
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.name('seamline_health')}{ctx.on_cluster} (\n"
        f"    `ts` DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),\n"
        f"    `proxy_instance` LowCardinality(String),\n"
        f"    `version` LowCardinality(String),\n"
        f"    `store` LowCardinality(String),\n"
        f"    `ready` Bool,\n"
        f"    `sink_up` Bool,\n"
        f"    `reasons` Array(LowCardinality(String)),\n"
        f"    `queue_depth` UInt32,\n"
        f"    `spool_bytes` UInt64,\n"
        f"    `spool_records` UInt64,\n"
        f"    `rows_written` UInt64,\n"
        f"    `batches_written` UInt64,\n"
        f"    `rows_replayed` UInt64,\n"
        f"    `dropped` UInt64,\n"
        f"    `spool_corrupt` UInt64,\n"
        f"    `uptime_s` Float64\n"
        f")\nENGINE = {ctx.engine('seamline_health')}\n"
        f"PARTITION BY toDate(ts)\n"
        f"ORDER BY (proxy_instance, ts)\n"
        f"TTL toDateTime(ts) + INTERVAL {ctx.ttl_days} DAY",
        *ctx.distributed("seamline_health", "cityHash64(proxy_instance)"),
    ]


def migrations_ddl(ctx: Ctx) -> list[str]:
    """`schema_migrations`: one row per applied version."""
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.name('schema_migrations')}{ctx.on_cluster} (\n"
        f"    `version` UInt32,\n    `name` String,\n    `applied_at` DateTime64(3, 'UTC') DEFAULT now64(3)\n"
        f")\nENGINE = {ctx.engine('schema_migrations', 'ReplacingMergeTree')}\nORDER BY version",
        *ctx.distributed("schema_migrations", "version"),
    ]


def otel_ddl(ctx: Ctx) -> list[str]:
    """`otel_traces` + `otel_traces_trace_id_ts` (+ MV) as the OTel Collector clickhouse exporter defines them."""
    ttl = f"TTL toDateTime(Timestamp) + toIntervalDay({ctx.ttl_days})"
    ttl_start = f"TTL toDateTime(Start) + toIntervalDay({ctx.ttl_days})"
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.name('otel_traces')}{ctx.on_cluster} (\n"
        "    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),\n"
        "    TraceId String CODEC(ZSTD(1)),\n"
        "    SpanId String CODEC(ZSTD(1)),\n"
        "    ParentSpanId String CODEC(ZSTD(1)),\n"
        "    TraceState String CODEC(ZSTD(1)),\n"
        "    SpanName LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    SpanKind LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    ServiceName LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),\n"
        "    ScopeName String CODEC(ZSTD(1)),\n"
        "    ScopeVersion String CODEC(ZSTD(1)),\n"
        "    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),\n"
        "    Duration UInt64 CODEC(ZSTD(1)),\n"
        "    StatusCode LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    StatusMessage String CODEC(ZSTD(1)),\n"
        "    Events Nested (\n"
        "        Timestamp DateTime64(9),\n"
        "        Name LowCardinality(String),\n"
        "        Attributes Map(LowCardinality(String), String)\n"
        "    ) CODEC(ZSTD(1)),\n"
        "    Links Nested (\n"
        "        TraceId String,\n"
        "        SpanId String,\n"
        "        TraceState String,\n"
        "        Attributes Map(LowCardinality(String), String)\n"
        "    ) CODEC(ZSTD(1)),\n"
        "    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,\n"
        "    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_duration Duration TYPE minmax GRANULARITY 1\n"
        f") ENGINE = {ctx.engine('otel_traces')}\n"
        "PARTITION BY toDate(Timestamp)\n"
        "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))\n"
        f"{ttl}\n"
        "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
        *ctx.distributed("otel_traces", "cityHash64(TraceId)"),
        f"CREATE TABLE IF NOT EXISTS {ctx.name('otel_traces_trace_id_ts')}{ctx.on_cluster} (\n"
        "    TraceId String CODEC(ZSTD(1)),\n"
        "    Start DateTime CODEC(Delta, ZSTD(1)),\n"
        "    End DateTime CODEC(Delta, ZSTD(1)),\n"
        "    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1\n"
        f") ENGINE = {ctx.engine('otel_traces_trace_id_ts')}\n"
        "PARTITION BY toDate(Start)\n"
        "ORDER BY (TraceId, Start)\n"
        f"{ttl_start}\n"
        "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
        *ctx.distributed("otel_traces_trace_id_ts", "cityHash64(TraceId)"),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{ctx.database}`.`otel_traces_trace_id_ts_mv`{ctx.on_cluster}\n"
        f"TO {ctx.name('otel_traces_trace_id_ts')} AS\n"
        "SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End\n"
        f"FROM {ctx.name('otel_traces')}\n"
        "WHERE TraceId != ''\n"
        "GROUP BY TraceId",
    ]


@dataclass(frozen=True)
class Migration:
    """One schema version: a name and a function of the context returning its idempotent statements."""

    version: int
    name: str
    build: Callable[[Ctx], list[str]]


def _v1(ctx: Ctx) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS `{ctx.database}`{ctx.on_cluster}",
        *migrations_ddl(ctx),
        *handoffs_ddl(ctx),
        *rollup_ddl(ctx),
        *health_ddl(ctx),
        *otel_ddl(ctx),
    ]


def added_columns(ctx: Ctx, version: int) -> list[str]:
    """`ALTER TABLE … ADD COLUMN IF NOT EXISTS` for the columns a migration added (no-ops on a table v1 just created
    from the current COLUMNS); in cluster mode on the shard-local table and the Distributed one."""
    tables = [ctx.name("handoffs"), *([ctx.public("handoffs")] if ctx.cluster else [])]
    after = {c.name: prev.name for prev, c in itertools.pairwise(COLUMNS)}
    return [
        f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS {line} AFTER `{after[c.name]}`"
        for table in tables
        for c, line in zip(COLUMNS, _column_ddl(ctx), strict=True)
        if c.since == version
    ]


def recoded_columns(ctx: Ctx, names: tuple[str, ...]) -> list[str]:
    """`ALTER TABLE handoffs MODIFY COLUMN` re-declaring these columns as the current DDL does (same type, its codec):
    metadata only, no mutation: new parts are written with the new codec and older parts take it as they merge.
    Shard-local tables only in cluster mode (a Distributed table holds no data)."""
    lines = dict(zip((c.name for c in COLUMNS), _column_ddl(ctx), strict=True))
    return [f"ALTER TABLE {ctx.name('handoffs')}{ctx.on_cluster} MODIFY COLUMN {lines[n]}" for n in names]


def _v2(ctx: Ctx) -> list[str]:
    return added_columns(ctx, 2)


def _v3(ctx: Ctx) -> list[str]:
    return [*added_columns(ctx, 3), *guards_rollup_ddl(ctx)]


def _v4(ctx: Ctx) -> list[str]:
    return recoded_columns(ctx, RECODED_V4)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial: handoffs, handoffs_1m, seamline_health, otel_traces", _v1),
    Migration(2, "guards: guard, loop_suspected, retry_of, replay_of, guard_wait_ms", _v2),
    Migration(3, "recovery metrics: guards_1m rollup (+ MV), filled from the rows in place", _v3),
    # (4 is another change's.)
    Migration(4, "codecs: ZSTD(1) on IDs, URLs, durations and maps, T64 on sizes (handoffs, in place)", _v4),
)


def statements(database: str, *, ttl_days: int = 30, body_ttl_days: int = 7, cluster: str | None = None) -> list[str]:
    """Every DDL statement of the current schema, in order (idempotent: CREATE … IF NOT EXISTS)."""
    ctx = Ctx(database, ttl_days, body_ttl_days, cluster)
    return [s for m in MIGRATIONS for s in m.build(ctx)]


async def current_version(store: Store, database: str) -> int:
    """Highest applied migration version (0 when none)."""
    rows = await store.query(
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'", {"db": database}
    )
    if not rows or not rows[0]["n"]:
        return 0
    rows = await store.query(f"SELECT max(version) AS v FROM `{database}`.`schema_migrations`")
    return int(rows[0]["v"] or 0) if rows else 0


async def migrate(store: Store, database: str, *, ttl_days: int = 30, body_ttl_days: int = 7, cluster: str | None = None) -> int:
    """Apply pending migrations in order and record each version; returns the schema version now in place."""
    ctx = Ctx(database, ttl_days, body_ttl_days, cluster)
    have = await current_version(store, database)
    for m in MIGRATIONS:
        if m.version <= have:
            continue
        log.info("migration start", extra={"version": m.version, "migration": m.name, "database": database})
        for stmt in m.build(ctx):
            await store.command(stmt)
        await store.command(
            f"INSERT INTO {ctx.public('schema_migrations')} (version, name) VALUES ({{v:UInt32}}, {{n:String}})",
            parameters={"v": m.version, "n": m.name},
        )
        have = m.version
        log.info("migration done", extra={"version": m.version, "database": database})
    return have
