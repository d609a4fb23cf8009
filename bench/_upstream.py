"""Benchmark upstream: aiohttp + uvloop; GET /item → 1 KiB JSON, POST /item → echo-ish JSON reply.

`_upstream.py PORT [BODY_FILE]`: with BODY_FILE, every GET answers its contents instead (bench/openapi.py).
"""

import sys

import orjson
import uvloop
from aiohttp import web

ITEM = orjson.dumps({"id": "ch_123", "status": "succeeded", "amount": 1000, "currency": "eur", "pad": "x" * 900})


async def item(request: web.Request) -> web.Response:
    if request.method == "POST":
        body = await request.read()
        try:
            sent = orjson.loads(body)
        except orjson.JSONDecodeError:
            sent = {}
        reply = {
            "id": "ch_123",
            "status": "succeeded",
            "amount": sent.get("amount"),
            "currency": sent.get("currency"),
            "pad": "x" * 900,
        }
        return web.Response(body=orjson.dumps(reply), content_type="application/json")
    return web.Response(body=ITEM, content_type="application/json")


def main() -> None:
    global ITEM
    if len(sys.argv) > 2:
        with open(sys.argv[2], "rb") as f:
            ITEM = f.read()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", item)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
