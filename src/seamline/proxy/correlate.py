"""Correlate stage: one run ID and one W3C trace context per call, taken from the caller or minted, sent upstream
and echoed back. Also the caller's app, tenant, attempt and idempotency key, as recorded.

Run ID, first match wins: the configured header (`X-Run-ID`), `X-Correlation-ID`, a `run_id` baggage member; one
that is present but invalid (or repeated) is replaced by a minted UUIDv7 and flagged `run_id_invalid`.
It runs first, so even a refusal carries the caller's run ID.
"""

from __future__ import annotations

from aiohttp import web

from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.ids import is_valid_run_id, mint_run_id, new_span_id
from seamline.proxy.inbound import Inbound, baggage_member
from seamline.proxy.stage import Headers
from seamline.proxy.tracecontext import incoming_context


def correlate(ex: Exchange, heads: Inbound, run_header_l: str) -> None:
    """Run ID, trace context and the caller's own headers onto the exchange. Pure."""
    seen = heads.seen  # read directly: up to 11 lookups per request, each a method call through `all`/`first`
    values = seen.get(run_header_l)
    if values:
        if len(values) == 1 and is_valid_run_id(values[0]):
            ex.run_id, ex.run_id_source = values[0], "header"
        else:
            ex.run_id, ex.run_id_source = mint_run_id(), "replaced"
            ex.attributes["run_id_invalid"] = "1"
    else:
        corr = seen.get("x-correlation-id") or ()
        bag = baggage_member(seen["baggage"], "run_id") if "baggage" in seen else None
        if len(corr) == 1 and is_valid_run_id(corr[0]):
            ex.run_id, ex.run_id_source = corr[0], "correlation"
        elif bag is not None and is_valid_run_id(bag):
            ex.run_id, ex.run_id_source = bag, "baggage"
        elif corr or bag is not None:
            ex.run_id, ex.run_id_source = mint_run_id(), "replaced"
            ex.attributes["run_id_invalid"] = "1"
        else:
            ex.run_id, ex.run_id_source = mint_run_id(), "generated"
    ex.trace = incoming_context(seen.get("traceparent") or (), seen.get("tracestate") or ())
    app = seen.get("x-seamline-app")
    ex.source_app = app[0] if app and is_valid_run_id(app[0]) else ""
    tenant = seen.get("x-seamline-tenant")
    ex.tenant = tenant[0] if tenant and is_valid_run_id(tenant[0]) else ""
    attempt = seen.get("x-seamline-attempt")
    if attempt and attempt[0].isdigit() and 0 < int(attempt[0]) < 65536:
        ex.attempt = int(attempt[0])
    key = seen.get("idempotency-key")
    ex.idempotency_key = key[0][:256] if key else ""


class Correlate:
    """Request: `correlate()`. Response: the run ID and the traceparent sent upstream, echoed to the app."""

    name = "correlate"
    essential = True

    def __init__(self, config: Config) -> None:
        self.run_header = config.server.run_id_header
        self.run_header_l = self.run_header.lower()

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        correlate(ex, heads, self.run_header_l)

    def response(self, ex: Exchange, http: web.BaseRequest, headers: Headers) -> None:
        headers.extend(self.echo_headers(ex).items())

    def echo_headers(self, ex: Exchange) -> dict[str, str]:
        """The correlation headers every answer carries, Seamline's own included."""
        h = {self.run_header: ex.run_id}
        if ex.traceparent:
            h["traceparent"] = ex.traceparent
        elif ex.trace is not None:
            h["traceparent"] = ex.trace.child(ex.span_id or new_span_id()).header()
        return h
