"""The composition root: builds every object from the config and owns their lifetimes."""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from seamline.config.admin import is_loopback_host
from seamline.config.models import Config
from seamline.event.build import EventBuilder
from seamline.event.record import RecordExchange
from seamline.exchange import Exchange
from seamline.guards.dedup import build_store
from seamline.guards.ratelimit import RateLimitStage
from seamline.guards.redis_state import open_redis
from seamline.proxy.deadlines import Deadlines
from seamline.proxy.forward import Forwarder
from seamline.proxy.handler import ProxyHandler, build_request_path
from seamline.proxy.listener import Listener, ListenerAppRunner, ListenerLimits, ListenerMetrics
from seamline.proxy.metrics import ProxyMetrics
from seamline.proxy.parse_errors import ThrottledLog
from seamline.proxy.spans import Telemetry
from seamline.proxy.websocket import WebSocketRelay
from seamline.read.admin import create_admin_app
from seamline.replay.mark import ReplayMarks
from seamline.replay.service import Replayer
from seamline.validate.validator import Validator

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
        worker: Any = None,
    ) -> None:
        # Everything that needs no running loop is built here, so stop() is safe whatever start() reached.
        self.config = cfg = config
        self.source = source
        self.worker = worker  # a seamline.workers.slot.WorkerSlot under `serve --workers N` (cfg already its own)
        self.worker_metrics: Any = None
        self.registry = registry or CollectorRegistry()
        self.recorder = recorder
        self.store = store
        self._own_recorder = recorder is None
        self._runners: list[web.BaseRunner] = []
        self._stopped = False
        self.proxy_url = ""
        self.admin_url = ""
        self.instance = cfg.server.instance or socket.gethostname()
        self.validator = Validator(cfg, source=self.source)  # first: bad contracts fail before anything exists
        self.metrics = ProxyMetrics(self.registry)
        self.listener_metrics = ListenerMetrics(self.registry)
        self.listener_log = ThrottledLog()  # one warning per kind per 10 s, both listeners (seamline.proxy.parse_errors)
        self.telemetry = Telemetry(cfg.telemetry, exporter=span_exporter)
        self.deadlines = Deadlines()  # one sweeper for every request deadline (see seamline.proxy.deadlines)
        self.forwarder = Forwarder(cfg, self.deadlines)
        self.websockets = WebSocketRelay(cfg, self.deadlines)  # its own upstream pool (see its module)
        self.events = EventBuilder(cfg, self.instance, self.validator)
        self.record = RecordExchange(self.events)
        self.offload: Any = None
        self.rate_limit = RateLimitStage.from_config(cfg, self.registry)
        recording = recorder is not None or cfg.storage.enabled
        self.replay_marks = ReplayMarks()  # this process's secret: only its own replayer can mark a call a replay
        self.replayer: Replayer | None = None
        self.redis = open_redis(cfg)  # the guards' shared state (None: in-process); connects at start()
        self.dedup_store = build_store(self.redis)
        self.path = build_request_path(
            cfg, forwarder=self.forwarder, websockets=self.websockets, metrics=self.metrics, telemetry=self.telemetry,
            validator=self.validator, instance=self.instance, after=(self.record,) if recording else (), redis=self.redis,
            dedup_store=self.dedup_store,
            rate_limit=self.rate_limit, replay_marks=self.replay_marks,
        )  # fmt: skip
        self.handler = ProxyHandler(cfg, self.path, self.metrics)

    async def start(self) -> None:
        cfg = self.config
        self.deadlines.start()
        if self.redis is not None:
            await self.redis.start()
        if self.rate_limit is not None:
            self.rate_limit.attach(self.redis.client if self.redis is not None else None)
            await self.rate_limit.start()
        if self.recorder is None and cfg.storage.enabled:
            from seamline.record.recorder import build_recorder

            self.recorder = await build_recorder(cfg.storage, self.registry, self.instance, **self._worker_storage())
        if self.recorder is not None:
            self.store = self.store or getattr(self.recorder, "store", None)
        if self.recorder is not None and self._own_recorder:
            from seamline.record.offload import start_offload

            self.offload = await start_offload(
                self.recorder.store, self.recorder, cfg, self.instance, self._build_here, self.registry
            )
        self.record.attach(self.recorder, self.offload)
        srv = cfg.server
        limits = ListenerLimits.from_config(srv)
        server = Listener(
            self.handler,
            name="proxy",
            limits=limits,
            metrics=self.listener_metrics,
            throttle=self.listener_log,
            max_line_size=srv.max_header_bytes,
            max_field_size=srv.max_header_bytes,
            auto_decompress=False,
            access_log=None,
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        reuse_port = self.worker is not None  # the workers share both ports (SO_REUSEPORT); one process never does
        site = web.TCPSite(runner, srv.host, srv.port, reuse_address=True, reuse_port=reuse_port)
        await site.start()
        self._runners.append(runner)
        self.proxy_port = _bound_port(runner)
        self.proxy_url = f"http://{_url_host(srv.host)}:{self.proxy_port}"
        if self.store is not None and self.recorder is not None:
            self.replayer = Replayer(cfg, self.store, self.replay_marks, lambda: self.proxy_url, self.flush)
        if self.worker is not None:
            from seamline.workers.metrics import WorkerMetrics

            self.worker_metrics = WorkerMetrics(self.worker, self.registry)
            await self.worker_metrics.start()
        admin = create_admin_app(
            self.registry, self.readiness, self.store, access=cfg.admin, replayer=self.replayer,
            metrics_source=self.worker_metrics.exposition if self.worker_metrics is not None else None,
        )  # fmt: skip
        arunner = ListenerAppRunner(
            admin, name="admin", limits=limits, metrics=self.listener_metrics, throttle=self.listener_log,
            handle_signals=False, access_log=None,
        )  # fmt: skip
        await arunner.setup()
        await web.TCPSite(arunner, srv.admin_host, srv.admin_port, reuse_address=True, reuse_port=reuse_port).start()
        self._runners.append(arunner)
        self.admin_port = _bound_port(arunner)
        self.admin_url = f"http://{_url_host(srv.admin_host)}:{self.admin_port}"
        if not is_loopback_host(srv.host) and not srv.client_tokens:
            log.warning("the proxy listens beyond loopback without server.client_tokens: any client that reaches it may use it")
        log.info("seamline started", extra={"proxy_url": self.proxy_url, "admin_url": self.admin_url})

    def _worker_storage(self) -> dict[str, Any]:
        """A worker's recorder: the supervisor's embedded engine, and the schema it migrated already."""
        if self.worker is None:
            return {}
        return {"engine_socket": self.worker.engine_socket, "migrate_schema": not self.worker.migrated}

    def _build_here(self, ex: Exchange, since: float | None = None) -> None:
        """Build and queue an event in this process (the offload's fallback); never raises into its caller."""
        try:
            self.record.build_here(ex, since)
        except Exception:  # noqa: BLE001 - the fallback must never raise into the offload
            self.handler.stage_failed("record", ex)

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
        if self.worker_metrics is not None:
            await self.worker_metrics.close()
        if self.replayer is not None:
            await self.replayer.close()
        await self.websockets.close()
        await self.forwarder.close()
        if self.rate_limit is not None:
            await self.rate_limit.close()
        await self.deadlines.stop()
        await self.dedup_store.close()
        if self.redis is not None:
            await self.redis.close()
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
