"""The circuit breaker through a real sidecar: a real upstream that fails on demand and counts what it receives;
the breaker opens, fails fast, probes after open_for, re-opens on a failed probe, closes; rows on real chdb."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from support.chdb_path import chdb_url, unique_database
from support.servers import free_ports
from support.waiting import wait_for

from seamline.config.models import Config

# open_for: short, yet long enough that the five fail-fast calls surely fit in it on a busy machine.
BREAKER = {"consecutive_failures": 3, "min_calls": 100, "open_for": 0.8, "half_open_probes": 2}


class Flaky:
    """The upstream's behaviour: `status` to answer, `gate` to hold answers until set."""

    def __init__(self) -> None:
        self.status = 503
        self.gate: asyncio.Event | None = None

    async def __call__(self, request: web.Request) -> web.Response:
        if self.gate is not None:
            await self.gate.wait()
        return web.json_response({"status": self.status}, status=self.status)


@pytest.fixture
async def flaky(upstream) -> Flaky:
    f = Flaky()
    upstream.routes["/v1/invoices"] = f
    return f


async def start(make_sidecar, upstream_url: str, tmp_path, breaker: Any = BREAKER, **extra: dict[str, Any]):
    storage = {
        "enabled": True, "clickhouse_url": chdb_url(), "database": unique_database("circuit"),
        "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20,
    }  # fmt: skip
    billing = {
        "base_url": upstream_url, "allow_private": True, "timeouts": {"connect": 2, "read": 5, "total": 5},
        "circuit_breaker": breaker,
    }  # fmt: skip
    cfg = Config(
        upstreams={"billing": billing},
        handoffs={"billing.invoice": {"upstream": "billing", "match": "POST /v1/invoices"}},
        storage=storage,
        server={"port": 0, "admin_port": 0, **extra.get("server", {})},
    )
    return await make_sidecar(cfg)


async def call(sc, run_id: str = "run-cb") -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s:
        async with s.post(sc.proxy_url + "/billing/v1/invoices", json={"amount": 1}, headers={"X-Run-ID": run_id}) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)


async def state(sc) -> float | None:
    async with aiohttp.ClientSession() as s, s.get(sc.admin_url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith('seamline_circuit_state{upstream="billing"}'):
                return float(line.rsplit(" ", 1)[1])
    return None


async def transitions(sc) -> dict[str, float]:
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as s, s.get(sc.admin_url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith("seamline_circuit_transitions_total{"):
                to = line.split('to="', 1)[1].split('"', 1)[0]
                out[to] = float(line.rsplit(" ", 1)[1])
    return out


async def test_opens_fails_fast_probes_reopens_and_closes(upstream, flaky, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream.url, tmp_path)
    assert await state(sc) == 0
    for _ in range(3):  # the upstream's own 503s: relayed, and counted as failures
        status, _, body = await call(sc)
        assert status == 503 and body == {"status": 503}
    assert len(upstream.received) == 3 and await state(sc) == 2
    for _ in range(5):  # open: answered at once, the upstream not called
        status, headers, body = await call(sc)
        assert status == 503 and headers["Content-Type"] == "application/problem+json"
        assert body["type"].endswith("/circuit-open") and body["error_class"] == "circuit_open"
        assert body["upstream"] == "billing" and body["circuit_state"] == "open" and body["run_id"] == "run-cb"
        assert headers["Retry-After"] == "1" == str(body["retry_after_s"])  # ceil of the ≤ 0.8 s left
    assert len(upstream.received) == 3

    await wait_for(lambda: _is(state(sc), 1), 5, what="half-open after open_for")
    status, _, _ = await call(sc)  # a probe; the upstream still fails: open again
    assert status == 503 and len(upstream.received) == 4 and await state(sc) == 2
    status, _, body = await call(sc)
    assert body["error_class"] == "circuit_open" and len(upstream.received) == 4

    flaky.status, flaky.gate = 200, asyncio.Event()
    await wait_for(lambda: _is(state(sc), 1), 5, what="half-open again")
    calls = [asyncio.create_task(call(sc, f"run-probe-{i}")) for i in range(2)]
    await wait_for(lambda: len(upstream.received) == 6, 5, what="both probes at the upstream")
    status, _, body = await call(sc, "run-probe-extra")  # a third while both probes are out: refused
    assert status == 503 and body["circuit_state"] == "half_open" and len(upstream.received) == 6
    flaky.gate.set()
    assert [(await t)[0] for t in calls] == [200, 200]
    assert await state(sc) == 0
    assert (await call(sc))[0] == 200 and len(upstream.received) == 7  # closed: forwarded again
    assert await transitions(sc) == {"open": 2.0, "half_open": 2.0, "closed": 1.0}

    assert await sc.recorder.flush(30)
    rows = await sc.store.query("SELECT run_id, status, outcome, error_class, guard FROM handoffs ORDER BY ts")
    refused = [r for r in rows if r["guard"] == "circuit_open"]
    assert len(refused) == 7
    assert {(r["outcome"], r["error_class"], r["status"]) for r in refused} == {("refused", "circuit_open", 503)}
    probes = [r for r in rows if r["guard"] == "circuit_probe"]
    assert [(r["status"], r["outcome"]) for r in probes] == [(503, "http_error"), (200, "ok"), (200, "ok")]


async def _is(value: Any, expected: float) -> bool:
    return await value == expected


async def test_an_unreachable_upstream_opens_it_on_connect_errors(make_sidecar, tmp_path):
    (port,) = free_ports(1)  # nothing listens there
    sc = await start(make_sidecar, f"http://127.0.0.1:{port}", tmp_path)
    seen = [(await call(sc))[2]["error_class"] for _ in range(5)]
    assert seen == ["connect", "connect", "connect", "circuit_open", "circuit_open"]


async def test_client_errors_and_rate_limits_never_open_it(upstream, flaky, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream.url, tmp_path)
    for status in (400, 404, 429, 422, 429, 409):
        flaky.status = status
        assert (await call(sc))[0] == status
    assert len(upstream.received) == 6 and await state(sc) == 0


async def test_refusals_of_seamline_itself_are_not_failures(upstream, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream.url, tmp_path, server={"max_request_body_bytes": 10})
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.post(sc.proxy_url + "/billing/v1/invoices", data=b"x" * 100) as r:
                assert r.status == 413
    assert await state(sc) == 0


async def test_circuit_breaker_false_turns_it_off(upstream, flaky, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream.url, tmp_path, breaker=False)
    for _ in range(8):
        assert (await call(sc))[0] == 503
    assert len(upstream.received) == 8 and await state(sc) is None
