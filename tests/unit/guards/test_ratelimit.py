"""The rate limit's bucket (GCRA) and its stage's decisions, on an injected clock."""

from __future__ import annotations

import asyncio
import sys

import pytest
from prometheus_client import CollectorRegistry

from seamline import errors
from seamline import outcomes as o
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.guards.ratelimit import RateLimitStage, TokenBucket


def test_a_full_bucket_lets_a_burst_go_then_spaces_calls_at_the_rate() -> None:
    b = TokenBucket(rps=10, burst=3)
    assert [b.reserve(0.0, 5.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [round(b.reserve(0.0, 5.0), 9) for _ in range(3)] == [0.1, 0.2, 0.3]  # served in arrival order


def test_a_slot_further_than_max_wait_is_refused_and_nothing_is_taken() -> None:
    b = TokenBucket(rps=20, burst=1)
    waits = [b.reserve(0.0, 0.1) for _ in range(4)]
    assert waits[:3] == [0.0, 0.05, 0.1] and waits[3] == -1.0
    assert b.retry_after(0.0, 0.1) == pytest.approx(0.05)  # the refusal took nothing: the next slot is still 0.15
    assert b.reserve(0.05, 0.1) == pytest.approx(0.1)


def test_an_idle_bucket_refills_to_burst_and_no_further() -> None:
    b = TokenBucket(rps=10, burst=2)
    b.reserve(0.0, 1.0), b.reserve(0.0, 1.0)
    assert b.reserve(60.0, 0.0) == 0.0 and b.reserve(60.0, 0.0) == 0.0
    assert b.reserve(60.0, 0.0) == -1.0  # a minute idle saved two tokens, not 600
    assert b.retry_after(60.0, 0.0) == pytest.approx(0.1)


def test_a_pause_hands_out_no_slot_before_it_ends_and_no_burst_after() -> None:
    b = TokenBucket(rps=10, burst=5)
    b.pause(until=3.0)
    assert b.reserve(1.0, 0.5) == -1.0
    assert b.retry_after(1.0, 0.5) == pytest.approx(1.5)
    assert b.reserve(1.0, 10.0) == pytest.approx(2.0)
    assert b.reserve(1.0, 10.0) == pytest.approx(2.1)  # the rate resumes at once, the burst does not
    b.pause(until=2.0)  # a shorter pause never shortens a longer one
    assert b.paused_until == 3.0


def config(**rate_limit: object) -> Config:
    return Config(
        upstreams={
            "billing": {"base_url": "http://127.0.0.1:9", "rate_limit": rate_limit},
            "crm": {"base_url": "http://127.0.0.1:9/crm"},
        },
        storage={"enabled": False},
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def exchange(upstream: str = "billing") -> Exchange:
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="POST")
    ex.upstream = upstream
    return ex


def test_no_stage_without_a_rate_limit() -> None:
    cfg = Config(upstreams={"crm": {"base_url": "http://127.0.0.1:9"}}, storage={"enabled": False})
    assert RateLimitStage.from_config(cfg, CollectorRegistry()) is None


def test_the_fast_path_returns_no_awaitable_and_keeps_nothing() -> None:
    clock = Clock()
    stage = RateLimitStage(config(rps=1000, burst=10), CollectorRegistry(), clock=clock)
    ex, other = exchange(), exchange("crm")
    assert stage.request(other, None, None) is None  # type: ignore[arg-type]  # an upstream with no limit
    blocks = sys.getallocatedblocks()
    for _ in range(10_000):
        clock.now += 0.01  # slower than the rate: a token every time
        assert stage.request(ex, None, None) is None  # type: ignore[arg-type]
    assert sys.getallocatedblocks() - blocks < 50  # nothing kept per call (no future, task or timer left behind)
    assert ex.guard == "" and stage.limits["billing"].immediate == 10_000


async def test_a_call_without_a_token_waits_for_its_slot_and_is_recorded_queued() -> None:
    stage = RateLimitStage(config(rps=50, burst=1, max_wait=1), CollectorRegistry())
    assert stage.request(exchange(), None, None) is None  # type: ignore[arg-type]
    ex = exchange()
    waiting = stage.request(ex, None, None)  # type: ignore[arg-type]
    assert waiting is not None
    await waiting
    assert ex.guard == o.GUARD_RATE_QUEUED and 0.0 < ex.guard_wait_s <= 0.05


def test_a_call_beyond_max_wait_gets_429_with_retry_after() -> None:
    clock = Clock()
    stage = RateLimitStage(config(rps=2, burst=1, max_wait="1s"), CollectorRegistry(), clock=clock)
    stage.request(exchange(), None, None)  # type: ignore[arg-type]  # now
    for _ in range(2):  # at +0.5 s and +1 s: within max_wait
        waiting = stage.request(exchange(), None, None)  # type: ignore[arg-type]
        assert asyncio.iscoroutine(waiting)
        waiting.close()
    ex = exchange()
    with pytest.raises(errors.RateLimitedLocally) as refused:
        stage.request(ex, None, None)  # type: ignore[arg-type]  # at +1.5 s: 0.5 s beyond max_wait
    assert refused.value.status == 429 and refused.value.slug == "rate-limited-locally"
    assert refused.value.headers == {"Retry-After": "1"} and refused.value.extra == {"retry_after_s": 1}
    assert refused.value.error_class == o.RATE_LIMITED_LOCALLY
    assert ex.guard == o.GUARD_RATE_LIMITED and stage.limits["billing"].limited == 1


def test_the_upstreams_429_with_retry_after_pauses_the_bucket() -> None:
    clock = Clock()
    stage = RateLimitStage(config(rps=100, burst=10, max_wait="2s", max_pause="5s"), CollectorRegistry(), clock=clock)
    ex = exchange()
    ex.status, ex.response_headers = 429, [("Content-Type", "text/plain"), ("retry-after", "3")]
    stage.response(ex, None, [])  # type: ignore[arg-type]
    with pytest.raises(errors.RateLimitedLocally) as refused:
        stage.request(exchange(), None, None)  # type: ignore[arg-type]
    assert refused.value.headers == {"Retry-After": "1"}  # 3 s of pause less the 2 s it may wait
    clock.now += 3.0
    assert stage.request(exchange(), None, None) is None  # type: ignore[arg-type]
    ex.response_headers = [("Retry-After", "86400")]
    stage.response(ex, None, [])  # type: ignore[arg-type]
    assert stage.limits["billing"].bucket.paused_until == clock.now + 5.0  # cut to max_pause


def test_a_429_without_retry_after_or_from_an_unlimited_upstream_pauses_nothing() -> None:
    clock = Clock()
    stage = RateLimitStage(config(rps=100, burst=1), CollectorRegistry(), clock=clock)
    for upstream, headers in (("billing", []), ("crm", [("Retry-After", "9")])):
        ex = exchange(upstream)
        ex.status, ex.response_headers = 429, headers
        stage.response(ex, None, [])  # type: ignore[arg-type]
    assert stage.request(exchange(), None, None) is None  # type: ignore[arg-type]


def test_metrics_count_waits_and_refusals_per_upstream() -> None:
    registry = CollectorRegistry()
    clock = Clock()
    stage = RateLimitStage(config(rps=1, burst=1, max_wait=0), registry, clock=clock)
    stage.request(exchange(), None, None)  # type: ignore[arg-type]
    with pytest.raises(errors.RateLimitedLocally):
        stage.request(exchange(), None, None)  # type: ignore[arg-type]
    stage.limits["billing"].waited(0.3)
    get = registry.get_sample_value
    assert get("seamline_rate_limited_total", {"upstream": "billing"}) == 1
    assert get("seamline_rate_limit_wait_seconds_count", {"upstream": "billing"}) == 2
    assert get("seamline_rate_limit_wait_seconds_bucket", {"upstream": "billing", "le": "0.001"}) == 1
    assert get("seamline_rate_limit_wait_seconds_bucket", {"upstream": "billing", "le": "0.5"}) == 2
    assert get("seamline_rate_limit_wait_seconds_sum", {"upstream": "billing"}) == pytest.approx(0.3)
