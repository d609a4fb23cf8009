"""Loop detection: how often one run called one handoff within a window.

A workflow that triggers another which triggers it back (the seed's 847 executions between two workflows) shows at
the sidecar as one run ID calling the same handoffs over and over. Each (run, handoff) gets a counter whose window
opens at the run's first call to that handoff and lasts `loops.window` (a handoff's own `loops` wins over the
top-level one). The call that takes the count above `max_calls_per_run` and every later one in the window are
flagged (`loop_suspected` column); with `block: true` they get 429 problem+json `loop-suspected` instead of being
forwarded, so the upstream sees exactly `max_calls_per_run` calls of the run per window.

Only runs whose ID came from the caller are counted (an `X-Run-ID` header, `X-Correlation-ID` or baggage): an ID
Seamline minted is a new run per call, so it can never loop.

State: in this process by default, bounded (a window's counters expire with it; at most `max_runs` are tracked;
over that, the counter nearest the end of its window is dropped first: it was about to be forgotten anyway). With
`redis_url`, the count is shared by every replica (one Lua call: INCR, and PEXPIRE on the first call of the window,
atomically); a Redis that is down or slow (over `redis_timeout`) never blocks
traffic: the call is counted in this process instead, and Redis is left alone for `REDIS_BACKOFF_S` before it is
tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from seamline import errors
from seamline import outcomes as o
from seamline.config.guards import Loops
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound

log = logging.getLogger("seamline.guards.loops")

CALLER_RUN_SOURCES = frozenset({"header", "correlation", "baggage"})  # not "generated" or "replaced": minted here
MAX_RUNS = 100_000
REDIS_BACKOFF_S = 5.0
KEY_PREFIX = "seamline:loops:"
# INCR, and the window's expiry on its first call only: one round trip, atomic (a crash cannot leave a key that
# never expires), and it runs on every Redis version (PEXPIRE … NX needs 7.0).
_COUNT_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

Key = tuple[str, str]  # (run_id, handoff)


class LocalCounts:
    """Calls per (run, handoff) in this process, each counter living for its window; bounded to `max_runs` counters."""

    def __init__(self, *, max_runs: int = MAX_RUNS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_runs = max_runs
        self.clock = clock
        # One ordered map per window length: counters enter in the order they start, so in the order they expire,
        # and the oldest is always first (expiry and eviction pop from the front: O(1) per call).
        self._by_window: dict[float, OrderedDict[Key, list[float]]] = {}
        self.size = 0

    def hit(self, key: Key, window: float) -> int:
        """Count one call; the calls of this key in its current window, this one included."""
        now = self.clock()
        counters = self._by_window.get(window)
        if counters is None:
            counters = self._by_window[window] = OrderedDict()
        while counters:
            first = next(iter(counters.values()))
            if first[0] > now:
                break
            counters.popitem(last=False)
            self.size -= 1
        entry = counters.get(key)
        if entry is not None:
            entry[1] += 1
            return int(entry[1])
        if self.size >= self.max_runs:
            self._evict_oldest()
        counters[key] = [now + window, 1.0]
        self.size += 1
        return 1

    def _evict_oldest(self) -> None:
        oldest: OrderedDict[Key, list[float]] | None = None
        for counters in self._by_window.values():
            if counters and (oldest is None or next(iter(counters.values()))[0] < next(iter(oldest.values()))[0]):
                oldest = counters
        if oldest is not None:
            oldest.popitem(last=False)
            self.size -= 1


class LoopGuard:
    """The request stage: count the call, flag it above the threshold, and answer 429 when the handoff blocks loops."""

    name = "loops"
    essential = False  # a broken counter must not stop traffic

    def __init__(
        self,
        config: Config,
        registry: CollectorRegistry,
        redis: Any = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_runs: int = MAX_RUNS,
    ) -> None:
        self.default = config.loops
        self.by_handoff = {n: h.loops for n, h in config.handoffs.items() if h.loops is not None}
        self.local = LocalCounts(max_runs=max_runs, clock=clock)
        self.redis = redis
        self.redis_timeout = config.redis_timeout
        self.clock = clock
        self._script = redis.client.register_script(_COUNT_LUA) if redis is not None else None
        self._redis_down_until = 0.0
        self.suspected = Counter(
            "seamline_loops_suspected", "Runs flagged as looping (once per run, handoff and window), by whether blocked.",
            ["handoff", "blocked"], registry=registry,
        )  # fmt: skip

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> Any:
        if ex.run_id_source not in CALLER_RUN_SOURCES or not ex.handoff:
            return None
        cfg = self.by_handoff.get(ex.handoff, self.default)
        if self._script is None or self.clock() < self._redis_down_until:
            self.judge(ex, cfg, self.local.hit((ex.run_id, ex.handoff), cfg.window))
            return None
        return self._count_shared(ex, cfg)

    async def _count_shared(self, ex: Exchange, cfg: Loops) -> None:
        assert self._script is not None
        key = f"{KEY_PREFIX}{ex.handoff}:{ex.run_id}"
        try:
            async with asyncio.timeout(self.redis_timeout):
                n = int(await self._script(keys=[key], args=[max(1, int(cfg.window * 1000))]))
        except Exception as e:  # noqa: BLE001 - Redis down or slow: count here, never block the call
            self._redis_down_until = self.clock() + REDIS_BACKOFF_S
            log.warning(
                "loop detection counts in this process: Redis did not answer (%s)", type(e).__name__,
                extra={"error": type(e).__name__, "retry_in_s": REDIS_BACKOFF_S},
            )  # fmt: skip
            n = self.local.hit((ex.run_id, ex.handoff), cfg.window)
        self.judge(ex, cfg, n)

    def judge(self, ex: Exchange, cfg: Loops, calls: int) -> None:
        """Flag (and with `block`, refuse) a call that takes its run over the threshold."""
        limit = cfg.max_calls_per_run
        if calls <= limit:
            return
        ex.loop_suspected = True
        if calls == limit + 1:  # once per run, handoff and window
            self.suspected.labels(ex.handoff, "true" if cfg.block else "false").inc()
            log.warning(
                "loop suspected: run %s called %s %d times within %g s", ex.run_id, ex.handoff, calls, cfg.window,
                extra={"run_id": ex.run_id, "handoff": ex.handoff, "calls": calls, "window_s": cfg.window,
                       "blocked": cfg.block},
            )  # fmt: skip
        if cfg.block:
            ex.guard = o.GUARD_LOOP_BLOCKED
            raise errors.LoopSuspected(
                f"run {ex.run_id!r} called handoff {ex.handoff!r} {calls} times within {cfg.window:g} s "
                f"(loops.max_calls_per_run is {limit}); the call was not forwarded",
                handoff=ex.handoff, calls=calls, window_s=cfg.window, max_calls_per_run=limit,
            )  # fmt: skip
