"""Replay: drain the spool into the sink, oldest batch first, once the sink answers; back off while it does not.

A batch is acknowledged (removed from the spool) only after ClickHouse took it, so a crash between the insert and
the ack re-sends it at the next start, and ClickHouse drops it by its dedup token. Order is kept: the next batch is
not read before the previous one is in. While the sink is down, attempts are spaced by exponential backoff with
jitter (`Backoff`), so a fleet of sidecars does not hammer a recovering ClickHouse in step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from seamline.record.metrics import RecordMetrics, Totals
from seamline.record.sink import Sink
from seamline.record.spill import ThreadedSpool
from seamline.record.spool import SpoolError


class Backoff:
    """Waits between failed attempts: drawn from the upper half of a delay that doubles from base up to cap."""

    def __init__(self, base_s: float, cap_s: float, *, uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._uniform = uniform
        self._delay = base_s

    def next(self) -> float:
        """The wait before the next attempt; each call doubles the delay (up to cap)."""
        wait = self._uniform(self._delay / 2, self._delay)  # jitter on the upper half: spread out, never near zero
        self._delay = min(self._delay * 2, self.cap_s)
        return wait

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits from base again."""
        self._delay = self.base_s


@dataclass(slots=True)
class Replayer:
    """Moves spooled batches into the sink, on demand (`replay_now`) or in the background (`run`)."""

    spool: ThreadedSpool
    sink: Sink
    metrics: RecordMetrics
    totals: Totals
    backoff: Backoff
    on_empty: Callable[[], None] = field(kw_only=True)  # the sink is up and the spool empty: memory can go direct again
    # The outcome of the direct insert of a batch still in flight whose write-ahead copy is in the spool, if it is.
    in_flight: Callable[[str], asyncio.Future[bool] | None] = field(default=lambda _token: None, kw_only=True)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def wake(self) -> None:
        """There may be batches to replay (one was spooled, or the sink was found down)."""
        self._wake.set()

    async def replay_now(self) -> bool:
        """Drain the spool into the sink now, in order; True when the spool is empty and the sink took everything."""
        async with self._lock:
            if not await self.sink.connect() or not await self.sink.ping():
                return False
            # sink_up turns true on a successful insert, or here when there is nothing to replay.
            spool = self.spool
            while True:
                try:
                    batch = await spool.run(spool.spool.peek)
                except SpoolError as e:
                    spool.failed("spool_unreadable", e)
                    return False
                finally:
                    spool.count_corrupt()
                spool.clear("spool_unreadable")
                if batch is None:
                    self.sink.mark(True)
                    self.on_empty()
                    spool.clear("spool_full")  # empty now: room for the next batch
                    return True
                acked = self.in_flight(batch.token)
                if acked is not None and await asyncio.shield(acked):
                    pass  # a write-ahead copy, and its own insert landed: skip it (sending it too would be deduplicated)
                elif not await self.sink.insert(batch, path="replay"):
                    return False
                else:
                    # Counted as soon as ClickHouse has the rows (before the ack), so metrics never lag the table.
                    self.metrics.replayed_rows.inc(batch.rows)
                    self.metrics.replayed_batches.inc()
                    self.totals.rows_replayed += batch.rows
                try:
                    await spool.run(spool.spool.ack)
                except SpoolError as e:  # the batch is in ClickHouse; a re-send is deduplicated
                    spool.failed("spool_unwritable", e)
                    return False
                spool.clear("spool_full")

    async def run(self) -> None:
        """Replay whenever woken and the spool has batches or the sink is not known up; forever (cancelled by stop)."""
        while True:
            if self.sink.up and self.sink.connected and not self.spool.spool.records:
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self.replay_now():
                self.backoff.reset()
                continue
            self._wake.clear()  # a batch spooled during the wait does not cut it short: the sink is still down
            await asyncio.sleep(self.backoff.next())
