"""The spool as the event loop uses it: one owned thread for every spool call, the spool's health for readiness,
and the spill queue (batches on their way to the spool).

Batches the sink refused, and those an overflow or a shutdown moves out of memory, wait in the spill queue until
the spool thread has appended them (fsynced per the spool's policy). That queue is bounded too (twice queue_size
rows): a burst can outrun the disk within one loop tick. A batch the spool cannot take (full, unwritable, or the
queue over its bound) is dropped, counted and logged; it is never silently kept in memory.

Health is one problem at a time, reported by readiness: "spool_full" (sticky until a replay makes room, so a small
batch that still fits does not turn readiness green while bigger ones are dropped), "spool_unwritable" and
"spool_unreadable" (cleared by the next write or read that succeeds).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from seamline.record.metrics import Drops, RecordMetrics
from seamline.record.rows import Batch
from seamline.record.spool import Spool, SpoolError, SpoolFull

log = logging.getLogger("seamline.record")

T = TypeVar("T")


class ThreadedSpool:
    """A Spool whose blocking calls run on one thread it owns (started lazily, joined by `close`), and its health."""

    def __init__(self, spool: Spool, metrics: RecordMetrics) -> None:
        self.spool = spool
        self.problem: str | None = None  # "spool_full" | "spool_unwritable" | "spool_unreadable"
        self._metrics = metrics
        self._exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seamline-spool")
        self._corrupt_seen = 0

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on the spool thread."""
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn)

    def later(self, fn: Callable[[], object]) -> None:
        """`fn()` on the spool thread, after what is queued there, without waiting for it (it must not raise)."""
        self._exec.submit(fn)

    async def open(self) -> bool:
        """Open (or re-open) the spool; an unwritable directory becomes the "spool_unwritable" problem."""
        try:
            await self.run(self.spool.open)
        except SpoolError as e:
            self.failed("spool_unwritable", e)
            return False
        self.clear("spool_unwritable")
        return True

    async def retry_if_unwritable(self) -> None:
        """Re-open an unwritable spool (the directory may be back); a no-op otherwise."""
        if self.problem == "spool_unwritable":
            await self.open()

    async def close(self) -> None:
        """Close the spool and join its thread (without blocking the loop)."""
        await self.run(self.spool.close)
        await asyncio.get_running_loop().run_in_executor(None, self._exec.shutdown, True)

    def failed(self, problem: str, e: Exception) -> None:
        if self.problem != problem:
            log.error("spool cannot take batches; events are being dropped", extra={"problem": problem, "error": str(e)[:300]})
        self.problem = problem

    def clear(self, problem: str) -> None:
        """The spool is healthy again as far as `problem` goes."""
        if self.problem == problem:
            log.info("spool healthy again", extra={"was": problem})
            self.problem = None

    def count_corrupt(self) -> None:
        """Move the spool's count of skipped corrupt records into the metric."""
        n = self.spool.corrupt - self._corrupt_seen
        if n > 0:
            self._metrics.spool_corrupt.inc(n)
            self._corrupt_seen = self.spool.corrupt


class Spill:
    """The bounded queue of batches waiting for the spool thread, and the task that appends them in order."""

    def __init__(
        self, spool: ThreadedSpool, metrics: RecordMetrics, drops: Drops, *, max_rows: int, on_spooled: Callable[[], None]
    ) -> None:
        self._spool = spool
        self._metrics = metrics
        self._drops = drops
        self.max_rows = max_rows
        self._on_spooled = on_spooled  # a batch reached the spool: the replayer has work
        self._queue: deque[tuple[Batch, str]] = deque()
        self.rows = 0  # rows queued here, not yet in the spool
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def empty(self) -> bool:
        return not self._queue

    def put(self, batch: Batch, reason: str) -> None:
        """Queue one batch for the spool, exactly as given (a refused insert keeps its token); `reason` labels the
        spooled-batches metric: sink_down, overflow, shutdown."""
        if self.rows + batch.rows > self.max_rows:
            self._drops(batch.rows, "spool_backlog")
            return
        self._queue.append((batch, reason))
        self.rows += batch.rows
        self._idle.clear()
        self._wake.set()

    def put_all(self, batches: list[Batch], reason: str) -> None:
        for batch in batches:
            self.put(batch, reason)

    async def drained(self) -> None:
        """Return once every queued batch was appended (or dropped)."""
        while self._queue:
            self._wake.set()
            await self._idle.wait()

    async def run(self) -> None:
        """Append queued batches in order, forever (cancelled by the Recorder's stop)."""
        while True:
            while self._queue:
                batch, reason = self._queue[0]
                await self._write(batch, reason)
                self._queue.popleft()
                self.rows -= batch.rows
            self._idle.set()
            self._wake.clear()
            await self._wake.wait()

    async def _write(self, batch: Batch, reason: str) -> None:
        try:
            await self._spool.run(lambda: self._spool.spool.append(batch))
        except SpoolFull as e:
            self._drops(batch.rows, "spool_full")
            self._spool.failed("spool_full", e)
            return
        except SpoolError as e:
            self._drops(batch.rows, "spool_unwritable")
            self._spool.failed("spool_unwritable", e)
            return
        self._metrics.spooled_batches.labels(reason).inc()
        self._metrics.spooled_rows.labels(reason).inc(batch.rows)
        if self._spool.problem and self._spool.problem != "spool_full":  # "spool_full" is sticky (module docstring)
            self._spool.clear(self._spool.problem)
        self._on_spooled()
