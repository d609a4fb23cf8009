"""The Redis client the guards share their state through when `redis_url` (SEAMLINE_REDIS_URL) is set.

One client per sidecar, opened in `Sidecar.start` and closed in `stop`. Every socket operation is bounded by
`redis_timeout`, so a frozen Redis costs a guard that long at most (then each guard's own policy for a store that
is down); `from_url` connects lazily, so a Redis that is down at start does not keep the sidecar from starting.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from seamline.config.models import Config


def open_redis(config: Config) -> Redis | None:
    """A client for `config.redis_url`, or None when it is unset (the guards keep their state in-process)."""
    if not config.redis_url:
        return None
    t = config.redis_timeout
    return Redis.from_url(
        config.redis_url,
        socket_timeout=t,
        socket_connect_timeout=t,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),  # a guard falls back at once: a retried timeout would double the wait
    )
