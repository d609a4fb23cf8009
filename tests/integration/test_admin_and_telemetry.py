"""Admin listener (health, readiness, Prometheus metrics) and OpenTelemetry spans."""

from __future__ import annotations

import aiohttp
from conftest import proxy_config
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind


async def test_admin_health_readiness_and_metrics(upstream, make_sidecar):
    sc = await make_sidecar(
        proxy_config({"billing": upstream.url}, handoffs={"billing.charge": {"upstream": "billing", "match": "POST /v1/charges"}})
    )
    assert sc.admin_url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as s:
        await (await s.post(sc.proxy_url + "/billing/v1/charges", json={})).read()
        await (await s.get(sc.proxy_url + "/nowhere/x")).read()
        async with s.get(sc.admin_url + "/healthz") as r:
            assert r.status == 200
        async with s.get(sc.admin_url + "/readyz") as r:
            assert r.status == 200
        async with s.get(sc.admin_url + "/metrics") as r:
            text = await r.text()
    assert 'seamline_requests_total{error_class="none",handoff="billing.charge",status_class="2xx"} 1.0' in text
    assert 'error_class="unknown_upstream"' in text
    assert "seamline_request_duration_seconds_bucket" in text
    assert "seamline_in_flight_requests 0.0" in text


async def test_spans_server_and_client_and_upstream_parent_is_the_client_span(upstream, make_sidecar):
    exporter = InMemorySpanExporter()
    sc = await make_sidecar(
        proxy_config(
            {"billing": upstream.url}, handoffs={"billing.charge": {"upstream": "billing", "match": "POST /v1/charges"}}
        ),
        span_exporter=exporter,
    )
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with aiohttp.ClientSession() as s:
        await (
            await s.post(sc.proxy_url + "/billing/v1/charges", json={}, headers={"traceparent": tp, "X-Run-ID": "r-otel"})
        ).read()
    spans = exporter.get_finished_spans()
    server = next(sp for sp in spans if sp.kind == SpanKind.SERVER)
    client = next(sp for sp in spans if sp.kind == SpanKind.CLIENT)
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    assert client.parent.span_id == server.context.span_id
    sent = upstream.last.header("traceparent")
    assert sent == f"00-0af7651916cd43dd8448eb211c80319c-{client.context.span_id:016x}-01"
    assert client.attributes["seamline.run_id"] == "r-otel"
    assert client.attributes["seamline.handoff"] == "billing.charge"
    assert client.attributes["http.response.status_code"] == 200
    assert client.attributes["http.request.method"] == "POST"


async def test_new_trace_uses_the_server_span_trace_id(upstream, make_sidecar):
    exporter = InMemorySpanExporter()
    sc = await make_sidecar(proxy_config({"billing": upstream.url}), span_exporter=exporter)
    async with aiohttp.ClientSession() as s:
        await (await s.get(sc.proxy_url + "/billing/x")).read()
    client = next(sp for sp in exporter.get_finished_spans() if sp.kind == SpanKind.CLIENT)
    assert upstream.last.header("traceparent").split("-")[1] == f"{client.context.trace_id:032x}"


def test_telemetry_is_off_without_an_endpoint(monkeypatch):
    from seamline.config.models import Telemetry as Cfg
    from seamline.proxy.spans import Telemetry

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert Telemetry(Cfg()).enabled is False


async def test_level2_tracestate_keeps_the_span_parent_state_and_logs_no_member(upstream, make_sidecar, caplog):
    """OpenTelemetry's parser is Level 1: a digit-first key or a duplicate must not drop the span's state or log it."""
    exporter = InMemorySpanExporter()
    sc = await make_sidecar(proxy_config({"billing": upstream.url}), span_exporter=exporter)
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ts = "1abc=secretish-value,vendor=v1,vendor=v2,tenant@sys=t"
    async with aiohttp.ClientSession() as s:
        await (await s.get(sc.proxy_url + "/billing/x", headers={"traceparent": tp, "tracestate": ts})).read()
    assert upstream.last.header("tracestate") == ts  # sent on as received (Level 2)
    server = next(sp for sp in exporter.get_finished_spans() if sp.kind == SpanKind.SERVER)
    assert dict(server.parent.trace_state) == {"vendor": "v1", "tenant@sys": "t"}
    assert "secretish-value" not in caplog.text
