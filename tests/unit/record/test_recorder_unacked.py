"""storage.max_unacked_ms: what the sink has not acknowledged in time is written ahead to the spool, the
oldest-unacked gauge shows it, /readyz turns degraded, and nothing is stored twice once the sink answers again."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from support.chhttp import adapter
from support.recording import FakeClock, counts, make_event
from support.waiting import wait_for

from seamline.read.admin import create_admin_app


async def readyz(rec) -> tuple[int, dict]:
    runner = web.AppRunner(create_admin_app(CollectorRegistry(), rec.health))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status, await r.json()
    finally:
        await runner.cleanup()


async def test_a_stalled_sink_has_its_events_written_ahead_gauged_and_readyz_degraded(adapter, storage, recorders, db) -> None:
    store, name = db
    clock = FakeClock()
    reg = CollectorRegistry()
    cfg = storage(
        clickhouse_url=f"{adapter.url}/{name}", batch_size=10, flush_interval_ms=100, max_unacked_ms=1000,
        unacked_degraded_after="2s",
    )  # fmt: skip
    rec = recorders(cfg, clock=clock, registry=reg)
    await rec.start()
    gauge = "seamline_record_oldest_unacked_seconds"
    assert reg.get_sample_value(gauge) == 0
    adapter.stall()  # ClickHouse stops answering, as a frozen engine does: the sink still looks up
    for _ in range(10):
        rec.submit(make_event())  # one sealed batch: the flusher sends it, and its insert hangs
    await wait_for(lambda: adapter.waiting == 1, 10, what="the insert to reach the stalled ClickHouse")
    clock.advance(0.5)
    assert reg.get_sample_value(gauge) == pytest.approx(0.5)
    rec.write_ahead_due()
    assert rec.spool.records == 0  # within max_unacked_ms: memory only, as on the normal path

    clock.advance(0.7)  # past max_unacked_ms + flush_interval_ms, unacknowledged: a copy goes to the spool, the insert goes on
    rec.write_ahead_due()
    await wait_for(lambda: rec.spool.records == 1, 10, what="the batch in flight written ahead")
    for _ in range(5):
        rec.submit(make_event())  # behind the hung insert
    clock.advance(1.1)
    rec.write_ahead_due()  # the buffer is 1.1 s old: moved to the spool (the sink is busy with the hung insert)
    await wait_for(lambda: rec.spool.records == 2, 10, what="the waiting buffer moved to the spool")
    assert rec.batcher.in_memory == 10  # only the batch in flight, also spooled: a SIGKILL now loses nothing

    assert reg.get_sample_value(gauge) == pytest.approx(2.3)  # the sink looks up, the queue is short: this is the signal
    status, body = await readyz(rec)
    assert status == 200 and body["ready"] is True and body["sink_up"] is True  # degraded, not unready
    assert body["degraded"] is True and body["reasons"] == ["unacked_too_long"] and body["oldest_unacked_s"] == pytest.approx(2.3)
    assert reg.get_sample_value("seamline_record_spooled_batches_total", {"reason": "unacked"}) == 2

    adapter.resume()  # the hung insert lands: its spooled copy is skipped, the moved buffer is replayed
    assert await rec.flush(10)
    await wait_for(rec.replay_now, 20, what="the spool to drain into the sink")
    assert await counts(store, name) == (15, 15)  # nothing twice
    assert reg.get_sample_value("seamline_record_replayed_rows_total") == 5  # the copy was skipped, not re-sent
    assert rec.spool.records == 0 and reg.get_sample_value(gauge) == 0
    status, body = await readyz(rec)
    assert status == 200 and body["degraded"] is False and body["reasons"] == []


async def test_a_healthy_sink_keeps_the_spool_off_the_normal_path(storage, recorders, db) -> None:
    """Acknowledged within max_unacked_ms: nothing is written ahead, the gauge goes back to 0."""
    reg = CollectorRegistry()
    rec = recorders(storage(batch_size=10, flush_interval_ms=50), registry=reg)
    await rec.start()
    for _ in range(35):
        rec.submit(make_event())
    assert await rec.flush(10)
    assert await counts(*db) == (35, 35)
    assert reg.get_sample_value("seamline_record_spooled_batches_total", {"reason": "unacked"}) is None
    assert rec.spool.records == 0 and reg.get_sample_value("seamline_record_oldest_unacked_seconds") == 0
