"""A really full disk under the spool (a 256 KiB tmpfs): loud, counted, traffic unaffected, recovers when the sink returns."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from conftest import proxy_config
from prometheus_client import CollectorRegistry
from support.chdb_path import chdb_url, unique_database
from support.chhttp import ClickHouseHttpAdapter
from support.recording import counts
from support.waiting import wait_for

from seamline.record.store import open_store


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev machines run as root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_disk_full_spool_is_loud_and_traffic_keeps_flowing(tiny_disk, upstream, make_sidecar, caplog):
    database = unique_database("diskfull")
    adapter = ClickHouseHttpAdapter()
    await adapter.start()
    await adapter.stop()  # ClickHouse is down: every batch must go to the (tiny) spool
    registry = CollectorRegistry()
    storage = {
        "enabled": True,
        "clickhouse_url": f"{adapter.url}/{database}",
        "spool_dir": str(tiny_disk / "spool"),
        "batch_size": 10,
        "flush_interval_ms": 10,
    }
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, storage=storage), registry=registry)
    body = {"pad": "x" * 4000}
    with caplog.at_level(logging.ERROR, logger="seamline.record"):
        async with aiohttp.ClientSession() as s:
            for i in range(120):  # ~120 × 8 KB rows: far more than 256 KiB
                async with s.post(sc.proxy_url + "/billing/v1/x", json=body, headers={"X-Run-ID": f"df-{i}"}) as r:
                    assert r.status == 200  # traffic is never refused for a recording problem
        await sc.recorder.flush(30)
    health = sc.recorder.health()
    assert health["ready"] is False and "spool_full" in health["reasons"], health
    dropped = registry.get_sample_value("seamline_record_dropped_total", {"reason": "spool_full"})
    assert dropped and dropped > 0
    assert "events dropped" in caplog.text
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.admin_url + "/readyz") as r:
            assert r.status == 503
    # ClickHouse comes back: the spool drains, the recorder is ready again, and what was spooled is stored once.
    await adapter.start()
    try:

        async def ready_again() -> bool:
            if sc.recorder.health()["ready"]:
                return True
            await sc.recorder.replay_now()
            return False

        await wait_for(ready_again, 30, what="the spool to drain and the recorder to be ready")
        await sc.recorder.flush(30)
        store = await open_store(chdb_url(), database)
        try:
            n, u = await counts(store, database)
        finally:
            await store.close()
        assert n == u == 120 - dropped
    finally:
        await sc.stop()
        await adapter.stop()
