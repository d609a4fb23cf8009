"""Recording: events -> bounded queue -> batches -> ClickHouse (chdb embedded or a server), spool on failure.

Modules, the write path in order: `recorder` (the Recorder: the façade the sidecar uses, composing the next five),
`batcher` (rows in memory, sealed into batches, group commit), `sink` (inserts into the store), `spill` (batches on
their way to the spool, on its own thread), `replay` (spool -> sink, with backoff), `heartbeat` (the health row);
`rows` (event -> JSON row, the one `Batch` type and its dedup token), `spool` (durable on-disk batches), `metrics`
(the Recorder's Prometheus metrics, totals and drops); `store` (one client for both stores), `engine` (chdb
operations, in the store's child process or thread), `offload` (events built in that process, both ends), `wire`
(the exchange as plain values for that trip), `schema` (DDL + migrations), `cli` (migrate, schema).

Interfaces other modules rely on (keep them):

- `seamline.record.store.open_store(url, database, *, engine="thread", cpus=None) -> Store` picks chdb (sync client
  in one owned child process with `engine="process"`, the sidecar's default, or on one owned thread) or HTTP (async
  client); it connects lazily on first use, or now with `await open_store(...)` / `await store.open()`.
  `await store.query(sql, parameters=None) -> list[dict]` (server-side `{name:Type}` parameters),
  `await store.command(sql, parameters=None, settings=None)`, `await store.insert(table, rows, column_names, settings=None)`,
  `await store.insert_json(table, payload, settings=None)`, `await store.ping() -> bool`, `await store.close()`;
  `store.database`, `store.kind` ("chdb" | "http"). Every failure is a `StoreError`.
- `seamline.record.schema.statements(database, *, ttl_days=30, body_ttl_days=7, cluster=None) -> list[str]`
  and `await migrate(store, database, *, ttl_days, body_ttl_days, cluster) -> int`: versioned, idempotent DDL
  generated from `seamline.event.COLUMNS`.
- `seamline.record.recorder.Recorder`: `await start()`, `submit(event) -> None` (never blocks, never raises),
  `submit_encoded(row, event_id)` (a row built elsewhere, e.g. by the engine process),
  `await flush(timeout) -> bool`, `await stop(timeout)`, `health() -> dict` (ready, sink_up, reasons, …), `.store`;
  `await build_recorder(storage, registry, instance) -> Recorder` (started).
"""
