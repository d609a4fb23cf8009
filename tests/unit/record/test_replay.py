"""Replay: the backoff schedule, and draining the spool in order into the real engine, stopping at a refusal."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from support.recording import counts, make_event

from seamline.record.metrics import RecordMetrics, Totals
from seamline.record.replay import Backoff, Replayer
from seamline.record.rows import Batch, encode_event, seal
from seamline.record.schema import migrate
from seamline.record.sink import Sink
from seamline.record.spill import ThreadedSpool
from seamline.record.spool import Spool


def upper(lo: float, hi: float) -> float:
    return hi


def lower(lo: float, hi: float) -> float:
    return lo


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    b = Backoff(0.5, 4.0, uniform=upper)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5


def test_backoff_jitter_stays_in_the_upper_half_of_the_delay() -> None:
    assert [Backoff(0.5, 4.0, uniform=lower).next() for _ in range(2)] == [0.25, 0.25]
    b = Backoff(0.5, 4.0, uniform=random.Random(7).uniform)
    for delay in (0.5, 1.0, 2.0, 4.0, 4.0):
        assert delay / 2 <= b.next() <= delay


class RefusesOnce:
    """A real store whose `refuse_at`-th insert (1-based) fails before reaching ClickHouse."""

    def __init__(self, inner: Any, refuse_at: int) -> None:
        self.inner = inner
        self.refuse_at = refuse_at
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_json(self, table: str, payload: bytes, settings: Any = None) -> None:
        self.calls += 1
        if self.calls == self.refuse_at:
            raise ConnectionResetError("refused")
        await self.inner.insert_json(table, payload, settings)


def spooled(directory: Path, n: int) -> tuple[Spool, list[Batch]]:
    spool = Spool(directory, 64 << 20)
    spool.open()
    batches = []
    for _ in range(n):
        events = [make_event() for _ in range(3)]
        batches.append(seal([encode_event(e) for e in events], [e["event_id"] for e in events]))
        spool.append(batches[-1])
    return spool, batches


async def test_replay_keeps_order_and_stops_at_the_first_refusal(storage, db, tmp_path: Path) -> None:
    store, name = db
    await migrate(store, name)
    spool, batches = spooled(tmp_path / "spool", 3)
    metrics, totals = RecordMetrics(CollectorRegistry()), Totals()
    threaded = ThreadedSpool(spool, metrics)
    emptied: list[bool] = []
    sink = Sink(RefusesOnce(store, refuse_at=2), storage(), metrics, totals, migrate_schema=False)  # type: ignore[arg-type]
    replayer = Replayer(threaded, sink, metrics, totals, Backoff(0.01, 0.05), on_empty=lambda: emptied.append(True))
    try:
        assert not await replayer.replay_now()
        assert await counts(store, name) == (3, 3) and not sink.up and not emptied
        assert spool.records == 2 and spool.peek() == batches[1]  # the refused batch is next, not skipped
        assert await replayer.replay_now()
        assert await counts(store, name) == (9, 9) and spool.records == 0 and sink.up and emptied == [True]
        assert totals.rows_replayed == 9
    finally:
        await threaded.close()


async def test_the_background_replayer_drains_a_spool_found_at_start(storage, db, tmp_path: Path) -> None:
    store, name = db
    await migrate(store, name)
    spool, _ = spooled(tmp_path / "spool", 2)
    metrics, totals = RecordMetrics(CollectorRegistry()), Totals()
    threaded = ThreadedSpool(spool, metrics)
    drained = asyncio.Event()
    sink = Sink(store, storage(), metrics, totals)
    replayer = Replayer(threaded, sink, metrics, totals, Backoff(0.01, 0.05), on_empty=drained.set)
    task = asyncio.create_task(replayer.run())
    try:
        replayer.wake()
        await asyncio.wait_for(drained.wait(), 10)
        assert await counts(store, name) == (6, 6) and spool.records == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await threaded.close()
