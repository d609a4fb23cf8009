"""The guards' shared state: one Redis client for the guards of this Seamline, when `redis_url` is set.

Minimal on purpose (loop detection needs only this): the client is lazy (no connection until the first command),
so building it needs no running loop; the composition root owns it and closes it (`await client.aclose()`).
Each guard bounds its own commands by `redis_timeout` and decides what a Redis that is down means for it.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from seamline.config.models import Config


def open_redis(config: Config) -> aioredis.Redis | None:
    """A client for `config.redis_url` (None when unset: each guard keeps its state in this process)."""
    if not config.redis_url:
        return None
    t = config.redis_timeout
    # No retries inside the client (its default retries 3 times with backoff): a guard that finds Redis down must
    # learn it within redis_timeout and apply its policy, not wait for the client to try again.
    return aioredis.Redis.from_url(
        config.redis_url, socket_timeout=t, socket_connect_timeout=t, retry=Retry(NoBackoff(), 0), health_check_interval=0
    )
