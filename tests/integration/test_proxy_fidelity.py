"""A transparent hop, tried as real clients use it: Expect: 100-continue, slow uploads, redirects, the exact
response headers, and error texts that are short and carry no secret. Real sockets on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess

import aiohttp
import orjson
import pytest
import requests
from aiohttp import web
from conftest import proxy_config
from support.canned import CannedServer
from support.rawhttp import raw_request
from support.tls import self_signed


def billing_config(url: str, timeouts: dict[str, float] | None = None, **fields: object):
    """proxy_config with one upstream `billing` whose fields (and timeouts) are overridden."""
    cfg = proxy_config({"billing": url})
    model = type(cfg.upstreams["billing"])
    data = cfg.upstreams["billing"].model_dump()
    data["timeouts"].update(timeouts or {})
    data.update(fields)
    return cfg.model_copy(update={"upstreams": {"billing": model.model_validate(data)}})


# -- Expect: 100-continue -------------------------------------------------------------------------------------


async def test_expect_100_continue_is_answered_before_any_body_byte(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:
        body = b"x" * 100_000
        writer.write(
            b"POST /billing/v1/upload HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        )
        await writer.drain()
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")  # nothing of the body has been sent yet
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        await writer.drain()
        async with asyncio.timeout(5):
            final = await reader.read()
    finally:
        writer.close()
    assert final.startswith(b"HTTP/1.1 200 ")
    assert upstream.last.body == body
    assert upstream.last.header("Expect") is None  # this hop's expectation, met here


async def test_expect_100_continue_refused_request_gets_its_final_answer_without_100(make_sidecar, upstream):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    r = await raw_request(
        sc.proxy_port,
        b"POST /nope/x HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    )
    assert r.status == 404 and r.header("Content-Type") == "application/problem+json"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_curl_upload_does_not_wait_for_the_expect_timeout(upstream, make_sidecar, tmp_path):
    """curl sends Expect: 100-continue for bodies over 1 MiB and waits `--expect100-timeout` for the 100."""
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    big = tmp_path / "big.bin"
    big.write_bytes(b"y" * (2 << 20))
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--expect100-timeout", "120",
        "--data-binary", f"@{big}", sc.proxy_url + "/billing/v1/upload",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)  # without the 100, curl would wait 120 s
    assert out == b"200", err
    assert len(upstream.last.body) == 2 << 20


# -- slow request bodies ---------------------------------------------------------------------------------------


async def _slow_chunks(total: int, chunk: int, gap: float):
    sent = 0
    while sent < total:
        yield b"z" * chunk
        sent += chunk
        await asyncio.sleep(gap)  # the client's pace, not a wait for a condition


async def test_slow_upload_longer_than_the_read_timeout_gets_the_upstream_answer(upstream, make_sidecar):
    """`timeouts.read` bounds the wait for the upstream, not the client's upload: 3 s of body against read=1 s."""
    sc = await make_sidecar(billing_config(upstream.url, {"read": 1.0, "total": 1.0}))
    async with aiohttp.ClientSession() as s:
        async with s.post(sc.proxy_url + "/billing/v1/upload", data=_slow_chunks(48 * 1024, 4096, 0.25)) as r:
            assert r.status == 200, await r.text()
    assert len(upstream.last.body) == 48 * 1024


async def test_stalled_upload_is_a_client_timeout_not_an_upstream_one(upstream, make_sidecar):
    sc = await make_sidecar(billing_config(upstream.url, {"request_body_idle": 0.5}))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:
        writer.write(b"POST /billing/v1/upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()  # ... and then nothing more
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            rest = await reader.read(65536)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    problem = orjson.loads(rest.split(b"\r\n", 1)[-1] if b"{" not in rest[:1] else rest)
    assert problem["error_class"] == "client_timeout"
    assert problem["type"].endswith("/request-body-timeout")
    assert not upstream.received or upstream.last.body != b"hello"  # the upstream never got a complete request


async def test_stalled_small_body_of_known_length_is_a_client_timeout(upstream, make_sidecar):
    sc = await make_sidecar(billing_config(upstream.url, {"request_body_idle": 0.5}))
    r = await raw_request(
        sc.proxy_port, b"POST /billing/v1/x HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\nonly-part", timeout=10
    )
    assert r.status == 408 and orjson.loads(r.body)["error_class"] == "client_timeout"
    assert upstream.received == []


# -- redirects -------------------------------------------------------------------------------------------------


async def test_redirects_to_the_upstream_are_rewritten_to_the_route(upstream, make_sidecar):
    base = upstream.url + "/api"

    def redirect(location: str):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": location, "Content-Location": location})

        return handler

    upstream.routes.update({
        "/api/v1/absolute": redirect(base + "/v1/final?x=1"),
        "/api/v1/path": redirect("/api/v1/final"),
        "/api/v1/outside": redirect("/login"),
        "/api/v1/elsewhere": redirect("https://id.example/authorize"),
        "/api/v1/relative": redirect("final"),
    })  # fmt: skip
    sc = await make_sidecar(proxy_config({"billing": base}))
    origin = f"http://127.0.0.1:{sc.proxy_port}"
    async with aiohttp.ClientSession() as s:

        async def location(path: str) -> tuple[str, str]:
            async with s.get(sc.proxy_url + "/billing/v1/" + path, allow_redirects=False) as r:
                assert r.status == 302
                return r.headers["Location"], r.headers["Content-Location"]

        assert await location("absolute") == (origin + "/billing/v1/final?x=1",) * 2
        assert await location("path") == ("/billing/v1/final",) * 2
        assert await location("outside") == ("/login",) * 2  # not reachable through this route: unchanged
        assert await location("elsewhere") == ("https://id.example/authorize",) * 2
        assert await location("relative") == ("final",) * 2  # already resolves against the routed URL


async def test_a_client_following_redirects_stays_routed(upstream, make_sidecar):
    async def start(request: web.Request) -> web.Response:
        return web.Response(status=303, headers={"Location": upstream.url + "/v1/done"})

    upstream.routes["/v1/start"] = start
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    r = await asyncio.to_thread(requests.get, sc.proxy_url + "/billing/v1/start", timeout=5)
    assert r.status_code == 200 and r.json() == {"ok": True, "path": "/v1/done"}
    assert [h.url for h in r.history] == [sc.proxy_url + "/billing/v1/start"]
    assert r.url == f"http://127.0.0.1:{sc.proxy_port}/billing/v1/done"
    assert r.headers["X-Run-ID"]  # the followed request went through Seamline too


async def test_rewrite_redirects_false_leaves_locations_alone(upstream, make_sidecar):
    async def start(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": upstream.url + "/v1/done"})

    upstream.routes["/v1/start"] = start
    sc = await make_sidecar(billing_config(upstream.url, rewrite_redirects=False))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/v1/start", allow_redirects=False) as r:
            assert r.headers["Location"] == upstream.url + "/v1/done"


# -- no header the upstream did not send -------------------------------------------------------------------------

_GZ = gzip.compress(b'{"zipped": true}')
CANNED = {
    "/no-body": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
    "/no-content": b"HTTP/1.1 204 No Content\r\nX-B: 2\r\n\r\n",
    "/not-modified": b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nCache-Control: max-age=60\r\n\r\n',
    "/teapot": b"HTTP/1.1 418 I'm a teapot\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nshort",
    "/head": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n",
    "/chunked": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n',
    "/gzip": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_GZ), _GZ),
    "/no-type": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "/big-no-type": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"b" * 100_000,
    "/server-and-date": b"HTTP/1.1 200 OK\r\nServer: upstream/1.0\r\n"
    b"Date: Tue, 01 Dec 2026 00:00:00 GMT\r\n"  # date-ok: a relayed value
    b"Content-Length: 2\r\n\r\nok",
    "/cookies": b"HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nLink: </x>; rel=next\r\n"
    b"Content-Length: 0\r\n\r\n",
    "/empty-type": b"HTTP/1.1 202 Accepted\r\nContent-Type: \r\nContent-Length: 0\r\n\r\n",
}
# This hop's own: the documented correlation headers, the framing of this connection, and a Date when the upstream
# sent none (RFC 9110 §6.6.1).
_OURS = {"x-run-id", "traceparent", "connection"}


def _unchunk(r) -> bytes:
    if (r.header("Transfer-Encoding") or "").lower() != "chunked":
        return r.body
    out, rest = b"", r.body
    while True:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return out
        out, rest = out + rest[:n], rest[n + 2 :]


def _header_set(headers: list[tuple[str, str]], sent_date: bool) -> list[tuple[str, str]]:
    out = [(k.lower(), v) for k, v in headers if k.lower() not in _OURS]
    if not sent_date:
        dates = [h for h in out if h[0] == "date"]
        assert len(dates) == 1  # added, as RFC 9110 §6.6.1 requires of a forwarding recipient with a clock
        out.remove(dates[0])
    return sorted(out)


@pytest.mark.parametrize("path", sorted(CANNED))
async def test_proxied_response_headers_equal_direct_ones(path, make_sidecar):
    server = await CannedServer(dict(CANNED)).start()
    try:
        sc = await make_sidecar(proxy_config({"api": server.url}))
        method = b"HEAD" if path == "/head" else b"GET"
        req = method + b" %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        direct = await raw_request(server.port, req % path.encode())
        proxied = await raw_request(sc.proxy_port, req % (b"/api" + path.encode()))
    finally:
        await server.stop()
    assert proxied.status == direct.status
    assert _unchunk(proxied) == _unchunk(direct)  # chunk boundaries are this hop's framing
    sent_date = b"\r\nDate:" in CANNED[path]
    assert _header_set(proxied.headers, sent_date) == _header_set(direct.headers, True)
    assert proxied.header("Server") == direct.header("Server")  # never aiohttp's own (it discloses versions)


async def test_seamline_own_problem_responses_disclose_no_server(make_sidecar, upstream):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    r = await raw_request(sc.proxy_port, b"GET /nope HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert r.status == 404 and r.header("Server") is None


# -- error texts: short, printable, redacted ---------------------------------------------------------------------

SECRET = "sk_live_51Habc0123456789SECRET"


async def test_garbage_upstream_answer_gives_a_short_redacted_detail(make_sidecar, tmp_path):
    garbage = (b"NOT-HTTP api_key=" + SECRET.encode() + b" token: hunter2-hunter2 " + b"\x01noise " * 8000)[:65536]
    server = await CannedServer(
        {"/x": garbage, "/hdr": b"HTTP/1.1 200 OK\r\nBad Header api_key=" + SECRET.encode() + b"\r\n\r\n"}
    ).start()
    try:
        sc = await make_sidecar(proxy_config({"api": server.url}))
        for path in ("/api/x", "/api/hdr"):
            r = await raw_request(sc.proxy_port, b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % path.encode())
            assert r.status == 502, r.body[:200]
            detail = orjson.loads(r.body)["detail"]
            assert 0 < len(detail) <= 512
            assert SECRET not in detail and "hunter2" not in detail and "\x01" not in detail
            assert len(r.body) < 2048
    finally:
        await server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test certificate")
async def test_http_base_url_on_a_tls_port_says_use_https(make_sidecar, tmp_path):
    _, ctx = self_signed(tmp_path)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        sc = await make_sidecar(proxy_config({"api": f"http://127.0.0.1:{port}"}))
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/api/x") as r:
                problem = await r.json(content_type=None)
        assert r.status == 502
        assert problem["detail"] == "the upstream answered with TLS; use https:// in base_url"
        assert problem["error_class"] == "tls"
    finally:
        server.close()


async def test_plain_upstream_hanging_up_is_not_called_tls(make_sidecar):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sc = await make_sidecar(proxy_config({"api": f"http://127.0.0.1:{port}"}))
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/api/x") as r:
                problem = await r.json(content_type=None)
        assert r.status == 502 and "TLS" not in problem["detail"] and problem["error_class"] == "connect"
    finally:
        server.close()
