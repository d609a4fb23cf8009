"""What aiohttp's HTTP parser rejects, on both listeners: problem+json echoing nothing, one throttled log line per
kind, counted; and no Server header naming Python or aiohttp on any answer (seamline.proxy.listener)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson
import pytest
from conftest import proxy_config
from support.rawhttp import raw_request

SECRET = "sk_live_PLANTED_4c7d1e"
HDRS = f"Host: x\r\nAuthorization: Bearer {SECRET}\r\nCookie: sid={SECRET}\r\n".encode()

MALFORMED = {
    "method": (b"G\x01T /billing/x HTTP/1.1\r\n" + HDRS + b"\r\n", 400),
    "request_line": (b"GET /billing/x HTTP/1.1 " + SECRET.encode() + b"\r\n" + HDRS + b"\r\n", 400),
    "version": (b"GET /billing/x HTTP/9.9\r\n" + HDRS + b"\r\n", 505),
    "header": (b"GET /billing/x HTTP/1.1\r\n" + HDRS + b"Bad Header: " + SECRET.encode() + b"\r\n\r\n", 400),
    "invalid_character": (b"GET /billing/x HTTP/1.1\r\n" + HDRS + b"X-A: a\x00" + SECRET.encode() + b"\r\n\r\n", 400),
    "too_long": (b"GET /billing/x HTTP/1.1\r\n" + HDRS + b"X-A: " + SECRET.encode() * 400 + b"\r\n\r\n", 431),
    "target": (b"GET \x7f" + SECRET.encode() + b" HTTP/1.1\r\n" + HDRS + b"\r\n", 400),
    "framing": (b"POST /billing/x HTTP/1.1\r\n" + HDRS + b"Content-Length: 1" + SECRET.encode() + b"\r\n\r\n", 400),
}


@pytest.fixture
async def sc(upstream, make_sidecar):
    return await make_sidecar(proxy_config({"billing": upstream.url}))


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_each_malformed_request_gets_problem_json_with_no_raw_echo(sc, upstream, kind):
    data, status = MALFORMED[kind]
    for port in (sc.proxy_port, sc.admin_port):
        r = await raw_request(port, data)
        assert r.status == status, (kind, port)
        assert r.header("Content-Type") == "application/problem+json"
        assert r.header("Server") is None and r.header("Connection") == "close"
        problem = orjson.loads(r.body)
        assert problem["kind"] == kind and problem["error_class"] == "bad_request"
        assert SECRET not in r.body.decode("latin-1") and "\\x" not in r.body.decode("latin-1")
        assert "GET" not in problem["detail"] and "POST" not in problem["detail"]
    assert upstream.received == []
    assert sc.registry.get_sample_value("seamline_http_parse_errors_total", {"kind": kind}) == 2


async def test_a_burst_of_bad_requests_logs_a_few_redacted_lines(sc, caplog):
    caplog.set_level(logging.DEBUG)
    kinds = ("method", "header", "invalid_character", "too_long")

    async def one(i: int) -> int:
        return (await raw_request(sc.proxy_port, MALFORMED[kinds[i % len(kinds)]][0])).status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert set(statuses) <= {400, 431} and len(statuses) == 200
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert 1 <= len(lines) <= len(kinds), [r.getMessage() for r in lines]  # one per kind in the interval
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    everything = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert SECRET not in everything
    total = sum(sc.registry.get_sample_value("seamline_http_parse_errors_total", {"kind": k}) or 0 for k in kinds)
    assert total == 200


async def test_no_answer_names_python_or_aiohttp(sc, make_sidecar):
    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # an upstream that sends no Server header at all
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    bare_server = await asyncio.start_server(bare, "127.0.0.1", 0)
    port = bare_server.sockets[0].getsockname()[1]
    try:
        bare_sc = await make_sidecar(proxy_config({"bare": f"http://127.0.0.1:{port}"}))
        relayed = await raw_request(bare_sc.proxy_port, b"GET /bare/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert relayed.status == 200 and relayed.header("Server") is None  # nothing of ours added to a relayed answer
    finally:
        bare_server.close()
    own = await raw_request(sc.proxy_port, b"GET /nowhere/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert own.status == 404 and own.header("Server") is None
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/readyz", "/metrics", "/nothing-here"):
            async with s.get(sc.admin_url + path) as r:
                assert r.headers.get("Server") == "seamline", path  # the product, never its versions
