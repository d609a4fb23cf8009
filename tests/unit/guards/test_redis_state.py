"""The guards' Redis client: none without `redis_url`; with one, every operation bounded by `redis_timeout`, no
retries, and a Redis that is down or frozen reported as `RedisDown`."""

from __future__ import annotations

import time

import pytest

from seamline.config.models import Config
from seamline.guards.redis_state import RedisDown, open_redis


def test_no_url_no_client() -> None:
    assert open_redis(Config(storage={"enabled": False})) is None


async def test_a_frozen_redis_times_out_within_redis_timeout_without_retries(redis_server) -> None:
    shared = open_redis(Config(storage={"enabled": False}, redis_url=redis_server.url, redis_timeout=0.3))
    assert shared is not None
    await shared.start()
    try:
        assert await shared.run(lambda r: r.ping())  # connected
        redis_server.pause()
        t0 = time.monotonic()
        with pytest.raises(RedisDown, match="redis_timeout"):
            await shared.run(lambda r: r.ping())
        elapsed = time.monotonic() - t0
    finally:
        redis_server.resume()
        await shared.close()
    assert elapsed < 3.0  # one 0.3 s timeout; the client's defaults (5 s socket timeout, 3 retries) would take 15 s+


async def test_a_killed_redis_is_down_and_the_client_never_raises_its_own_errors(redis_server) -> None:
    shared = open_redis(Config(storage={"enabled": False}, redis_url=redis_server.url))
    assert shared is not None
    try:
        assert await shared.run(lambda r: r.ping())
        redis_server.stop()
        with pytest.raises(RedisDown):
            await shared.run(lambda r: r.ping())
    finally:
        await shared.close()
    with pytest.raises(RedisDown, match="closed"):
        _ = shared.client
