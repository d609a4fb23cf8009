"""How long the guards' Redis calls take under load, to choose `redis_timeout` with evidence.

A Seamline (in this process) with the duplicate guard and loop detection on Redis (a real redis-server on
127.0.0.1), each of its Redis operations timed where the guards make it (`SharedRedis.run`, the round trip as the
guard sees it: event-loop delay included); the load comes from a child process (so its client work does not share
Seamline's event loop): ROUNDS waves of CONCURRENCY concurrent guarded POSTs, each with a new Idempotency-Key and a
caller run ID. Then the same load against each candidate `redis_timeout`, counting the 503 guard-store-unavailable
answers (spurious: Redis was up the whole time).

    PYTHONPATH=src:tests python bench/redis_rtt.py [--concurrency 200] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from support.redis_server import RedisServer
from support.servers import free_ports
from support.upstream import Upstream

from seamline.config.models import Config
from seamline.sidecar import Sidecar

LOAD = textwrap.dedent(
    """
    import asyncio, sys, uuid, aiohttp, orjson
    url, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    async def one(s, i):
        h = {"Idempotency-Key": uuid.uuid4().hex, "X-Run-ID": f"run-{i % 50}"}
        async with s.post(url, data=b'{"amount": 5}', headers=h) as r:
            await r.read()
            return r.status
    async def main():
        counts = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            for _ in range(rounds):
                for st in await asyncio.gather(*(one(s, i) for i in range(n))):
                    counts[str(st)] = counts.get(str(st), 0) + 1
        print(orjson.dumps(counts).decode())
    asyncio.run(main())
    """
)


def config(upstream: str, redis_url: str, timeout: float) -> Config:
    return Config(
        upstreams={"billing": {"base_url": upstream, "allow_private": True}},
        handoffs={"billing.charge": {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"}},
        loops={"max_calls_per_run": 1_000_000},
        server={"port": 0, "admin_port": 0},
        storage={"enabled": False},
        redis_url=redis_url,
        redis_timeout=timeout,
    )


async def run(upstream: Upstream, redis_url: str, timeout: float, n: int, rounds: int) -> tuple[dict[str, int], list[float]]:
    sc = Sidecar(config(upstream.url, redis_url, timeout))
    await sc.start()
    took: list[float] = []
    assert sc.redis is not None
    inner = sc.redis.run

    async def timed(op: Any) -> Any:
        t = time.perf_counter()
        try:
            return await inner(op)
        finally:
            took.append(time.perf_counter() - t)

    sc.redis.run = timed  # type: ignore[method-assign]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOAD, sc.proxy_url + "/billing/v1/charges", str(n), str(rounds), stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate()
    finally:
        await sc.stop()
    import orjson

    return orjson.loads(out), took


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p * len(values)))] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--timeouts", default="0.1,0.25,0.5,1,2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(free_ports(1)[0], Path(tmp)).start()
        upstream = await Upstream().start()
        try:
            counts, took = await run(upstream, redis.url, 10.0, args.concurrency, args.rounds)
            print(f"{args.rounds} waves of {args.concurrency} concurrent guarded calls; answers {counts}")
            print(
                f"Redis ops as the guards see them (n={len(took)}): p50 {pct(took, 0.5):.1f} ms, p95 {pct(took, 0.95):.1f} ms, "
                f"p99 {pct(took, 0.99):.1f} ms, p99.9 {pct(took, 0.999):.1f} ms, max {max(took) * 1000:.1f} ms, "
                f"mean {statistics.fmean(took) * 1000:.1f} ms"
            )
            print("| redis_timeout | 503 guard-store-unavailable | other non-201 | p99 op | max op |")
            print("|---|---|---|---|---|")
            for t in (float(v) for v in args.timeouts.split(",")):
                counts, took = await run(upstream, redis.url, t, args.concurrency, args.rounds)
                bad = sum(v for k, v in counts.items() if k not in ("201", "200", "503"))
                worst = max(took) * 1000
                print(f"| {t * 1000:.0f} ms | {counts.get('503', 0)} | {bad} | {pct(took, 0.99):.1f} ms | {worst:.1f} ms |")
        finally:
            await upstream.stop()
            redis.stop()


if __name__ == "__main__":
    asyncio.run(main())
