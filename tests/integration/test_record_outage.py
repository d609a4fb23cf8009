"""The HTTP path (clickhouse-connect async client → ClickHouse-HTTP adapter over chdb) under sink and spool faults."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry
from support.chhttp import ClickHouseHttpAdapter, adapter
from support.recording import counts, db, make_event
from support.waiting import wait_for

from seamline.config.models import Storage
from seamline.record.recorder import Recorder
from seamline.record.spool import Spool
from seamline.record.store import open_store


def http_storage(adapter: ClickHouseHttpAdapter, database: str, spool_dir: Path, **kw: object) -> Storage:
    return Storage(
        clickhouse_url=f"{adapter.url}/{database}", database="ignored", spool_dir=str(spool_dir), spool_max_bytes=64 << 20, **kw
    )  # type: ignore[arg-type]


def recorder(storage: Storage, registry: CollectorRegistry | None = None) -> Recorder:
    return Recorder(
        storage,
        lambda: open_store(storage.clickhouse_url, storage.database),
        registry or CollectorRegistry(),
        "it-1",
        heartbeat_interval_s=0,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        write_timeout_s=5,
    )


async def test_sink_down_under_sustained_submit_loses_and_duplicates_nothing(adapter, db, tmp_path: Path) -> None:
    store, name = db
    reg = CollectorRegistry()
    rec = recorder(http_storage(adapter, name, tmp_path / "spool", batch_size=50, flush_interval_ms=20), reg)
    await rec.start()
    total = 0
    try:
        for phase in ("up", "down", "up"):
            if phase == "down":
                await adapter.stop()
            elif total:
                await adapter.start()
            for _ in range(10):
                for _ in range(37):
                    rec.submit(make_event())
                    total += 1
                await rec.flush(5)
                await asyncio.sleep(0)  # a yield, not a wait: background tasks take turns, as between requests
            if phase == "down":
                assert not rec.health()["sink_up"]
                assert rec.spool.records > 0 and rec.health()["ready"]
        assert await rec.flush(5)
        await wait_for(rec.replay_now, 20, what="the spool to drain into the sink")
    finally:
        await rec.stop(10)
    assert await counts(store, name) == (total, total)
    assert reg.get_sample_value("seamline_record_replayed_rows_total") > 0
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "spool_full"}) is None


async def test_unwritable_spool_is_loud_and_submit_still_returns(adapter, db, tmp_path: Path, caplog) -> None:
    _store, name = db
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    reg = CollectorRegistry()
    rec = recorder(http_storage(adapter, name, blocker / "spool", batch_size=10), reg)
    await rec.start()
    await adapter.stop()
    with caplog.at_level(logging.ERROR, logger="seamline.record"):
        for _ in range(40):
            rec.submit(make_event())  # never raises
        await rec.flush(5)
    h = rec.health()
    assert h["ready"] is False and "spool_unwritable" in h["reasons"] and not h["sink_up"]
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "spool_unwritable"}) == 40
    assert reg.get_sample_value("seamline_record_ready") == 0
    assert "events dropped" in caplog.text and "spool cannot take batches" in caplog.text
    await adapter.start()
    await rec.stop(5)


async def test_full_spool_drops_counts_and_turns_unready(adapter, db, tmp_path: Path) -> None:
    store, name = db
    reg = CollectorRegistry()
    rec = recorder(http_storage(adapter, name, tmp_path / "spool", batch_size=20), reg)
    rec.spool.max_bytes = 100_000  # two batches of 20 rows of ~2.1 KB
    await rec.start()
    await adapter.stop()
    for _ in range(200):
        make = make_event(request_body="x" * 1024)
        rec.submit(make)
    await rec.flush(5)
    assert "spool_full" in rec.health()["reasons"]
    dropped = reg.get_sample_value("seamline_record_dropped_total", {"reason": "spool_full"})
    assert dropped and dropped > 0
    await adapter.start()
    await wait_for(rec.replay_now, 20, what="the spool to drain into the sink")
    assert rec.health()["ready"] is True, rec.health()
    await rec.stop(5)
    n, u = await counts(store, name)
    assert n == u == 200 - dropped


async def test_corrupt_spool_record_is_skipped_and_counted(adapter, db, tmp_path: Path) -> None:
    store, name = db
    spool_dir = tmp_path / "spool"
    reg = CollectorRegistry()
    # Batches spooled while the sink is down (one insert per batch: a failed insert is spooled as it was sent) …
    rec = recorder(http_storage(adapter, name, spool_dir, batch_size=10, max_insert_bytes=0), reg)
    await rec.start()
    await adapter.stop()
    for _ in range(30):
        rec.submit(make_event())
    await rec.stop(5)
    probe = Spool(spool_dir, 1 << 30)
    probe.open()
    assert probe.records == 3
    # … then one of them is damaged on disk.
    seg = sorted(spool_dir.glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    seg.write_bytes(bytes(data))
    await adapter.start()
    reg2 = CollectorRegistry()
    rec2 = recorder(http_storage(adapter, name, spool_dir, batch_size=10), reg2)
    await rec2.start()
    await wait_for(rec2.replay_now, 20, what="the spool to drain into the sink")
    await rec2.stop(5)
    assert await counts(store, name) == (20, 20)
    assert reg2.get_sample_value("seamline_record_spool_corrupt_records_total") == 1
