"""A real upstream app on 127.0.0.1 that records exactly what it received, and answers as told."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    method: str
    path_qs: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def raw_headers(request: web.BaseRequest) -> list[tuple[str, str]]:
    """Headers exactly as received (names' case kept, duplicates kept)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upstream:
    """Start with `await up.start()`; `up.url`; `up.received`; route handlers in `up.routes`."""

    received: list[Received] = field(default_factory=list)
    routes: dict[str, Handler] = field(default_factory=dict)
    read_body: bool = True
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Received:
        return self.received[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        handler = self.routes.get(request.path)
        if handler is not None and not self.read_body:
            return await handler(request)
        body = await request.read() if self.read_body else b""
        self.received.append(Received(request.method, request.path_qs, request.raw_path, raw_headers(request), body))
        if handler is not None:
            return await handler(request)
        return web.json_response({"ok": True, "path": request.path})

    async def start(self) -> Upstream:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
