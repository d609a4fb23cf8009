"""The sink: the Recorder's calls to the store (connect and migrate, insert a batch, ping), each within a timeout.

The store runs them on its own thread or engine process (see `store`); this object adds what recording needs on
top: every `handoffs` insert carries INSERT_SETTINGS and the batch's dedup token, so a batch sent twice (its ack
lost, then replayed from the spool) lands once; the sink is marked up or down by the outcome of each call; and
writes are counted. It knows nothing of queues or the spool: an insert that fails returns False and the caller
decides where the batch goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from seamline.config.models import Storage
from seamline.record.metrics import RecordMetrics, Totals
from seamline.record.rows import INSERT_SETTINGS, Batch
from seamline.record.schema import migrate
from seamline.record.store import ChdbStore, Store

log = logging.getLogger("seamline.record")

TABLE = "handoffs"


@dataclass(slots=True)
class Sink:
    """One Recorder's writes into its store, and whether the store answers."""

    store: Store
    storage: Storage
    metrics: RecordMetrics
    totals: Totals
    migrate_schema: bool = field(default=True, kw_only=True)
    timeout_s: float = field(default=30.0, kw_only=True)
    connected: bool = field(default=False, init=False)  # opened (and migrated) once; later failures only mark it down
    up: bool = field(default=False, init=False)  # the last contact succeeded

    def __post_init__(self) -> None:
        self.metrics.sink_up.set_function(lambda: 1.0 if self.up else 0.0)
        store = self.store
        if isinstance(store, ChdbStore):
            self.metrics.engine_starts.set_function(lambda: store.engine_starts)

    async def connect(self) -> bool:
        """Open the store and apply migrations once; False (sink down) on failure."""
        if self.connected:
            return True
        try:
            await asyncio.wait_for(self.store.open(), self.timeout_s)
            if self.migrate_schema:
                s = self.storage
                await migrate(
                    self.store, self.store.database, ttl_days=s.ttl_days, body_ttl_days=s.body_ttl_days, cluster=s.cluster
                )
        except Exception as e:  # noqa: BLE001 - any failure of the store marks the sink down
            self.mark(False, f"{type(e).__name__}: {e}"[:300])
            return False
        self.connected = True
        self.mark(True)
        return True

    async def ping(self) -> bool:
        """True when the store answers; a silent store marks the sink down."""
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(self.store.ping(), self.timeout_s):
                return True
        self.mark(False, "ping failed")
        return False

    async def insert(self, batch: Batch, *, path: str) -> bool:
        """Insert one batch into `handoffs` under its dedup token; False (sink down, counted) when the store refuses
        or does not answer in time. `path` labels the metrics: "direct" from memory, "replay" from the spool."""
        settings = {**INSERT_SETTINGS, "insert_deduplication_token": batch.token}
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(self.store.insert_json(TABLE, batch.payload, settings), self.timeout_s)
        except Exception as e:  # noqa: BLE001 - a refused insert goes to the spool, whatever refused it
            self.metrics.write_errors.inc()
            self.mark(False, f"{type(e).__name__}: {e}"[:300])
            return False
        self.metrics.write_seconds.observe(time.perf_counter() - t0)
        self.metrics.batches_written.labels(path).inc()
        self.metrics.rows_written.labels(path).inc(batch.rows)
        self.totals.rows_written += batch.rows
        self.totals.batches_written += 1
        self.mark(True)
        return True

    def mark(self, up: bool, error: str | None = None) -> None:
        """Record the outcome of the last contact; a change is logged once."""
        if up != self.up:
            if up:
                log.info("clickhouse sink up", extra={"store": self.store.kind})
            else:
                log.warning("clickhouse sink down; batches go to the spool", extra={"store": self.store.kind, "error": error})
        self.up = up
