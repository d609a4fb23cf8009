"""Seamline's own request-path code per request, in-process, no sockets: what a change to the stages costs.

    PYTHONPATH=src .venv/bin/python bench/path_micro.py [--method GET|POST] [--n 20000] [--repeat 7]

bench/compare.py's Seamline config (contracts, guards off) with `storage.enabled: false`, its request headers (a
caller run ID, a bearer token, on POST a JSON body and an Idempotency-Key) on an aiohttp request made with
`aiohttp.test_utils.make_mocked_request`, and nginx's response headers. Per request it runs what
`ProxyHandler.__call__` runs around the upstream call: the Exchange, `Inbound`, every request stage of
`build_request_path`, the headers sent upstream (`upstream_headers` and RelayRequest's copy), the response headers
through the response stages, and the done stages. aiohttp's own HTTP work (parsing, the client, the writes) is not
in it: that is the part Seamline shares with the bare proxy (bench/path_cpu.py measures the whole).

Thread CPU time (`time.thread_time`: time the thread was off the CPU does not count), best of `--repeat` rounds:
the figure to compare across two trees (`PYTHONPATH=<tree>/src`) on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare import TOKEN, seamline_config
from multidict import CIMultiDict, CIMultiDictProxy
from proxy import BODY

from seamline.config.loader import load_config
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound
from seamline.proxy.upstream import upstream_headers
from seamline.sidecar import Sidecar

RESPONSE_HEADERS = [
    ("Server", "nginx/1.22.1"),
    ("Date", "Tue, 01 Dec 2026 14:00:00 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Length", "985"),
    ("Connection", "keep-alive"),
]


class _Response:
    """What `Relay.response_headers` reads of aiohttp's ClientResponse."""

    def __init__(self) -> None:
        self.headers = CIMultiDictProxy(CIMultiDict(RESPONSE_HEADERS))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--method", default="GET")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from aiohttp.test_utils import make_mocked_request

    tmp = Path(tempfile.mkdtemp(prefix="seamline-micro-"))
    cfg_path = seamline_config(tmp, "seamline+nostore", 9)
    cfg = load_config(cfg_path)
    sidecar = Sidecar(cfg, source=str(cfg_path))
    path, handler = sidecar.path, sidecar.handler
    relay = path.upstream.relay
    run_l, watched = handler._run_header_l, handler._watched
    run_header, via = path.upstream.run_header, path.upstream.via
    post = args.method == "POST"
    base: dict[str, str] = {"Host": "127.0.0.1:8080", "Authorization": TOKEN}
    if post:
        base |= {"Idempotency-Key": "0f3a9c1e2b4d-k1", "Content-Type": "application/json", "Content-Length": str(len(BODY))}
    resp: Any = _Response()
    counter = iter(range(10**9))

    def requests(n: int) -> list[Any]:
        """n requests, a new caller run every 10 (as compare.py's load: loop detection counts, never flags)."""
        made = [
            make_mocked_request(args.method, "/bench/item", headers=base | {"X-Run-ID": f"r{next(counter)}"})
            for _ in range(n // 10 + 1)
        ]
        return [made[i // 10] for i in range(n)]

    def one(http: Any) -> None:
        ex = Exchange(ts_us=time.time_ns() // 1000, t0=time.perf_counter(), mode="reverse", method=http.method)
        heads = Inbound(http.headers, run_l, watched)
        for stage in path.request:
            stage.request(ex, http, heads)
        headers = upstream_headers(http, heads, ex, run_header, ex.target.upstream.headers, via)  # type: ignore[union-attr]
        ex.request_headers = list(headers.items())
        CIMultiDict(headers)  # RelayRequest.update_headers' copy
        ex.status = 200
        relay.response_headers(ex, http, resp)
        ex.duration_s = time.perf_counter() - ex.t0
        for stage in path.done:
            stage.done(ex)

    for http in requests(2000):  # warm: route cache, counters
        one(http)
    best = float("inf")
    for _ in range(args.repeat):
        batch = requests(args.n)
        t = time.thread_time()
        for http in batch:
            one(http)
        best = min(best, (time.thread_time() - t) / args.n * 1e6)
    print(json.dumps({"method": args.method, "us_per_request": round(best, 2), "python": sys.version.split()[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
