"""The listeners under hostile clients, over raw sockets: slow headers, idle connections, the connection cap, the
in-flight body budget (seamline.proxy.listener, seamline.proxy.accept.InflightBodies)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from conftest import proxy_config
from support.rawhttp import raw_request
from support.waiting import wait_for

GET = b"GET /billing/x HTTP/1.1\r\nHost: x\r\n\r\n"
POST_B = b"POST /billing/b HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"b" * 60000


def _open(sc) -> float:
    return sc.registry.get_sample_value("seamline_connections_open", {"listener": "proxy"}) or 0.0


async def _read_response(reader: asyncio.StreamReader, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split(" ")[1]), headers, body


async def test_slowloris_headers_are_cut_after_header_timeout_with_408(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"header_timeout": "400ms"}))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    head = b"GET /billing/x HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 300  # 15 s to drip whole
    t0 = time.monotonic()

    async def drip() -> None:  # one byte every 50 ms, as a slowloris client would (one a second, compressed)
        for b in head:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    try:
        status, headers, body = await _read_response(reader)
        elapsed = time.monotonic() - t0
        assert status == 408 and headers["content-type"] == "application/problem+json"
        problem = orjson.loads(body)
        assert problem["error_class"] == "client_timeout" and "server.header_timeout" in problem["detail"]
        assert 0.35 <= elapsed < 8.0, elapsed  # cut on the deadline, long before the head could have completed
        assert await asyncio.wait_for(reader.read(), 2) == b""  # and closed
    finally:
        dripping.cancel()
        writer.close()
    assert upstream.received == []
    assert (
        sc.registry.get_sample_value("seamline_listener_rejections_total", {"listener": "proxy", "reason": "header_timeout"}) == 1
    )


async def test_a_keep_alive_connection_idle_past_header_timeout_is_not_cut(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"header_timeout": "200ms", "keepalive_timeout": 5}))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:
        writer.write(GET)
        assert (await _read_response(reader))[0] == 200
        with pytest.raises(TimeoutError):  # idle for 3× the header deadline: nothing arrives, nothing closes
            await asyncio.wait_for(reader.read(1), 0.6)
        writer.write(GET)
        assert (await _read_response(reader))[0] == 200
    finally:
        writer.close()


async def test_500_idle_connections_are_closed_on_the_keepalive_timeout(upstream, make_sidecar):
    keepalive = 1.5
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"keepalive_timeout": keepalive, "header_timeout": 5}))
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    try:
        for i in range(500):  # 50 served one request first; 450 never send a byte
            # Idle from before the step that arms the server's timer (the connect, or the request whose answer
            # re-arms it): a lower bound of when its idle clock starts, whatever the loop's latency in between.
            # (The server's clock is the loop's, read once per iteration: after a long iteration it lags.)
            since = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
            if i < 50:
                since = time.monotonic()
                writer.write(GET)
                assert (await _read_response(reader))[0] == 200
            conns.append((reader, writer, since))

        async def closed_after(reader: asyncio.StreamReader, idle_since: float) -> float:
            assert await asyncio.wait_for(reader.read(), keepalive + 5) == b""  # closed by the server, nothing sent
            return time.monotonic() - idle_since

        idle = await asyncio.gather(*(closed_after(r, t) for r, _, t in conns))
        assert len(idle) == 500
        assert min(idle) >= keepalive - 0.1, min(idle)  # none cut before its idle timeout
        await wait_for(lambda: _open(sc) == 0, 5, what="no connection left open")
    finally:
        for _, w, _ in conns:
            w.close()


async def test_connections_over_max_connections_get_503_and_are_closed(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"max_connections": 3}))
    held = [await asyncio.open_connection("127.0.0.1", sc.proxy_port) for _ in range(3)]
    await wait_for(lambda: _open(sc) == 3, 5, what="3 connections open")
    r = await raw_request(sc.proxy_port, GET)
    assert r.status == 503 and r.header("Content-Type") == "application/problem+json"
    assert r.header("Retry-After") == "1" and r.header("Connection") == "close"
    assert orjson.loads(r.body)["error_class"] == "overloaded"
    assert upstream.received == []
    for _, w in held:
        w.close()
    await wait_for(lambda: _open(sc) == 0, 5, what="the held connections closed")
    assert (await raw_request(sc.proxy_port, GET)).status == 200  # capacity is back
    rejected = {"listener": "proxy", "reason": "max_connections"}
    assert sc.registry.get_sample_value("seamline_listener_rejections_total", rejected) == 1


async def test_request_bodies_over_the_inflight_budget_get_503(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"max_inflight_body_bytes": 100_000}))
    budget = next(s for s in sc.path.request if s.name == "inflight_bodies")
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:  # a 60 KB upload whose client stalls after its headers: 60 KB reserved
        writer.write(b"POST /billing/a HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"a" * 10)
        await writer.drain()
        await wait_for(lambda: budget.used == 60000, 5, what="the first body's reservation")
        second = await raw_request(
            sc.proxy_port, b"POST /billing/b HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"b" * 60000
        )
        assert second.status == 503 and second.header("Content-Type") == "application/problem+json"
        problem = orjson.loads(second.body)
        assert problem["error_class"] == "overloaded" and "max_inflight_body_bytes" in problem["detail"]
        chunked = await raw_request(
            sc.proxy_port, b"POST /billing/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        assert chunked.status == 503  # unknown length: reserves its capture cap + read buffer (192 KiB) > 40 KB left
        small = await raw_request(sc.proxy_port, b"POST /billing/d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert small.status == 200  # what fits still goes through
        writer.write(b"a" * 59990)
        assert (await _read_response(reader))[0] == 200
    finally:
        writer.close()
    await wait_for(lambda: budget.used == 0, 5, what="every reservation released")
    again = await raw_request(
        sc.proxy_port, b"POST /billing/b HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"b" * 60000
    )
    assert again.status == 200
    assert sorted(r.path_qs for r in upstream.received) == ["/a", "/b", "/d"]
