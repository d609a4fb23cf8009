"""Retries through a real Seamline to real upstream apps on 127.0.0.1 that count (and time) what they receive."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from conftest import proxy_config
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support.chdb_path import chdb_url, unique_database
from support.upstream import Upstream
from support.waiting import wait_for

from seamline import outcomes as o

RUN = {"X-Run-ID": "r-retry"}
FAST = {"backoff": "10ms", "max_backoff": "20ms"}  # the schedule's waits are not what these tests are about


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
        headers = self.headers if status >= 400 else {}
        return web.json_response({"attempt": n, "status": status}, status=status, headers=headers)


def config(
    upstream_url: str, handoffs: dict[str, Any] | None = None, retry: Any = None, upstreams: Any = None, **extra: Any
) -> Any:
    """One upstream `billing`; `retry` (and any other keys in `upstreams["billing"]`) set on it."""
    cfg = proxy_config({"billing": upstream_url}, handoffs=handoffs or {}, **extra)
    up = cfg.upstreams["billing"]
    data = {**up.model_dump(), **((upstreams or {}).get("billing", {}))}
    if retry is not None:
        data["retry"] = retry
    return cfg.model_copy(update={"upstreams": {"billing": type(up).model_validate(data)}})


async def call(
    sc: Any, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, sc.proxy_url + path, headers={**RUN, **(headers or {})}, **kw) as r,
    ):
        ctype = r.headers.get("Content-Type", "")
        body = await r.json() if ctype.startswith("application/json") else await r.text()
        return r.status, body, dict(r.headers)


@pytest.fixture
async def recording(make_sidecar, tmp_path):
    """A recording sidecar (real chdb, one database per test)."""

    async def make(cfg: Any) -> Any:
        storage = {
            "enabled": True,
            "clickhouse_url": chdb_url(),
            "database": unique_database("retry"),
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_ms": 20,
        }
        return await make_sidecar(cfg.model_copy(update={"storage": type(cfg.storage).model_validate(storage)}))

    return make


async def rows_of(sc: Any) -> list[dict[str, Any]]:
    async def all_in() -> list[dict[str, Any]]:
        assert await sc.recorder.flush(30)
        return await sc.store.query("SELECT * FROM handoffs WHERE run_id = 'r-retry' ORDER BY attempt")

    return await all_in()


# -- what is retried -----------------------------------------------------------------------------------------------


async def test_flaky_get_gets_the_200_and_each_attempt_is_a_linked_row(upstream, recording):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 503, 200)
    sc = await recording(config(upstream.url, retry=FAST))
    status, body, _ = await call(sc, "GET", "/billing/v1/balance")
    assert (status, body) == (200, {"attempt": 3, "status": 200})
    assert len(flaky.seen) == 3
    rows = await wait_for(lambda: _rows_when(sc, 3), 30, what="three attempt rows")
    assert [r["attempt"] for r in rows] == [1, 2, 3]
    assert [r["status"] for r in rows] == [503, 503, 200]
    assert [r["guard"] for r in rows] == [o.GUARD_RETRIED, o.GUARD_RETRIED, ""]
    first = str(rows[0]["event_id"])
    assert [r["retry_of"] for r in rows] == ["", first, first]
    assert len({str(r["event_id"]) for r in rows}) == 3
    assert all(r["duration_ms"] > 0 for r in rows)
    assert orjson.loads(rows[0]["response_body"]) == {"attempt": 1, "status": 503}  # the released answer, recorded
    assert rows[0]["ts"] < rows[1]["ts"] < rows[2]["ts"]
    # Each attempt named its own span as the parent the upstream saw.
    sent = [r.header("traceparent") for r in upstream.received]
    assert [s.split("-")[2] for s in sent] == [r["span_id"] for r in rows]


async def _rows_when(sc: Any, n: int) -> list[dict[str, Any]] | None:
    rows = await rows_of(sc)
    return rows if len(rows) >= n else None


async def test_never_repeat_post_reaches_the_upstream_once(upstream, make_sidecar):
    flaky = upstream.routes["/v1/charges"] = Flaky(503, 200)
    handoffs = {"billing.charge": {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"}}
    sc = await make_sidecar(config(upstream.url, handoffs, retry=FAST))
    status, _, _ = await call(sc, "POST", "/billing/v1/charges", json={"amount": 1})
    assert (status, len(flaky.seen)) == (503, 1)


async def test_safe_once_is_not_retried_either(upstream, make_sidecar):
    flaky = upstream.routes["/v1/refunds"] = Flaky(503, 200)
    handoffs = {"billing.refund": {"upstream": "billing", "match": "GET /v1/refunds", "safety": "safe_once"}}
    sc = await make_sidecar(config(upstream.url, handoffs, retry=FAST))
    status, _, _ = await call(sc, "GET", "/billing/v1/refunds")
    assert (status, len(flaky.seen)) == (503, 1)


async def test_post_with_default_safety_is_not_retried_but_a_declared_safe_one_is_with_the_same_body(upstream, make_sidecar):
    maybe = upstream.routes["/v1/quotes"] = Flaky(503, 200)
    safe = upstream.routes["/v1/search"] = Flaky(503, 200)
    handoffs = {
        "billing.quote": {"upstream": "billing", "match": "POST /v1/quotes"},  # safety left at its default
        "billing.search": {"upstream": "billing", "match": "POST /v1/search", "safety": "safe_to_repeat"},
    }
    sc = await make_sidecar(config(upstream.url, handoffs, retry=FAST))
    assert (await call(sc, "POST", "/billing/v1/quotes", json={"q": 1}))[0] == 503
    assert len(maybe.seen) == 1
    body = b'{"query": "' + b"x" * 100_000 + b'"}'  # beyond the 64 KiB read whole for speed, under retry.max_body_bytes
    status, _, _ = await call(sc, "POST", "/billing/v1/search", data=body, headers={"Content-Type": "application/json"})
    assert (status, len(safe.seen)) == (200, 2)
    search = [r for r in upstream.received if r.path_qs == "/v1/search"]
    assert [r.body for r in search] == [body, body]


async def test_unmatched_calls_are_retried_for_idempotent_methods_only(upstream, make_sidecar):
    get = upstream.routes["/v1/anything"] = Flaky(502, 200)
    post = upstream.routes["/v1/other-post"] = Flaky(502, 200)
    sc = await make_sidecar(config(upstream.url, retry=FAST))
    assert (await call(sc, "GET", "/billing/v1/anything"))[0] == 200
    assert (await call(sc, "POST", "/billing/v1/other-post", json={}))[0] == 502
    assert (len(get.seen), len(post.seen)) == (2, 1)


async def test_retry_false_sends_once(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 200)
    sc = await make_sidecar(config(upstream.url, retry=False))
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 503
    assert len(flaky.seen) == 1


async def test_a_handoffs_retry_wins_over_its_upstreams(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 503, 503, 200)
    handoffs = {"billing.balance": {"upstream": "billing", "match": "GET /v1/balance", "retry": {**FAST, "attempts": 4}}}
    sc = await make_sidecar(config(upstream.url, handoffs, retry={**FAST, "attempts": 2}))
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 200
    assert len(flaky.seen) == 4


async def test_a_status_not_listed_is_not_retried(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(500, 200)  # 500 is not in the default `on`
    sc = await make_sidecar(config(upstream.url, retry=FAST))
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 500
    assert len(flaky.seen) == 1


async def test_a_streamed_chunked_body_is_never_retried(upstream, make_sidecar):
    flaky = upstream.routes["/v1/upload"] = Flaky(503, 200)
    handoffs = {"billing.upload": {"upstream": "billing", "match": "PUT /v1/upload", "safety": "safe_to_repeat"}}
    sc = await make_sidecar(config(upstream.url, handoffs, retry=FAST))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 1000

    status, _, _ = await call(sc, "PUT", "/billing/v1/upload", data=chunks())
    assert (status, len(flaky.seen)) == (503, 1)
    assert upstream.last.header("Transfer-Encoding") == "chunked"


# -- how long ------------------------------------------------------------------------------------------------------


async def test_retries_stop_at_the_deadline_and_the_client_gets_the_last_answer(upstream, make_sidecar):
    always = upstream.routes["/v1/balance"] = Flaky(503)
    retry = {"attempts": 20, "deadline": "500ms", "backoff": "100ms", "max_backoff": "200ms"}  # 20 attempts: ~2 s
    sc = await make_sidecar(config(upstream.url, retry=retry))
    status, body, _ = await call(sc, "GET", "/billing/v1/balance")
    n = len(always.seen)
    assert status == 503 and isinstance(body, dict) and body["attempt"] == n  # the last attempt's answer
    assert 2 <= n < 20  # stopped by the deadline, not the attempt cap
    assert always.seen[-1] - always.seen[0] < 0.5 + 0.5  # no attempt started after the deadline (+ slack of a busy host)


async def test_the_attempt_cap_counts_the_first_attempt(upstream, make_sidecar):
    always = upstream.routes["/v1/balance"] = Flaky(503)
    sc = await make_sidecar(config(upstream.url, retry={**FAST, "attempts": 3}))
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 503
    assert len(always.seen) == 3


async def test_retry_after_one_second_is_honoured(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(429, 200, headers={"Retry-After": "1"})
    sc = await make_sidecar(config(upstream.url, retry=FAST))
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 200
    assert len(flaky.seen) == 2
    assert flaky.seen[1] - flaky.seen[0] >= 0.95  # measured at the upstream


async def test_retry_after_above_the_cap_goes_back_to_the_client(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 200, headers={"Retry-After": "120"})
    sc = await make_sidecar(config(upstream.url, retry={**FAST, "max_retry_after": "30s"}))
    status, _, headers = await call(sc, "GET", "/billing/v1/balance")
    assert (status, headers.get("Retry-After"), len(flaky.seen)) == (503, "120", 1)


async def test_retry_after_beyond_the_deadline_is_not_waited_for(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 200, headers={"Retry-After": "5"})
    sc = await make_sidecar(config(upstream.url, retry={**FAST, "deadline": "2s"}))
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 503
    assert len(flaky.seen) == 1


# -- transport failures --------------------------------------------------------------------------------------------


async def test_connect_refused_then_success(recording):
    # A bound socket that does not listen yet: connections are refused until the listener starts on it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    up = Upstream()
    retry = {"attempts": 20, "deadline": "20s", "backoff": "50ms", "max_backoff": "200ms"}
    sc = await recording(config(f"http://127.0.0.1:{port}", retry=retry))
    answer = asyncio.create_task(call(sc, "GET", "/billing/v1/balance"))
    await wait_for(lambda: _retried(sc, "connect") >= 1 or answer.done(), 10, what="a refused first attempt")
    runner = await _listen(up, sock)
    try:
        status, _, _ = await answer
        assert status == 200 and len(up.received) == 1
        rows = await wait_for(lambda: _rows_until_status(sc, 200), 30, what="the rows up to the answered attempt")
        assert rows[-1]["attempt"] == len(rows) >= 2
        assert {r["error_class"] for r in rows[:-1]} == {o.CONNECT}
        assert all(r["guard"] == o.GUARD_RETRIED and r["status"] == 502 for r in rows[:-1])
    finally:
        await runner.cleanup()


async def _rows_until_status(sc: Any, status: int) -> list[dict[str, Any]] | None:
    rows = await rows_of(sc)
    return rows if rows and rows[-1]["status"] == status else None


def _retried(sc: Any, reason: str) -> float:
    value = sc.registry.get_sample_value("seamline_retries_total", {"upstream": "billing", "reason": reason})
    return value or 0.0


async def _listen(up: Upstream, sock: socket.socket) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def test_a_read_timeout_is_retried_only_when_listed(upstream, make_sidecar):
    release = asyncio.Event()
    seen: list[float] = []

    async def slow(request: web.Request) -> web.Response:
        seen.append(time.monotonic())
        await release.wait()
        return web.json_response({})

    upstream.routes["/v1/slow"] = slow
    timeouts = {"connect": 2, "read": 0.3, "total": 0.3}
    try:
        sc = await make_sidecar(config(upstream.url, retry=FAST, upstreams={"billing": {"timeouts": timeouts}}))
        assert (await call(sc, "GET", "/billing/v1/slow"))[0] == 504
        assert len(seen) == 1  # `timeout` is not in the default `on`: the upstream may have acted on it
        listed = {**FAST, "attempts": 3, "on": ["timeout", 503]}
        sc2 = await make_sidecar(config(upstream.url, retry=listed, upstreams={"billing": {"timeouts": timeouts}}))
        assert (await call(sc2, "GET", "/billing/v1/slow"))[0] == 504
        assert len(seen) == 1 + 3
    finally:
        release.set()


# -- spans and metrics ---------------------------------------------------------------------------------------------


async def test_each_attempt_has_its_client_span_linked_to_the_first(upstream, make_sidecar):
    flaky = upstream.routes["/v1/balance"] = Flaky(503, 503, 200)
    exporter = InMemorySpanExporter()
    sc = await make_sidecar(config(upstream.url, retry=FAST), span_exporter=exporter)
    assert (await call(sc, "GET", "/billing/v1/balance"))[0] == 200
    spans = exporter.get_finished_spans()
    server = [sp for sp in spans if sp.kind == SpanKind.SERVER]
    clients = sorted((sp for sp in spans if sp.kind == SpanKind.CLIENT), key=lambda sp: sp.start_time)
    assert len(server) == 1 and len(clients) == len(flaky.seen) == 3
    assert all(c.parent.span_id == server[0].context.span_id for c in clients)
    first = clients[0]
    assert not first.links and "seamline.attempt" not in first.attributes
    for n, c in enumerate(clients[1:], start=2):
        assert [link.context.span_id for link in c.links] == [first.context.span_id]
        assert c.attributes["seamline.attempt"] == n
        assert c.attributes["http.request.resend_count"] == n - 1
    assert [c.attributes["http.response.status_code"] for c in clients] == [503, 503, 200]
    sent = [r.header("traceparent").split("-")[2] for r in upstream.received]
    assert sent == [f"{c.context.span_id:016x}" for c in clients]


async def test_retry_metrics_count_retries_and_recoveries(upstream, make_sidecar):
    upstream.routes["/v1/ok"] = Flaky(503, 200)
    upstream.routes["/v1/down"] = Flaky(503)
    sc = await make_sidecar(config(upstream.url, retry={**FAST, "attempts": 2}))
    await call(sc, "GET", "/billing/v1/ok")
    await call(sc, "GET", "/billing/v1/down")
    get = sc.registry.get_sample_value
    assert get("seamline_retries_total", {"upstream": "billing", "reason": "503"}) == 2
    assert get("seamline_retried_calls_total", {"upstream": "billing", "result": "recovered"}) == 1
    assert get("seamline_retried_calls_total", {"upstream": "billing", "result": "failed"}) == 1
