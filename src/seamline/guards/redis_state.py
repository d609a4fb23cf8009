"""The Redis client the guards share when `redis_url` (SEAMLINE_REDIS_URL) is set: one per sidecar, created at its
start and closed at its stop (`Sidecar` owns it), every command bounded by `redis_timeout`.

A Redis that is down (refused, reset) or frozen (SIGSTOP, a stalled network) looks the same to a guard: `RedisDown`
within `redis_timeout`, then that guard's own policy (fail_open or fail_closed). redis-py's own retries are off, so
a frozen Redis costs one timeout, not four.

The connections are a blocking pool of `POOL_SIZE`: a burst of calls waits (within `redis_timeout`) for a free
connection instead of failing. redis-py's default pool (100 connections) raises `MaxConnectionsError` at once past
that, and opening a hundred connections together costs the event loop more than the commands: with 200 concurrent
guarded calls on a busy 2-core machine, half of them got 503 guard-store-unavailable from a Redis that was up
(bench/redis_rtt.py has the numbers; README, Guards).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from seamline.config.models import Config

T = TypeVar("T")

POOL_SIZE = 32  # connections to Redis per sidecar; each command holds one for a round trip (well under a millisecond)


class RedisDown(Exception):
    """Redis did not answer in time, refused the connection or failed the command."""


class SharedRedis:
    """`await start()`, then `await run(lambda r: r.get(k))`; `await close()` at stop."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        # No connection is made here (the client connects on its first command): a Redis that is down at start-up
        # must not stop the sidecar from starting, and the stages can hold the client (or its scripts) from the start.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
        )  # fmt: skip
        self._client: aioredis.Redis | None = aioredis.Redis(connection_pool=pool)

    async def start(self) -> None:
        """Kept for the composition root's symmetry; the client exists from construction."""

    @property
    def client(self) -> aioredis.Redis:
        """The raw client, for what `run` does not cover (registering a Lua script); bound each call by `timeout`."""
        if self._client is None:
            raise RedisDown("the Redis client is closed")
        return self._client

    async def run(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """One operation (a command, a pipeline, a script) within `timeout`, or `RedisDown`."""
        client = self._client
        if client is None:
            raise RedisDown("the Redis client is not started")
        try:
            async with asyncio.timeout(self.timeout):
                return await op(client)
        except TimeoutError:
            raise RedisDown(f"Redis did not answer within {self.timeout:g} s (redis_timeout)") from None
        except (RedisError, OSError) as e:
            raise RedisDown(f"Redis failed: {type(e).__name__}") from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose(close_connection_pool=True)


def open_redis(config: Config) -> SharedRedis | None:
    """The shared client for `config.redis_url`, or None (in-process state); started by the Sidecar."""
    if not config.redis_url:
        return None
    return SharedRedis(config.redis_url, config.redis_timeout)
