"""Send exact bytes to a server and parse the response: for path tricks and malformed requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


async def raw_request(port: int, data: bytes, timeout: float = 5.0) -> RawResponse:
    """Write `data` to 127.0.0.1:port, read one response (Content-Length or until close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
            hdrs = [(k.strip(), v.strip()) for k, v in headers]
            length = next((int(v) for k, v in hdrs if k.lower() == "content-length"), None)
            if data.startswith(b"HEAD ") or status in (204, 304) or 100 <= status < 200:
                # No body allowed: with Connection: close, anything sent anyway shows up here.
                body = await reader.read() if b"connection: close" in data.lower() else b""
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body = await reader.read()
            return RawResponse(status, hdrs, body)
    finally:
        writer.close()
