"""The recorder: submit() -> in-memory batches -> ClickHouse; on sink failure or overflow -> spool -> replay.

Tasks (started by `start()`, joined by `stop()`): flusher (batches by size or age), spiller (spool writes on the
recorder's own spool thread), replayer (drains the spool in order once the sink answers, exponential backoff with
jitter), heartbeat (a `seamline_health` row per interval). The event loop only encodes rows (orjson, ~5 µs for a
row with two 1 KiB bodies); the sink and the spool each run on their own thread.

Loss window on SIGKILL: events still in memory — normally under flush_interval_ms of traffic plus the batch in flight
(up to queue_size rows when the sink is slower than the traffic). Whatever reached the spool is fsynced and replayed
at the next start; a batch that was both inserted and spooled is dropped by ClickHouse via its dedup token.
SIGTERM (`stop()`) flushes to the sink, and anything the sink does not take within the timeout goes to the spool.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from seamline import __version__
from seamline.config.models import Storage
from seamline.record.metrics import RecordMetrics
from seamline.record.rows import INSERT_SETTINGS, Batch, coalesce, encode_event, seal
from seamline.record.schema import migrate
from seamline.record.spool import Spool, SpoolBatch, SpoolError, SpoolFull
from seamline.record.store import ChdbStore, Store, open_store

log = logging.getLogger("seamline.record")

T = TypeVar("T")
TABLE = "handoffs"
HEALTH_COLUMNS = (
    "ts", "proxy_instance", "version", "store", "ready", "sink_up", "reasons", "queue_depth", "spool_bytes",
    "spool_records", "rows_written", "batches_written", "rows_replayed", "dropped", "spool_corrupt", "uptime_s",
)  # fmt: skip


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
        self.store: Store = store() if callable(store) and not isinstance(store, Store) else store  # type: ignore[assignment]
        self.instance = instance
        self._clock = clock
        self._migrate = migrate_schema
        self._heartbeat_s = heartbeat_interval_s
        self._backoff = (backoff_base_s, backoff_max_s)
        self._write_timeout = write_timeout_s
        self.metrics = RecordMetrics(registry)
        self.spool = Spool(storage.spool_dir, storage.spool_max_bytes, fsync=spool_fsync)  # type: ignore[arg-type]
        self._spool_exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seamline-spool")
        # in-memory state (event loop only)
        self._rows: list[bytes] = []
        self._ids: list[str] = []
        self._buf_since: float | None = None
        self._ready: deque[Batch] = deque()
        self._ready_rows = 0
        self._inflight_rows = 0  # the batch being inserted (off the queue, still in memory)
        self._resend_alone: Batch | None = None
        # A failed insert is spooled whole: keep it well inside the spool's cap.
        self._max_insert = min(storage.max_insert_bytes, storage.spool_max_bytes // 4)
        self._spill: deque[tuple[Batch, str]] = deque()
        self._spill_rows = 0
        # health
        self._started = False
        self._accepting = False
        self._stopping = False
        self._connected = False
        self._sink_up = False
        self._spool_problem: str | None = None
        self._started_at = time.monotonic()
        self._corrupt_seen = 0
        self._last_drop_log: dict[str, float] = {}
        self._totals = {"rows_written": 0, "batches_written": 0, "rows_replayed": 0, "dropped": 0}
        self._tasks: list[asyncio.Task[None]] = []
        self._send_lock = asyncio.Lock()
        self._replay_lock = asyncio.Lock()
        self._wake_flush = asyncio.Event()
        self._wake_spill = asyncio.Event()
        self._wake_replay = asyncio.Event()
        self._spill_idle = asyncio.Event()
        self._spill_idle.set()
        self._stop_event = asyncio.Event()
        self.metrics.bind(self._in_memory, lambda: self.spool.bytes, lambda: self.spool.records)
        if isinstance(self.store, ChdbStore):
            self.metrics.engine_starts.set_function(lambda: self.store.engine_starts)  # type: ignore[attr-defined]
        self.metrics.sink_up.set(0)
        self.metrics.ready.set(0)

    # -- public API -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool, connect (+ migrate) if the sink answers, start the background tasks; never fails on a down sink."""
        if self._started:
            return
        self._started = self._accepting = True
        try:
            await self._in_spool_thread(self.spool.open)
        except SpoolError as e:
            self._spool_failed("spool_unwritable", e)
        await self._connect()
        loop_tasks: list[Callable[[], Awaitable[None]]] = [self._flush_loop, self._spill_loop, self._replay_loop]
        if self._heartbeat_s > 0:
            loop_tasks.append(self._heartbeat_loop)
        self._tasks = [asyncio.create_task(f(), name=f"seamline-record-{f.__name__}") for f in loop_tasks]
        if self.spool.records:
            self._wake_replay.set()
        self._update_ready()

    def submit(self, event: dict[str, Any]) -> None:
        """Queue one event; never blocks, never raises (overflow spills to the spool, failures are counted)."""
        try:
            row = encode_event(event)
        except Exception as e:  # isolate the request path from any recording bug
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
            self._rows.append(row)
            self._ids.append(event_id)
            if self._buf_since is None:
                self._buf_since = self._clock()
                self._wake_flush.set()  # the flusher idles without a deadline: start this buffer's timer
            if len(self._rows) >= self.storage.batch_size:
                self._seal()
                self._wake_flush.set()
            if self._in_memory() >= self.storage.queue_size:
                self._overflow()
        except Exception as e:  # isolate the request path from any recording bug
            self._drop(1, "invalid_event")
            log.error("event not recorded", extra={"error": f"{type(e).__name__}: {e}"[:300]})

    async def flush(self, timeout: float = 10.0) -> bool:
        """Write everything held in memory to the sink (or the spool); True when nothing is left in memory."""
        try:
            await asyncio.wait_for(self._drain_memory(), timeout)
        except TimeoutError:
            return False
        return not self._rows and not self._ready and not self._spill

    async def poll(self) -> None:
        """One flusher step: seal the buffer if it is full or older than flush_interval_ms, then send ready batches."""
        self._seal_if_due()
        await self._send_ready()

    async def replay_now(self) -> bool:
        """Drain the spool into the sink now, in order; True when the spool is empty and the sink took everything."""
        async with self._replay_lock:
            if not await self._connect():
                return False
            if not await self.store.ping():
                self._set_sink(False, "ping failed")
                return False
            # sink_up turns true on a successful insert, or here when there is nothing to replay.
            while True:
                try:
                    batch = await self._in_spool_thread(self.spool.peek)
                except SpoolError as e:
                    self._spool_failed("spool_unreadable", e)
                    return False
                finally:
                    self._count_corrupt()
                self._clear_spool_problem("spool_unreadable")
                if batch is None:
                    self._set_sink(True)
                    self._wake_flush.set()
                    self._clear_spool_problem("spool_full")  # empty now: room for the next batch
                    return True
                if not await self._insert(batch.token, batch.payload, batch.rows, path="replay"):
                    return False
                # Counted as soon as ClickHouse has the rows (before the ack), so metrics never lag the table.
                self.metrics.replayed_rows.inc(batch.rows)
                self.metrics.replayed_batches.inc()
                self._totals["rows_replayed"] += batch.rows
                try:
                    await self._in_spool_thread(self.spool.ack)
                except SpoolError as e:  # the batch is in ClickHouse; a re-send is deduplicated
                    self._spool_failed("spool_unwritable", e)
                    return False
                self._clear_spool_problem("spool_full")

    async def heartbeat(self) -> bool:
        """Write one row into seamline_health; True on success."""
        h = self.health()
        row = [
            datetime.now(UTC), self.instance, __version__, self.store.kind, h["ready"], h["sink_up"], h["reasons"],
            h["queue_depth"], self.spool.bytes, self.spool.records, self._totals["rows_written"],
            self._totals["batches_written"], self._totals["rows_replayed"], self._totals["dropped"],
            self.spool.corrupt, time.monotonic() - self._started_at,
        ]  # fmt: skip
        try:
            await asyncio.wait_for(self.store.insert("seamline_health", [row], HEALTH_COLUMNS), self._write_timeout)
        except Exception as e:
            self.metrics.heartbeats.labels("error").inc()
            log.debug("heartbeat not written", extra={"error": type(e).__name__})
            return False
        self.metrics.heartbeats.labels("ok").inc()
        return True

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, flush to the sink within half the timeout, spool the rest, join threads, close."""
        if not self._started or self._stopping:
            return
        self._accepting = False
        self._stopping = True
        self._stop_event.set()
        for ev in (self._wake_flush, self._wake_spill, self._wake_replay):
            ev.set()
        deadline = time.monotonic() + timeout
        for t in self._tasks:
            if t.get_name().endswith(("_replay_loop", "_heartbeat_loop")):
                t.cancel()
        if not await self.flush(timeout / 2):
            # A hung insert goes back to the queue (cancelled in flight, it may have landed: spooled as sent).
            for t in self._tasks:
                if t.get_name().endswith("_flush_loop"):
                    t.cancel()
                    await asyncio.gather(t, return_exceptions=True)
            self._seal()
            self._to_spill_all("shutdown")
        try:
            await asyncio.wait_for(self._spill_drained(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            log.error("shutdown timed out; events in memory are lost", extra={"rows": self._spill_rows})
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._in_spool_thread(self.spool.close)
        await asyncio.get_running_loop().run_in_executor(None, self._spool_exec.shutdown, True)
        if self._own_store:
            await self.store.close()
        self._started = False
        self._update_ready()
        log.info("recorder stopped", extra={"spool_records": self.spool.records, **self._totals})

    def health(self) -> dict[str, Any]:
        """Readiness for /readyz: ready is False when the spool is full/unwritable or the recorder is not running."""
        reasons: list[str] = []
        if not self._started:
            reasons.append("stopped" if self._stopping else "not_started")
        if self._spool_problem:
            reasons.append(self._spool_problem)
        ready = not reasons
        if not self._sink_up:
            reasons.append("sink_down")  # degraded, not unready: batches are safe in the spool
        return {
            "ready": ready,
            "sink_up": self._sink_up,
            "reasons": reasons,
            "queue_depth": self._in_memory(),
            "spool_records": self.spool.records,
            "spool_bytes": self.spool.bytes,
            "dropped": self._totals["dropped"],
        }

    # -- batching ---------------------------------------------------------------------------------------------------

    def _seal(self) -> None:
        if not self._rows:
            return
        batch = seal(self._rows, self._ids)
        self._rows, self._ids, self._buf_since = [], [], None
        self._ready.append(batch)
        self._ready_rows += batch.rows

    def _seal_if_due(self) -> None:
        if self._buf_since is not None and (self._clock() - self._buf_since) * 1000 >= self.storage.flush_interval_ms:
            self._seal()

    def _overflow(self) -> None:
        """Memory is full: move every sealed batch to the spool (not dropped)."""
        self._seal()
        self._to_spill_all("overflow")

    def _to_spill_all(self, reason: str) -> None:
        while self._ready:
            batch = self._ready.popleft()
            self._ready_rows -= batch.rows
            self._to_spill(batch, reason)

    def _to_spill(self, batch: Batch, reason: str) -> None:
        # Batches waiting for the spool thread are bounded too (a burst can outrun the disk within one loop tick).
        if self._spill_rows + batch.rows > 2 * self.storage.queue_size:
            self._drop(batch.rows, "spool_backlog")
            return
        self._spill.append((batch, reason))
        self._spill_rows += batch.rows
        self._spill_idle.clear()
        self._wake_spill.set()

    async def _drain_memory(self) -> None:
        self._seal()
        await self._send_ready()
        await self._spill_drained()

    async def _spill_drained(self) -> None:
        while self._spill:
            self._wake_spill.set()
            await self._spill_idle.wait()

    # -- sink -------------------------------------------------------------------------------------------------------

    async def _send_ready(self) -> None:
        async with self._send_lock:
            while self._ready:
                if not self._sink_up:  # known down: to the spool as sealed, the replayer probes the sink
                    self._to_spill_all("sink_down")
                    self._wake_replay.set()
                    return
                batch = self._take_ready()
                self._inflight_rows = batch.rows
                try:
                    ok = await self._insert(batch.token, batch.payload, batch.rows, path="direct")
                except BaseException:  # cancelled (stop, flush timeout): back to the front, to be re-sent exactly so
                    self._ready.appendleft(batch)
                    self._ready_rows += batch.rows
                    self._resend_alone = batch  # it may have landed: only the same token is deduplicated
                    raise
                finally:
                    self._inflight_rows = 0
                if not ok:
                    # Spooled as sent (same token): replaying an insert that did land is deduplicated.
                    self._to_spill(batch, "sink_down")
                    self._to_spill_all("sink_down")
                    self._wake_replay.set()
                    return

    def _in_memory(self) -> int:
        """Rows held in memory: buffered, sealed and queued, or being inserted."""
        return len(self._rows) + self._ready_rows + self._inflight_rows

    def _take_ready(self) -> Batch:
        """The next insert: the oldest sealed batch, plus those queued behind it that fit in max_insert_bytes.

        Group commit: under load, batches pile up while an insert runs, and one larger insert makes one larger part
        (measured on chdb: 38-41 µs of engine CPU per row with 2,000-row inserts, 24-25 µs with 10,000, 18 µs with
        20,000, most of the difference being background merges; docs/benchmarks.md). The batch is taken off the
        queue while it is in flight, so an overflow meanwhile spills only what is still queued.
        """
        first = self._ready.popleft()
        parts = [first]
        if first is self._resend_alone:  # re-sent exactly as it went before
            self._resend_alone = None
        else:
            size = len(first.payload)
            while self._ready and size + len(self._ready[0].payload) <= self._max_insert:
                size += len(self._ready[0].payload)
                parts.append(self._ready.popleft())
        batch = coalesce(parts)
        self._ready_rows -= batch.rows
        return batch

    async def _insert(self, token: str, payload: bytes, rows: int, *, path: str) -> bool:
        settings = {**INSERT_SETTINGS, "insert_deduplication_token": token}
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(self.store.insert_json(TABLE, payload, settings), self._write_timeout)
        except Exception as e:
            self.metrics.write_errors.inc()
            self._set_sink(False, f"{type(e).__name__}: {e}"[:300])
            return False
        self.metrics.write_seconds.observe(time.perf_counter() - t0)
        self.metrics.batches_written.labels(path).inc()
        self.metrics.rows_written.labels(path).inc(rows)
        self._totals["rows_written"] += rows
        self._totals["batches_written"] += 1
        self._set_sink(True)
        return True

    async def _connect(self) -> bool:
        """Open the store and apply migrations once; False (sink down) on failure."""
        if self._connected:
            return True
        try:
            await asyncio.wait_for(self.store.open(), self._write_timeout)
            if self._migrate:
                s = self.storage
                await migrate(
                    self.store, self.store.database, ttl_days=s.ttl_days, body_ttl_days=s.body_ttl_days, cluster=s.cluster
                )
        except Exception as e:
            self._set_sink(False, f"{type(e).__name__}: {e}"[:300])
            return False
        self._connected = True
        self._set_sink(True)
        return True

    def _set_sink(self, up: bool, error: str | None = None) -> None:
        if up != self._sink_up:
            if up:
                log.info("clickhouse sink up", extra={"store": self.store.kind})
            else:
                log.warning("clickhouse sink down; batches go to the spool", extra={"store": self.store.kind, "error": error})
        self._sink_up = up
        self.metrics.sink_up.set(1 if up else 0)

    # -- spool ------------------------------------------------------------------------------------------------------

    async def _in_spool_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._spool_exec, fn)

    async def _write_spill(self, batch: Batch, reason: str) -> None:
        try:
            await self._in_spool_thread(lambda: self.spool.append(SpoolBatch(batch.token, batch.rows, batch.payload)))
        except SpoolFull as e:
            self._drop(batch.rows, "spool_full")
            self._spool_failed("spool_full", e)
            return
        except SpoolError as e:
            self._drop(batch.rows, "spool_unwritable")
            self._spool_failed("spool_unwritable", e)
            return
        self.metrics.spooled_batches.labels(reason).inc()
        # "spool_full" is sticky until a replay makes room: a small batch that still fits must not
        # flip readiness back to green while bigger ones are being dropped.
        if self._spool_problem and self._spool_problem != "spool_full":
            self._clear_spool_problem(self._spool_problem)
        self._wake_replay.set()

    def _spool_failed(self, problem: str, e: Exception) -> None:
        if self._spool_problem != problem:
            log.error("spool cannot take batches; events are being dropped", extra={"problem": problem, "error": str(e)[:300]})
        self._spool_problem = problem
        self._update_ready()

    def _clear_spool_problem(self, problem: str) -> None:
        if self._spool_problem == problem:
            log.info("spool healthy again", extra={"was": problem})
            self._spool_problem = None
            self._update_ready()

    def _count_corrupt(self) -> None:
        n = self.spool.corrupt - self._corrupt_seen
        if n > 0:
            self.metrics.spool_corrupt.inc(n)
            self._corrupt_seen = self.spool.corrupt

    def _drop(self, rows: int, reason: str) -> None:
        self.metrics.dropped.labels(reason).inc(rows)
        self._totals["dropped"] += rows
        now = time.monotonic()
        if now - self._last_drop_log.get(reason, -1e9) >= 1.0:  # loud, but at most once a second per reason
            self._last_drop_log[reason] = now
            log.error("events dropped", extra={"rows": rows, "reason": reason, "dropped_total": self._totals["dropped"]})

    def _update_ready(self) -> None:
        self.metrics.ready.set(1 if self.health()["ready"] else 0)

    # -- background loops -------------------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        interval = self.storage.flush_interval_ms / 1000
        while not self._stopping:
            timeout = None
            if self._buf_since is not None:
                timeout = max(0.001, interval - (self._clock() - self._buf_since))
            try:
                await asyncio.wait_for(self._wake_flush.wait(), timeout)
            except TimeoutError:
                pass
            self._wake_flush.clear()
            await self.poll()

    async def _spill_loop(self) -> None:
        while True:
            while self._spill:
                batch, reason = self._spill[0]
                await self._write_spill(batch, reason)
                self._spill.popleft()
                self._spill_rows -= batch.rows
            self._spill_idle.set()
            self._wake_spill.clear()
            await self._wake_spill.wait()

    async def _replay_loop(self) -> None:
        base, cap = self._backoff
        delay = base
        while not self._stopping:
            if self._sink_up and self._connected and not self.spool.records:
                self._wake_replay.clear()
                await self._wake_replay.wait()
                continue
            if await self.replay_now():
                delay = base
                continue
            wait = random.uniform(delay / 2, delay)  # full jitter on the upper half: no thundering herd
            self._wake_replay.clear()
            try:
                await asyncio.wait_for(self._stop_event.wait(), wait)
            except TimeoutError:
                pass
            delay = min(delay * 2, cap)

    async def _heartbeat_loop(self) -> None:
        while not self._stopping:
            await self.heartbeat()
            if self._spool_problem == "spool_unwritable":
                await self._probe_spool()
            try:
                await asyncio.wait_for(self._stop_event.wait(), self._heartbeat_s)
            except TimeoutError:
                pass

    async def _probe_spool(self) -> None:
        try:
            await self._in_spool_thread(self.spool.open)
        except SpoolError:
            return
        self._clear_spool_problem("spool_unwritable")


async def build_recorder(storage: Storage, registry: CollectorRegistry, instance: str, **options: Any) -> Recorder:
    """A started Recorder on the configured store (schema migrated when the sink answers; spooling until then)."""
    def opener() -> Store:
        return open_store(storage.clickhouse_url, storage.database, engine=storage.embedded_engine, cpus=storage.embedded_cpus)

    recorder = Recorder(storage, opener, registry, instance, **options)
    await recorder.start()
    return recorder
