"""The client helper against a real aiohttp upstream on 127.0.0.1: run ID and trace context arrive."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.servers import serve

import seamline.client as sc


@pytest.fixture
async def upstream():
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append({"path": request.path, **{k.lower(): v for k, v in request.headers.items()}})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with serve(app) as base:
        yield base, seen


@pytest.fixture
def tracing():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _traceparent(header: str) -> tuple[str, str]:
    version, trace_id, parent_id, flags = header.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (newer SDKs also set the random-trace-id bit)
    return trace_id, parent_id


async def test_async_client_sends_run_id_and_joins_the_apps_trace(upstream, tracing):
    base, seen = upstream
    provider, exporter = tracing
    tracer = provider.get_tracer("app")
    async with sc.async_client(base_url=base, tracer_provider=provider, app="orders") as http:
        with sc.run("order-123") as rid:
            assert rid == "order-123" and sc.current_run_id() == "order-123"
            with tracer.start_as_current_span("process-order") as app_span:
                await http.post("/billing/v1/charges", json={"amount": 1})
        await http.get("/billing/health")
    assert sc.current_run_id() is None
    first, second = seen
    assert first["x-run-id"] == "order-123" and first["x-seamline-app"] == "orders"
    trace_id, parent_id = _traceparent(first["traceparent"])
    assert trace_id == format(app_span.get_span_context().trace_id, "032x")
    client_span = next(s for s in exporter.get_finished_spans() if s.name != "process-order")
    assert parent_id == format(client_span.context.span_id, "016x")
    assert client_span.parent.span_id == app_span.get_span_context().span_id
    assert "x-run-id" not in second  # outside run(): nothing invented


async def test_concurrent_runs_keep_their_own_run_ids(upstream):
    base, seen = upstream
    async with sc.async_client(base_url=base) as http:

        async def order(i: int) -> None:
            with sc.run(f"order-{i}"):
                await http.get(f"/crm/{i}")

        await asyncio.gather(*(order(i) for i in range(8)))
    assert {s["path"]: s["x-run-id"] for s in seen} == {f"/crm/{i}": f"order-{i}" for i in range(8)}


async def test_upstream_name_routes_through_the_sidecar_base_url(upstream):
    base, seen = upstream
    async with sc.async_client("billing", sidecar=base) as http:
        with sc.run() as rid:
            await http.post("/v1/invoices", json={})
    assert seen[0]["path"] == "/billing/v1/invoices"
    assert seen[0]["x-run-id"] == rid and rid.startswith("run-")


async def test_an_explicit_run_id_header_wins(upstream):
    base, seen = upstream
    async with sc.async_client(base_url=base) as http:
        with sc.run("order-1"):
            await http.get("/x", headers={"X-Run-ID": "explicit"})
    assert seen[0]["x-run-id"] == "explicit"


async def test_sync_client_sends_run_id_and_traceparent(upstream, tracing):
    base, seen = upstream
    provider, _ = tracing
    tracer = provider.get_tracer("app")

    def call() -> str:
        with sc.client("crm", sidecar=base, tracer_provider=provider) as http, sc.run("order-sync"):
            with tracer.start_as_current_span("sync-work") as span:
                http.get("/v1/contacts")
            return format(span.get_span_context().trace_id, "032x")

    trace_id = await asyncio.to_thread(call)
    assert seen[0]["path"] == "/crm/v1/contacts" and seen[0]["x-run-id"] == "order-sync"
    assert _traceparent(seen[0]["traceparent"])[0] == trace_id


async def test_aiohttp_session_sends_run_id_and_traceparent(upstream, tracing):
    base, seen = upstream
    provider, _ = tracing
    tracer = provider.get_tracer("app")
    async with sc.aiohttp_session("email", sidecar=base) as session:
        with sc.run("order-aio"), tracer.start_as_current_span("send") as span:
            async with session.post("v1/messages", json={}) as resp:
                assert resp.status == 200
    assert seen[0]["path"] == "/email/v1/messages" and seen[0]["x-run-id"] == "order-aio"
    assert _traceparent(seen[0]["traceparent"]) == (
        format(span.get_span_context().trace_id, "032x"),
        format(span.get_span_context().span_id, "016x"),
    )


def test_upstream_and_base_url_are_exclusive():
    with pytest.raises(ValueError):
        sc.async_client("billing", base_url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        sc.client("a/b")
