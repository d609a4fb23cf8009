"""Forward mode: HTTP_PROXY absolute-form requests and CONNECT tunnels to configured hosts only."""

from __future__ import annotations

import asyncio

import aiohttp
from conftest import proxy_config


async def test_absolute_form_request_to_a_configured_host_is_proxied(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, handoffs={"billing.list": {"upstream": "billing", "match": "GET /v1/items"}}))
    async with aiohttp.ClientSession() as s:
        async with s.get(upstream.url + "/v1/items?page=2", proxy=sc.proxy_url, headers={"X-Run-ID": "fwd-1"}) as r:
            assert r.status == 200
            assert r.headers["X-Run-ID"] == "fwd-1"
    assert upstream.last.raw_path == "/v1/items?page=2"
    assert upstream.last.header("X-Run-ID") == "fwd-1"
    assert upstream.last.header("traceparent")


async def test_connect_tunnel_relays_bytes_untouched(make_sidecar):
    received = bytearray()

    async def echo(reader, writer):
        while data := await reader.read(65536):
            received.extend(data)
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sc = await make_sidecar(proxy_config({"secure": f"https://127.0.0.1:{port}"}))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Run-ID: tun-1\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"X-Run-ID: tun-1" in head
        writer.write(b"\x16\x03\x01tls-bytes-as-is")
        got = await asyncio.wait_for(reader.readexactly(len(b"\x16\x03\x01tls-bytes-as-is")), 5)
        assert got == b"\x16\x03\x01TLS-BYTES-AS-IS"
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest == b""
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert bytes(received) == b"\x16\x03\x01tls-bytes-as-is"
