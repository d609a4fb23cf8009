"""The spill queue and the spool's health: bounded, in order, loud drops, and which problems clear themselves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from seamline.record.metrics import Drops, RecordMetrics, Totals
from seamline.record.rows import Batch
from seamline.record.spill import Spill, ThreadedSpool
from seamline.record.spool import Spool


def batch(n: int, rows: int = 1, size: int = 50) -> Batch:
    return Batch(f"tok-{n}", rows, b"[" + b"x" * size + b"]")


@dataclass
class Rig:
    registry: CollectorRegistry
    totals: Totals
    spool: ThreadedSpool
    spill: Spill
    spooled: list[int] = field(default_factory=list)

    def dropped(self, reason: str) -> float | None:
        return self.registry.get_sample_value("seamline_record_dropped_total", {"reason": reason})


async def rig(directory: Path, *, max_bytes: int = 1 << 20, max_rows: int = 100) -> AsyncIterator[Rig]:
    registry, totals = CollectorRegistry(), Totals()
    metrics = RecordMetrics(registry)
    threaded = ThreadedSpool(Spool(directory, max_bytes), metrics)
    spooled: list[int] = []
    spill = Spill(threaded, metrics, Drops(metrics, totals), max_rows=max_rows, on_spooled=lambda: spooled.append(1))
    await threaded.open()
    task = asyncio.create_task(spill.run())
    try:
        yield Rig(registry, totals, threaded, spill, spooled)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await threaded.close()


@pytest.fixture
async def spilling(tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in rig(tmp_path / "spool", max_bytes=1000, max_rows=10):
        yield r


async def test_batches_reach_the_spool_in_order_as_given(spilling: Rig) -> None:
    for i in range(3):
        spilling.spill.put(batch(i), "sink_down")
    await spilling.spill.drained()
    assert spilling.spill.empty and spilling.spill.rows == 0 and len(spilling.spooled) == 3
    spool = spilling.spool.spool
    got = []
    while (b := spool.peek()) is not None:
        got.append(b)
        spool.ack()
    assert got == [batch(0), batch(1), batch(2)]
    assert spilling.registry.get_sample_value("seamline_record_spooled_batches_total", {"reason": "sink_down"}) == 3
    rows = sum(b.rows for b in got)
    assert spilling.registry.get_sample_value("seamline_record_spooled_rows_total", {"reason": "sink_down"}) == rows


async def test_a_batch_beyond_the_queue_bound_is_dropped_and_counted(spilling: Rig) -> None:
    spilling.spill.put(batch(0, rows=6), "overflow")
    spilling.spill.put(batch(1, rows=5), "overflow")  # 11 rows waiting > max_rows 10
    assert spilling.spill.rows == 6
    assert spilling.dropped("spool_backlog") == 5 and spilling.totals.dropped == 5
    await spilling.spill.drained()
    assert spilling.spool.spool.records == 1


async def test_spool_full_stays_reported_while_smaller_batches_still_fit(spilling: Rig) -> None:
    spilling.spill.put(batch(0, size=600), "sink_down")
    spilling.spill.put(batch(1, size=600), "sink_down")  # over the 1000-byte cap
    await spilling.spill.drained()
    assert spilling.spool.problem == "spool_full" and spilling.dropped("spool_full") == 1
    spilling.spill.put(batch(2, size=50), "sink_down")
    await spilling.spill.drained()
    assert spilling.spool.spool.records == 2
    assert spilling.spool.problem == "spool_full"  # sticky until a replay makes room (Replayer clears it)


async def test_an_unwritable_spool_drops_loudly_and_recovers_when_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with caplog.at_level("ERROR", logger="seamline.record"):
        async for r in rig(blocker / "spool"):
            assert r.spool.problem == "spool_unwritable"
            r.spill.put(batch(0), "overflow")
            await r.spill.drained()
            assert r.dropped("spool_unwritable") == 1 and not r.spooled
            assert "spool cannot take batches" in caplog.text and "events dropped" in caplog.text
            blocker.unlink()  # the directory can be created now
            await r.spool.retry_if_unwritable()
            assert r.spool.problem is None
            r.spill.put(batch(1), "overflow")
            await r.spill.drained()
            assert r.spool.spool.records == 1 and r.spooled == [1]
