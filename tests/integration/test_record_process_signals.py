"""`seamline serve` as a real process: SIGTERM flushes everything; after SIGKILL the spool is replayed.

Each sidecar process owns its own chdb directory (chdb locks a directory to one process), so rows are
read back through a second sidecar's admin API, or (HTTP path) through the test's ClickHouse-HTTP adapter.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from support.chdb_path import chdb_url, unique_database
from support.chhttp import ClickHouseHttpAdapter
from support.servers import free_ports
from support.waiting import wait_for

from seamline.record.store import open_store

pytestmark = pytest.mark.slow
N = 30


class Proc:
    def __init__(self, cfg: dict, tmp: Path, name: str) -> None:
        self.port, self.admin = free_ports(2)
        cfg = {**cfg, "server": {"port": self.port, "admin_port": self.admin}}
        self.path = tmp / f"{name}.json"
        self.path.write_text(json.dumps(cfg))
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "seamline",
            "serve",
            "--config",
            str(self.path),
            "--log-level",
            "WARNING",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, as under a service manager
        )
        async with aiohttp.ClientSession() as s:

            async def healthy() -> bool:  # a child process's port: no event to await
                try:
                    async with s.get(f"http://127.0.0.1:{self.admin}/healthz") as r:
                        if r.status == 200:
                            return True
                except aiohttp.ClientConnectionError:
                    pass
                assert self.proc.returncode is None, (await self.proc.stderr.read()).decode()
                return False

            await wait_for(healthy, 60, what=f"`seamline serve` ({self.path.name}) to answer /healthz")
        return self

    async def metric(self, name: str) -> float:
        """The metric's value in the sidecar's /metrics, 0 when it has no sample yet."""
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{self.admin}/metrics") as r:
                text = await r.text()
        # Summed over its label sets (a counter by reason counts its rows under several).
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M))

    async def signal(self, sig: int, *, group: bool = False) -> int:
        """Signal the sidecar, or its whole process group (its engine process too), as Ctrl-C or systemd do."""
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        async with asyncio.timeout(30):
            return await self.proc.wait()


async def send_requests(port: int, run_id: str, upstream_path: str = "/up/x") -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(N):
            async with s.post(f"http://127.0.0.1:{port}{upstream_path}", json={"i": i}, headers={"X-Run-ID": run_id}) as r:
                assert r.status == 200


@pytest.mark.parametrize("group", [False, True], ids=["sidecar", "process-group"])
async def test_sigterm_flushes_every_buffered_event(upstream, tmp_path, group):
    data = tmp_path / "data"
    cfg = {
        "upstreams": {"up": {"base_url": upstream.url, "allow_private": True}},
        # Nothing would be written before shutdown on its own: a huge batch and a 10-minute flush interval.
        "storage": {
            "clickhouse_url": f"chdb://{data}",
            "spool_dir": str(tmp_path / "spool"),
            "batch_size": 100000,
            "flush_interval_ms": 600000,
        },
    }
    first = await Proc(cfg, tmp_path, "first").start()
    await send_requests(first.port, "term-run")
    assert await first.signal(signal.SIGTERM, group=group) == 0
    assert b"embedded clickhouse process exited" not in await first.proc.stderr.read()  # it served the final flush
    second = await Proc(cfg, tmp_path, "second").start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{second.admin}/api/runs/term-run") as r:
                body = await r.json()
        assert len(body["handoffs"]) == N
        assert await second.metric("seamline_record_replayed_rows_total") == 0  # written at shutdown, not spooled
    finally:
        await second.signal(signal.SIGTERM)


async def test_sigkill_while_the_sink_is_down_loses_nothing_after_restart(upstream, tmp_path):
    database = unique_database("sigkill")
    adapter = ClickHouseHttpAdapter()
    await adapter.start()
    url = f"{adapter.url}/{database}"
    await adapter.stop()  # ClickHouse is down from the start
    cfg = {
        "upstreams": {"up": {"base_url": upstream.url, "allow_private": True}},
        "storage": {"clickhouse_url": url, "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20, "batch_size": 5},
    }
    first = await Proc(cfg, tmp_path, "first").start()
    await send_requests(first.port, "kill-run")  # traffic flows while the sink is down

    # Every row, not every batch: the 20 ms flush cuts batches of any size, so N / batch_size spooled batches can
    # still leave a few rows in memory, which a SIGKILL loses by design (the flush window).
    async def spooled() -> bool:
        return await first.metric("seamline_record_spooled_rows_total") >= N

    await wait_for(spooled, 20, what="every row in the spool")
    assert await first.signal(signal.SIGKILL) == -signal.SIGKILL
    await adapter.start()  # ClickHouse is back
    second = await Proc(cfg, tmp_path, "second").start()
    store = await open_store(chdb_url(), database)
    try:

        async def stored() -> dict | None:
            try:
                rows = await store.query("SELECT count() AS n, uniqExact(event_id) AS u FROM handoffs WHERE run_id = 'kill-run'")
            except Exception:  # noqa: BLE001 - the table appears when the second sidecar migrates
                return None
            return rows[0] if rows[0]["n"] >= N else None

        row = await wait_for(stored, 30, what="the spooled rows replayed into ClickHouse")
        assert (row["n"], row["u"]) == (N, N)

        # Rows are visible once ClickHouse commits; the sidecar counts them when the insert's reply reaches it.
        async def counted() -> float | None:
            replayed = await second.metric("seamline_record_replayed_rows_total")
            return replayed if replayed >= N else None

        replayed = await wait_for(counted, 10, what="the replayed rows counted")
        assert replayed == N
    finally:
        await second.signal(signal.SIGTERM)
        await store.close()
        await adapter.stop()
