"""Recording: events -> bounded queue -> batches -> ClickHouse (chdb embedded or a server), spool on failure.

Interfaces other modules rely on (keep them):

- `seamline.record.store.Store` — one ClickHouse client for both stores (clickhouse-connect):
  `await store.query(sql, parameters=None) -> list[dict]`, `await store.command(sql)`,
  `await store.insert(table, rows, column_names, settings=None)`, `await store.close()`;
  `open_store(url, database) -> Store` picks chdb (sync client on one owned thread) or HTTP (async client).
- `seamline.record.schema.statements(database, *, ttl_days, body_ttl_days, cluster=None) -> list[str]`
  and `await migrate(store, database, ...)`: versioned, idempotent DDL generated from `seamline.event.COLUMNS`.
- `seamline.record.writer.Recorder`: `await start()`, `submit(event) -> None` (never blocks, never raises),
  `await flush(timeout)`, `await stop(timeout)`, `health() -> dict` (ready, sink_up, reasons).
"""
