"""The request path, read in one place. Every request runs the same static tuples of stages:

    request  (in order)   correlate → replay_mark → via (loop) → authenticate → route → body_limit → inflight_bodies →
                          [guards: loops → dedup → circuit_breaker → rate_limit] → spans
    upstream              forward + relay | WebSocket | CONNECT tunnel          (seamline.proxy.upstream)
    response (on headers) rate_limit (the upstream's 429 pauses it) → rewrite_redirects → correlate (echo the run ID
                          and traceparent)
    settle   (in order)   dedup (store the first call's result)  — before the answer leaves
    done     (in order)   spans (end) → circuit_breaker (the call's result) → metrics → inflight_bodies (release)
    after    (the client has its answer; nothing here can delay it), for each attempt (retries: seamline.guards.retry)
                          record: validate → build the event → record  (seamline.event.record)

Correlation runs first, so even a refusal carries the caller's run ID. A stage that raises a `ProxyError`
answers instead of the upstream (problem+json, recorded like any call), one that raises `Respond` answers with its
own response (the duplicate guard's replay); anything else it raises is logged and
counted (`seamline_stage_errors{stage}`), and the call goes on without it — or, for an `essential` request
stage, gets 500. The modules: accept.py (authenticate, body_limit), correlate.py, via.py, route.py, spans.py,
upstream.py, relay.py, redirects.py, metrics.py; what a stage is: stage.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

from aiohttp import web

from seamline import errors
from seamline.capture.error_text import safe_error_text
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.guards.circuit import CircuitGuard
from seamline.guards.dedup import Dedup
from seamline.guards.dedup_store import DedupStore, MemoryDedupStore
from seamline.guards.loops import LoopGuard
from seamline.guards.ratelimit import RateLimitStage
from seamline.guards.retry import Retries
from seamline.ids import mint_run_id, new_span_id
from seamline.proxy.accept import Authenticate, BodyLimit, InflightBodies
from seamline.proxy.correlate import Correlate
from seamline.proxy.forward import Forwarder
from seamline.proxy.inbound import WATCHED, Inbound
from seamline.proxy.metrics import ProxyMetrics
from seamline.proxy.redirects import RewriteRedirects
from seamline.proxy.relay import Relay
from seamline.proxy.route import Route
from seamline.proxy.spans import Spans, Telemetry
from seamline.proxy.stage import DoneStage, RequestStage, Respond, ResponseStage, SettleStage
from seamline.proxy.tracecontext import incoming_context
from seamline.proxy.upstream import UpstreamCall
from seamline.proxy.via import Via
from seamline.proxy.websocket import WebSocketRelay
from seamline.replay.mark import ReplayMark, ReplayMarks
from seamline.validate.validator import Validator

log = logging.getLogger("seamline.proxy")


class RequestPath(NamedTuple):
    """The stages of every request, by the event that runs them (see the module docstring)."""

    request: tuple[RequestStage, ...]
    upstream: UpstreamCall
    response: tuple[ResponseStage, ...]
    done: tuple[DoneStage, ...]
    after: tuple[DoneStage, ...]
    correlate: Correlate  # also echoes the correlation headers on Seamline's own answers
    settle: tuple[SettleStage, ...] = ()


def build_request_path(
    config: Config,
    *,
    forwarder: Forwarder,
    websockets: WebSocketRelay,
    metrics: ProxyMetrics,
    telemetry: Telemetry,
    validator: Validator | None,
    instance: str,
    after: Sequence[DoneStage] = (),
    redis: Any = None,
    dedup_store: DedupStore | None = None,
    rate_limit: RateLimitStage | None = None,
    replay_marks: ReplayMarks | None = None,
) -> RequestPath:
    """The one place the stages are put in order."""
    correlate = Correlate(config)
    via = Via(instance)
    spans = Spans(telemetry)
    bodies = InflightBodies(config)  # reserves in `request`, releases in `done`
    loops = LoopGuard(config, metrics.registry, redis)
    circuit = CircuitGuard(config, metrics.registry)
    marked = (ReplayMark(replay_marks),) if replay_marks is not None else ()  # `seamline replay`'s calls
    limit = (rate_limit,) if rate_limit is not None else ()  # a request stage, and a response one (the upstream's 429)
    response: tuple[ResponseStage, ...] = (*limit, RewriteRedirects(config), correlate)
    policy = RedactionPolicy.from_config(config.capture)
    relay = Relay(
        response, forwarder.deadlines, config.server.run_id_header, lambda text: safe_error_text(text, policy),
        partial(report_stage_error, metrics),
    )  # fmt: skip
    dedup = Dedup(
        config, dedup_store or MemoryDedupStore(), forwarder.deadlines, correlate.echo_headers,
        lambda text: safe_error_text(text, policy), validator,
    )  # fmt: skip
    return RequestPath(
        request=(
            correlate,
            *marked,
            via,
            Authenticate(config),
            Route(config),
            BodyLimit(config),
            bodies,
            loops,
            *guarded(dedup),
            circuit,
            *limit,
            spans,
        ),
        upstream=UpstreamCall(
            config,
            forwarder=forwarder,
            websockets=websockets,
            relay=relay,
            metrics=metrics,
            validator=validator,
            echo_headers=correlate.echo_headers,
            via=via.value,
            # each attempt: a token (waiting first), then the breaker's admission
            retries=Retries(config, spans, metrics.registry, partial(safe_error_text, policy=policy), guards=(*limit, circuit)),
        ),
        response=response,
        done=(spans, circuit, metrics, bodies),
        after=tuple(after),
        correlate=correlate,
        settle=guarded(dedup),
    )


def guarded(dedup: Dedup) -> tuple[Dedup, ...]:
    """The duplicate guard's stages, or none when no handoff is guarded (it would only look the handoff up)."""
    return (dedup,) if dedup.policies else ()


def report_stage_error(metrics: ProxyMetrics, name: str, ex: Exchange) -> None:
    """An exception a stage raised, isolated from the traffic: counted and logged (with its traceback)."""
    metrics.stage_errors.labels(name).inc()
    log.exception("%s stage failed", name, extra={"run_id": ex.run_id, "stage": name})


class ProxyHandler:
    """The low-level aiohttp handler (`web.Server(handler)`): runs the request path for every request."""

    def __init__(self, config: Config, path: RequestPath, metrics: ProxyMetrics) -> None:
        self.path = path
        self.metrics = metrics
        self._run_header_l = config.server.run_id_header.lower()
        self._watched = WATCHED | {self._run_header_l}
        self._error_policy = RedactionPolicy.from_config(config.capture)

    async def __call__(self, http: web.BaseRequest) -> web.StreamResponse:
        ex = Exchange(ts_us=time.time_ns() // 1000, t0=time.perf_counter(), mode="reverse", method=http.method)
        self.metrics.in_flight += 1
        try:
            return await self._run(ex, http)
        finally:
            self.metrics.in_flight -= 1
            ex.duration_s = time.perf_counter() - ex.t0
            for stage in self.path.done:
                try:
                    stage.done(ex)
                except Exception:  # noqa: BLE001 - a broken concern must never break traffic
                    self.stage_failed(stage.name, ex)
            if self.path.after:
                # After aiohttp has written the response (a returned Response is sent after this handler exits):
                # the app never waits for redaction, contracts or the event.
                asyncio.get_running_loop().call_soon(self._after, ex)

    async def _run(self, ex: Exchange, http: web.BaseRequest) -> web.StreamResponse:
        heads = Inbound(http.headers, self._run_header_l, self._watched)
        response: web.StreamResponse
        try:
            for stage in self.path.request:
                try:
                    waiting = stage.request(ex, http, heads)
                    if waiting is not None:
                        await waiting
                except (errors.ProxyError, Respond):
                    raise
                except Exception:  # noqa: BLE001 - isolated: logged, counted, and the call goes on or gets 500
                    self.stage_failed(stage.name, ex)
                    if stage.essential:
                        raise errors.ProxyError(f"Seamline's {stage.name} stage failed") from None
            response = await self.path.upstream.call(ex, http, heads)
        except Respond as answer:
            response = answer.response
        except errors.ProxyError as err:
            if not ex.url:  # refused before an upstream URL existed: keep what was asked for (redacted when recorded)
                ex.url = http.raw_path[:2048]
            response = self._problem(ex, err)
        for settler in self.path.settle:  # before a whole-body answer leaves (see seamline.proxy.stage)
            try:
                waiting = settler.settle(ex)
                if waiting is not None:
                    await waiting
            except Exception:  # noqa: BLE001 - a broken concern must never break traffic
                self.stage_failed(settler.name, ex)
        return response

    def _after(self, ex: Exchange) -> None:
        for attempt in (*ex.prior_attempts, ex) if ex.prior_attempts else (ex,):  # each attempt is its own event
            for stage in self.path.after:
                try:
                    stage.done(attempt)
                except Exception:  # noqa: BLE001 - a broken concern must never break traffic
                    self.stage_failed(stage.name, attempt)

    def stage_failed(self, name: str, ex: Exchange) -> None:
        report_stage_error(self.metrics, name, ex)

    def _problem(self, ex: Exchange, err: errors.ProxyError) -> web.Response:
        if not ex.run_id:
            ex.run_id, ex.run_id_source = mint_run_id(), "generated"
        if ex.trace is None:
            ex.trace = incoming_context([], [])
        if not ex.span_id:
            ex.span_id = new_span_id()
        ex.error_class = err.error_class
        err.detail = ex.error_detail = safe_error_text(err.detail, self._error_policy)
        ex.error_status = err.status
        return errors.problem_response(
            err,
            run_id=ex.run_id,
            trace_id=ex.trace.trace_id,
            headers=self.path.correlate.echo_headers(ex),
        )
