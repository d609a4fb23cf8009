"""The recorder: submit() -> in-memory batches -> ClickHouse; on sink failure or overflow -> spool -> replay.

The Recorder is the one object the sidecar uses (submit, flush, stop, health); it composes one collaborator per
concern and runs their tasks (started by `start()`, joined by `stop()`):

- `batcher.Batcher`  rows in memory: the buffer sealed by size or age, the queue of sealed batches, group commit;
- `sink.Sink`        inserts into the store (dedup token, timeout) and whether the store answers;
- `spill.Spill`      batches on their way to the spool, written on the recorder's own spool thread;
- `replay.Replayer`  drains the spool in order once the sink answers, exponential backoff with jitter;
- `heartbeat.Heartbeat`  a `seamline_health` row per interval.

The flusher (here) is what joins them: a sealed batch goes to the sink, and whatever the sink refuses, or memory
cannot hold, goes to the spool. The event loop only encodes rows (orjson, ~5 µs for a row with two 1 KiB bodies);
the sink and the spool each run on their own thread.

Loss window on SIGKILL: events still in memory — normally under flush_interval_ms of traffic plus the batch in flight
(up to queue_size rows when the sink is slower than the traffic). Whatever reached the spool is fsynced and replayed
at the next start; a batch that was both inserted and spooled is dropped by ClickHouse via its dedup token.
SIGTERM (`stop()`) flushes to the sink, and anything the sink does not take within the timeout goes to the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry

from seamline.config.models import Storage
from seamline.record.batcher import Batcher
from seamline.record.heartbeat import Heartbeat
from seamline.record.metrics import Drops, RecordMetrics, Totals
from seamline.record.replay import Backoff, Replayer
from seamline.record.rows import encode_event
from seamline.record.sink import Sink
from seamline.record.spill import Spill, ThreadedSpool
from seamline.record.spool import Spool
from seamline.record.store import Store, open_store

log = logging.getLogger("seamline.record")


class Recorder:
    """Owns the write path of one sidecar: batching, the sink, the spool and their metrics."""

    def __init__(
        self,
        storage: Storage,
        store: Store | Callable[[], Store],
        registry: CollectorRegistry,
        instance: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        migrate_schema: bool = True,
        heartbeat_interval_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        write_timeout_s: float = 30.0,
        spool_fsync: str = "always",
    ) -> None:
        self.storage = storage
        self._own_store = not isinstance(store, Store)
        # A store, or an opener the Recorder calls (then it owns the store and closes it at stop).
        self.store: Store = store() if callable(store) and not isinstance(store, Store) else store
        self.instance = instance
        self._heartbeat_s = heartbeat_interval_s
        self.metrics = RecordMetrics(registry)
        self.totals = Totals()
        self._drop = Drops(self.metrics, self.totals)
        self.spool = Spool(storage.spool_dir, storage.spool_max_bytes, fsync=spool_fsync)  # type: ignore[arg-type]
        self._spool = ThreadedSpool(self.spool, self.metrics)
        self.batcher = Batcher(
            batch_size=storage.batch_size,
            flush_interval_ms=storage.flush_interval_ms,
            queue_size=storage.queue_size,
            # A failed insert is spooled whole: keep it well inside the spool's cap.
            max_insert_bytes=min(storage.max_insert_bytes, storage.spool_max_bytes // 4),
            clock=clock,
        )
        self.sink = Sink(self.store, storage, self.metrics, self.totals, migrate_schema=migrate_schema, timeout_s=write_timeout_s)
        self._wake_flush = asyncio.Event()
        self.replayer = Replayer(
            self._spool, self.sink, self.metrics, self.totals, Backoff(backoff_base_s, backoff_max_s),
            on_empty=self._wake_flush.set,
        )  # fmt: skip
        self._spill = Spill(self._spool, self.metrics, self._drop, max_rows=2 * storage.queue_size, on_spooled=self.replayer.wake)
        self._heartbeat = Heartbeat(self.store, instance, self.metrics, state=self._health_state, timeout_s=write_timeout_s)
        self._started = False
        self._accepting = False
        self._stopping = False
        self._started_at = time.monotonic()
        self._flush_task: asyncio.Task[None] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._side_tasks: list[asyncio.Task[None]] = []  # replayer and heartbeat: nothing to finish at stop
        self._send_lock = asyncio.Lock()
        self.metrics.bind(lambda: self.batcher.in_memory, lambda: self.spool.bytes, lambda: self.spool.records)
        self.metrics.ready.set_function(lambda: 1.0 if self.health()["ready"] else 0.0)

    # -- public API -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool, connect (+ migrate) if the sink answers, start the background tasks; never fails on a down sink."""
        if self._started:
            return
        self._started = self._accepting = True
        await self._spool.open()
        await self.sink.connect()
        self._flush_task = asyncio.create_task(self._flush_loop(), name="seamline-record-flusher")
        self._spill_task = asyncio.create_task(self._spill.run(), name="seamline-record-spiller")
        self._side_tasks = [asyncio.create_task(self.replayer.run(), name="seamline-record-replayer")]
        if self._heartbeat_s > 0:
            self._side_tasks.append(asyncio.create_task(self._interval_loop(), name="seamline-record-heartbeat"))
        if self.spool.records:
            self.replayer.wake()

    def submit(self, event: dict[str, Any]) -> None:
        """Queue one event; never blocks, never raises (overflow spills to the spool, failures are counted)."""
        try:
            row = encode_event(event)
        except Exception as e:  # noqa: BLE001 - isolate the request path from any recording bug
            self._drop(1, "invalid_event")
            log.error("event not recorded", extra={"error": f"{type(e).__name__}: {e}"[:300]})
            return
        self.submit_encoded(row, str(event.get("event_id", "")))

    def submit_encoded(self, row: bytes, event_id: str) -> None:
        """Queue one event already encoded by `rows.encode_event` (e.g. built in the engine process); as `submit`."""
        try:
            if not self._accepting:
                self._drop(1, "stopped")
                return
            if self.batcher.add(row, event_id):
                self._wake_flush.set()  # the flusher idles without a deadline: start this buffer's timer, or send
            if self.batcher.full:
                self._spill_memory("overflow")  # memory is full: to the spool, not dropped
        except Exception as e:  # noqa: BLE001 - isolate the request path from any recording bug
            self._drop(1, "invalid_event")
            log.error("event not recorded", extra={"error": f"{type(e).__name__}: {e}"[:300]})

    async def flush(self, timeout: float = 10.0) -> bool:
        """Write everything held in memory to the sink (or the spool); True when nothing is left in memory."""
        try:
            await asyncio.wait_for(self._drain_memory(), timeout)
        except TimeoutError:
            return False
        return self.batcher.empty and self._spill.empty

    async def poll(self) -> None:
        """One flusher step: seal the buffer if it is full or older than flush_interval_ms, then send ready batches."""
        self.batcher.seal_if_due()
        await self._send_sealed()

    async def replay_now(self) -> bool:
        """Drain the spool into the sink now, in order; True when the spool is empty and the sink took everything."""
        return await self.replayer.replay_now()

    async def heartbeat(self) -> bool:
        """Write one row into seamline_health; True on success."""
        return await self._heartbeat.beat()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, flush to the sink within half the timeout, spool the rest, join threads, close."""
        if not self._started or self._stopping:
            return
        self._accepting = False
        self._stopping = True
        self._wake_flush.set()  # the flusher sees _stopping and ends after one last step
        deadline = time.monotonic() + timeout
        for t in self._side_tasks:
            t.cancel()
        if not await self.flush(timeout / 2):
            # A hung insert goes back to the queue (cancelled in flight, it may have landed: spooled as sent).
            if self._flush_task is not None:
                self._flush_task.cancel()
                await asyncio.gather(self._flush_task, return_exceptions=True)
            self._spill_memory("shutdown")
        try:
            await asyncio.wait_for(self._spill.drained(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.error("shutdown timed out; events in memory are lost", extra={"rows": self._spill.rows})
        tasks = [t for t in (self._flush_task, self._spill_task, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flush_task = self._spill_task = None
        self._side_tasks = []
        await self._spool.close()
        if self._own_store:
            await self.store.close()
        self._started = False
        log.info("recorder stopped", extra={"spool_records": self.spool.records, **asdict(self.totals)})

    def health(self) -> dict[str, Any]:
        """Readiness for /readyz: ready is False when the spool is full/unwritable or the recorder is not running."""
        reasons: list[str] = []
        if not self._started:
            reasons.append("stopped" if self._stopping else "not_started")
        if self._spool.problem:
            reasons.append(self._spool.problem)
        ready = not reasons
        if not self.sink.up:
            reasons.append("sink_down")  # degraded, not unready: batches are safe in the spool
        return {
            "ready": ready,
            "sink_up": self.sink.up,
            "reasons": reasons,
            "queue_depth": self.batcher.in_memory,
            "spool_records": self.spool.records,
            "spool_bytes": self.spool.bytes,
            "dropped": self.totals.dropped,
        }

    # -- the flusher: memory -> sink, refusals -> spool ---------------------------------------------------------------

    async def _send_sealed(self) -> None:
        async with self._send_lock:
            while self.batcher.has_sealed:
                if not self.sink.up:  # known down: to the spool as sealed, the replayer probes the sink
                    break
                batch = self.batcher.take()
                try:
                    sent = await self.sink.insert(batch, path="direct")
                except BaseException:  # cancelled (stop, flush timeout): back to the front, to be re-sent exactly so
                    self.batcher.put_back(batch)
                    raise
                finally:
                    self.batcher.settle()
                if not sent:
                    # Spooled as sent (same token): replaying an insert that did land is deduplicated.
                    self._spill.put(batch, "sink_down")
                    break
            else:
                return
            self._spill.put_all(self.batcher.take_sealed(), "sink_down")
            self.replayer.wake()

    def _spill_memory(self, reason: str) -> None:
        """Seal the buffer and move every queued batch to the spool (the batch in flight stays with its insert)."""
        self.batcher.seal()
        self._spill.put_all(self.batcher.take_sealed(), reason)

    async def _drain_memory(self) -> None:
        self.batcher.seal()
        await self._send_sealed()
        await self._spill.drained()

    async def _flush_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_flush.wait(), self.batcher.due_in())
            self._wake_flush.clear()
            await self.poll()

    async def _interval_loop(self) -> None:
        """Per heartbeat interval: the health row, and another try at a spool that was unwritable."""
        while True:
            await self._heartbeat.beat()
            await self._spool.retry_if_unwritable()
            await asyncio.sleep(self._heartbeat_s)

    def _health_state(self) -> dict[str, Any]:
        h = self.health()
        return {
            **{k: h[k] for k in ("ready", "sink_up", "reasons", "queue_depth", "spool_bytes", "spool_records")},
            **asdict(self.totals),
            "spool_corrupt": self.spool.corrupt,
            "uptime_s": time.monotonic() - self._started_at,
        }


async def build_recorder(storage: Storage, registry: CollectorRegistry, instance: str, **options: Any) -> Recorder:
    """A started Recorder on the configured store (schema migrated when the sink answers; spooling until then)."""

    def opener() -> Store:
        return open_store(storage.clickhouse_url, storage.database, engine=storage.embedded_engine, cpus=storage.embedded_cpus)

    recorder = Recorder(storage, opener, registry, instance, **options)
    await recorder.start()
    return recorder
