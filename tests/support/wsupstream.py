"""A real WebSocket upstream on 127.0.0.1 (the `websockets` library), recording what it saw of each connection.

Paths: `/echo…` echoes every message as it came (text or binary); `/bye` closes with 4000 when it receives
"bye"; `/quiet` sends nothing and waits for the close; `/forbidden` declines the handshake with a 403.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

SUBPROTOCOLS = ("chat.v2", "chat.v1")


@dataclass(frozen=True)
class Ended:
    """One connection as the upstream saw it end."""

    path: str
    close_code: int | None  # the code it received (1006: no Close frame)
    subprotocol: str | None
    extensions: tuple[str, ...]
    messages: int


@dataclass
class WsUpstream:
    """Start with `await up.start()`; `up.url`; `up.handshakes` (request headers); await `up.ended.get()`."""

    handshakes: list[Headers] = field(default_factory=list)
    ended: asyncio.Queue[Ended] = field(default_factory=asyncio.Queue)
    tls: ssl.SSLContext | None = None  # serve wss (the upstream's base_url is then https://)
    server: Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(request.headers)
        if request.path == "/forbidden":
            return connection.respond(HTTPStatus.FORBIDDEN, "no entry\n")
        return None

    @staticmethod
    def _select(connection: ServerConnection, offered: list[str]) -> str | None:
        return next((p for p in offered if p in SUBPROTOCOLS), None)  # none offered: none chosen

    async def _handle(self, ws: ServerConnection) -> None:
        path, n = ws.request.path if ws.request else "", 0
        try:
            if path.startswith("/echo"):
                async for message in ws:
                    n += 1
                    await ws.send(message)
            elif path == "/bye":
                async for message in ws:
                    n += 1
                    if message == "bye":
                        await ws.close(4000, "server says bye")
            await ws.wait_closed()
        finally:
            exts = tuple(e.name for e in ws.protocol.extensions)
            self.ended.put_nowait(Ended(path, ws.close_code, ws.subprotocol, exts, n))

    async def start(self) -> WsUpstream:
        self.server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            select_subprotocol=self._select,
            close_timeout=2,
            ssl=self.tls,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
