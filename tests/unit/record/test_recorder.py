"""The Recorder on the real chdb engine: batching by size and time, spool on failure, replay without duplicates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from support.chhttp import adapter
from support.clock import now_us
from support.recording import FakeClock, counts, make_event
from support.waiting import wait_for

from seamline.read.admin import create_admin_app
from seamline.record.recorder import Recorder
from seamline.record.rows import encode_event, seal
from seamline.record.schema import migrate
from seamline.record.spool import Spool
from seamline.record.store import open_store


async def test_batches_by_size(storage, recorders, db) -> None:
    clock = FakeClock()
    reg = CollectorRegistry()
    rec = recorders(storage(batch_size=10, flush_interval_ms=3_600_000, max_insert_bytes=0), clock=clock, registry=reg)
    await rec.start()
    for _ in range(25):
        rec.submit(make_event())
    await rec.poll()
    assert await counts(*db) == (20, 20)
    assert reg.get_sample_value("seamline_record_batches_written_total", {"path": "direct"}) == 2
    assert reg.get_sample_value("seamline_record_queue_depth") == 5
    clock.advance(3600)
    await rec.poll()
    assert await counts(*db) == (25, 25)


async def test_batches_queued_behind_an_insert_go_as_one(storage, recorders, db) -> None:
    """Group commit: sealed batches waiting for the sink are inserted together (one larger part), none lost."""
    store, name = db
    reg = CollectorRegistry()
    rec = recorders(storage(batch_size=10, flush_interval_ms=3_600_000), clock=FakeClock(), registry=reg)
    await rec.start()
    for _ in range(45):
        rec.submit(make_event())  # 4 batches sealed before the flusher gets a turn
    await rec.poll()
    assert await counts(store, name) == (40, 40)
    assert reg.get_sample_value("seamline_record_batches_written_total", {"path": "direct"}) == 1
    assert reg.get_sample_value("seamline_record_rows_written_total", {"path": "direct"}) == 40
    assert reg.get_sample_value("seamline_record_queue_depth") == 5
    parts = await store.query(
        f"SELECT count() AS n FROM system.parts WHERE database = '{name}' AND table = 'handoffs' AND active"
    )
    assert parts[0]["n"] == 1


async def test_batches_by_time(storage, recorders, db) -> None:
    clock = FakeClock()
    rec = recorders(storage(batch_size=1000, flush_interval_ms=500), clock=clock)
    await rec.start()
    for _ in range(3):
        rec.submit(make_event())
    await rec.poll()
    assert await counts(*db) == (0, 0)
    clock.advance(0.5)
    await rec.poll()
    assert await counts(*db) == (3, 3)


async def test_event_fields_round_trip(storage, recorders, db) -> None:
    rec = recorders(storage())
    await rec.start()
    ts = now_us()  # inside the body TTL, which would empty the bodies and headers of an older row
    ev = make_event(
        "run-rt", status=201, duration_ms=12.5, request_body='{"a":1}', request_headers={"content-type": "application/json"},
        violations=["schema:/a:type"], external_ids={"charge_id": "ch_1"}, request_truncated=True, ts=ts,
    )  # fmt: skip
    rec.submit(ev)
    assert await rec.flush(30)
    store, name = db
    [row] = await store.query(
        f"SELECT toString(event_id) AS id, toUnixTimestamp64Micro(ts) AS us, status, duration_ms, request_body, request_headers, "
        f"violations, external_ids, request_truncated, error_class FROM `{name}`.handoffs"
    )
    assert row == {
        "id": ev["event_id"], "us": ts, "status": 201, "duration_ms": 12.5, "request_body": '{"a":1}',
        "request_headers": {"content-type": "application/json"}, "violations": ["schema:/a:type"],
        "external_ids": {"charge_id": "ch_1"}, "request_truncated": True, "error_class": "none",
    }  # fmt: skip


async def test_sink_failure_spools_then_replays_without_loss(storage, recorders, db, tmp_path: Path) -> None:
    store, name = db
    reg = CollectorRegistry()
    # No schema yet: every insert fails on the real engine (unknown table), so batches must go to the spool.
    rec = recorders(storage(batch_size=10), migrate_schema=False, registry=reg)
    await rec.start()
    for _ in range(35):
        rec.submit(make_event())
    assert await rec.flush(30)
    assert not rec.health()["sink_up"]
    assert rec.spool.records == 1  # the failed insert (4 batches, coalesced) is spooled as it was sent
    assert reg.get_sample_value("seamline_record_spooled_batches_total", {"reason": "sink_down"}) == 1
    for _ in range(12):  # the sink is known down now: batches go to the spool as sealed
        rec.submit(make_event())
    assert await rec.flush(30)
    assert rec.spool.records == 3
    await migrate(store, name)
    assert await rec.replay_now()
    assert await counts(store, name) == (47, 47)
    assert rec.spool.records == 0
    assert reg.get_sample_value("seamline_record_replayed_rows_total") == 47
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "spool_full"}) is None


async def test_replayed_batch_is_not_duplicated(storage, recorders, db, tmp_path: Path) -> None:
    store, name = db
    events = [make_event() for _ in range(50)]
    batch = seal([encode_event(e) for e in events], [e["event_id"] for e in events])
    cfg = storage()
    # The batch reached ClickHouse but its ack was lost, so it also sits in the spool: replay must not duplicate it.
    spool = Spool(cfg.spool_dir, cfg.spool_max_bytes)
    spool.open()
    spool.append(batch)
    spool.append(batch)
    spool.close()
    rec = recorders(cfg)
    await rec.start()
    await rec.sink.insert(batch, path="direct")
    assert await rec.replay_now()
    assert await counts(store, name) == (50, 50)
    rollup = await store.query(f"SELECT sum(calls) AS c FROM `{name}`.handoffs_1m")
    assert rollup[0]["c"] == 50  # the materialized view is deduplicated too


class LostAck:
    """A store whose next insert lands in ClickHouse, then reports a failure (the reply was lost)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lose_next = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_json(self, table: str, payload: bytes, settings: Any = None) -> None:
        await self.inner.insert_json(table, payload, settings)
        if self.lose_next:
            self.lose_next = False
            raise ConnectionResetError("reply lost after the insert")


async def test_coalesced_insert_whose_ack_is_lost_is_replayed_once(storage, db) -> None:
    store, name = db
    cfg = storage(batch_size=10, flush_interval_ms=3_600_000)
    reg = CollectorRegistry()
    rec = Recorder(cfg, LostAck(open_store(cfg.clickhouse_url, cfg.database)), reg, "test-1", heartbeat_interval_s=0)  # type: ignore[arg-type]
    try:
        await rec.start()
        for _ in range(30):
            rec.submit(make_event())
        assert await rec.flush(30)
        assert rec.spool.records == 1 and await counts(store, name) == (30, 30)  # landed, and spooled as sent
        assert await rec.replay_now()
        assert await counts(store, name) == (30, 30)  # its token was deduplicated
        assert rec.spool.records == 0
    finally:
        await rec.stop(5)


class Stalling(LostAck):
    """A store whose inserts land, then hang until released (a slow sink); records the tokens it was sent."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.release = asyncio.Event()
        self.landed = asyncio.Event()
        self.tokens: list[str] = []

    async def insert_json(self, table: str, payload: bytes, settings: Any = None) -> None:
        self.tokens.append(settings["insert_deduplication_token"])
        await self.inner.insert_json(table, payload, settings)
        self.landed.set()
        await self.release.wait()


async def test_stop_with_a_hung_insert_spools_it_as_sent(storage, db) -> None:
    """Shutdown while an insert hangs (it may have landed): nothing is lost, and its replay is deduplicated."""
    store, name = db
    cfg = storage(batch_size=10, flush_interval_ms=3_600_000)
    stalling = Stalling(open_store(cfg.clickhouse_url, cfg.database))
    rec = Recorder(cfg, stalling, CollectorRegistry(), "test-1", heartbeat_interval_s=0)  # type: ignore[arg-type]
    await rec.start()
    for _ in range(25):
        rec.submit(make_event())
    await asyncio.wait_for(stalling.landed.wait(), 10)  # the flusher's insert (20 rows, coalesced) landed and hangs
    await rec.stop(1)
    assert len(stalling.tokens) == 1 and await counts(store, name) == (20, 20)
    assert rec.spool.records == 2  # the hung insert as it was sent, and the 5 rows left in memory

    nxt = Recorder(cfg, open_store(cfg.clickhouse_url, cfg.database), CollectorRegistry(), "test-2", heartbeat_interval_s=0)
    try:
        await nxt.start()
        assert await nxt.replay_now()
        assert await counts(store, name) == (25, 25)
    finally:
        await nxt.stop(5)


async def test_overflow_spills_to_the_spool_instead_of_dropping(storage, recorders, db) -> None:
    store, name = db
    reg = CollectorRegistry()
    rec = recorders(storage(batch_size=100, queue_size=5, flush_interval_ms=3_600_000), clock=FakeClock(), registry=reg)
    await rec.start()
    for _ in range(12):
        rec.submit(make_event())
    assert await rec.flush(30)
    assert reg.get_sample_value("seamline_record_spooled_batches_total", {"reason": "overflow"}) == 2
    assert await rec.replay_now()
    assert await counts(store, name) == (12, 12)
    assert rec.health()["dropped"] == 0


async def test_submit_never_raises(storage, recorders, db) -> None:
    reg = CollectorRegistry()
    rec = recorders(storage(), registry=reg)
    await rec.start()
    rec.submit({"event_id": "x", "ts": 1, "attributes": {"bad": object()}})  # not JSON-serialisable
    rec.submit(None)  # type: ignore[arg-type]
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "invalid_event"}) == 2
    await rec.stop(5)
    rec.submit(make_event())
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "stopped"}) == 1


async def test_stop_flushes_everything(storage, recorders, db) -> None:
    store, name = db
    rec = recorders(storage(batch_size=7, flush_interval_ms=3_600_000), clock=FakeClock())
    await rec.start()
    for _ in range(30):
        rec.submit(make_event())
    await rec.stop(10)
    assert await counts(store, name) == (30, 30)
    assert not rec.health()["ready"]


async def test_heartbeat_row_is_written(storage, recorders, db) -> None:
    store, name = db
    rec = recorders(storage())
    await rec.start()
    assert await rec.heartbeat()
    [row] = await store.query(f"SELECT proxy_instance, ready, sink_up, store FROM `{name}`.seamline_health")
    assert row == {"proxy_instance": "test-1", "ready": True, "sink_up": True, "store": "chdb"}


async def test_health_reports_an_unwritable_spool(storage, recorders, db, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    rec = recorders(storage(spool_dir=str(blocker / "spool")))
    await rec.start()
    h = rec.health()
    assert h["ready"] is False and "spool_unwritable" in h["reasons"] and h["sink_up"] is True


# -- storage.max_unacked_ms: what the sink has not acknowledged in time is written ahead to the spool, the
# oldest-unacked gauge shows it, /readyz turns degraded, and nothing is stored twice once the sink answers again.
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
    assert await rec.flush(30)
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
    assert await rec.flush(30)
    assert await counts(*db) == (35, 35)
    assert reg.get_sample_value("seamline_record_spooled_batches_total", {"reason": "unacked"}) is None
    assert rec.spool.records == 0 and reg.get_sample_value("seamline_record_oldest_unacked_seconds") == 0
