"""The baseline: a bare aiohttp + uvloop pass-through proxy (pooled client, streamed bodies, nothing else).

`_bare_proxy.py PORT UPSTREAM [--correlation-headers]`: with the flag it also sends the five headers Seamline must
add upstream (run ID, traceparent, X-Forwarded-For/-Proto/-Host) and echoes two (run ID, traceparent), as constants:
the cost of the mandated headers alone, inside aiohttp, with none of Seamline's logic.
"""

import sys

import aiohttp
import uvloop
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}


def main() -> None:
    upstream = sys.argv[2]
    correlation = "--correlation-headers" in sys.argv[3:]
    extra_up = {
        "X-Run-ID": "0193a6b2-7c1e-7d2a-9f3b-1c2d3e4f5a6b",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "127.0.0.1",
    }
    extra_down = {k: extra_up[k] for k in ("X-Run-ID", "traceparent")}
    session: aiohttp.ClientSession | None = None

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        path = request.raw_path.split("/", 2)[2] if request.raw_path.count("/") >= 2 else ""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        if correlation:
            headers.update(extra_up)
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        data = request.content if request.body_exists else None
        async with session.request(request.method, f"{upstream}/{path}", headers=headers, data=data, allow_redirects=False) as r:
            out = web.StreamResponse(status=r.status, reason=r.reason)
            for k, v in r.headers.items():
                if k.lower() not in HOP or k.lower() == "content-length":
                    out.headers.add(k, v)
            if correlation:
                out.headers.update(extra_down)
            try:
                await out.prepare(request)
                async for chunk in r.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
            except ConnectionError:
                pass  # the load generator closed its connection at the end of a run
            return out

    async def start() -> None:
        server = web.Server(handler, access_log=None, auto_decompress=False)
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
        import asyncio

        await asyncio.Event().wait()

    uvloop.run(start())


if __name__ == "__main__":
    main()
