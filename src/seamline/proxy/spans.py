"""OpenTelemetry: a SERVER span per inbound request, a CLIENT span per upstream attempt.

Only built when an OTLP endpoint is configured; otherwise `Telemetry.enabled` is False and the
proxy mints span IDs itself (no SDK objects, no cost).
"""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from seamline import outcomes as o
from seamline.config.models import Telemetry as TelemetryConfig
from seamline.exchange import Exchange
from seamline.ids import new_span_id
from seamline.proxy.inbound import Inbound
from seamline.proxy.tracecontext import TraceContext


class Telemetry:
    def __init__(self, cfg: TelemetryConfig, *, exporter: Any | None = None) -> None:
        endpoint = cfg.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        self.enabled = bool(endpoint or exporter)
        self._provider: Any = None
        self.tracer: Any = None
        if not self.enabled:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name}))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            url = endpoint.rstrip("/") + "/v1/traces" if cfg.otlp_endpoint else None  # type: ignore[union-attr]
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        self._provider = provider
        self.tracer = provider.get_tracer("seamline")

    def start_server_span(self, tc: TraceContext, name: str, attributes: dict[str, Any]) -> Any:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

        ctx = None
        if not tc.started_here:
            state = _otel_trace_state(tc.tracestate) if tc.tracestate else TraceState()
            parent = SpanContext(
                trace_id=int(tc.trace_id, 16),
                span_id=int(tc.caller_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(tc.flags & 0x01),
                trace_state=state,
            )
            ctx = trace.set_span_in_context(NonRecordingSpan(parent))
        return self.tracer.start_span(name, context=ctx, kind=SpanKind.SERVER, attributes=attributes)

    def start_client_span(self, server_span: Any, name: str, attributes: dict[str, Any], links: Any = None) -> Any:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        ctx = trace.set_span_in_context(server_span)
        return self.tracer.start_span(name, context=ctx, kind=SpanKind.CLIENT, attributes=attributes, links=links)

    @staticmethod
    def ids(span: Any) -> tuple[str, str]:
        sc = span.get_span_context()
        return f"{sc.trace_id:032x}", f"{sc.span_id:016x}"

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


class Spans:
    """Span stage. Request: the SERVER and CLIENT spans (or, without telemetry, a minted span ID: the parent-id
    sent upstream either way). Done: both spans ended with the status and error class."""

    name = "spans"
    essential = False  # without it the call still goes on: the handler mints the span ID itself

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        tel = self.telemetry
        if not tel.enabled:
            ex.span_id = new_span_id()
            return
        target = ex.target
        assert target is not None and ex.trace is not None
        attrs = {"http.request.method": http.method, "seamline.run_id": ex.run_id, "seamline.handoff": ex.handoff}
        server = tel.start_server_span(ex.trace, f"{http.method} {ex.handoff}", attrs)
        trace_id, _ = tel.ids(server)
        if ex.trace.started_here:
            ex.trace = TraceContext(trace_id, "", ex.trace.flags, None, True)
        client = tel.start_client_span(server, f"{http.method} {ex.handoff}", _client_attributes(ex))
        ex.spans = (server, client)
        ex.span_id = tel.ids(client)[1]

    def next_attempt(self, failed: Exchange, ex: Exchange) -> None:
        """A retry: the failed attempt's CLIENT span ends with its outcome; the next attempt gets its own, linked to
        the first attempt's span and carrying its attempt number (`http.request.resend_count`, `seamline.attempt`)."""
        if ex.spans is None:  # no telemetry: only a span ID of its own, the parent-id sent upstream
            ex.span_id = new_span_id()
            return
        from opentelemetry.trace import Link

        server, client = ex.spans
        _end(client, failed)
        first = ex.prior_attempts[0].spans
        first_ctx = (first[1] if first is not None else client).get_span_context()
        attrs = {
            **_client_attributes(ex),
            "seamline.attempt": ex.attempt,
            "http.request.resend_count": len(ex.prior_attempts),
            "seamline.retry_of": ex.retry_of,
        }
        nxt = self.telemetry.start_client_span(
            server, f"{ex.method} {ex.handoff}", attrs, links=[Link(first_ctx, {"seamline.link": "retry_of"})]
        )
        ex.spans = (server, nxt)
        ex.span_id = self.telemetry.ids(nxt)[1]

    def done(self, ex: Exchange) -> None:
        if ex.spans is None:
            return
        server, client = ex.spans
        ex.spans = None
        _end(client, ex)
        _end(server, ex)


def _client_attributes(ex: Exchange) -> dict[str, Any]:
    target = ex.target
    assert target is not None
    return {
        "http.request.method": ex.method,
        "seamline.run_id": ex.run_id,
        "seamline.handoff": ex.handoff,
        "server.address": target.url.host or "",
        "server.port": target.url.port or 0,
        "url.path": target.path,
    }


def _end(span: Any, ex: Exchange) -> None:
    from opentelemetry.trace import Status, StatusCode

    status = ex.status or ex.error_status
    if status:
        span.set_attribute("http.response.status_code", status)
    if ex.error_class != o.NONE:
        span.set_attribute("error.type", ex.error_class)
        span.set_status(Status(StatusCode.ERROR, ex.error_detail[:200]))
    span.end()


def _otel_trace_state(header: str) -> Any:
    """The span's TraceState: the members OpenTelemetry's (Level 1) grammar accepts, the first of each key.

    The header was validated (Level 2) and is sent upstream as received; OpenTelemetry's own parser would log a
    warning with the member's value for a Level 2 key (e.g. `1abc`) or a duplicate and drop the whole state.
    """
    from opentelemetry.trace import TraceState
    from opentelemetry.trace.span import _is_valid_pair

    pairs: dict[str, str] = {}
    for member in header.split(","):
        key, _, value = member.strip().partition("=")
        if key not in pairs and _is_valid_pair(key, value) and len(pairs) < 32:
            pairs[key] = value
    return TraceState(list(pairs.items()))
