"""The guards' Redis client: none without `redis_url`; with one, a client bounded by `redis_timeout`, no retries."""

from __future__ import annotations

import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from seamline.config.models import Config
from seamline.guards.redis_state import open_redis


def test_no_url_no_client() -> None:
    assert open_redis(Config(storage={"enabled": False})) is None


async def test_a_frozen_redis_times_out_within_redis_timeout_without_retries(redis_server) -> None:
    client = open_redis(Config(storage={"enabled": False}, redis_url=redis_server.url, redis_timeout=0.3))
    assert client is not None
    try:
        assert await client.ping()  # connected
        redis_server.pause()
        t0 = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.ping()
        elapsed = time.monotonic() - t0
    finally:
        redis_server.resume()
        await client.aclose()
    assert elapsed < 1.0  # one 0.3 s timeout; the client's defaults (5 s socket timeout, 3 retries) would take 15 s+


async def test_it_talks_to_a_real_redis(redis_server) -> None:
    client = open_redis(Config(storage={"enabled": False}, redis_url=redis_server.url))
    assert client is not None
    try:
        assert await client.ping()
    finally:
        await client.aclose()
