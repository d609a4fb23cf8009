"""The local rate limit through real sockets: a real upstream that timestamps what it receives, a real redis-server.

The rates are measured at the upstream, from its own timestamps (a least-squares fit of arrival time on call number).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from redis.asyncio import Redis
from support.chdb_path import chdb_url, unique_database
from support.upstream import Upstream
from support.waiting import wait_for

from seamline import outcomes as o
from seamline.config.models import Config

pytestmark = pytest.mark.timeout(60)


class Stamps:
    """The upstream's clock at each call it received; the first `answer_429` calls get 429 with Retry-After."""

    def __init__(self, upstream: Upstream, path: str = "/v1/charges", answer_429: int = 0, retry_after: str = "1") -> None:
        self.times: list[float] = []
        self.answer_429 = answer_429
        self.retry_after = retry_after
        upstream.routes[path] = self.handle

    async def handle(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        if len(self.times) <= self.answer_429:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": self.retry_after})
        return web.json_response({"id": f"ch_{len(self.times)}", "status": "succeeded"}, status=201)

    def rate(self, skip: int = 0) -> float:
        """Calls per second: the inverse slope of a least-squares line through (call number, arrival time).

        Not (n - 1) / (last - first): that reads two arrivals only, and on a loaded machine one late first or last
        arrival moves it by more than the tolerance; the fit weighs every arrival's slot."""
        ts = sorted(self.times)[skip:]
        slope, _ = statistics.linear_regression(range(len(ts)), ts)
        return 1.0 / slope


def config(url: str, *, redis_url: str | None = None, redis_timeout: str = "500ms", storage: Any = None, **limit: Any) -> Config:
    upstream = {"base_url": url, "allow_private": True, "timeouts": {"connect": 2, "read": 5, "total": 10}}
    return Config(
        upstreams={"billing": {**upstream, "rate_limit": limit}},
        server={"port": 0, "admin_port": 0},
        storage=storage or {"enabled": False},
        redis_url=redis_url,
        redis_timeout=redis_timeout,
    )


async def call(session: aiohttp.ClientSession, sc: Any, run_id: str = "run-rl") -> tuple[int, dict[str, str], bytes]:
    started = time.monotonic()
    async with session.post(sc.proxy_url + "/billing/v1/charges", json={"amount": 1}, headers={"X-Run-ID": run_id}) as r:
        body = await r.read()
        return r.status, {**r.headers, "took": f"{time.monotonic() - started:.3f}"}, body


async def burst(sidecars: list[Any], n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`n` concurrent calls, spread over the sidecars in turn."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        return await asyncio.gather(*(call(s, sidecars[i % len(sidecars)]) for i in range(n)))


def assert_refusals(answers: list[tuple[int, dict[str, str], bytes]]) -> list[tuple[int, dict[str, str], bytes]]:
    refused = [a for a in answers if a[0] == 429]
    for _, headers, body in refused:
        problem = orjson.loads(body)
        assert headers["Content-Type"] == "application/problem+json"
        assert problem["type"].endswith("/rate-limited-locally") and problem["error_class"] == o.RATE_LIMITED_LOCALLY
        assert int(headers["Retry-After"]) >= 1 and problem["retry_after_s"] == int(headers["Retry-After"])
    assert all(status in (201, 429) for status, _, _ in answers)
    return refused


async def test_sixty_concurrent_calls_reach_the_upstream_at_the_configured_rate(upstream, make_sidecar):
    stamps = Stamps(upstream)
    sc = await make_sidecar(config(upstream.url, rps=20, burst=1, max_wait="2s"))
    answers = await burst([sc], 60)
    refused = assert_refusals(answers)
    # slots every 50 ms from now to max_wait: 41 go (a little more as the 60 arrive over a few ms), the rest get 429
    assert 41 <= len(stamps.times) <= 44 and len(refused) == 60 - len(stamps.times)
    assert stamps.rate() == pytest.approx(20, rel=0.05)
    assert max(float(h["took"]) for _, h, _ in refused) < 1.0  # told at once, not after waiting max_wait (2 s) first
    get = sc.registry.get_sample_value
    assert get("seamline_rate_limited_total", {"upstream": "billing"}) == len(refused)
    assert get("seamline_rate_limit_wait_seconds_count", {"upstream": "billing"}) == len(stamps.times)
    assert get("seamline_rate_limit_wait_seconds_sum", {"upstream": "billing"}) > 30  # 0.05 + 0.10 + … + 2.0 ≈ 41


async def test_the_upstreams_429_with_retry_after_pauses_the_bucket(upstream, make_sidecar):
    stamps = Stamps(upstream, answer_429=1, retry_after="1")
    sc = await make_sidecar(config(upstream.url, rps=50, burst=5, max_wait="2s"))
    async with aiohttp.ClientSession() as s:
        first = await call(s, sc)
        assert first[0] == 429 and "Retry-After" in first[1]  # the upstream's own answer, relayed
        assert (await call(s, sc))[0] == 201
    assert stamps.times[1] - stamps.times[0] >= 0.95  # the bucket had 4 tokens left, and handed none out


async def test_calls_waiting_when_the_upstream_says_429_go_after_the_pause(upstream, make_sidecar):
    stamps = Stamps(upstream, answer_429=1, retry_after="1")
    sc = await make_sidecar(config(upstream.url, rps=10, burst=1, max_wait="2s"))
    answers = await burst([sc], 4)  # slots at 0, 0.1, 0.2, 0.3 s; the first is answered 429 at once
    assert sorted(a[0] for a in answers) == [201, 201, 201, 429]
    later = [t - stamps.times[0] for t in stamps.times[1:]]
    assert min(later) >= 0.95, later  # none of the three went in the pause, though their slots were inside it


async def test_two_sidecars_sharing_one_redis_together_hold_the_rate(upstream, make_sidecar, redis_server):
    stamps = Stamps(upstream)
    cfg = config(upstream.url, redis_url=redis_server.url, rps=20, burst=1, max_wait="2s")
    a, b = await make_sidecar(cfg), await make_sidecar(cfg)
    answers = await burst([a, b], 60)
    refused = assert_refusals(answers)
    assert 41 <= len(stamps.times) <= 44 and len(refused) == 60 - len(stamps.times)
    assert stamps.rate() == pytest.approx(20, rel=0.05)  # each alone would have let 20/s through: 40/s together
    for sc in (a, b):
        assert sc.registry.get_sample_value("seamline_rate_limit_redis_fallbacks_total", {"upstream": "billing"}) == 0
        assert sc.registry.get_sample_value("seamline_rate_limit_redis_up") == 1


async def test_an_upstream_429_seen_by_one_sidecar_pauses_the_other(upstream, make_sidecar, redis_server):
    stamps = Stamps(upstream, answer_429=1, retry_after="1")
    cfg = config(upstream.url, redis_url=redis_server.url, rps=50, burst=5, max_wait="2s")
    a, b = await make_sidecar(cfg), await make_sidecar(cfg)
    redis = Redis.from_url(redis_server.url)
    async with aiohttp.ClientSession() as s, redis:
        assert (await call(s, a))[0] == 429

        async def paused() -> bool:  # the pause reached Redis: the bucket's key lives on past the second of the pause
            return int(await redis.pttl("seamline:ratelimit:billing")) > 1500

        await wait_for(paused, 2, what="the pause in the shared bucket")
        assert (await call(s, b))[0] == 201
    assert stamps.times[1] - stamps.times[0] >= 0.95


async def test_traffic_goes_on_with_the_local_bucket_when_redis_is_killed(upstream, make_sidecar, redis_server):
    stamps = Stamps(upstream)
    sc = await make_sidecar(config(upstream.url, redis_url=redis_server.url, rps=20, burst=1, max_wait="2s"))
    async with aiohttp.ClientSession() as s:
        assert (await call(s, sc))[0] == 201
        redis_server.stop()  # SIGKILL
        answers = await burst([sc], 20)
    assert [a[0] for a in answers] == [201] * 20  # 20 calls at 20/s fit in max_wait: none was held longer
    assert max(float(h["took"]) for _, h, _ in answers) < 2.0 + 0.5
    assert stamps.rate(skip=1) == pytest.approx(20, rel=0.05)  # the local bucket held the rate
    get = sc.registry.get_sample_value
    assert get("seamline_rate_limit_redis_fallbacks_total", {"upstream": "billing"}) >= 1
    assert get("seamline_rate_limit_redis_up") == 0


async def test_a_frozen_redis_delays_calls_by_redis_timeout_at_most(upstream, make_sidecar, redis_server):
    Stamps(upstream)
    sc = await make_sidecar(
        config(upstream.url, redis_url=redis_server.url, redis_timeout="200ms", rps=100, burst=10, max_wait="2s")
    )
    async with aiohttp.ClientSession() as s:
        assert (await call(s, sc))[0] == 201
        redis_server.pause()  # SIGSTOP: connected, and nothing answers
        try:
            for _ in range(5):
                status, headers, _ = await call(s, sc)
                assert status == 201
                assert float(headers["took"]) < 0.2 + 0.3  # the first waits redis_timeout (200 ms); the others go local
        finally:
            redis_server.resume()
    assert sc.registry.get_sample_value("seamline_rate_limit_redis_fallbacks_total", {"upstream": "billing"}) >= 5


async def test_waits_and_refusals_are_recorded_in_the_handoff_rows(upstream, make_sidecar, tmp_path):
    Stamps(upstream)
    storage = {
        "enabled": True,
        "clickhouse_url": chdb_url(),
        "database": unique_database("ratelimit"),
        "spool_dir": str(tmp_path / "spool"),
        "flush_interval_ms": 20,
    }
    cfg = config(upstream.url, storage=storage, rps=5, burst=1, max_wait="300ms")
    sc = await make_sidecar(cfg)
    answers = await burst([sc], 3)  # slots at 0, 0.2 and 0.4 s: the third is beyond max_wait
    assert sorted(a[0] for a in answers) == [201, 201, 429]
    assert await sc.flush(30)
    rows = await sc.store.query(
        "SELECT guard, guard_wait_ms, outcome, error_class, status FROM handoffs WHERE run_id = 'run-rl' ORDER BY guard_wait_ms"
    )
    by_guard = {r["guard"]: r for r in rows}
    assert set(by_guard) == {"", o.GUARD_RATE_QUEUED, o.GUARD_RATE_LIMITED}
    assert by_guard[""]["guard_wait_ms"] == 0 and by_guard[""]["status"] == 201
    assert 150 <= by_guard[o.GUARD_RATE_QUEUED]["guard_wait_ms"] <= 300 and by_guard[o.GUARD_RATE_QUEUED]["status"] == 201
    limited = by_guard[o.GUARD_RATE_LIMITED]
    assert (limited["outcome"], limited["error_class"]) == (o.REFUSED, o.RATE_LIMITED_LOCALLY)
