"""An upstream on 127.0.0.1 that answers each path with exact bytes: for responses aiohttp would not produce
(no Content-Type, no Date/Server, malformed status lines, 64 KB of garbage)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CannedServer:
    """`responses[path]`: the bytes written back (then the connection closes unless the bytes say keep-alive)."""

    def __init__(self, responses: dict[str, bytes | Callable[[bytes], bytes]]) -> None:
        self.responses = responses
        self.requests: list[bytes] = []
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> CannedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                path = head.split(b" ", 2)[1].decode("latin-1").split("?", 1)[0]
                answer = self.responses.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                data = answer(head) if callable(answer) else answer
                writer.write(data)
                await writer.drain()
                if b"connection: keep-alive" not in data.lower():
                    return
        finally:
            writer.close()
