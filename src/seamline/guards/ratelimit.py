"""Rate limit stage: a token bucket per upstream (`upstreams.<name>.rate_limit: {rps, burst, max_wait}`).

The bucket is GCRA, the token bucket kept in one number (the theoretical arrival time of the next call, as
redis-cell and golang.org/x/time/rate's reservations do): a call takes the next free slot at once, so calls are served
in arrival order and each knows its wait before it waits. No wait: the call goes on (`request` returns None: no
coroutine, future or timer on that path). A wait within `max_wait`: the call sleeps until its slot and goes,
recorded `guard = rate_queued` with `guard_wait_ms`. Longer: 429 problem+json `rate-limited-locally` with Retry-After at
once, since waiting `max_wait` for a refusal already known would only hold the client's connection.

The upstream's own 429 with Retry-After pauses the bucket (cut to `max_pause`): no slot before it ends, and calls
already waiting that would wake inside the pause take a new slot after it (or get 429 if that is beyond their
`max_wait`). With `redis_url` set, the bucket of each upstream is one Redis key updated by one Lua script on Redis's
own clock, so all replicas together hold `rps` (a replica's calls to it go in pipelines on one connection). Redis
down or frozen (each call to it bounded by `redis_timeout` and by `max_wait`): the replica falls back to its
in-process bucket, logs the change once, counts the calls it decided alone, and probes Redis again after a second —
traffic never waits on a Redis that does not answer.

Why no library: aiolimiter (in-process leaky bucket, FIFO) has no Redis, no max-wait refusal and no pause;
`limits` has fixed/moving/sliding windows that answer yes/no (no token bucket, no wait to a slot); pyrate-limiter's
Redis bucket is a sliding-window log (a sorted-set entry per call) whose waiters poll with sleeps (+50 ms each), not
served in order, with no pause. The bucket here is a few lines of arithmetic and one short script.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from seamline import errors
from seamline import outcomes as o
from seamline.config.guards import RateLimit
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound
from seamline.proxy.stage import Headers
from seamline.proxy.waits import sleep_while_connected
from seamline.validate.classify import parse_retry_after

if TYPE_CHECKING:
    from seamline.guards.retry import Attempted

log = logging.getLogger("seamline.guards.ratelimit")

WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
KEY_PREFIX = "seamline:ratelimit:"
REDIS_RETRY_S = 1.0  # after Redis failed, the local bucket decides alone this long before one call probes Redis again


class TokenBucket:
    """GCRA on an injected clock: `reserve(now, max_wait)` takes the next slot and says how long until it."""

    __slots__ = ("interval", "paused_until", "tat", "tolerance")

    def __init__(self, rps: float, burst: int) -> None:
        self.interval = 1.0 / rps
        self.tolerance = (burst - 1) * self.interval  # how far ahead of the rate a burst may run
        self.tat = -math.inf  # theoretical arrival time of the next call at the sustained rate
        self.paused_until = -math.inf

    def reserve(self, now: float, max_wait: float) -> float:
        """Seconds until the caller's slot (0.0: now), the slot taken; -1.0 when it is further than max_wait (nothing
        taken)."""
        tat = self.tat if self.tat > now else now
        wait = tat - self.tolerance - now
        if wait > max_wait + 1e-9:  # within a nanosecond is within: float sums of intervals are not exact
            return -1.0
        self.tat = tat + self.interval
        return wait if wait > 0.0 else 0.0

    def retry_after(self, now: float, max_wait: float) -> float:
        """Seconds until `reserve(…, max_wait)` would succeed."""
        tat = self.tat if self.tat > now else now
        return max(0.0, tat - self.tolerance - now - max_wait)

    def give_back(self, taken: float) -> None:
        """Return the slot a reservation took (`taken`: the tat it left), if no later reservation came after it."""
        if self.tat == taken:
            self.tat -= self.interval

    def pause(self, until: float) -> None:
        """No slot before `until`; after it, one call at once and then the sustained rate (no burst)."""
        self.paused_until = max(self.paused_until, until)
        self.tat = max(self.tat, until + self.tolerance)


# The shared bucket: KEYS[1] holds the theoretical arrival time in µs on Redis's clock (so replicas' clocks never
# meet). ARGV: interval, tolerance, max_wait, pause (µs). A take returns the wait in µs, or -1 - (µs until a take would
# be within max_wait) when refused; a pause (pause > 0) returns 0. The key expires once the bucket is full again.
SHARED_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_wait, pause = tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local wait = 0
if pause > 0 then
  tat = math.max(tat, now + pause + tolerance)
else
  wait = math.max(tat - tolerance - now, 0)
  if wait > max_wait then
    return -1 - math.floor(wait - max_wait)
  end
  tat = tat + interval
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return math.floor(wait)
"""


class UpstreamLimit:
    """One upstream's bucket, its settings in the units each side needs, and its counters."""

    __slots__ = (
        "args",
        "bucket",
        "burst",
        "detail",
        "fallbacks",
        "immediate",
        "key",
        "limited",
        "max_pause",
        "max_wait",
        "name",
        "rps",
        "waits",
    )  # fmt: skip

    def __init__(self, name: str, cfg: RateLimit) -> None:
        self.name = name
        self.rps, self.burst, self.max_wait, self.max_pause = cfg.rps, cfg.burst, cfg.max_wait, cfg.max_pause
        self.bucket = TokenBucket(cfg.rps, cfg.burst)
        self.key = KEY_PREFIX + name
        us = 1_000_000
        self.args = (round(self.bucket.interval * us), round(self.bucket.tolerance * us), round(cfg.max_wait * us))
        self.immediate = 0  # calls that went without waiting (the histogram's first bucket, folded in at scrape time)
        self.waits = [0.0] * (len(WAIT_BUCKETS) + 2)  # per-bucket counts of calls that waited (+Inf last), then the sum
        self.limited = 0
        self.fallbacks = 0
        self.detail = (
            f"calls to upstream {name!r} are limited to {cfg.rps:g}/s (burst {cfg.burst}); "
            f"none was free within max_wait ({cfg.max_wait:g} s)"
        )

    def waited(self, seconds: float) -> None:
        self.waits[bisect_left(WAIT_BUCKETS, seconds)] += 1
        self.waits[-1] += seconds

    def refuse(self, ex: Exchange, retry_after: float, waited: float) -> errors.RateLimitedLocally:
        self.limited += 1
        ex.guard, ex.guard_wait_s = o.GUARD_RATE_LIMITED, waited
        return errors.RateLimitedLocally(self.detail, max(1, math.ceil(retry_after)))


class RedisLink:
    """Whether the shared bucket is usable now: down → the local bucket for REDIS_RETRY_S, then one call probes."""

    def __init__(self, client: Redis | None) -> None:
        self.client = client
        self.up = True
        self.retry_at = 0.0
        self.probing = False

    def usable(self, now: float) -> bool:
        if self.client is None:
            return False
        if self.up:
            return True
        if self.probing or now < self.retry_at:
            return False
        self.probing = True  # this call is the probe; the others stay local until it answers
        return True

    def ok(self) -> None:
        self.probing = False
        if not self.up:
            self.up = True
            log.warning("rate limit: Redis answers again; the upstreams' buckets are shared again")

    def failed(self, now: float, error: BaseException) -> None:
        self.probing = False
        self.retry_at = now + REDIS_RETRY_S
        if self.up:
            self.up = False
            log.warning(
                "rate limit: Redis unavailable; each replica limits its upstreams alone until it answers",
                extra={"error": f"{type(error).__name__}: {str(error)[:200]}"},
            )


class SharedBuckets:
    """The calls to the shared buckets, sent in pipelines on one connection: the calls that arrive while one pipeline
    is out go together in the next (in arrival order, as Redis runs them). A burst of a hundred calls is then two round
    trips, not a hundred connections opened at once (each costing the event loop milliseconds)."""

    def __init__(self, client: Redis, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.sha = hashlib.sha1(SHARED_BUCKET.encode()).hexdigest()
        self._pending: list[tuple[str, tuple[int, int, int, int], asyncio.Future[int] | None]] = []
        self._sender: asyncio.Task[None] | None = None

    def send(self, key: str, args: tuple[int, int, int, int], *, reply: bool = True) -> asyncio.Future[int] | None:
        """Queue one script call; its future gets the script's answer (or Redis's error)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] | None = loop.create_future() if reply else None
        self._pending.append((key, args, fut))
        if self._sender is None:
            self._sender = loop.create_task(self._send_all())
        return fut

    async def load(self) -> None:
        async with asyncio.timeout(self.timeout):
            await self.client.script_load(SHARED_BUCKET)

    async def _send_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._run(batch)
                except (RedisError, OSError, TimeoutError) as e:
                    results = [e] * len(batch)
                for (_, _, fut), result in zip(batch, results, strict=True):
                    if fut is None or fut.done():  # no one waits for it: a pause, or a caller that went local
                        continue
                    if isinstance(result, BaseException):
                        fut.set_exception(result)
                    else:
                        fut.set_result(int(result))
        finally:
            self._sender = None

    async def _run(self, batch: list[tuple[str, tuple[int, int, int, int], asyncio.Future[int] | None]]) -> list[Any]:
        async with asyncio.timeout(self.timeout):
            results = await self._pipeline(batch)
            if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted (or flushed its scripts)
                await self.client.script_load(SHARED_BUCKET)
                results = await self._pipeline(batch)
        return results

    async def _pipeline(self, batch: list[tuple[str, tuple[int, int, int, int], asyncio.Future[int] | None]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for key, args, _ in batch:
            pipe.evalsha(self.sha, 1, key, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)


class RateLimitStage:
    """The request stage (take a slot, wait, or 429) and response stage (the upstream's 429 pauses the bucket)."""

    name = "rate_limit"
    essential = False  # a limiter that breaks lets traffic through (logged and counted), it does not stop it

    def __init__(self, config: Config, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {n: UpstreamLimit(n, u.rate_limit) for n, u in config.upstreams.items() if u.rate_limit is not None}
        self.clock = clock
        self.redis_timeout = config.redis_timeout
        self.link = RedisLink(None)
        self.shared: SharedBuckets | None = None
        registry.register(self)

    @classmethod
    def from_config(cls, config: Config, registry: CollectorRegistry) -> RateLimitStage | None:
        """The stage, or None when no upstream has a rate limit (then it is not in the request path at all)."""
        if not any(u.rate_limit is not None for u in config.upstreams.values()):
            return None
        return cls(config, registry)

    def attach(self, redis: Redis | None) -> None:
        """Share the buckets through this client (opened by the sidecar at start)."""
        self.link = RedisLink(redis)
        self.shared = SharedBuckets(redis, self.redis_timeout) if redis is not None else None

    async def start(self) -> None:
        """Load the script into Redis now, so the first calls do not each pay a NOSCRIPT round trip and a load."""
        if self.shared is None:
            return
        try:
            await self.shared.load()
        except (RedisError, OSError, TimeoutError) as e:
            self.link.failed(self.clock(), e)  # the sidecar starts anyway: its buckets are local until Redis answers

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()

    # -- request ------------------------------------------------------------------------------------------------------

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> Awaitable[None] | None:
        lim = self.limits.get(ex.upstream)
        if lim is None:
            return None
        return self._take(lim, ex, http, lim.max_wait)

    def before_retry(self, ex: Exchange, http: web.BaseRequest | None, budget_s: float) -> Awaitable[None] | None:
        """Attempt ≥ 2 of a retried call takes a token of its own, waiting within what is left of the retry deadline."""
        lim = self.limits.get(ex.upstream)
        if lim is None:
            return None
        return self._take(lim, ex, http, min(lim.max_wait, budget_s))

    def retrying(self, ex: Exchange, a: Attempted) -> bool:
        """An attempt that is retried never reaches the response stages: its 429 pauses the bucket here."""
        if a.response is not None and a.response.status == 429:
            lim = self.limits.get(ex.upstream)
            if lim is not None:
                self._pause(lim, a.response.headers.get("Retry-After"))
        return True

    def _take(self, lim: UpstreamLimit, ex: Exchange, http: web.BaseRequest | None, max_wait: float) -> Awaitable[None] | None:
        """Take a token now (None), or the wait for one within `max_wait` (awaitable), or raise the 429."""
        now = self.clock()
        if self.link.client is not None:
            if self.link.usable(now):
                return self._shared(lim, ex, http, now, max_wait)
            lim.fallbacks += 1  # Redis is down: this replica decides alone
        wait = lim.bucket.reserve(now, max_wait)
        if wait == 0.0:  # the fast path: a token was there
            lim.immediate += 1
            return None
        if wait < 0.0:
            raise lim.refuse(ex, lim.bucket.retry_after(now, lim.max_wait), 0.0)
        return self._sleep(lim, ex, http, now, wait, max_wait, taken=lim.bucket.tat)

    async def _shared(
        self, lim: UpstreamLimit, ex: Exchange, http: web.BaseRequest | None, start: float, max_wait: float
    ) -> None:
        wait = await self._take_shared(lim, ex, start, max_wait)
        taken: float | None = None  # the local slot taken (its bucket's tat after it), to give back if the client leaves
        if wait is None:  # Redis did not answer: the local bucket decides, within what is left of max_wait
            lim.fallbacks += 1
            now = self.clock()
            wait = lim.bucket.reserve(now, max(0.0, max_wait - (now - start)))
            if wait < 0.0:
                raise lim.refuse(ex, lim.bucket.retry_after(now, lim.max_wait), now - start)
            taken = lim.bucket.tat
        await self._sleep(lim, ex, http, start, wait, max_wait, taken=taken)

    async def _take_shared(self, lim: UpstreamLimit, ex: Exchange, start: float, budget: float) -> float | None:
        """Seconds until this call's slot in the shared bucket (waiting at most `budget`); None when Redis failed;
        raises the 429 when the slot is further."""
        interval, tolerance, _ = lim.args
        try:
            assert self.shared is not None  # the link is usable only with a client
            fut = self.shared.send(lim.key, (interval, tolerance, round(budget * 1e6), 0))
            assert fut is not None
            async with asyncio.timeout(min(self.redis_timeout, budget) or self.redis_timeout):
                got = await fut
        except (RedisError, OSError, TimeoutError) as e:
            self.link.failed(self.clock(), e)
            return None
        except BaseException:  # cancelled: a probe that never answered must not keep the others local for ever
            self.link.probing = False
            raise
        self.link.ok()
        if got < 0:  # the script's answer is relative to `budget`; Retry-After is for a new call with all of max_wait
            raise lim.refuse(ex, max(0.0, (-1 - got) / 1e6 - (lim.max_wait - budget)), self.clock() - start)
        return got / 1e6

    async def _sleep(
        self,
        lim: UpstreamLimit,
        ex: Exchange,
        http: web.BaseRequest | None,
        start: float,
        wait: float,
        max_wait: float,
        *,
        taken: float | None,
    ) -> None:
        """Wait for the slot taken (`taken`: the local bucket's tat after it; None for a shared slot)."""
        queued = wait > 0.0
        shared = taken is None
        try:
            if queued:
                await sleep_while_connected(http, wait)
            now = self.clock()
            # The upstream said 429 while this call waited: its slot was handed out before the pause, so it takes a
            # new one after it, within what is left of its max_wait.
            while lim.bucket.paused_until > now:
                queued = True
                again: float | None = None
                taken = None  # the slot before the pause is spent
                if shared and lim.bucket.paused_until - start <= max_wait:
                    # the shared bucket may not hold the pause yet (it is sent without waiting): take after it ends
                    await sleep_while_connected(http, lim.bucket.paused_until - now)
                    now = self.clock()
                    again = await self._take_shared(lim, ex, start, max(0.0, max_wait - (now - start)))
                if again is None:
                    again = lim.bucket.reserve(now, max_wait - (now - start))  # a slot after the pause
                    if again < 0.0:
                        raise lim.refuse(ex, lim.bucket.retry_after(now, lim.max_wait), now - start)
                    taken = lim.bucket.tat
                await sleep_while_connected(http, again)
                now = self.clock()
        except errors.ClientDisconnected:
            # Nobody will use the slot: a local one is given back when no later call took one after it.
            if taken is not None:
                lim.bucket.give_back(taken)
            ex.guard, ex.guard_wait_s = o.GUARD_RATE_QUEUED, ex.guard_wait_s + (self.clock() - start)
            raise
        if queued:
            lim.waited(now - start)
            ex.guard, ex.guard_wait_s = o.GUARD_RATE_QUEUED, ex.guard_wait_s + (now - start)
        else:
            lim.immediate += 1

    # -- response -----------------------------------------------------------------------------------------------------

    def response(self, ex: Exchange, http: web.BaseRequest, headers: Headers) -> None:
        if ex.status != 429:
            return
        lim = self.limits.get(ex.upstream)
        if lim is None:
            return
        self._pause(lim, next((v for k, v in ex.response_headers if k.lower() == "retry-after"), None))

    def _pause(self, lim: UpstreamLimit, retry_after: str | None) -> None:
        """The upstream's own 429: no slot before its Retry-After ends (cut to max_pause), on every replica."""
        seconds = min(parse_retry_after(retry_after, time.time()), lim.max_pause)
        if seconds <= 0.0:
            return
        lim.bucket.pause(self.clock() + seconds)
        if self.shared is not None and self.link.usable(self.clock()):
            interval, tolerance, max_wait = lim.args
            self.shared.send(lim.key, (interval, tolerance, max_wait, round(seconds * 1e6)), reply=False)
            self.link.probing = False  # a pause sent is no probe: nobody reads its answer

    # -- metrics (a collector read at scrape time, like seamline.proxy.metrics) ----------------------------------------

    def collect(self) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            "seamline_rate_limit_wait_seconds", "Time calls waited for a token of their upstream's rate limit.",
            labels=["upstream"],
        )  # fmt: skip
        limited = CounterMetricFamily(
            "seamline_rate_limited", "Calls refused 429 rate-limited-locally (no token within max_wait).", labels=["upstream"]
        )
        fallbacks = CounterMetricFamily(
            "seamline_rate_limit_redis_fallbacks",
            "Calls the replica's own bucket decided because Redis did not answer.",
            labels=["upstream"],
        )
        for name, lim in self.limits.items():
            counts = list(lim.waits[:-1])
            counts[0] += lim.immediate
            cum, buckets = 0.0, []
            for bound, count in zip((*(str(b) for b in WAIT_BUCKETS), "+Inf"), counts, strict=True):
                cum += count
                buckets.append((bound, cum))
            hist.add_metric([name], buckets, lim.waits[-1])
            limited.add_metric([name], lim.limited)
            fallbacks.add_metric([name], lim.fallbacks)
        yield hist
        yield limited
        yield fallbacks
        if self.link.client is not None:
            yield GaugeMetricFamily(
                "seamline_rate_limit_redis_up", "1 while the rate limits are shared through Redis.", value=int(self.link.up)
            )

    def describe(self) -> list[Metric]:
        return []
