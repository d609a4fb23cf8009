"""Coarse request deadlines: one sweeper task instead of a timer per request.

Per-request asyncio timers (asyncio.timeout, aiohttp's sock_read rescheduled on every chunk) cost
~9 % of proxy throughput here (measured with bench/proxy.py, POST c=16). Upstream timeouts are
seconds, so a sweep every 50 ms is precise enough: arming is a dict write.

`here()` gives the request path its loop and task without `asyncio.get_running_loop()`: on Python 3.11 every call of
it (and of `asyncio.current_task()` without a loop) is a getpid() system call, its fork check (4 per request, seen
with strace -c; 3.12 dropped the check).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RESOLUTION_S = 0.05


class Deadlines:
    def __init__(self, resolution: float = RESOLUTION_S) -> None:
        self._resolution = resolution
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if self._sweeper is None:
            self._loop = loop = asyncio.get_running_loop()
            self._sweeper = loop.create_task(self._sweep(), name="seamline-deadlines")

    def here(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]:
        """The running loop and the current task (called from a task on the loop the sweeper runs on)."""
        loop = self._loop or asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        return loop, task

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
            self._loop = None

    def arm(self, task: asyncio.Task[object], deadline: float) -> None:
        """(Re)set the task's deadline (loop time)."""
        self._due[task] = deadline

    def disarm(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """True (once) when the sweeper cancelled this task for its deadline."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._resolution)
            now = loop.time()
            overdue = [t for t, d in self._due.items() if d <= now]
            for t in overdue:
                del self._due[t]
                if not t.done():
                    self._expired.add(t)
                    t.cancel()
            if self._expired:
                self._expired = {t for t in self._expired if not t.done()}
