"""100 MB bodies stream through in both directions with bounded memory (never buffered whole)."""

from __future__ import annotations

import os

import aiohttp
from aiohttp import web
from conftest import proxy_config

SIZE = 100 * 1024 * 1024
CHUNK = 256 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


async def test_100mb_upload_streams_with_bounded_memory(upstream, make_sidecar):
    seen = {"bytes": 0, "peak": 0}
    base = rss()

    async def sink(request):
        async for chunk in request.content.iter_any():
            seen["bytes"] += len(chunk)
            seen["peak"] = max(seen["peak"], rss() - base)
        return web.json_response({"got": seen["bytes"]})

    upstream.read_body = False
    upstream.routes["/upload"] = sink
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    block = b"u" * CHUNK

    async def body():
        for _ in range(SIZE // CHUNK):
            yield block

    async with aiohttp.ClientSession() as s:
        async with s.post(sc.proxy_url + "/billing/upload", data=body(), headers={"Content-Length": str(SIZE)}) as r:
            assert r.status == 200
            assert (await r.json())["got"] == SIZE
    assert seen["peak"] < 48 * 1024 * 1024, f"RSS grew by {seen['peak'] / 1e6:.0f} MB"


async def test_100mb_download_streams_with_bounded_memory(upstream, make_sidecar):
    block = b"d" * CHUNK

    async def source(request):
        resp = web.StreamResponse(headers={"Content-Length": str(SIZE)})
        await resp.prepare(request)
        for _ in range(SIZE // CHUNK):
            await resp.write(block)
        await resp.write_eof()
        return resp

    upstream.routes["/download"] = source
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    base = rss()
    total = peak = 0
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/download") as r:
            assert r.headers["Content-Length"] == str(SIZE)
            async for chunk in r.content.iter_chunked(CHUNK):
                total += len(chunk)
                peak = max(peak, rss() - base)
    assert total == SIZE
    assert peak < 48 * 1024 * 1024, f"RSS grew by {peak / 1e6:.0f} MB"
