"""The duplicate guard's state: one entry per key, claimed atomically, settled once, kept for the window.

An entry is a claim (`in_flight`, with the owner's token and a lease), then the call's result: `done` (the upstream's
exact response, kept for replay), `known` (finished, but its response cannot be replayed: too large, or not
received whole) or `unknown` (the request may have reached the upstream and no answer came back). A claim released
(nothing was sent) disappears, so the next request with the key may go.

Two stores with one contract: in-process (`MemoryDedupStore`, the default) and Redis (`RedisDedupStore`, shared by
replicas: the claim is `SET key value NX PX window` in a MULTI with the GET of what is there; settling compares the
owner's claim and sets or deletes in one Lua script, so a late owner never overwrites what another wrote). Entries
hold UNREDACTED upstream responses for the window (README, "Duplicate guard").

Redis failing just when a result is stored would leave the claim in flight, and once its lease passed every
duplicate would get 409 outcome-unknown for a call whose result this replica knows. So a result that could not be
written is kept in the process (`RedisDedupStore.unsettled`, bounded) and written again in the background until
Redis takes it (the same compare-and-set: a claim another owner took since is left alone); meanwhile this
replica's duplicates are answered from it (a replay, even while Redis is down), other replicas see the claim in
flight until it lands.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from seamline.guards.redis_state import RedisDown, SharedRedis

State = Literal["in_flight", "done", "known", "unknown"]

log = logging.getLogger("seamline.guards.dedup")
UNSETTLED_MAX = 10_000  # results kept for a Redis that failed to take them; past it the oldest is given up (logged)
RESETTLE_S = (0.1, 0.25, 0.5, 1.0, 2.0)  # the waits between attempts to write them again (the last one repeats)


class StoreDown(Exception):
    """The store cannot answer (Redis down or frozen): the handoff's `on_store_down` policy decides."""


@dataclass(frozen=True, slots=True)
class Entry:
    """What the store keeps for one key. Encoded as one compact JSON line, then the body's raw bytes."""

    state: State
    request_fp: str  # sha256 of method + path (and query)
    body_fp: str  # sha256 of the exact request body
    owner: str  # the claiming call's token
    run_id: str
    event_id: str
    lease_until: float = 0.0  # wall clock, seconds: an in-flight claim past it lost its owner
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    why: str = ""  # known / unknown: what happened to the first call
    external_ids: dict[str, str] = field(default_factory=dict)

    def result(
        self,
        state: State,
        status: int = 0,
        reason: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        why: str = "",
        external_ids: dict[str, str] | None = None,
    ) -> Entry:
        """This claim settled as `state` (the claim's identity kept). `dataclasses.replace` does the same at
        several times the cost, on every guarded call."""
        return Entry(
            state, self.request_fp, self.body_fp, self.owner, self.run_id, self.event_id, self.lease_until, status,
            reason, self.headers if headers is None else headers, body, why,
            self.external_ids if external_ids is None else external_ids,
        )  # fmt: skip

    def encode(self) -> bytes:
        meta = {
            "s": self.state, "rf": self.request_fp, "bf": self.body_fp, "o": self.owner, "r": self.run_id,
            "e": self.event_id, "l": self.lease_until, "st": self.status, "rs": self.reason, "h": self.headers,
            "w": self.why, "x": self.external_ids,
        }  # fmt: skip
        return orjson.dumps(meta) + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        head, _, body = raw.partition(b"\n")
        m: dict[str, Any] = orjson.loads(head)
        return cls(
            state=m["s"], request_fp=m["rf"], body_fp=m["bf"], owner=m["o"], run_id=m["r"], event_id=m["e"],
            lease_until=m["l"], status=m["st"], reason=m["rs"], headers=[(k, v) for k, v in m["h"]], body=body,
            why=m["w"], external_ids=m["x"],
        )  # fmt: skip


class DedupStore(Protocol):
    async def claim(self, key: str, claim: bytes, ttl_s: float) -> bytes | None:
        """Set `key` to `claim` if absent (None: claimed), else return what is there. Atomic."""

    async def settle(self, key: str, claim: bytes, result: bytes | None, ttl_s: float) -> bool:
        """Replace our own claim with `result` (None: delete it); False when the key holds something else now."""

    async def close(self) -> None:
        """Stop what the store runs in the background (at the sidecar's stop)."""


class MemoryDedupStore:
    """In-process entries with expiry; bounded by `max_bytes` (past it a result is kept without its body)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.clock = clock
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._expiry: list[tuple[float, str]] = []  # a heap; stale pairs are skipped when popped

    def _prune(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            got = self._entries.get(key)
            if got is not None and got[1] == due:
                del self._entries[key]
                self.bytes -= len(got[0])

    def _get(self, key: str, now: float) -> bytes | None:
        got = self._entries.get(key)
        if got is None or got[1] <= now:
            return None
        return got[0]

    def _put(self, key: str, value: bytes, until: float) -> None:
        old = self._entries.get(key)
        if old is not None:
            self.bytes -= len(old[0])
        self._entries[key] = (value, until)
        self.bytes += len(value)
        heapq.heappush(self._expiry, (until, key))

    def fits(self, size: int) -> bool:
        return self.bytes + size <= self.max_bytes

    async def close(self) -> None:
        """Nothing runs in the background."""

    async def claim(self, key: str, claim: bytes, ttl_s: float) -> bytes | None:
        now = self.clock()
        self._prune(now)
        current = self._get(key, now)
        if current is not None:
            return current
        self._put(key, claim, now + ttl_s)
        return None

    async def settle(self, key: str, claim: bytes, result: bytes | None, ttl_s: float) -> bool:
        now = self.clock()
        if self._get(key, now) != claim:
            return False
        if result is None:
            value, _ = self._entries.pop(key)
            self.bytes -= len(value)
        else:
            self._put(key, result, now + ttl_s)
        return True


# KEYS[1] the key; ARGV[1] our claim; ARGV[2] the result ('' = delete); ARGV[3] its TTL in ms.
_SETTLE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""


class RedisDedupStore:
    """Entries in the shared Redis, so replicas never both forward one key."""

    def __init__(self, redis: SharedRedis, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.clock = clock
        # key → (our claim, the result, its TTL, when it expires): results Redis failed to take, oldest first.
        self.unsettled: OrderedDict[str, tuple[bytes, bytes | None, float, float]] = OrderedDict()
        self._resettle: asyncio.Task[None] | None = None

    async def claim(self, key: str, claim: bytes, ttl_s: float) -> bytes | None:
        held = self.unsettled.get(key)
        if held is not None and held[3] > self.clock() and held[1] is not None:
            return held[1]  # this replica knows the result Redis has not taken yet: answer from it
        return await self._claim(key, claim, ttl_s)

    async def settle(self, key: str, claim: bytes, result: bytes | None, ttl_s: float) -> bool:
        try:
            return await self._settle(key, claim, result, ttl_s)
        except StoreDown:
            self._keep(key, claim, result, ttl_s)
            raise

    def _keep(self, key: str, claim: bytes, result: bytes | None, ttl_s: float) -> None:
        self.unsettled[key] = (claim, result, ttl_s, self.clock() + ttl_s)
        self.unsettled.move_to_end(key)
        while len(self.unsettled) > UNSETTLED_MAX:
            lost, _ = self.unsettled.popitem(last=False)
            log.warning("dedup: too many results waiting for Redis; one is given up (its claim stays in flight)",
                        extra={"key": lost})  # fmt: skip
        if self._resettle is None:
            self._resettle = asyncio.get_running_loop().create_task(self._write_again())

    async def _write_again(self) -> None:
        """Write the kept results until Redis takes them all (each a compare-and-set on our own claim)."""
        try:
            tries = 0
            while self.unsettled:
                await asyncio.sleep(RESETTLE_S[min(tries, len(RESETTLE_S) - 1)])
                tries += 1
                for key, (claim, result, _, until) in list(self.unsettled.items()):
                    left = until - self.clock()
                    if left > 0:
                        try:
                            await self._settle(key, claim, result, left)
                        except StoreDown:
                            break  # still down: wait, then try the rest again
                    if self.unsettled.get(key, (b"",))[0] == claim:  # not replaced by a newer one meanwhile
                        del self.unsettled[key]
            log.warning("dedup: Redis took the results it had missed (after %d tries)", tries)
        finally:
            self._resettle = None

    async def close(self) -> None:
        task = self._resettle
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _claim(self, key: str, claim: bytes, ttl_s: float) -> bytes | None:
        async def op(r: Any) -> bytes | None:
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(key, claim, nx=True, px=max(1, int(ttl_s * 1000)))
                pipe.get(key)
                was_set, current = await pipe.execute()
            return None if was_set else current

        try:
            return await self.redis.run(op)
        except RedisDown as e:
            raise StoreDown(str(e)) from None

    async def _settle(self, key: str, claim: bytes, result: bytes | None, ttl_s: float) -> bool:
        args = (claim, result or b"", max(1, int(ttl_s * 1000)))
        try:
            # EVAL, not EVALSHA: a restarted Redis has no script cache, and the script is a few hundred bytes.
            return bool(await self.redis.run(lambda r: r.eval(_SETTLE, 1, key, *args)))
        except RedisDown as e:
            raise StoreDown(str(e)) from None
