"""The docker-compose split of `seamline demo`: `--mocks-only` in one process, the `--proxy-url` driver in another,
and between them a sidecar the test starts itself (as the `seamline` service does in compose)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from support.chdb_path import chdb_url, unique_database
from support.servers import free_ports

from seamline.config.loader import load_config
from seamline.demo.cli import drive_external, serve_mocks
from seamline.demo.config import demo_config
from seamline.demo.mocks import SERVICES, plan_fault
from seamline.record.store import open_store
from seamline.sidecar import Sidecar

SEED, RATE, RUNS = 11, 0.3, 20


async def _start_sidecar(mock_urls: dict[str, str], tmp_path: Path) -> tuple[Sidecar, str]:
    database = unique_database("demo_modes")
    storage = {"clickhouse_url": chdb_url(), "database": database, "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 50}
    sidecar = Sidecar(load_config(None, overrides=demo_config(mock_urls, proxy_port=0, admin_port=0, storage=storage)))
    await sidecar.start()
    return sidecar, database


async def _rows(database: str) -> list[dict[str, Any]]:
    store = open_store(chdb_url(), database)
    try:
        return await store.query("SELECT run_id, handoff, attempt, outcome FROM handoffs WHERE run_id LIKE 'order-%'")
    finally:
        await store.close()


@pytest.mark.slow
async def test_proxy_url_drives_runs_through_an_external_sidecar_to_mocks_only(tmp_path):
    ports = free_ports(len(SERVICES))
    stop, ready = asyncio.Event(), asyncio.Event()
    mocks = asyncio.create_task(
        serve_mocks(
            seed=SEED,
            failure_rate=RATE,
            ports=ports,
            stop_event=stop,
            ready=ready,
            console=Console(file=io.StringIO()),
        )
    )
    sidecar = None
    try:
        await asyncio.wait_for(ready.wait(), 10)
        sidecar, database = await _start_sidecar(
            {s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, ports, strict=True)}, tmp_path
        )
        out = io.StringIO()
        summary = await asyncio.wait_for(
            drive_external(
                proxy_url=sidecar.proxy_url,
                admin_url=sidecar.admin_url,
                runs=RUNS,
                seed=SEED,
                failure_rate=RATE,
                wait_s=5,
                console=Console(file=out, width=200),
                progress=False,
            ),
            60,
        )
        rows = await _rows(database)
    finally:
        stop.set()
        fleet = await asyncio.wait_for(mocks, 10)
        if sidecar is not None:
            await sidecar.stop()

    assert summary.runs == RUNS and summary.ok + summary.failed == RUNS and summary.failed > 0
    # Every call went through the sidecar and was recorded, and the summary reads the same record.
    # Nothing flushes an external sidecar for us: the recorder's own flush_interval_ms must write these.
    assert len(rows) == summary.calls, "not recorded within the driver's wait: does the recorder flush on its interval?"
    silent_runs = {r["run_id"] for r in rows if r["outcome"] == "silent_failure"}
    assert summary.silent_failures_caught == len(silent_runs) > 0
    assert summary.seamline_failed_runs == len({r["run_id"] for r in rows if r["outcome"] not in ("ok", "unvalidated")})
    # The mocks process decided the faults from the driver's X-Demo-* headers, as the same seed and rate plan them.
    planned = {(r.order, h, a, plan_fault(SEED, RATE, h, r.order, a)) for r in summary.results for h, a, _ in r.calls}
    served = {(i.order, i.handoff, i.attempt, i.fault) for i in fleet.injections}
    assert served == {p for p in planned if p[3] is not None}
    text = out.getvalue()
    assert "runs failed" in text and "silent failures caught" in text and f"--admin-url {sidecar.admin_url}" in text


async def _read_until(stream: asyncio.StreamReader, marker: str, timeout: float) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"process ended before {marker!r}; output:\n{seen}")
            seen += line.decode()
    return seen


@pytest.mark.slow
async def test_the_two_compose_commands_work_as_processes(tmp_path):
    """`seamline demo --mocks-only …` until SIGTERM, and `seamline demo --proxy-url …` exiting 0 with the summary."""
    ports = free_ports(len(SERVICES))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_CLICKHOUSE", "HTTP_PROXY", "http_proxy"))}
    fault_args = ["--seed", str(SEED), "--failure-rate", str(RATE)]
    mocks = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "seamline",
        "demo",
        "--mocks-only",
        "--mock-host",
        "127.0.0.1",
        "--mock-ports",
        ",".join(map(str, ports)),
        *fault_args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    sidecar = None
    try:
        assert mocks.stderr is not None
        banner = await _read_until(mocks.stderr, "SIGTERM or Ctrl-C stops", 30)
        assert all(f"http://127.0.0.1:{p}" in banner for p in ports)
        sidecar, _ = await _start_sidecar({s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, ports, strict=True)}, tmp_path)
        driver = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "seamline",
            "demo",
            "--proxy-url",
            sidecar.proxy_url,
            "--admin-url",
            sidecar.admin_url,
            "--runs",
            "6",
            *fault_args,
            "--wait",
            "10",
            "--no-progress",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        output, _ = await asyncio.wait_for(driver.communicate(), 60)
        text = output.decode()
        assert driver.returncode == 0, text
        assert "Seamline demo: 6 order runs" in text and "silent failures caught" in text
    finally:
        if sidecar is not None:
            await sidecar.stop()
        if mocks.returncode is None:
            mocks.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(mocks.wait(), 15) == 0  # SIGTERM is a clean stop


async def test_proxy_url_without_a_sidecar_exits_1_after_the_wait(tmp_path):
    (port,) = free_ports(1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "seamline",
        "demo",
        "--proxy-url",
        f"http://127.0.0.1:{port}",
        "--wait",
        "0.5",
        "--no-progress",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "not ready" in output.decode() and f"127.0.0.1:{port}" in output.decode()


async def test_the_driver_sends_the_compose_tokens_to_a_sidecar_that_requires_them(tmp_path, monkeypatch):
    """As in docker-compose.yml: server.client_tokens and admin.token set, the driver reads both from the environment."""
    import secrets

    from seamline.demo import MockFleet

    client_token, admin_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    fleet = MockFleet(seed=SEED, failure_rate=0.0)
    await fleet.start()
    database = unique_database("demo_tokens")
    storage = {"clickhouse_url": chdb_url(), "database": database, "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 50}
    overrides = demo_config(fleet.urls, proxy_port=0, admin_port=0, storage=storage)
    overrides["server"]["client_tokens"] = {client_token: "demo-orders"}
    overrides["admin"] = {"token": admin_token}
    sidecar = Sidecar(load_config(None, overrides=overrides))
    await sidecar.start()
    monkeypatch.setenv("SEAMLINE_CLIENT_TOKEN", client_token)
    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", admin_token)
    try:
        summary = await asyncio.wait_for(
            drive_external(
                proxy_url=sidecar.proxy_url, admin_url=sidecar.admin_url, runs=3, seed=SEED, failure_rate=0.0,
                wait_s=5, console=Console(file=io.StringIO(), width=200), progress=False,
            ),
            60,
        )  # fmt: skip
        rows = await _rows(database)
    finally:
        await sidecar.stop()
        await fleet.stop()
    assert summary.failed == 0 and summary.ok == 3
    assert len(rows) == summary.calls > 0 and summary.seamline_failed_runs == 0  # read through the guarded admin API
