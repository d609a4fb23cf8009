"""The admin listener (loopback by default): health, readiness, Prometheus metrics, run API,
event replay; guarded by
`seamline.read.auth` (the admin token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from seamline.config.admin import Admin
from seamline.read.auth import setup_auth

READINESS: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("readiness", Callable)  # type: ignore[arg-type]
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
# With `serve --workers N`: every worker's metrics (seamline.workers.metrics), instead of this process's registry.
METRICS: web.AppKey[Callable[[], Awaitable[bytes]]] = web.AppKey("metrics", Callable)  # type: ignore[arg-type]


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    state = request.app[READINESS]()
    return web.Response(
        status=200 if state.get("ready") else 503,
        body=orjson.dumps(state),
        content_type="application/json",
    )


async def metrics(request: web.Request) -> web.Response:
    source = request.app.get(METRICS)
    body = await source() if source is not None else generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp would send `Server: Python/3.x aiohttp/3.y`: the product only, no versions to look up exploits by.
    response.headers["Server"] = "seamline"


def create_admin_app(
    registry: CollectorRegistry,
    readiness: Callable[[], dict[str, Any]],
    store: Any = None,
    *,
    access: Admin | None = None,
    replayer: Any = None,
    metrics_source: Callable[[], Awaitable[bytes]] | None = None,
) -> web.Application:
    """The admin app; `access` (the config's `admin`) decides who may read what (default: no token, loopback only)."""
    app = web.Application()
    app.on_response_prepare.append(_server_header)
    setup_auth(app, access or Admin())
    app[REGISTRY] = registry
    app[READINESS] = readiness
    if metrics_source is not None:
        app[METRICS] = metrics_source
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if store is not None:
        from seamline.read.api import setup_routes

        setup_routes(app, store)
    if replayer is not None:
        from seamline.read.replay_api import setup_replay_routes

        setup_replay_routes(app, replayer)
    return app
