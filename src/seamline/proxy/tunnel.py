"""Byte relays: CONNECT tunnels to configured upstreams (TLS is not intercepted), and the pump they share with
WebSocket connections after their handshake (`seamline.websocket`)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from aiohttp.connector import Connection

from seamline import errors
from seamline import outcomes as o
from seamline.exchange import Exchange
from seamline.proxy.metrics import ProxyMetrics
from seamline.proxy.netguard import RefusedAddress, check_ip_literal, is_public
from seamline.proxy.routing import Target
from seamline.responses import ExactStreamResponse

log = logging.getLogger("seamline.tunnel")

_CHUNK = 64 * 1024
_HIGH_WATER = 1 << 20
# How a pump ends when its peer goes away; anything else is a bug and propagates.
_GONE = (OSError, aiohttp.ClientError, asyncio.IncompleteReadError)


class _Feed:
    """Takes over a connection aiohttp parsed HTTP on (its `set_parser` hook, as WebSockets do): bytes as they come."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self.reader = asyncio.StreamReader(limit=_HIGH_WATER)
        self._transport = transport
        self._paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        buffered = len(self.reader._buffer)  # type: ignore[attr-defined]  # StreamReader keeps no public size
        if buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._transport.pause_reading()  # type: ignore[attr-defined]
            self._paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()

    def set_exception(self, exc: BaseException) -> None:
        """aiohttp's client connection reports a lost connection or read timeout here."""
        self.reader.set_exception(exc if isinstance(exc, Exception) else ConnectionError(repr(exc)))

    async def read(self) -> bytes:
        data = await self.reader.read(_CHUNK)
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()  # type: ignore[attr-defined]
            self._paused = False
        return data


class Pipe(Protocol):
    """One side of a relay."""

    async def read(self) -> bytes: ...  # b"" at EOF
    async def write(self, data: bytes) -> None: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...


class TakenOver:
    """A connection aiohttp owns (the app's inbound one, or an upstream one after a 101), relayed byte for byte."""

    def __init__(self, transport: asyncio.Transport | None, protocol: Any) -> None:
        self.transport = transport
        self._protocol = protocol
        self._feed = _Feed(transport)

    @classmethod
    def inbound(cls, request: web.BaseRequest) -> TakenOver:
        """The app's connection, after our answer's headers (200 to a CONNECT, or a 101) are written."""
        pipe = cls(request.transport, request.protocol)
        # aiohttp's hook takes any object with feed_data/feed_eof (its stub names WebSocketReader); bytes already
        # read are fed first.
        request.protocol.set_parser(pipe._feed)  # type: ignore[arg-type]
        return pipe

    @classmethod
    def upstream(cls, connection: Connection) -> TakenOver:
        """An upstream connection whose response was a 101 (aiohttp holds back the bytes after it until now)."""
        pipe = cls(connection.transport, connection.protocol)
        connection.protocol.set_parser(pipe._feed, pipe._feed)  # type: ignore[union-attr]  # a 101's connection has one
        return pipe

    async def read(self) -> bytes:
        return await self._feed.read()

    async def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            raise ConnectionResetError("the connection is closed")
        t.write(data)
        await self._protocol._drain_helper()

    def send_last(self, data: bytes) -> None:
        """A last write before `close()` (which still flushes it); no waiting on a peer that may not read."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_eof(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            t.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Streams:
    """A connection we opened ourselves (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self) -> bytes:
        return await self._reader.read(_CHUNK)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    def write_eof(self) -> None:
        if not self._writer.is_closing() and self._writer.can_write_eof():
            self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()


@dataclass(slots=True)
class Relayed:
    """What a relay moved, and why it stopped."""

    sent: int = 0  # bytes app → upstream
    received: int = 0  # bytes upstream → app
    ended: str = ""  # client | upstream (whose side stopped first) | idle | stopped


async def relay(
    client: Pipe,
    upstream: Pipe,
    *,
    linger: float,
    idle: float | None = None,
    stop: asyncio.Event | None = None,
    settled: asyncio.Event | None = None,
    on_sent: Callable[[bytes], None] | None = None,
    on_received: Callable[[bytes], None] | None = None,
) -> Relayed:
    """Pump bytes both ways until both sides end, one fails, nothing moved for `idle` seconds, or `stop` is set.

    A side that ends cleanly is half-closed on the other, which then has `linger` seconds to finish (as a TCP
    relay should); so do both once `settled` is set (the protocol inside says it is over). The pipes are left
    open: the caller closes them (after a last word, if it has one).
    """
    loop = asyncio.get_running_loop()
    out = Relayed()
    last = loop.time()

    async def pump(src: Pipe, dst: Pipe, outbound: bool, watch: Callable[[bytes], None] | None) -> None:
        nonlocal last
        while data := await src.read():
            last = loop.time()
            if outbound:
                out.sent += len(data)
            else:
                out.received += len(data)
            if watch is not None:
                try:
                    watch(data)
                except Exception:  # a broken observer must never break the traffic it watches
                    log.exception("relay observer failed; no longer watching this direction")
                    watch = None
            await dst.write(data)
        dst.write_eof()

    c2u = asyncio.create_task(pump(client, upstream, True, on_sent))
    u2c = asyncio.create_task(pump(upstream, client, False, on_received))
    waits: set[asyncio.Future[Any]] = {c2u, u2c}
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    settler = asyncio.ensure_future(settled.wait()) if settled is not None else None
    waits.update(f for f in (stopper, settler) if f is not None)
    linger_until: float | None = None
    try:
        while not (c2u.done() and u2c.done()):
            now = loop.time()
            limits = [t for t in (last + idle if idle is not None else None, linger_until) if t is not None]
            if idle is not None and now >= last + idle:
                out.ended = "idle"
                break
            if linger_until is not None and now >= linger_until:
                break
            done, waits = await asyncio.wait(
                waits, timeout=min(limits) - now if limits else None, return_when=asyncio.FIRST_COMPLETED
            )
            if stopper is not None and stopper in done:
                out.ended = "stopped"
                break
            if settler is not None and settler in done:
                done.discard(settler)
                linger_until = linger_until or loop.time() + linger
            failed = False
            for t in done:
                out.ended = out.ended or ("client" if t is c2u else "upstream")
                exc = t.exception()
                if exc is not None:
                    if not isinstance(exc, _GONE):
                        raise exc
                    failed = True
            if failed:
                break
            if done and linger_until is None:
                linger_until = loop.time() + linger
    finally:
        extra = [f for f in (stopper, settler) if f is not None]
        for t in (c2u, u2c, *extra):
            t.cancel()
        await asyncio.gather(c2u, u2c, *extra, return_exceptions=True)
    return out


# -- CONNECT ------------------------------------------------------------------------------------------------------------


async def open_guarded(
    host: str, port: int, allow_private: bool, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    try:
        check_ip_literal(host, allow_private)
    except RefusedAddress as e:
        raise errors.Forbidden(str(e)) from None
    async with asyncio.timeout(timeout):
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise errors.UpstreamError(f"upstream host name did not resolve: {e}", o.DNS) from None
        addrs = [str(i[4][0]) for i in infos if allow_private or is_public(str(i[4][0]))]
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
        reader, writer = await open_guarded(host, port, up.allow_private, up.timeouts.connect)
    except TimeoutError:
        raise errors.UpstreamTimeout("upstream did not accept the tunnel in time", timeout="connect") from None
    ex.ttfb_s = time.perf_counter() - ex.t0
    ex.status = 200
    resp = ExactStreamResponse(status=200, reason="Connection Established", headers=echo)
    upstream = Streams(reader, writer)
    try:
        await resp.prepare(request)
        client = TakenOver.inbound(request)
        try:
            moved = await relay(client, upstream, linger=up.timeouts.read)
        finally:
            client.close()
    finally:
        upstream.close()
    ex.request_headers = []
    ex.attributes["tunnel_bytes_sent"] = str(moved.sent)
    ex.attributes["tunnel_bytes_received"] = str(moved.received)
    ex.extra["tunnel"] = (moved.sent, moved.received)
    metrics.tunnel_bytes.labels(target.upstream_name, "sent").inc(moved.sent)
    metrics.tunnel_bytes.labels(target.upstream_name, "received").inc(moved.received)
    return resp
