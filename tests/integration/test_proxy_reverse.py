"""Reverse mode on real sockets: relay fidelity, hop-by-hop rules, errors as problem+json."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web
from conftest import proxy_config
from support.rawhttp import raw_request


async def test_request_is_relayed_faithfully(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as s:
        async with s.put(
            sc.proxy_url + "/billing/v1/items/42?a=1&b=%20x",
            data=b"\x00\x01binary",
            headers={"X-Custom": "one", "Content-Type": "application/octet-stream"},
        ) as r:
            assert r.status == 200
            assert await r.json() == {"ok": True, "path": "/v1/items/42"}
    got = upstream.last
    assert got.method == "PUT"
    assert got.raw_path == "/v1/items/42?a=1&b=%20x"
    assert got.body == b"\x00\x01binary"
    assert got.header("X-Custom") == "one"
    assert got.header("Host") == f"127.0.0.1:{upstream.port}"
    assert got.header("User-Agent") is None  # nothing added that the caller did not send
    assert got.header("X-Forwarded-For") == "127.0.0.1"
    assert got.header("X-Forwarded-Proto") == "http"
    assert got.header("X-Forwarded-Host") == f"127.0.0.1:{sc.proxy_port}"


async def test_upstream_gets_exactly_the_callers_headers_plus_correlation(upstream, make_sidecar):
    """No client auto headers (Accept, Accept-Encoding, User-Agent, a default Content-Type); Host first."""
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    raw = b"POST /billing/v1/x HTTP/1.1\r\nHost: app.local\r\nX-Mine: 1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
    r = await raw_request(sc.proxy_port, raw)
    assert r.status == 200
    names = [k.lower() for k, _ in upstream.last.headers]
    assert names[0] == "host" and upstream.last.header("Host") == f"127.0.0.1:{upstream.port}"
    assert sorted(names) == sorted(
        [
            "host",
            "x-mine",
            "content-length",
            "x-run-id",
            "traceparent",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "via",  # this hop, named (RFC 9110 §7.6.3; seamline.proxy.via)
        ]
    )
    assert upstream.last.body == b"body"


async def test_x_forwarded_headers_are_appended(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    async with aiohttp.ClientSession() as s:
        await (
            await s.get(sc.proxy_url + "/billing/x", headers={"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"})
        ).read()
    assert upstream.last.header("X-Forwarded-For") == "10.0.0.1, 127.0.0.1"
    assert upstream.last.header("X-Forwarded-Proto") == "https, http"


async def test_hop_by_hop_headers_are_removed_both_ways(upstream, make_sidecar):
    async def resp(request):
        return web.Response(
            text="hi", headers={"Connection": "X-Up-Private", "X-Up-Private": "secret", "Keep-Alive": "timeout=5", "X-Kept": "1"}
        )

    upstream.routes["/hop"] = resp
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    raw = (
        b"GET /billing/hop HTTP/1.1\r\nHost: x\r\nConnection: close, X-Private-Hop\r\nX-Private-Hop: 1\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n"
        b"Upgrade-Insecure-Requests: 1\r\nX-End: 1\r\n\r\n"
    )
    r = await raw_request(sc.proxy_port, raw)
    assert r.status == 200
    names = {k.lower() for k, _ in upstream.last.headers}
    for hop in ("x-private-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert hop not in names, hop
    assert "x-end" in names and "upgrade-insecure-requests" in names
    out = {k.lower() for k, _ in r.headers}
    assert "x-up-private" not in out and "keep-alive" not in out
    assert "x-kept" in out


async def test_each_response_drops_only_the_headers_its_own_connection_lists(upstream, make_sidecar):
    # The relay keeps one drop set per Connection value: a header listed by one response must not be dropped from
    # the next, whose Connection lists another (or none).
    async def resp(request):
        listed = request.query["list"]
        headers = {"X-A": "a", "X-B": "b"} | ({"Connection": listed} if listed else {})
        return web.Response(text="hi", headers=headers)

    upstream.routes["/conn"] = resp
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    got = {}
    async with aiohttp.ClientSession() as s:
        for listed in ("X-A", "X-B", "X-A", ""):
            async with s.get(sc.proxy_url + "/billing/conn", params={"list": listed}) as r:
                await r.read()
                got.setdefault(listed, []).append({k for k in ("X-A", "X-B") if k in r.headers})
    assert got == {"X-A": [{"X-B"}, {"X-B"}], "X-B": [{"X-A"}], "": [{"X-A", "X-B"}]}


async def test_configured_upstream_headers_are_added(upstream, make_sidecar):
    cfg = proxy_config({"billing": upstream.url})
    cfg = cfg.model_copy(
        update={"upstreams": {"billing": cfg.upstreams["billing"].model_copy(update={"headers": {"X-Api-Version": "2024-01"}})}}
    )
    sc = await make_sidecar(cfg)
    async with aiohttp.ClientSession() as s:
        await (await s.get(sc.proxy_url + "/billing/x")).read()
    assert upstream.last.header("X-Api-Version") == "2024-01"


async def test_base_url_path_prefix_is_kept(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"crm": upstream.url + "/api/v2"}))
    async with aiohttp.ClientSession() as s:
        await (await s.get(sc.proxy_url + "/crm/contacts/7")).read()
    assert upstream.last.raw_path == "/api/v2/contacts/7"


async def test_upstream_error_responses_are_relayed_unchanged(upstream, make_sidecar):
    async def boom(request):
        return web.Response(status=503, body=b"maintenance", headers={"Retry-After": "30", "Content-Type": "text/plain"})

    upstream.routes["/boom"] = boom
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/boom") as r:
            assert r.status == 503
            assert await r.text() == "maintenance"
            assert r.headers["Retry-After"] == "30"
            assert r.headers["Content-Type"] == "text/plain"


async def test_head_204_and_304_have_no_body(upstream, make_sidecar):
    async def no_content(request):
        return web.Response(status=204)

    async def not_modified(request):
        return web.Response(status=304, headers={"ETag": '"v1"'})

    async def head(request):
        return web.Response(body=b"x" * 100, headers={"X-Len": "100"})

    upstream.routes.update({"/204": no_content, "/304": not_modified, "/head": head})
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    for raw, status in (
        (b"GET /billing/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 204),
        (b"GET /billing/304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 304),
        (b"HEAD /billing/head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
    ):
        r = await raw_request(sc.proxy_port, raw)
        assert r.status == status
        assert r.body == b""
        assert r.header("Transfer-Encoding") is None
    assert upstream.received[-1].method == "HEAD"


async def test_chunked_bodies_stream_both_ways(upstream, make_sidecar):
    async def chunked(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    upstream.routes["/chunked"] = chunked

    async def gen():
        for i in range(4):
            yield f"c{i}".encode()

    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    async with aiohttp.ClientSession() as s:
        async with s.post(sc.proxy_url + "/billing/chunked", data=gen()) as r:
            assert r.status == 200
            assert r.headers.get("Transfer-Encoding") == "chunked"
            assert await r.read() == b"part0;part1;part2;part3;part4;"
    assert upstream.last.body == b"c0c1c2c3"
    assert upstream.last.header("Transfer-Encoding") == "chunked"


async def test_compressed_bodies_are_not_altered_in_transit(upstream, make_sidecar):
    import gzip

    payload = gzip.compress(b'{"a": 1}')

    async def gz(request):
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    upstream.routes["/gz"] = gz
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.post(sc.proxy_url + "/billing/gz", data=payload, headers={"Content-Encoding": "gzip"}) as r:
            assert await r.read() == payload
            assert r.headers["Content-Encoding"] == "gzip"
    assert upstream.last.body == payload


async def test_unknown_upstream_is_404_problem_json(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/nope/v1/x", headers={"X-Run-ID": "r-404"}) as r:
            assert r.status == 404
            assert r.content_type == "application/problem+json"
            body = await r.json()
    assert body["type"].endswith("/unknown-upstream")
    assert body["status"] == 404 and body["run_id"] == "r-404" and len(body["trace_id"]) == 32
    assert body["error_class"] == "unknown_upstream"
    assert upstream.received == []


async def test_closed_port_is_502_connect(make_sidecar):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sc = await make_sidecar(proxy_config({"billing": f"http://127.0.0.1:{port}"}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/x") as r:
            assert r.status == 502
            body = await r.json()
    assert body["error_class"] == "connect"
    assert body["type"].endswith("/upstream-unreachable")


async def test_slow_upstream_is_504_timeout(upstream, make_sidecar):
    release = asyncio.Event()

    async def slow(request):
        await release.wait()
        return web.Response(text="late")

    upstream.routes["/slow"] = slow
    cfg = proxy_config({"billing": upstream.url})
    up = cfg.upstreams["billing"].model_copy(
        update={"timeouts": cfg.upstreams["billing"].timeouts.model_copy(update={"read": 0.2, "total": 0.3})}
    )
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"billing": up}}))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/billing/slow") as r:
                assert r.status == 504
                body = await r.json()
        assert body["error_class"] == "timeout"
    finally:
        release.set()


async def test_websocket_upgrade_to_an_upstream_that_declines_it_gets_the_upstreams_answer(upstream, make_sidecar):
    # Was a 501 before WebSockets were proxied (tests/integration/test_proxy_websocket.py): now the offer goes upstream.
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    raw = (
        b"GET /billing/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    r = await raw_request(sc.proxy_port, raw)
    assert r.status == 200 and r.body == b'{"ok": true, "path": "/ws"}'
    assert upstream.last.header("Upgrade") == "websocket" and upstream.last.header("Sec-WebSocket-Key")


async def test_malformed_request_is_400(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    r = await raw_request(sc.proxy_port, b"GET /billing/x HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    assert r.status == 400
    assert upstream.received == []


async def test_oversized_header_is_rejected(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    raw = b"GET /billing/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    r = await raw_request(sc.proxy_port, raw)
    assert r.status in (400, 431)
    assert upstream.received == []


async def test_request_body_over_configured_limit_is_413(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"max_request_body_bytes": 1000}))
    async with aiohttp.ClientSession() as s:
        async with s.post(sc.proxy_url + "/billing/x", data=b"x" * 5000) as r:
            assert r.status == 413
            assert (await r.json())["error_class"] == "too_large"
    assert upstream.received == []


async def test_client_token_required_when_configured(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"client_tokens": {"s3cr3t-token-value": "checkout"}}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/x") as r:
            assert r.status == 401
        async with s.get(sc.proxy_url + "/billing/x", headers={"X-Seamline-Token": "s3cr3t-token-value"}) as r:
            assert r.status == 200
    assert upstream.last.header("X-Seamline-Token") is None  # our control headers never leak upstream


async def test_connections_to_the_upstream_are_pooled(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    ports = set()

    async def peer(request):
        ports.add(request.transport.get_extra_info("peername")[1])
        return web.Response(text="ok")

    upstream.routes["/peer"] = peer
    async with aiohttp.ClientSession() as s:
        for _ in range(10):
            await (await s.get(sc.proxy_url + "/billing/peer")).read()
    assert len(ports) == 1


async def test_upstream_stalling_mid_body_aborts_the_client_after_the_read_timeout(upstream, make_sidecar):
    release = asyncio.Event()

    async def stall(request):
        resp = web.StreamResponse(headers={"Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b"x" * 70000)  # over the small-body path: streamed
        await release.wait()
        return resp

    upstream.routes["/stall"] = stall
    cfg = proxy_config({"billing": upstream.url})
    up = cfg.upstreams["billing"].model_copy(
        update={"timeouts": cfg.upstreams["billing"].timeouts.model_copy(update={"read": 0.3})}
    )
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"billing": up}}))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/billing/stall") as r:
                assert r.status == 200
                try:
                    await asyncio.wait_for(r.read(), 10)
                    raise AssertionError("the body should have been cut")
                except aiohttp.ClientPayloadError:
                    pass
    finally:
        release.set()


async def test_small_body_stall_is_a_504(upstream, make_sidecar):
    release = asyncio.Event()

    async def stall(request):
        resp = web.StreamResponse(headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await release.wait()
        return resp

    upstream.routes["/stall-small"] = stall
    cfg = proxy_config({"billing": upstream.url})
    up = cfg.upstreams["billing"].model_copy(
        update={"timeouts": cfg.upstreams["billing"].timeouts.model_copy(update={"read": 0.3})}
    )
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"billing": up}}))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/billing/stall-small") as r:
                assert r.status == 504
                assert (await r.json())["error_class"] == "timeout"
    finally:
        release.set()
