"""`seamline serve --workers 2` as real processes: one port, every worker answers, one engine, restarts, graceful stop.

The supervisor runs in its own session (as under a service manager); connections are opened fresh for each request
so the kernel's SO_REUSEPORT hashing spreads them (40 connections all on one worker: 2^-39). Which worker answered
shows in the rows' proxy_instance (`<host>/w<i>`) and in /metrics' `worker` label.
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
N = 40


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}


class Workers:
    """`seamline serve --workers 2` on a config written to `tmp`; its pids and its /metrics."""

    def __init__(self, cfg: dict, tmp: Path, workers: int = 2) -> None:
        self.port, self.admin = free_ports(2)
        cfg = {**cfg, "server": {"port": self.port, "admin_port": self.admin, "instance": "box"}}
        self.path = tmp / "seamline.json"
        self.path.write_text(json.dumps(cfg))
        self.workers = workers
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Workers:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "seamline", "serve", "--config", str(self.path), "--workers", str(self.workers),
            "--log-level", "INFO", env=_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        self.log: list[str] = []

        async def banner() -> bool:
            line = (await self.proc.stderr.readline()).decode()
            assert line, "the supervisor exited:\n" + "".join(self.log)
            self.log.append(line)
            return "workers, supervisor" in line

        await wait_for(banner, 120, what="the supervisor's banner (every worker ready)", interval=0)
        self._drain = asyncio.create_task(self._read_log())
        return self

    async def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode())

    def children(self) -> list[int]:
        """The supervisor's child processes (the workers, and the engine with the embedded store)."""
        assert self.proc is not None
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(p) for p in text.split()]

    def worker_pids(self) -> list[int]:
        return [p for p in self.children() if "--worker-slot" in Path(f"/proc/{p}/cmdline").read_text()]

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.admin}/metrics") as r:
            assert r.status == 200
            return await r.text()

    async def per_worker(self, name: str) -> dict[str, float]:
        """`name`'s value summed by `worker` label."""
        out: dict[str, float] = {}
        for labels, value in re.findall(rf"^{name}{{([^}}]*)}} ([\d.e+]+)$", await self.metrics(), re.M):
            worker = re.search(r'worker="(\d+)"', labels)
            assert worker, labels
            out[worker.group(1)] = out.get(worker.group(1), 0.0) + float(value)
        return out

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(60):
            rc = await self.proc.wait()
            await self._drain
        return rc


async def send(port: int, run_id: str, n: int = N) -> None:
    """n requests, each on a new connection."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for i in range(n):
            async with s.post(f"http://127.0.0.1:{port}/up/x", json={"i": i}, headers={"X-Run-ID": run_id}) as r:
                assert r.status == 200, await r.text()


async def rows_by_instance(data: Path, run_id: str) -> dict[str, int]:
    """Count a run's rows in a stopped sidecar's chdb directory (a child process: chdb allows one path per process)."""
    code = (
        "import chdb, json, sys; s = chdb.session.Session(sys.argv[1]); "
        "q = \"SELECT proxy_instance, count() FROM seamline.handoffs WHERE run_id = '%s' GROUP BY 1\" % sys.argv[2]; "
        "r = s.query(q, 'JSONCompact'); "
        "print(json.dumps(dict(json.loads(r.bytes())['data'])))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(data), run_id, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return {k: int(v) for k, v in json.loads(out).items()}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def embedded(upstream, tmp_path: Path, **storage) -> dict:  # type: ignore[no-untyped-def]
    return {
        "upstreams": {"up": {"base_url": upstream.url, "allow_private": True}},
        "storage": {"clickhouse_url": f"chdb://{tmp_path / 'data'}", "spool_dir": str(tmp_path / "spool"), **storage},
    }


async def test_two_workers_answer_on_one_port_and_sigterm_flushes_both(upstream, tmp_path):
    # Nothing is written before the stop on its own: a huge batch and a 10-minute flush interval.
    cfg = embedded(upstream, tmp_path, batch_size=100000, flush_interval_ms=600000)
    sv = await Workers(cfg, tmp_path).start()
    pids = sv.children()
    assert len(pids) == 3  # two workers and the one engine
    await send(sv.port, "two")
    answered = await sv.per_worker("seamline_requests_total")
    assert set(answered) == {"0", "1"} and all(answered.values()), answered  # /metrics of one port covers both
    assert sum(answered.values()) == N
    assert await sv.stop() == 0
    assert all(_gone(p) for p in pids)
    rows = await rows_by_instance(tmp_path / "data", "two")
    assert set(rows) == {"box/w0", "box/w1"} and sum(rows.values()) == N, rows  # through the one engine, none lost
    assert sum("embedded clickhouse process started" in line for line in sv.log) == 1
    assert not any("embedded clickhouse process exited" in line for line in sv.log)
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["worker-0", "worker-1"]


async def test_a_killed_worker_is_restarted_and_traffic_goes_on(upstream, tmp_path):
    cfg = embedded(upstream, tmp_path, flush_interval_ms=20)
    sv = await Workers(cfg, tmp_path).start()
    try:
        await send(sv.port, "kill", 10)

        async def written() -> bool:  # the killed worker's rows are in ClickHouse, not in its memory
            return sum((await sv.per_worker("seamline_record_rows_written_total")).values()) >= 10

        await wait_for(written, 30, what="the first requests written")
        victim = sv.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> list[int] | None:
            pids = sv.worker_pids()
            return pids if len(pids) == 2 and victim not in pids else None

        await wait_for(replaced, 30, what="the supervisor to start a new worker")
        await wait_for(lambda: sum("worker ready" in line for line in sv.log) == 3, 90, what="the new worker ready")
        await send(sv.port, "kill", N)  # every request answered, whichever worker takes it
        up = await sv.per_worker("seamline_worker_up")
        assert up == {"0": 1.0, "1": 1.0}
        restart = next(json.loads(line) for line in sv.log if "worker exited; restarting" in line)
        assert (restart["pid"], restart["signal"], restart["restarts"]) == (victim, "SIGKILL", 1)
    finally:
        assert await sv.stop() == 0
    rows = await rows_by_instance(tmp_path / "data", "kill")
    assert sum(rows.values()) == 10 + N, rows


async def test_a_killed_engine_is_restarted_and_no_row_is_lost(upstream, tmp_path):
    cfg = embedded(upstream, tmp_path, flush_interval_ms=20)
    sv = await Workers(cfg, tmp_path).start()
    try:
        engine = next(p for p in sv.children() if "seamline.record.engine" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(engine, signal.SIGKILL)
        await send(sv.port, "engine")  # answered while the engine is down or restarting: recording never blocks traffic

        async def restarted() -> bool:
            return sum("embedded clickhouse process started" in line for line in sv.log) == 2 and len(sv.children()) == 3

        await wait_for(restarted, 60, what="the supervisor to start a new engine")
        await send(sv.port, "engine")

        async def replayed() -> bool:  # what the outage spooled is replayed once the new engine answers
            spooled = await sv.per_worker("seamline_record_spool_records")
            return len(spooled) == 2 and not any(spooled.values())

        await wait_for(replayed, 60, what="both workers' spools replayed into the new engine")
    finally:
        assert await sv.stop() == 0
    rows = await rows_by_instance(tmp_path / "data", "engine")
    assert sum(rows.values()) == 2 * N, rows
    assert any("embedded clickhouse process exited; restarting" in line for line in sv.log)


async def test_workers_write_directly_to_a_clickhouse_server(upstream, tmp_path):
    database = unique_database("workers")
    adapter = ClickHouseHttpAdapter()
    await adapter.start()
    cfg = {
        "upstreams": {"up": {"base_url": upstream.url, "allow_private": True}},
        "storage": {"clickhouse_url": f"{adapter.url}/{database}", "spool_dir": str(tmp_path / "spool")},
    }
    sv = await Workers(cfg, tmp_path).start()
    store = await open_store(chdb_url(), database)
    try:
        assert len(sv.children()) == 2  # the workers, no engine process
        await send(sv.port, "http")
        assert await sv.stop() == 0
        rows = await store.query("SELECT proxy_instance AS i, count() AS n FROM handoffs WHERE run_id = 'http' GROUP BY i")
        assert {r["i"] for r in rows} == {"box/w0", "box/w1"} and sum(r["n"] for r in rows) == N, rows
        assert not any("embedded clickhouse" in line for line in sv.log)
        migrations = await store.query("SELECT count() AS n, uniqExact(version) AS u FROM schema_migrations")
        assert migrations[0]["n"] == migrations[0]["u"]  # migrated once, by the supervisor
    finally:
        await sv.stop()
        await store.close()
        await adapter.stop()


async def test_in_process_guards_refuse_more_than_one_worker(upstream, tmp_path):
    cfg = {
        "upstreams": {"pay": {"base_url": upstream.url, "allow_private": True, "rate_limit": {"rps": 5}}},
        "handoffs": {"charge": {"upstream": "pay", "match": "POST /charges", "safety": "never_repeat"}},
        "storage": {"enabled": False},
    }
    path = tmp_path / "guarded.json"
    path.write_text(json.dumps(cfg))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "seamline", "serve", "--config", str(path), "--workers", "2", "--port", "0",
        "--admin-port", "0", env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 2, text
    assert f"{path}: invalid configuration" in text
    assert "server.workers: 2 workers" in text
    assert "handoffs.charge.dedup" in text and "upstreams.pay.rate_limit" in text
    assert "set redis_url" in text and "--workers 1" in text
    assert "Traceback" not in text
