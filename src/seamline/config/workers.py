"""`server.workers` (`seamline serve --workers N`): which guards cannot run in several processes without Redis.

The duplicate guard, the rate limit and blocking loop detection keep their state in the process unless `redis_url`
is set; with several workers each would hold its own share (a key seen by one worker unknown to the others, N times
the allowed rate, a loop split N ways under the threshold), wrong without a word. So the config is refused, naming
the guard and the fix. Loop detection that only flags (the default) is allowed and logged: a flag is advice, and
one keep-alive connection, hence usually one caller, stays on one worker. The circuit breaker is per worker by
design (each worker stops sending once it sees the upstream fail), as it is per replica without Redis.
"""

from __future__ import annotations

from typing import Any

_GUARDED = ("never_repeat", "safe_once")


def in_process_guards(cfg: Any) -> list[str]:
    """The config paths of the guards whose state would be split across workers (empty with `redis_url`)."""
    if cfg.redis_url:
        return []
    found: list[str] = []
    for name, h in cfg.handoffs.items():
        if h.dedup is None and h.safety in _GUARDED:
            found.append(f"handoffs.{name}.dedup (the duplicate guard, on by default for {h.safety})")
        elif h.dedup is not None and h.dedup.enabled:
            found.append(f"handoffs.{name}.dedup (the duplicate guard)")
        if h.loops is not None and h.loops.block:
            found.append(f"handoffs.{name}.loops.block")
    for name, up in cfg.upstreams.items():
        if up.rate_limit is not None:
            found.append(f"upstreams.{name}.rate_limit")
    if cfg.loops.block:
        found.append("loops.block")
    return found


def refusal(cfg: Any) -> str | None:
    """The config error for `server.workers` > 1 with in-process guard state, or None."""
    n = cfg.server.workers
    found = in_process_guards(cfg) if n > 1 else []
    if not found:
        return None
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return (
        f"server.workers: {n} workers, but {'; '.join(found[:3])}{more} keep their state in each process, so every "
        "worker would keep its own and the guard would be silently wrong; set redis_url (or SEAMLINE_REDIS_URL) so "
        "the workers share it, or run with --workers 1"
    )
