"""The composition root: builds every object from the config and owns their lifetimes."""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from seamline.read.admin import create_admin_app
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.forward import Forwarder
from seamline.proxy.metrics import ProxyMetrics
from seamline.proxy.handler import ProxyHandler
from seamline.event.build import EventBuilder
from seamline.validate.validator import Validator
from seamline.proxy.spans import Telemetry
from seamline.proxy.websocket import WebSocketRelay

log = logging.getLogger("seamline")


class Sidecar:
    """`await Sidecar(cfg).start()` → proxy + admin listeners; `await stop()` flushes and closes."""

    def __init__(
        self,
        config: Config,
        *,
        recorder: Any = None,
        store: Any = None,
        span_exporter: Any = None,
        registry: CollectorRegistry | None = None,
        source: str = "seamline.yaml",
    ) -> None:
        self.config = config
        self.source = source
        self.registry = registry or CollectorRegistry()
        self.recorder = recorder
        self.store = store
        self._own_recorder = recorder is None
        self._span_exporter = span_exporter
        self._runners: list[web.BaseRunner] = []
        self._stopped = False
        self.proxy_url = ""
        self.admin_url = ""
        self.instance = config.server.instance or socket.gethostname()

    async def start(self) -> None:
        cfg = self.config
        self.metrics = ProxyMetrics(self.registry)
        self.telemetry = Telemetry(cfg.telemetry, exporter=self._span_exporter)
        self.validator = Validator(cfg, source=self.source)  # before anything starts: bad contracts fail start-up
        self.forwarder = Forwarder(cfg)
        self.forwarder.deadlines.start()
        self.websockets = WebSocketRelay(cfg, self.forwarder.deadlines)  # its own upstream pool (see its module)
        if self.recorder is None and cfg.storage.enabled:
            from seamline.record.recorder import build_recorder

            self.recorder = await build_recorder(cfg.storage, self.registry, self.instance)
        if self.recorder is not None:
            self.store = self.store or getattr(self.recorder, "store", None)
        self.events = EventBuilder(cfg, self.instance, self.validator)
        self.offload = None
        if self.recorder is not None and self._own_recorder:
            from seamline.record.offload import start_offload

            self.offload = await start_offload(self.recorder.store, self.recorder, cfg, self.instance, self._build_here, self.registry)
        self.handler = ProxyHandler(
            cfg,
            forwarder=self.forwarder,
            metrics=self.metrics,
            telemetry=self.telemetry,
            on_complete=self._record if self.recorder is not None else None,
            validator=self.validator,
            websockets=self.websockets,
        )
        srv = cfg.server
        server = web.Server(
            self.handler,
            max_line_size=srv.max_header_bytes,
            max_field_size=srv.max_header_bytes,
            auto_decompress=False,
            access_log=None,
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, srv.host, srv.port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        self.proxy_port = _bound_port(runner)
        self.proxy_url = f"http://{_url_host(srv.host)}:{self.proxy_port}"
        admin = create_admin_app(self.registry, self.readiness, self.store)
        arunner = web.AppRunner(admin, handle_signals=False, access_log=None)
        await arunner.setup()
        await web.TCPSite(arunner, srv.admin_host, srv.admin_port, reuse_address=True).start()
        self._runners.append(arunner)
        self.admin_port = _bound_port(arunner)
        self.admin_url = f"http://{_url_host(srv.admin_host)}:{self.admin_port}"
        log.info("seamline started", extra={"proxy_url": self.proxy_url, "admin_url": self.admin_url})

    def _record(self, ex: Exchange) -> None:
        if self.offload is not None:
            self.offload.submit(ex)  # built in the engine process, off this loop
        elif self.recorder is not None:
            self.recorder.submit(self.events.build(ex))

    def _build_here(self, ex: Exchange) -> None:
        """Build and queue an event in this process (the offload's fallback); never raises into its caller."""
        try:
            self.recorder.submit(self.events.build(ex))  # type: ignore[union-attr]
        except Exception:
            self.metrics.stage_errors.labels("record").inc()
            log.exception("record stage failed", extra={"run_id": ex.run_id})

    async def flush(self, timeout: float = 10.0) -> bool:
        """Everything recorded so far into ClickHouse (or the spool); True when nothing is left in memory."""
        if self.recorder is None:
            return True
        if self.offload is not None:
            try:
                await self.offload.drain(timeout)
            except TimeoutError:
                return False
        return bool(await self.recorder.flush(timeout))

    def readiness(self) -> dict[str, Any]:
        if self.recorder is None:
            return {"ready": True, "recording": False}
        state = dict(self.recorder.health())
        state["recording"] = True
        return state

    async def stop(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.websockets.shutdown()  # open WebSockets get a 1001 now, so the listeners below need not wait for them
        for r in reversed(self._runners):
            await r.cleanup()
        self._runners.clear()
        await self.websockets.close()
        await self.forwarder.close()
        await self.forwarder.deadlines.stop()
        if self.offload is not None:
            await self.offload.stop(timeout)
        if self.recorder is not None and self._own_recorder:
            await self.recorder.stop(timeout)
        self.telemetry.shutdown()


def _bound_port(runner: web.BaseRunner) -> int:
    addrs = runner.addresses
    return int(addrs[0][1])


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
