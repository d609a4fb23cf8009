"""The guards together, through a real Seamline to real upstream apps that count (and time) what they receive:
retries against the circuit breaker and the rate limit (each attempt is a call of its own), the duplicate guard
with retries, what the breaker must not count, clients that leave while a guard holds their call, and Redis failing
just when a result is stored."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from conftest import proxy_config
from support.chdb_path import unique_database
from support.upstream import Upstream
from support.waiting import wait_for

from seamline import outcomes as o
from seamline.guards.circuit import State
from seamline.guards.dedup import store_key
from seamline.guards.dedup_store import Entry

FAST = {"backoff": "10ms", "max_backoff": "20ms"}  # the schedule's own waits are not what these tests are about
SEARCH = {"upstream": "billing", "match": "POST /v1/search", "safety": "safe_to_repeat", "dedup": {}}
CHARGE = {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"}


class Flaky:
    """Answers the statuses in turn (the last one from then on), and notes when each call arrived."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = statuses
        self.headers = headers or {}
        self.seen: list[float] = []

    async def __call__(self, request: web.Request) -> web.Response:
        self.seen.append(time.monotonic())
        n = len(self.seen)
        status = self.statuses[min(n, len(self.statuses)) - 1]
        return web.json_response({"attempt": n}, status=status, headers=self.headers if status >= 400 else {})


def config(up: Upstream, billing: dict[str, Any], handoffs: dict[str, Any] | None = None, **extra: Any) -> Any:
    """One upstream `billing`, with `billing` merged into its settings."""
    cfg = proxy_config({"billing": up.url}, handoffs=handoffs or {}, **extra)
    base = cfg.upstreams["billing"]
    merged = type(base).model_validate({**base.model_dump(), **billing})
    return cfg.model_copy(update={"upstreams": {"billing": merged}})


def recorded(cfg: Any, tmp_path: Any) -> Any:
    # A directory of its own: the sidecar's engine process must be its only owner, whatever else this test process
    # (one pytest-xdist worker running many files) has opened on the shared one (seen: "Error initializing EmbeddedServer").
    storage = {"enabled": True, "clickhouse_url": f"chdb://{tmp_path / 'chdb'}", "database": unique_database("mesh"),
               "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20}  # fmt: skip
    return cfg.model_copy(update={"storage": type(cfg.storage).model_validate(storage)})


async def rows(sc: Any, run_id: str, n: int) -> list[dict[str, Any]]:
    async def got() -> list[dict[str, Any]] | None:
        assert await sc.recorder.flush(30)
        found = await sc.store.query(f"SELECT * FROM handoffs WHERE run_id = '{run_id}' ORDER BY attempt")
        return found if len(found) >= n else None

    return await wait_for(got, 30, what=f"{n} rows of run {run_id}")


async def call(
    sc: Any, method: str, path: str, run_id: str = "r-mesh", body: Any = None, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    data = orjson.dumps(body) if body is not None else None
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, sc.proxy_url + path, data=data, headers={"X-Run-ID": run_id, **headers}) as r,
    ):
        raw = await r.read()
        doc = orjson.loads(raw) if raw and "json" in r.headers.get("Content-Type", "") else raw
        return r.status, doc, dict(r.headers)


def breaker(sc: Any) -> Any:
    stage = next(s for s in sc.path.request if s.name == "circuit_breaker")
    return stage.breakers["billing"]


async def open_and_leave(sc: Any, request: bytes) -> asyncio.StreamWriter:
    """A client that sends `request` and keeps its connection open (until the test closes it)."""
    _, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    writer.write(request)
    await writer.drain()
    return writer


def raw_post(path: str, run_id: str, body: bytes, **headers: str) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Run-ID: {run_id}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


# -- retries and the circuit breaker ----------------------------------------------------------------------------------


async def test_each_retry_attempt_counts_in_the_breaker_and_retries_stop_once_it_opens(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503)
    cb = {"consecutive_failures": 3, "min_calls": 1000}
    sc = await make_sidecar(config(upstream, {"retry": {"attempts": 5, **FAST}, "circuit_breaker": cb}))
    status, body, _ = await call(sc, "GET", "/billing/v1/balance")
    # The third failed attempt opened the breaker: no fourth or fifth, and the client has the upstream's own answer.
    assert (status, body, len(flaky.seen)) == (503, {"attempt": 3}, 3)
    assert breaker(sc).current_state() is State.OPEN
    status, body, headers = await call(sc, "GET", "/billing/v1/balance")
    assert status == 503 and body["type"].endswith("/circuit-open") and "Retry-After" in headers
    assert len(flaky.seen) == 3


async def test_a_retry_is_refused_by_a_breaker_that_opened_during_its_backoff(upstream, make_sidecar, tmp_path):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 200, headers={"Retry-After": "1"})
    upstream.routes["/v1/boom"] = Flaky(503)
    cb = {"consecutive_failures": 2, "min_calls": 1000}
    sc = await make_sidecar(recorded(config(upstream, {"retry": {"attempts": 3}, "circuit_breaker": cb}), tmp_path))
    first = asyncio.create_task(call(sc, "GET", "/billing/v1/balance", run_id="r-open"))
    await wait_for(lambda: flaky.seen, 5, what="the first attempt")
    assert (await call(sc, "POST", "/billing/v1/boom"))[0] == 503  # not retried (POST): the second failure in a row
    assert breaker(sc).current_state() is State.OPEN
    status, body, _ = await first
    assert status == 503 and body["type"].endswith("/circuit-open") and len(flaky.seen) == 1
    got = await rows(sc, "r-open", 2)
    assert [(r["attempt"], r["status"], r["guard"]) for r in got] == [(1, 503, o.GUARD_RETRIED), (2, 503, o.GUARD_CIRCUIT_OPEN)]
    assert (got[1]["outcome"], got[1]["error_class"]) == (o.REFUSED, o.CIRCUIT_OPEN)  # Seamline's 503, not the upstream's


# -- retries and the rate limit ---------------------------------------------------------------------------------------


async def test_each_retry_attempt_takes_a_rate_limit_token(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 503, 200)
    billing = {"retry": {"attempts": 3, "deadline": "5s", **FAST}, "rate_limit": {"rps": 5, "burst": 1, "max_wait": "2s"}}
    sc = await make_sidecar(config(upstream, billing))
    status, body, _ = await call(sc, "GET", "/billing/v1/balance")
    assert (status, body) == (200, {"attempt": 3})
    gaps = [b - a for a, b in zip(flaky.seen, flaky.seen[1:], strict=False)]
    assert all(g >= 0.18 for g in gaps), gaps  # 5/s: one attempt per 200 ms, not one per 10-20 ms backoff


async def test_a_retry_waits_for_a_token_only_within_the_retry_deadline(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 200)
    billing = {"retry": {"attempts": 3, "deadline": "300ms", **FAST}, "rate_limit": {"rps": 1, "burst": 1, "max_wait": "5s"}}
    sc = await make_sidecar(config(upstream, billing))
    t0 = time.monotonic()
    status, body, headers = await call(sc, "GET", "/billing/v1/balance")
    took = time.monotonic() - t0
    # The next token is 1 s away, past the deadline: the retry is not sent, and the client is told when to come back.
    assert status == 429 and body["type"].endswith("/rate-limited-locally") and int(headers["Retry-After"]) >= 1
    assert len(flaky.seen) == 1 and took < 0.9


async def test_a_429_during_retries_pauses_the_bucket_for_every_call(upstream, make_sidecar):
    flaky = upstream.routes["/v1/a"] = Flaky(429, 200, headers={"Retry-After": "1"})
    other = upstream.routes["/v1/b"] = Flaky(200)
    billing = {"retry": {"attempts": 3, **FAST}, "rate_limit": {"rps": 50, "burst": 5, "max_wait": "3s"}}
    sc = await make_sidecar(config(upstream, billing))
    first = asyncio.create_task(call(sc, "GET", "/billing/v1/a"))
    await wait_for(lambda: flaky.seen, 5, what="the 429")
    status, _, _ = await call(sc, "GET", "/billing/v1/b")
    assert status == 200
    assert other.seen[0] - flaky.seen[0] >= 0.95  # held by the pause the retried 429 asked for
    assert (await first)[0] == 200 and flaky.seen[1] - flaky.seen[0] >= 0.95


# -- what the breaker must not count ---------------------------------------------------------------------------------


async def test_the_breaker_counts_upstream_answers_only_not_seamlines_own(upstream, make_sidecar):
    upstream.routes["/v1/charges"] = Flaky(503)
    handoffs = {
        "billing.charge": CHARGE,
        "billing.sync": {"upstream": "billing", "match": "POST /v1/sync", "loops": {"max_calls_per_run": 1, "block": True}},
    }
    billing = {"retry": False, "circuit_breaker": {"consecutive_failures": 2, "min_calls": 1000},
               "rate_limit": {"rps": 0.5, "burst": 3, "max_wait": "0s"}}  # fmt: skip
    sc = await make_sidecar(config(upstream, billing, handoffs))
    key = {"Idempotency-Key": "k-1"}
    assert (await call(sc, "POST", "/billing/v1/charges", body={"a": 1}, **key))[0] == 503  # the upstream's: counted
    for _ in range(3):  # the stored 503, replayed: not the upstream's answer again
        status, _, headers = await call(sc, "POST", "/billing/v1/charges", body={"a": 1}, **key)
        assert (status, headers.get("Seamline-Replayed")) == (503, "true")
    assert (await call(sc, "POST", "/billing/v1/charges", body={"a": 2}, **key))[0] == 422  # key reused
    assert (await call(sc, "POST", "/billing/v1/sync", run_id="r-loop"))[0] == 200
    loop = await call(sc, "POST", "/billing/v1/sync", run_id="r-loop")
    assert loop[0] == 429 and loop[1]["type"].endswith("/loop-suspected")
    assert (await call(sc, "GET", "/billing/v1/x"))[0] == 200  # the burst's last token
    for _ in range(2):
        limited = await call(sc, "GET", "/billing/v1/x")
        assert limited[0] == 429 and limited[1]["type"].endswith("/rate-limited-locally")
    br = breaker(sc)
    assert (br.calls, br.failures, len(upstream.received)) == (3, 1, 3)
    assert br.current_state() is State.CLOSED  # the replayed 503s would have opened it (2 in a row)


# -- the duplicate guard and retries ---------------------------------------------------------------------------------


async def test_a_retried_call_stores_its_last_attempt_for_its_duplicates(upstream, make_sidecar):
    flaky = upstream.routes["/v1/search"] = Flaky(503, 200)
    sc = await make_sidecar(config(upstream, {"retry": {"attempts": 3, **FAST}}, {"billing.search": SEARCH}))
    key = {"Idempotency-Key": "k-s"}
    first = await call(sc, "POST", "/billing/v1/search", body={"q": "x"}, **key)
    again = await call(sc, "POST", "/billing/v1/search", body={"q": "x"}, **key)
    assert first[:2] == (200, {"attempt": 2}) and "Seamline-Replayed" not in first[2]
    assert again[:2] == (200, {"attempt": 2}) and again[2]["Seamline-Replayed"] == "true"
    assert len(flaky.seen) == 2


async def test_an_unanswered_attempt_before_a_final_429_is_outcome_unknown_not_released(upstream, make_sidecar):
    gate = asyncio.Event()
    seen: list[int] = []

    async def search(request: web.Request) -> web.Response:
        seen.append(1)
        if len(seen) == 1:
            await gate.wait()  # sent, never answered in time: the upstream may have acted on it
        return web.json_response({"n": len(seen)}, status=429, headers={"Retry-After": "100"})

    upstream.routes["/v1/search"] = search
    billing = {"retry": {"attempts": 3, "on": ["timeout", 429], "max_retry_after": "1s", **FAST},
               "timeouts": {"connect": 2, "read": 0.3, "total": 0.3}}  # fmt: skip
    sc = await make_sidecar(config(upstream, billing, {"billing.search": SEARCH}))
    key = {"Idempotency-Key": "k-u"}
    try:
        first = await call(sc, "POST", "/billing/v1/search", body={"q": "x"}, **key)
        assert first[0] == 429 and len(seen) == 2  # attempt 2's 429 asks for more than max_retry_after: answered
        dup = await call(sc, "POST", "/billing/v1/search", body={"q": "x"}, **key)
    finally:
        gate.set()
    assert dup[0] == 409 and dup[1]["type"].endswith("/outcome-unknown") and "attempt 1" in dup[1]["detail"]
    assert len(seen) == 2


# -- clients that leave while a guard holds their call ---------------------------------------------------------------


async def test_a_client_leaving_a_rate_limit_queue_frees_its_token_and_its_key(upstream, make_sidecar, tmp_path):
    charges = upstream.routes["/v1/charges"] = Flaky(201)
    billing = {"rate_limit": {"rps": 0.5, "burst": 1, "max_wait": "5s"}}
    sc = await make_sidecar(recorded(config(upstream, billing, {"billing.charge": CHARGE}), tmp_path))
    bucket = sc.rate_limit.limits["billing"].bucket
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 200  # takes the token: the next one is 2 s away
    taken = bucket.tat
    gone = await open_and_leave(sc, raw_post("/billing/v1/charges", "r-gone", b'{"a":1}', **{"Idempotency-Key": "k-g"}))
    await wait_for(lambda: bucket.tat > taken, 5, what="the charge to queue for a token")
    gone.close()
    got = await rows(sc, "r-gone", 1)
    assert got[0]["duration_ms"] < 1500  # ended when the client left, not when its slot came (2 s)
    assert (got[0]["error_class"], got[0]["guard"], got[0]["outcome"]) == (o.CLIENT_DISCONNECTED, o.GUARD_RATE_QUEUED, o.REFUSED)
    assert bucket.tat == taken and charges.seen == []  # the slot given back, nothing sent
    # The key was released as not sent: the same charge goes (not 409 in flight), in the slot the first one left.
    status, body, _ = await call(sc, "POST", "/billing/v1/charges", run_id="r-back", body={"a": 1}, **{"Idempotency-Key": "k-g"})
    assert (status, body) == (201, {"attempt": 1})
    assert (await rows(sc, "r-back", 1))[0]["guard_wait_ms"] < 2100


async def test_a_client_leaving_during_a_retry_backoff_stops_the_retry(upstream, make_sidecar, tmp_path):
    flaky = upstream.routes["/v1/search"] = Flaky(503, 200, headers={"Retry-After": "2"})
    sc = await make_sidecar(recorded(config(upstream, {"retry": {"attempts": 3}}, {"billing.search": SEARCH}), tmp_path))
    gone = await open_and_leave(sc, raw_post("/billing/v1/search", "r-left", b'{"q":1}', **{"Idempotency-Key": "k-b"}))
    await wait_for(lambda: flaky.seen, 5, what="the first attempt")
    gone.close()
    got = await rows(sc, "r-left", 2)
    assert len(flaky.seen) == 1  # the 2 s backoff was cut short: no attempt for a client that left
    assert [(r["attempt"], r["status"], r["guard"]) for r in got] == [(1, 503, o.GUARD_RETRIED), (2, 499, "")]
    assert (got[1]["outcome"], got[1]["error_class"]) == (o.REFUSED, o.CLIENT_DISCONNECTED)
    assert got[1]["retry_of"] == str(got[0]["event_id"])
    assert 0 < got[1]["guard_wait_ms"] < 2000
    # The first attempt was answered (a 503 the policy repeats) and the second never sent: the key is free again.
    status, body, _ = await call(sc, "POST", "/billing/v1/search", run_id="r-again", body={"q": 1}, **{"Idempotency-Key": "k-b"})
    assert (status, body) == (200, {"attempt": 2})


async def test_a_probe_whose_client_leaves_the_rate_limit_queue_gives_its_slot_back(upstream, make_sidecar, tmp_path):
    upstream.routes["/v1/fail"] = Flaky(503)
    ok = upstream.routes["/v1/ok"] = Flaky(200)
    billing = {"retry": False, "rate_limit": {"rps": 0.5, "burst": 1, "max_wait": "5s"},
               "circuit_breaker": {"consecutive_failures": 1, "half_open_probes": 1, "open_for": "30s"}}  # fmt: skip
    sc = await make_sidecar(recorded(config(upstream, billing), tmp_path))
    br = breaker(sc)
    now = [0.0]
    br.clock = lambda: now[0]
    assert (await call(sc, "GET", "/billing/v1/fail"))[0] == 503
    assert br.current_state() is State.OPEN
    now[0] += 31  # open_for has passed: one probe may go
    bucket = sc.rate_limit.limits["billing"].bucket
    taken = bucket.tat
    gone = await open_and_leave(sc, b"GET /billing/v1/ok HTTP/1.1\r\nHost: x\r\nX-Run-ID: r-probe\r\n\r\n")
    await wait_for(lambda: bucket.tat > taken, 5, what="the probe to queue for a token")
    gone.close()
    assert (await rows(sc, "r-probe", 1))[0]["error_class"] == o.CLIENT_DISCONNECTED
    status, _, _ = await call(sc, "GET", "/billing/v1/ok")  # the probe slot is free again: this call probes
    assert status == 200 and len(ok.seen) == 1 and br.current_state() is State.CLOSED


# -- Redis failing when a result is stored ---------------------------------------------------------------------------


async def test_a_result_redis_missed_is_answered_locally_then_written_when_it_is_back(upstream, make_sidecar, redis_server):
    import redis.asyncio as aioredis

    gate = asyncio.Event()

    async def charge(request: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response({"id": "ch_1"}, status=201)

    upstream.routes["/v1/charges"] = charge
    sc = await make_sidecar(config(upstream, {}, {"billing.charge": CHARGE}, redis_url=redis_server.url, redis_timeout="300ms"))
    key = {"Idempotency-Key": "k-r"}
    first = asyncio.create_task(call(sc, "POST", "/billing/v1/charges", body={"a": 1}, **key))
    await wait_for(lambda: upstream.received, 5, what="the charge to reach the upstream")
    redis_server.pause()  # frozen just before the result is stored
    try:
        gate.set()
        assert (await first)[:2] == (201, {"id": "ch_1"})
        status, body, headers = await call(sc, "POST", "/billing/v1/charges", body={"a": 1}, **key)
        # Before: the store is down → 503 (fail_closed); after Redis is back, 409 in flight and outcome-unknown.
        assert (status, body, headers.get("Seamline-Replayed")) == (201, {"id": "ch_1"}, "true")
    finally:
        redis_server.resume()
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        skey = store_key("billing.charge", "", "k-r")

        async def landed() -> bool:
            raw = await r.get(skey)
            return raw is not None and Entry.decode(raw).state == "done"

        await wait_for(landed, 10, what="the result written to Redis once it answers")  # other replicas see it now
    finally:
        await r.aclose()
    assert len(upstream.received) == 1
