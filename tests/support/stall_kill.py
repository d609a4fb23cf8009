"""The freeze-then-SIGKILL scenario, with real processes: how many answered events does a crash lose?

`seamline serve` (embedded chdb in its own engine process, the default) takes steady load; the engine process is
frozen with SIGSTOP while the load goes on; then the sidecar and its engine are SIGKILLed. A second sidecar on the
same directories replays the spool; it is stopped (SIGTERM: everything flushed) and the rows are counted by a
third process opening the chdb directory (chdb locks a directory to one process). Used by
tests/integration/test_record_stall_kill.py (short) and bench/stall_kill.py (the 15 s variant).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from support.servers import free_ports
from support.upstream import Upstream
from support.waiting import wait_for

RUN_ID = "stall-kill"
COUNT = """
import json, sys
import clickhouse_connect
c = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
rows = c.query(
    "SELECT JSONExtractInt(request_body, 'i') AS i, count() AS n FROM seamline.handoffs "
    "WHERE run_id = {r:String} GROUP BY i", parameters={"r": sys.argv[2]}
).result_rows
print(json.dumps({str(i): n for i, n in rows}))
"""


@dataclass
class Figures:
    answered: int  # requests the sidecar answered 200 before the kill
    stored: int  # distinct answered requests found in ClickHouse after restart and replay
    lost: int  # answered, not stored
    duplicates: int  # rows beyond one per request
    window_s: float  # the guarantee: loss only among the requests answered in the last window_s before the kill
    answered_in_window: int  # answered within window_s of the kill
    lost_outside_window: int  # lost although answered earlier than window_s before the kill (must be 0)
    oldest_unacked_s: float | None  # the gauge just before the kill (None: the sidecar does not expose it)
    readyz_before_kill: dict[str, Any]

    def line(self) -> str:
        return (
            f"answered {self.answered}  stored {self.stored}  lost {self.lost}  duplicates {self.duplicates}  "
            f"window {self.window_s:.2f} s ({self.answered_in_window} answered in it)  "
            f"lost outside the window {self.lost_outside_window}  oldest_unacked_s {self.oldest_unacked_s}  "
            f"readyz reasons {self.readyz_before_kill.get('reasons')}"
        )


class Serve:
    """One `seamline serve` subprocess on its own ports and process group."""

    def __init__(self, cfg: dict[str, Any], tmp: Path, name: str, src: Path | None) -> None:
        self.port, self.admin = free_ports(2)
        self.path = tmp / f"{name}.json"
        self.path.write_text(json.dumps({**cfg, "server": {"port": self.port, "admin_port": self.admin}}))
        self.src = src
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, session: aiohttp.ClientSession) -> Serve:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
        if self.src is not None:
            env["PYTHONPATH"] = str(self.src)
        args = ["-m", "seamline", "serve", "--config", str(self.path), "--log-level", "ERROR"]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, stdout=asyncio.subprocess.DEVNULL, start_new_session=True
        )

        async def healthy() -> bool:
            assert self.proc is not None and self.proc.returncode is None, "seamline serve exited"
            try:
                async with session.get(f"http://127.0.0.1:{self.admin}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(healthy, 60, what=f"`seamline serve` ({self.path.name}) to answer /healthz")
        return self

    def engine_pid(self) -> int | None:
        """The engine child (`python -m seamline.record.engine`), once it runs."""
        assert self.proc is not None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid and b"seamline.record.engine" in cmdline:
                return int(entry.name)
        return None

    async def metrics(self, session: aiohttp.ClientSession) -> str:
        async with session.get(f"http://127.0.0.1:{self.admin}/metrics") as r:
            return await r.text()

    async def readyz(self, session: aiohttp.ClientSession) -> tuple[int, dict[str, Any]]:
        async with session.get(f"http://127.0.0.1:{self.admin}/readyz") as r:
            return r.status, await r.json()

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


def metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([\d.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


class Load:
    """Steady POSTs at `rate` per second, each fired on its own schedule (a slow answer does not slow the rate)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, rate: float) -> None:
        self.session, self.url, self.rate = session, url, rate
        self.answered: dict[int, float] = {}  # request number -> monotonic time its 200 arrived
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    async def _one(self, i: int) -> None:
        try:
            async with self.session.post(self.url, json={"i": i}, headers={"X-Run-ID": RUN_ID}) as r:
                await r.read()
                if r.status == 200:
                    self.answered[i] = time.monotonic()
        except aiohttp.ClientError:
            pass  # the sidecar was killed under it: not answered

    async def run_for(self, seconds: float) -> None:
        """Keep the rate for `seconds` (the pacing is the load's, not a wait for a condition)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        first = self.sent
        while (now := loop.time()) < start + seconds:
            due = start + (self.sent - first) / self.rate
            if now >= due:
                t = asyncio.create_task(self._one(self.sent))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
                self.sent += 1
                continue
            await asyncio.sleep(due - now)

    async def settle(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def count_rows(data: Path, src: Path | None) -> dict[int, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", COUNT, str(data), RUN_ID, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return {int(k): v for k, v in json.loads(out).items()}


async def stall_then_kill(
    tmp: Path,
    *,
    rate: float = 40.0,
    warm_s: float = 2.0,
    frozen_s: float = 5.0,
    storage: dict[str, Any] | None = None,
    src: Path | None = None,
) -> Figures:
    """Load, freeze the engine, keep loading `frozen_s`, SIGKILL sidecar + engine, restart, replay, count."""
    upstream = await Upstream().start()
    data, spool = tmp / "data", tmp / "spool"
    st = {"clickhouse_url": f"chdb://{data}", "spool_dir": str(spool), **(storage or {})}
    cfg = {"upstreams": {"up": {"base_url": upstream.url, "allow_private": True}}, "storage": st}
    window_s = (st.get("max_unacked_ms", 1000) + st.get("flush_interval_ms", 500)) / 1000
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        first = await Serve(cfg, tmp, "first", src).start(session)
        try:
            load = Load(session, f"http://127.0.0.1:{first.port}/up/x", rate)
            await load.run_for(warm_s)
            engine = await wait_for(first.engine_pid, 30, what="the engine process")
            os.kill(engine, signal.SIGSTOP)
            await load.run_for(frozen_s)
            text = await first.metrics(session)
            _, ready = await first.readyz(session)
            killed_at = time.monotonic()
            os.killpg(first.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]  # the engine is in its group
            await first.wait(30)
            await load.settle()
        finally:
            if first.proc is not None and first.proc.returncode is None:
                os.killpg(first.proc.pid, signal.SIGKILL)
        second = await Serve(cfg, tmp, "second", src).start(session)
        try:

            async def replayed() -> bool:
                text = await second.metrics(session)
                return metric(text, "seamline_record_spool_records") == 0

            await wait_for(replayed, 120, what="the spool replayed by the restarted sidecar")
        finally:
            second.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            await second.wait(60)
    await upstream.stop()
    rows = await count_rows(data, src)
    answered = load.answered
    lost = [i for i in answered if i not in rows]
    in_window = [i for i, t in answered.items() if t >= killed_at - window_s]
    return Figures(
        answered=len(answered),
        stored=sum(1 for i in answered if i in rows),
        lost=len(lost),
        duplicates=sum(n - 1 for n in rows.values()),
        window_s=window_s,
        answered_in_window=len(in_window),
        lost_outside_window=sum(1 for i in lost if answered[i] < killed_at - window_s),
        oldest_unacked_s=metric(text, "seamline_record_oldest_unacked_seconds"),
        readyz_before_kill=ready,
    )
