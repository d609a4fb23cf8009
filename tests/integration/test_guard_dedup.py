"""The duplicate guard through real sockets: a counting upstream app, a real Seamline, in-process state or a real
redis-server (killed and frozen), and two `seamline serve` processes sharing one Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from conftest import proxy_config
from multidict import CIMultiDict
from support.chdb_path import chdb_url, unique_database
from support.servers import free_ports
from support.upstream import Upstream
from support.waiting import wait_for

from seamline.guards.dedup import store_key
from seamline.guards.dedup_store import Entry

CHARGE = {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"}
HANDOFFS: dict[str, Any] = {
    "billing.charge": {**CHARGE, "contract": {"status": [201], "extract": {"charge_id": "response.body.id"}}},
    "billing.refund": {"upstream": "billing", "match": "POST /v1/refunds", "safety": "safe_once", "dedup": {"require_key": True}},
    "billing.export": {"upstream": "billing", "match": "POST /v1/exports", "safety": "never_repeat",
                       "dedup": {"max_response_bytes": 1024}},
    "billing.slow": {"upstream": "slow", "match": "POST /v1/charges", "safety": "never_repeat"},
    # IDs from the request and the response: computed when the call is claimed and when it settles (not lazily).
    "billing.order": {"upstream": "billing", "match": "POST /v1/orders", "safety": "never_repeat",
                      "dedup": {"max_response_bytes": 1024},
                      "contract": {"extract": {"order": "request.body.order", "charge_id": "response.body.id"}}},
    "billing.slow_order": {"upstream": "slow", "match": "POST /v1/orders", "safety": "never_repeat",
                           "contract": {"extract": {"order": "request.body.order", "charge_id": "response.body.id"}}},
}  # fmt: skip


def charge_app(up: Upstream, gate: asyncio.Event | None = None) -> None:
    """`POST /v1/charges` creates a charge; `gate` holds the answer until the test opens it."""

    async def charge(request: web.Request) -> web.Response:
        if gate is not None:
            await gate.wait()
        n = len([r for r in up.received if r.path_qs == "/v1/charges"])
        return web.Response(
            status=201, body=orjson.dumps({"id": f"ch_{n}", "amount": 500}),
            headers={"Content-Type": "application/json", "X-Request-Id": f"req_{n}", "Set-Cookie": "a=1"},
        )  # fmt: skip

    up.routes["/v1/charges"] = charge


def count(up: Upstream, path: str = "/v1/charges") -> int:
    return len([r for r in up.received if r.path_qs == path])


async def make(make_sidecar: Any, upstream: Upstream, slow: str | None = None, **extra: Any) -> Any:
    """A sidecar in front of `upstream` (billing) and `slow` (read and total timeouts of 0.3 s)."""
    cfg = proxy_config({"billing": upstream.url, "slow": slow or upstream.url + "/slow"}, handoffs=HANDOFFS, **extra)
    slow_up = cfg.upstreams["slow"]
    quick = slow_up.timeouts.model_copy(update={"read": 0.3, "total": 0.3})
    cfg = cfg.model_copy(update={"upstreams": {**cfg.upstreams, "slow": slow_up.model_copy(update={"timeouts": quick})}})
    return await make_sidecar(cfg)


async def send(
    s: aiohttp.ClientSession, url: str, key: str | None, body: Any, run_id: str = "run-1", **headers: str
) -> tuple[int, CIMultiDict[str], bytes, Any]:
    h = {"X-Run-ID": run_id, **headers}
    if key is not None:
        h["Idempotency-Key"] = key
    async with s.post(url, data=orjson.dumps(body), headers=h) as r:
        raw = await r.read()
        doc = orjson.loads(raw) if r.content_type == "application/problem+json" else None
        return r.status, CIMultiDict(r.headers), raw, doc


@pytest.fixture(params=["memory", "redis"])
async def sidecar(request, upstream, make_sidecar):
    extra: dict[str, Any] = {}
    if request.param == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_server").url
        extra["redis_timeout"] = "2s"  # a loaded CI machine is not a Redis outage (those tests set their own)
    return await make(make_sidecar, upstream, **extra)


async def test_retried_charge_reaches_upstream_once_and_gets_the_same_response(sidecar, upstream):
    charge_app(upstream)
    url = sidecar.proxy_url + "/billing/v1/charges"
    async with aiohttp.ClientSession() as s:
        first = await send(s, url, "k-1", {"amount": 500}, run_id="run-a")
        again = await send(s, url, "k-1", {"amount": 500}, run_id="run-b")
        quoted = await send(s, url, '"k-1"', {"amount": 500}, run_id="run-b")  # the draft's sf-string form
    assert count(upstream) == 1
    assert first[0] == again[0] == quoted[0] == 201
    assert first[2] == again[2] == quoted[2] == b'{"id":"ch_1","amount":500}'
    assert again[1]["Seamline-Replayed"] == "true" and "Seamline-Replayed" not in first[1]
    for name in ("Content-Type", "X-Request-Id", "Set-Cookie"):
        assert again[1][name] == first[1][name]
    assert first[1]["X-Run-ID"] == "run-a" and again[1]["X-Run-ID"] == "run-b"  # this call's correlation, not the first's
    assert again[1]["traceparent"] != first[1]["traceparent"]


async def test_same_key_with_another_body_is_422_key_reused(sidecar, upstream):
    charge_app(upstream)
    url = sidecar.proxy_url + "/billing/v1/charges"
    async with aiohttp.ClientSession() as s:
        await send(s, url, "k-2", {"amount": 500})
        status, headers, _, doc = await send(s, url, "k-2", {"amount": 501})
    assert status == 422 and headers["Content-Type"] == "application/problem+json"
    assert doc["type"].endswith("/idempotency-key-reused") and doc["error_class"] == "duplicate"
    assert "body" in doc["detail"] and doc["external_ids"] == {"charge_id": "ch_1"}
    assert count(upstream) == 1


async def test_a_done_entry_keeps_no_ids_its_stored_response_names_them_when_asked(sidecar, upstream):
    """`extract` reads only the response body: the stored result holds that exact body, so the IDs are computed
    from it when a refusal names them, not on every call."""
    charge_app(upstream)
    url = sidecar.proxy_url + "/billing/v1/charges"
    async with aiohttp.ClientSession() as s:
        await send(s, url, "k-lazy", {"amount": 500})
        stored = Entry.decode(await sidecar.dedup_store.claim(store_key("billing.charge", "", "k-lazy"), b"-", 60) or b"")
        status, _, _, doc = await send(s, url, "k-lazy", {"amount": 501})
    assert stored.state == "done" and stored.external_ids == {} and orjson.loads(stored.body)["id"] == "ch_1"
    assert status == 422 and doc["external_ids"] == {"charge_id": "ch_1"}


async def test_ids_from_request_and_response_are_named_by_every_refusal(sidecar, upstream):
    async def order(request: web.Request) -> web.Response:
        sent = await request.json()
        big = sent.get("big", False)
        return web.json_response({"id": f"ch_{sent['order']}", "pad": "x" * (5000 if big else 10)}, status=201)

    upstream.routes["/v1/orders"] = order
    url = sidecar.proxy_url + "/billing/v1/orders"
    async with aiohttp.ClientSession() as s:
        await send(s, url, "o-1", {"order": "A"})
        reused = await send(s, url, "o-1", {"order": "B"})  # a done first: both IDs, stored when it settled
        await send(s, url, "o-2", {"order": "C", "big": True})
        known = await send(s, url, "o-2", {"order": "C", "big": True})  # not replayable: the request's IDs
    assert reused[0] == 422 and reused[3]["external_ids"] == {"order": "A", "charge_id": "ch_A"}
    assert known[0] == 409 and known[3]["type"].endswith("/outcome-known")
    assert known[3]["external_ids"] == {"order": "C"}  # the response was cut at max_response_bytes: no charge_id
    stored = Entry.decode(await sidecar.dedup_store.claim(store_key("billing.order", "", "o-1"), b"-", 60) or b"")
    assert stored.state == "done" and stored.external_ids == {"order": "A", "charge_id": "ch_A"}


async def test_outcome_unknown_names_the_ids_its_request_gave(upstream, make_sidecar):
    never = asyncio.Event()
    slow = await Upstream().start()
    try:

        async def order(request: web.Request) -> web.Response:
            await never.wait()
            return web.json_response({"id": "ch_never"}, status=201)

        slow.routes["/v1/orders"] = order
        sc = await make(make_sidecar, upstream, slow=slow.url)
        url = sc.proxy_url + "/slow/v1/orders"
        async with aiohttp.ClientSession() as s:
            first = await send(s, url, "o-3", {"order": "D"})
            again = await send(s, url, "o-3", {"order": "D"})
        assert first[0] == 504
        assert again[0] == 409 and again[3]["type"].endswith("/outcome-unknown")
        assert again[3]["external_ids"] == {"order": "D"}
    finally:
        never.set()
        await slow.stop()


async def test_concurrent_duplicates_forward_exactly_one(sidecar, upstream):
    gate = asyncio.Event()
    charge_app(upstream, gate)
    url = sidecar.proxy_url + "/billing/v1/charges"
    async with aiohttp.ClientSession() as s:
        calls = [asyncio.create_task(send(s, url, "k-3", {"amount": 500})) for _ in range(20)]
        await wait_for(lambda: sum(c.done() for c in calls) == 19, 10, what="19 duplicates answered")
        gate.set()
        results = await asyncio.gather(*calls)
    statuses = sorted(r[0] for r in results)
    assert statuses == [201] + [409] * 19, [(r[0], r[3]) for r in results if r[0] != 409]
    assert {r[3]["type"].rsplit("/", 1)[1] for r in results if r[0] == 409} == {"idempotency-in-flight"}
    assert count(upstream) == 1


async def test_a_timeout_after_send_pauses_duplicates_with_outcome_unknown(upstream, make_sidecar):
    never = asyncio.Event()
    slow = await Upstream().start()
    try:
        charge_app(slow, never)  # takes the request, never answers
        sc = await make(make_sidecar, upstream, slow=slow.url)
        url = sc.proxy_url + "/slow/v1/charges"
        async with aiohttp.ClientSession() as s:
            first = await send(s, url, "k-4", {"amount": 500}, run_id="run-first")
            again = await send(s, url, "k-4", {"amount": 500}, run_id="run-retry")
        assert first[0] == 504
        status, _, _, doc = again
        assert status == 409 and doc["type"].endswith("/outcome-unknown") and doc["error_class"] == "outcome_unknown"
        assert doc["first_run_id"] == "run-first" and doc["first_event_id"] and "timeout" in doc["detail"]
        assert count(slow) == 1  # never an automatic repeat
    finally:
        never.set()
        await slow.stop()


async def test_a_connect_error_releases_the_key_so_the_retry_goes(upstream, make_sidecar):
    (closed,) = free_ports(1)
    charge_app(upstream)
    sc = await make(make_sidecar, upstream, slow=f"http://127.0.0.1:{closed}")
    url = sc.proxy_url + "/slow/v1/charges"
    async with aiohttp.ClientSession() as s:
        refused = await send(s, url, "k-5", {"amount": 500})
        assert refused[0] == 502 and refused[3]["error_class"] == "connect"
        again = await send(s, url, "k-5", {"amount": 500})
    assert again[0] == 502  # tried again (nothing was sent the first time), not 409


async def test_a_response_over_the_cap_gives_duplicates_outcome_known(sidecar, upstream):
    async def export(request: web.Request) -> web.Response:
        return web.Response(status=200, body=b"x" * 5000, content_type="text/csv")

    upstream.routes["/v1/exports"] = export
    url = sidecar.proxy_url + "/billing/v1/exports"
    async with aiohttp.ClientSession() as s:
        first = await send(s, url, "k-6", {"month": 1})
        again = await send(s, url, "k-6", {"month": 1})
    assert first[0] == 200 and len(first[2]) == 5000  # the first call's client gets it all
    status, _, _, doc = again
    assert status == 409 and doc["type"].endswith("/outcome-known") and doc["first_status"] == 200
    assert doc["first_event_id"] and "1024" in doc["detail"]
    assert count(upstream, "/v1/exports") == 1


async def test_require_key_refuses_a_call_without_one(sidecar, upstream):
    async with aiohttp.ClientSession() as s:
        status, _, _, doc = await send(s, sidecar.proxy_url + "/billing/v1/refunds", None, {"charge": "ch_1"})
        ok = await send(s, sidecar.proxy_url + "/billing/v1/refunds", "r-1", {"charge": "ch_1"})
    assert status == 400 and doc["type"].endswith("/idempotency-key-missing")
    assert ok[0] == 200 and count(upstream, "/v1/refunds") == 1


async def test_a_claim_whose_owner_died_is_outcome_unknown(upstream, make_sidecar, redis_server):
    import redis.asyncio as aioredis

    charge_app(upstream)
    sc = await make(make_sidecar, upstream, redis_url=redis_server.url)
    dead = Entry("in_flight", "", "", owner="gone", run_id="run-dead", event_id="ev-dead", lease_until=time.time() - 1)
    r = aioredis.Redis.from_url(redis_server.url)
    async with aiohttp.ClientSession() as s:
        body = {"amount": 500}
        # Another replica claimed the key with this very request, then died: same fingerprint, lease passed.
        await send(s, sc.proxy_url + "/billing/v1/charges", "k-probe", body)
        probe = Entry.decode(await r.get(store_key("billing.charge", "", "k-probe")))
        dead = Entry("in_flight", probe.request_fp, probe.body_fp, "gone", "run-dead", "ev-dead", time.time() - 1)
        await r.set(store_key("billing.charge", "", "k-7"), dead.encode(), px=60_000)
        status, _, _, doc = await send(s, sc.proxy_url + "/billing/v1/charges", "k-7", body)
    await r.aclose()
    assert status == 409 and doc["type"].endswith("/outcome-unknown") and doc["first_run_id"] == "run-dead"
    assert "lease" in doc["detail"] and count(upstream) == 1


@pytest.mark.parametrize("failure", ["killed", "frozen"])
async def test_redis_down_follows_each_handoffs_policy(upstream, make_sidecar, redis_server, failure):
    charge_app(upstream)
    sc = await make(make_sidecar, upstream, redis_url=redis_server.url, redis_timeout="300ms")
    if failure == "killed":
        redis_server.stop()
    else:
        redis_server.pause()
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        closed = await send(s, sc.proxy_url + "/billing/v1/charges", "k-8", {"amount": 500})  # never_repeat
        opened = await send(s, sc.proxy_url + "/billing/v1/refunds", "k-8", {"charge": "ch_1"})  # safe_once
        took = time.monotonic() - t0
    redis_server.resume()
    assert closed[0] == 503 and closed[3]["type"].endswith("/guard-store-unavailable")
    assert closed[3]["error_class"] == "guard_unavailable" and count(upstream) == 0
    assert opened[0] == 200 and count(upstream, "/v1/refunds") == 1
    assert took < 3.0  # two calls, each bounded by redis_timeout, not redis-py's retries or a TCP timeout


async def test_guard_decisions_are_recorded(upstream, make_sidecar, tmp_path):
    gate = asyncio.Event()
    charge_app(upstream, gate)
    database = unique_database("dedup")
    storage = {"enabled": True, "clickhouse_url": chdb_url(), "database": database, "spool_dir": str(tmp_path / "spool"),
               "flush_interval_ms": 20}  # fmt: skip
    sc = await make(make_sidecar, upstream, storage=storage)
    url = sc.proxy_url + "/billing/v1/charges"
    async with aiohttp.ClientSession() as s:
        first = asyncio.create_task(send(s, url, "k-9", {"amount": 500}, run_id="run-rec"))
        await wait_for(lambda: count(upstream) == 1, 10, what="the first charge to reach the upstream")
        in_flight = await send(s, url, "k-9", {"amount": 500}, run_id="run-rec")
        gate.set()
        await first
        replayed = await send(s, url, "k-9", {"amount": 500}, run_id="run-rec")
        reused = await send(s, url, "k-9", {"amount": 9}, run_id="run-rec")
    assert (in_flight[0], replayed[0], reused[0]) == (409, 201, 422)
    assert await sc.flush(30)
    rows = await sc.store.query(
        "SELECT event_id, guard, outcome, error_class, status, response_body, attributes FROM handoffs "
        "WHERE run_id = 'run-rec' ORDER BY ts"
    )
    by_guard = {r["guard"]: r for r in rows}
    assert set(by_guard) == {"", "blocked_in_flight", "replayed", "key_reused"}
    original = by_guard[""]
    assert original["outcome"] == "ok" and original["status"] == 201
    assert (by_guard["replayed"]["outcome"], by_guard["replayed"]["status"]) == ("replayed", 201)
    assert by_guard["replayed"]["response_body"] == original["response_body"]
    assert (by_guard["blocked_in_flight"]["outcome"], by_guard["blocked_in_flight"]["error_class"]) == ("refused", "duplicate")
    assert (by_guard["key_reused"]["outcome"], by_guard["key_reused"]["error_class"]) == ("refused", "duplicate")
    assert all(
        by_guard[g]["attributes"]["dedup_of"] == str(original["event_id"])
        for g in ("replayed", "key_reused", "blocked_in_flight")
    )


class Serve:
    """`seamline serve` as its own process, with SEAMLINE_REDIS_URL."""

    def __init__(self, cfg: dict[str, Any], tmp: Path, name: str, redis_url: str) -> None:
        self.port, self.admin = free_ports(2)
        self.path = tmp / f"{name}.json"
        self.path.write_text(json.dumps({**cfg, "server": {"port": self.port, "admin_port": self.admin, "instance": name}}))
        self.redis_url = redis_url
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Serve:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
        env["SEAMLINE_REDIS_URL"] = self.redis_url
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "seamline", "serve", "--config", str(self.path), "--log-level", "WARNING",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with aiohttp.ClientSession() as s:

            async def healthy() -> bool:
                try:
                    async with s.get(f"http://127.0.0.1:{self.admin}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    assert self.proc is not None and self.proc.returncode is None
                    return False

            await wait_for(healthy, 60, what=f"`seamline serve` ({self.path.name}) to answer /healthz")
        return self

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            async with asyncio.timeout(30):
                await self.proc.wait()


@pytest.mark.slow
async def test_two_processes_sharing_redis_never_both_forward_a_key(upstream, redis_server, tmp_path):
    gate = asyncio.Event()
    charge_app(upstream, gate)
    cfg = {
        "upstreams": {"billing": {"base_url": upstream.url, "allow_private": True}},
        "handoffs": {"billing.charge": CHARGE},
        "storage": {"enabled": False},
        "redis_timeout": "5s",  # 100 calls at once on a shared 2-core machine are not a Redis outage
    }
    a = await Serve(cfg, tmp_path, "a", redis_server.url).start()
    b = await Serve(cfg, tmp_path, "b", redis_server.url).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            calls = [
                asyncio.create_task(send(s, f"http://127.0.0.1:{(a, b)[i % 2].port}/billing/v1/charges", "k-shared", {"n": 1}))
                for i in range(100)
            ]
            await wait_for(lambda: sum(c.done() for c in calls) == 99, 30, what="99 duplicates answered")
            gate.set()
            results = await asyncio.gather(*calls)
            replay = await send(s, f"http://127.0.0.1:{b.port}/billing/v1/charges", "k-shared", {"n": 1})
            replay_a = await send(s, f"http://127.0.0.1:{a.port}/billing/v1/charges", "k-shared", {"n": 1})
    finally:
        await a.stop()
        await b.stop()
    assert count(upstream) == 1
    assert sorted(r[0] for r in results) == [201] + [409] * 99, [(r[0], r[3]) for r in results if r[0] != 409][:3]
    first = next(r for r in results if r[0] == 201)
    assert replay[0] == replay_a[0] == 201 and replay[2] == replay_a[2] == first[2]
    assert replay[1]["Seamline-Replayed"] == replay_a[1]["Seamline-Replayed"] == "true"


async def test_a_reset_after_the_request_was_sent_is_outcome_unknown(upstream, make_sidecar):
    got = asyncio.Event()

    async def take_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request arrived: it may have taken effect
        got.set()
        writer.transport.abort()

    server = await asyncio.start_server(take_then_reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sc = await make(make_sidecar, upstream, slow=f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as s:
            first = await send(s, sc.proxy_url + "/slow/v1/charges", "k-10", {"amount": 500})
            again = await send(s, sc.proxy_url + "/slow/v1/charges", "k-10", {"amount": 500})
    finally:
        server.close()
        await server.wait_closed()
    assert got.is_set() and first[0] == 502
    assert again[0] == 409 and again[3]["type"].endswith("/outcome-unknown")
