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

Write-ahead past `storage.max_unacked_ms` (the watchdog, here): an event the sink has not acknowledged within it
goes to the spool whatever the sink is doing (stalled, slow, frozen): queued batches move there (the replayer
sends them), and the batch in flight (given flush_interval_ms more, the time its buffer may wait for a healthy sink)
is copied there under its own token while its insert goes on; once that insert
is acknowledged the copy is skipped (`Spool.skip`), and if it fails the copy is what gets replayed. As Vector's disk
buffer and the OpenTelemetry Collector's persistent queue, but only for what is late: a healthy sink acknowledges
within flush_interval_ms plus one insert, and the spool (and its fsync) stays off the normal path.

Loss window on SIGKILL: events in memory, i.e. those that arrived in the last max_unacked_ms (plus the one spool
write under way), whatever the sink does; README "Delivery guarantee". Whatever reached the spool is fsynced and
replayed at the next start; a batch both inserted and spooled is dropped by ClickHouse via its dedup token.
SIGTERM (`stop()`) flushes to the sink, and anything the sink does not take within the timeout goes to the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from seamline.record.rows import Batch, encode_event
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
        self._clock = clock
        self._max_unacked_s = storage.max_unacked_ms / 1000
        # The insert in flight is copied once its oldest row is this old: a healthy sink gets a buffer when it is
        # flush_interval_ms old, so only an insert that itself took over max_unacked_ms is written ahead.
        self._inflight_deadline_s = (storage.max_unacked_ms + storage.flush_interval_ms) / 1000
        self._wal: set[str] = set()  # tokens of batches written ahead to the spool while still in memory (in flight)
        self._acked: asyncio.Future[bool] | None = None  # the outcome of the insert in flight
        self._holders: list[Callable[[], float | None]] = []  # others holding events for us (the build offload)
        self._wake_flush = asyncio.Event()
        self._wake_watch = asyncio.Event()
        self.replayer = Replayer(
            self._spool, self.sink, self.metrics, self.totals, Backoff(backoff_base_s, backoff_max_s),
            on_empty=self._wake_flush.set, in_flight=self._in_flight,
        )  # fmt: skip
        self._spill = Spill(self._spool, self.metrics, self._drop, max_rows=2 * storage.queue_size, on_spooled=self.replayer.wake)
        self._heartbeat = Heartbeat(self.store, instance, self.metrics, state=self._health_state, timeout_s=write_timeout_s)
        self._started = False
        self._accepting = False
        self._stopping = False
        self._started_at = time.monotonic()
        self._flush_task: asyncio.Task[None] | None = None
        self._spill_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._side_tasks: list[asyncio.Task[None]] = []  # replayer and heartbeat: nothing to finish at stop
        self._send_lock = asyncio.Lock()
        self.metrics.bind(lambda: self.batcher.in_memory, lambda: self.spool.bytes, lambda: self.spool.records)
        self.metrics.ready.set_function(lambda: 1.0 if self.health()["ready"] else 0.0)
        self.metrics.oldest_unacked.set_function(lambda: self.oldest_unacked_s() or 0.0)

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
        self._watch_task = asyncio.create_task(self._watch_loop(), name="seamline-record-unacked-watchdog")
        self._side_tasks = [asyncio.create_task(self.replayer.run(), name="seamline-record-replayer")]
        if self._heartbeat_s > 0:
            self._side_tasks.append(asyncio.create_task(self._interval_loop(), name="seamline-record-heartbeat"))
        if self.spool.records:
            self.replayer.wake()

    def submit(self, event: dict[str, Any], since: float | None = None) -> None:
        """Queue one event; never blocks, never raises (overflow spills to the spool, failures are counted).
        `since`: when it was handed over (monotonic), if it waited elsewhere first; its max_unacked_ms counts from there."""
        try:
            row = encode_event(event)
        except Exception as e:  # noqa: BLE001 - isolate the request path from any recording bug
            self._drop(1, "invalid_event")
            log.error("event not recorded", extra={"error": f"{type(e).__name__}: {e}"[:300]})
            return
        self.submit_encoded(row, str(event.get("event_id", "")), since)

    def submit_encoded(self, row: bytes, event_id: str, since: float | None = None) -> None:
        """Queue one event already encoded by `rows.encode_event` (e.g. built in the engine process); as `submit`."""
        try:
            if not self._accepting:
                self._drop(1, "stopped")
                return
            if self.batcher.add(row, event_id, since):
                self._wake_flush.set()  # the flusher idles without a deadline: start this buffer's timer, or send
                self._wake_watch.set()  # so does the watchdog: start this buffer's max_unacked_ms
            if self.batcher.full:
                self._spill_memory("overflow")  # memory is full: to the spool, not dropped
        except Exception as e:  # noqa: BLE001 - isolate the request path from any recording bug
            self._drop(1, "invalid_event")
            log.error("event not recorded", extra={"error": f"{type(e).__name__}: {e}"[:300]})

    async def flush(self, timeout: float = 10.0) -> bool:
        """Write everything held in memory to the sink (or the spool); True when nothing is left in memory. While the
        sink answers, what was written ahead to the spool (late, not refused) is replayed within the timeout too."""
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._drain_memory(), timeout)
        except TimeoutError:
            return False
        if self.sink.up and self.spool.records:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.replayer.replay_now(), max(0.0, deadline - time.monotonic()))
        return self.batcher.empty and self._spill.empty

    async def poll(self) -> None:
        """One flusher step: seal the buffer if it is full or older than flush_interval_ms, then send ready batches."""
        self.batcher.seal_if_due()
        await self._send_sealed()

    def write_ahead_due(self) -> None:
        """The watchdog's step: to the spool, the batch in flight once its oldest row is max_unacked_ms +
        flush_interval_ms old (a copy), and, while the sink is busy with it or down, whatever waits behind it longer
        than max_unacked_ms (moved). A sink that is up and idle gets the sealed batches at once and the buffer at
        flush_interval_ms, so memory holds nothing longer than max_unacked_ms + flush_interval_ms whatever the sink does."""
        now = self._clock()
        deadline = now - self._max_unacked_s
        inflight = self.batcher.inflight
        if inflight is not None and inflight.since <= now - self._inflight_deadline_s and inflight.token not in self._wal:
            self._wal.add(inflight.token)  # a copy: the insert goes on, its outcome decides (see _send_sealed)
            self._spill.put(inflight, "unacked")
        if inflight is not None or not self.sink.up:
            for batch in self.batcher.take_unacked(deadline):
                self._to_spill(batch, "unacked")

    def oldest_unacked_s(self) -> float | None:
        """Age of the oldest event the sink has not acknowledged: in memory, held by the build offload, or spooled
        (records spooled before this process started count from its start); None when there is none."""
        times = [t for t in (self.batcher.oldest(), self.spool.oldest_since, *(h() for h in self._holders)) if t is not None]
        return max(0.0, self._clock() - min(times)) if times else None

    def track(self, oldest: Callable[[], float | None]) -> None:
        """Count events another object holds for this Recorder (when the oldest arrived) in oldest_unacked."""
        self._holders.append(oldest)

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
        tasks = [t for t in (self._flush_task, self._spill_task, self._watch_task, *self._side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flush_task = self._spill_task = self._watch_task = None
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
        oldest = self.oldest_unacked_s()
        if oldest is not None and oldest > self.storage.unacked_degraded_after:
            reasons.append("unacked_too_long")  # degraded too: the sink is late, what waits past max_unacked_ms is spooled
        return {
            "ready": ready,
            "degraded": ready and bool(reasons),
            "sink_up": self.sink.up,
            "reasons": reasons,
            "oldest_unacked_s": round(oldest, 3) if oldest is not None else None,
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
                self._wake_watch.set()  # an insert starts: the watchdog times it, and what queues behind it
                self._acked = acked = asyncio.get_running_loop().create_future()
                sent = False
                try:
                    sent = await self.sink.insert(batch, path="direct")
                except BaseException:  # cancelled (stop, flush timeout): back to the front, to be re-sent exactly so
                    self.batcher.put_back(batch)
                    raise
                finally:
                    self.batcher.settle()
                    self._acked = None
                    acked.set_result(sent)  # a replayer holding its write-ahead copy waits for this
                if sent:
                    if batch.token in self._wal:  # written ahead while in flight: its copy is not to be replayed
                        self._wal.discard(batch.token)
                        self._spool.later(functools.partial(self.spool.skip, batch.token))
                    continue
                # Spooled as sent (same token): replaying an insert that did land is deduplicated.
                self._to_spill(batch, "sink_down")
                self._wake_watch.set()  # the sink is down: the buffer is the watchdog's too
                break
            else:
                return
            for batch in self.batcher.take_sealed():
                self._to_spill(batch, "sink_down")
            self.replayer.wake()

    def _to_spill(self, batch: Batch, reason: str) -> None:
        """Hand one batch out of memory to the spool, unless it was written ahead already (then it is there)."""
        if batch.token in self._wal:
            self._wal.discard(batch.token)
            return
        self._spill.put(batch, reason)

    def _in_flight(self, token: str) -> asyncio.Future[bool] | None:
        """The outcome of the direct insert of this batch, while it runs (the replayer found its write-ahead copy)."""
        inflight = self.batcher.inflight
        return self._acked if inflight is not None and inflight.token == token else None

    def _spill_memory(self, reason: str) -> None:
        """Seal the buffer and move every queued batch to the spool (the batch in flight stays with its insert)."""
        self.batcher.seal()
        for batch in self.batcher.take_sealed():
            self._to_spill(batch, reason)

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

    async def _watch_loop(self) -> None:
        """Wake when the oldest event in memory not yet spooled reaches max_unacked_ms, and write it ahead. A task of
        its own: the flusher may be stuck in an insert, which is exactly when this must run."""
        while True:
            oldest = self._oldest_not_spooled()
            if oldest is None:
                self._wake_watch.clear()
                await self._wake_watch.wait()
                continue
            wait = oldest + self._max_unacked_s - self._clock()
            if wait > 0:
                self._wake_watch.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_watch.wait(), wait)
                continue
            self.write_ahead_due()

    def _oldest_not_spooled(self) -> float | None:
        """When the oldest event `write_ahead_due` would act on arrived (None: nothing to watch now)."""
        inflight = self.batcher.inflight
        oldest = self.batcher.oldest(inflight=False) if inflight is not None or not self.sink.up else None
        if inflight is not None and inflight.token not in self._wal:
            due = inflight.since + self._inflight_deadline_s - self._max_unacked_s  # as the others: + max_unacked_s
            oldest = due if oldest is None else min(oldest, due)
        return oldest

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


async def build_recorder(
    storage: Storage, registry: CollectorRegistry, instance: str, *, engine_socket: str | None = None, **options: Any
) -> Recorder:
    """A started Recorder on the configured store (schema migrated when the sink answers; spooling until then).

    `engine_socket`: a worker of `serve --workers N` uses the supervisor's embedded engine (record.engine_host)."""

    def opener() -> Store:
        return open_store(
            storage.clickhouse_url, storage.database, engine=storage.embedded_engine, cpus=storage.embedded_cpus,
            engine_socket=engine_socket,
        )  # fmt: skip

    recorder = Recorder(storage, opener, registry, instance, **options)
    await recorder.start()
    return recorder
