"""CONNECT tunnels to configured upstreams: bytes relayed untouched (TLS is not intercepted)."""

from __future__ import annotations

import asyncio
import socket
import time

from aiohttp import web

from seamline import errors
from seamline import outcomes as o
from seamline.exchange import Exchange
from seamline.metrics import ProxyMetrics
from seamline.netguard import is_public
from seamline.responses import ExactStreamResponse
from seamline.routing import Target

_CHUNK = 64 * 1024
_HIGH_WATER = 1 << 20


class _TunnelFeed:
    """Takes over the client connection after CONNECT (aiohttp's `set_parser` hook, as WebSockets do)."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self.reader = asyncio.StreamReader(limit=_HIGH_WATER)
        self._transport = transport
        self._paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        if len(self.reader._buffer) > _HIGH_WATER and not self._paused and self._transport is not None:  # noqa: SLF001
            self._transport.pause_reading()  # type: ignore[attr-defined]
            self._paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()

    async def read(self) -> bytes:
        data = await self.reader.read(_CHUNK)
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()  # type: ignore[attr-defined]
            self._paused = False
        return data


async def _open(host: str, port: int, allow_private: bool, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise errors.UpstreamError(f"upstream host name did not resolve: {e}", o.DNS) from None
        addrs = [i[4][0] for i in infos if allow_private or is_public(i[4][0])]
        if not addrs:
            raise errors.Forbidden(f"{host} resolves only to non-public addresses (set allow_private: true)")
        last: OSError | None = None
        for addr in addrs:
            try:
                return await asyncio.open_connection(addr, port)
            except OSError as e:
                last = e
        raise errors.UpstreamError(f"cannot connect to the upstream: {last}", o.CONNECT)


async def run_tunnel(
    request: web.BaseRequest, ex: Exchange, target: Target, metrics: ProxyMetrics, echo: dict[str, str]
) -> web.StreamResponse:
    up = target.upstream
    host, port = target.url.host or "", target.url.port or 443
    try:
        reader, writer = await _open(host, port, up.allow_private, up.timeouts.connect)
    except TimeoutError:
        raise errors.UpstreamTimeout("upstream did not accept the tunnel in time", timeout="connect") from None
    ex.ttfb_s = time.perf_counter() - ex.t0
    ex.status = 200
    resp = ExactStreamResponse(status=200, reason="Connection Established", headers=echo)
    await resp.prepare(request)
    transport = request.transport
    protocol = request.protocol
    feed = _TunnelFeed(transport)
    protocol.set_parser(feed)  # type: ignore[union-attr,arg-type]
    sent = received = 0

    async def client_to_upstream() -> None:
        nonlocal sent
        while True:
            data = await feed.read()
            if not data:
                break
            sent += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def upstream_to_client() -> None:
        nonlocal received
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            received += len(data)
            if transport is None or transport.is_closing():
                break
            transport.write(data)
            drain = getattr(protocol, "_drain_helper", None)
            if drain is not None:
                await drain()

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        # One direction ended cleanly: let the other finish (half-close), as a TCP relay should.
        if pending and not any(t.exception() for t in done if not t.cancelled()):
            await asyncio.wait(pending, timeout=up.timeouts.read)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        if transport is not None:
            transport.close()
    ex.request_headers = []
    ex.attributes["tunnel_bytes_sent"] = str(sent)
    ex.attributes["tunnel_bytes_received"] = str(received)
    ex.extra["tunnel"] = (sent, received)
    metrics.tunnel_bytes.labels(target.upstream_name, "sent").inc(sent)
    metrics.tunnel_bytes.labels(target.upstream_name, "received").inc(received)
    return resp
