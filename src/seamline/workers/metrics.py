"""/metrics of any worker covers every worker: each serves its own registry on a Unix socket in the supervisor's run
directory, and the worker a scrape reaches (the admin port is shared too) gathers its siblings' and adds a `worker`
label to every sample (`sum without (worker) (…)` is the whole sidecar).

Why not prometheus_client's multiprocess mode: it has no room for callback gauges (`set_function`: the recorder's
queue and spool sizes, sink_up) or custom collectors (the rate limit's), which would silently vanish; it needs its
environment variable set before the first import and a `mark_process_dead` per dead worker, and it sums or picks
per metric, so one worker's stuck queue hides behind the others. Labelling each worker keeps every metric exact.
A sibling that does not answer within SCRAPE_TIMEOUT_S (restarting) is left out, and `seamline_worker_up` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from seamline.workers.slot import WorkerSlot

SCRAPE_TIMEOUT_S = 2.0


class WorkerMetrics:
    """This worker's registry on its own Unix socket, and the exposition of every worker's."""

    def __init__(self, slot: WorkerSlot, registry: CollectorRegistry) -> None:
        self.slot = slot
        self.registry = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._own)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        path = self.slot.metrics_socket(self.slot.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this slot's previous worker (killed)
        await web.UnixSite(self._runner, path).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _own(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    async def exposition(self) -> bytes:
        """Every worker's metrics, each sample labelled with its worker's index."""
        texts = await asyncio.gather(*(self._fetch(i) for i in range(self.slot.count)))
        return generate_latest(_Merged(texts))

    async def _fetch(self, index: int) -> str | None:
        if index == self.slot.index:
            return generate_latest(self.registry).decode()
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_S):
                connector = aiohttp.UnixConnector(path=self.slot.metrics_socket(index))
                async with aiohttp.ClientSession(connector=connector) as s, s.get("http://worker/metrics") as r:
                    if r.status == 200:
                        return await r.text()
        except (OSError, aiohttp.ClientError, TimeoutError):
            pass
        return None


class _Merged:
    """A collector yielding the families of several expositions (None: that worker did not answer)."""

    def __init__(self, texts: list[str | None]) -> None:
        self.texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        up = GaugeMetricFamily("seamline_worker_up", "1 when the worker answered this scrape.", labels=["worker"])
        for i, text in enumerate(self.texts):
            up.add_metric([str(i)], 0.0 if text is None else 1.0)
            for fam in text_string_to_metric_families(text or ""):
                into = families.setdefault(fam.name, fam)
                for sample in fam.samples:
                    sample.labels["worker"] = str(i)
                if into is not fam:
                    into.samples.extend(fam.samples)
        yield up
        yield from families.values()
