"""Typed errors → RFC 9457 problem+json responses with a stable `type`."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from seamline import outcomes as o
from seamline.responses import ExactResponse

PROBLEM_BASE = "https://seamline.dev/problems/"


class ProxyError(Exception):
    status = 500
    slug = "internal"
    title = "Internal error"
    error_class = o.INTERNAL

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}  # response headers of its own (e.g. Retry-After), beside the echoed ones


class BadRequest(ProxyError):
    status, slug, title, error_class = 400, "bad-request", "Malformed request", o.BAD_REQUEST


class Unauthorized(ProxyError):
    status, slug, title, error_class = 401, "unauthorized", "Unknown or missing Seamline client token", o.UNAUTHORIZED


class Forbidden(ProxyError):
    status, slug, title, error_class = 403, "forbidden-target", "Target not allowed", o.REFUSED_TARGET


class UnknownUpstream(ProxyError):
    status, slug, title, error_class = 404, "unknown-upstream", "Unknown upstream", o.UNKNOWN_UPSTREAM

    def __init__(self, name: str) -> None:
        super().__init__(f"no upstream named {name!r} is configured; the first path segment must be an upstream name")


class PayloadTooLarge(ProxyError):
    status, slug, title, error_class = 413, "payload-too-large", "Request body too large", o.TOO_LARGE


class ContractRejected(ProxyError):
    status, slug, title, error_class = 422, "contract-violation", "Request breaks the handoff's contract", o.CONTRACT


class NotImplementedYet(ProxyError):
    status, slug, title, error_class = 501, "not-implemented", "Not implemented", o.NOT_IMPLEMENTED


class ClientBodyTimeout(ProxyError):
    status, slug, title, error_class = (
        408,
        "request-body-timeout",
        "The client stopped sending its request body",
        o.CLIENT_TIMEOUT,
    )


class LoopDetected(ProxyError):
    status, slug, title, error_class = 508, "loop-detected", "The request looped back through Seamline", o.LOOP_DETECTED


class Overloaded(ProxyError):
    status, slug, title, error_class = 503, "overloaded", "Seamline is at one of its configured limits", o.OVERLOADED


class CircuitOpen(ProxyError):
    """The upstream's circuit breaker is open (or half-open with its probes taken): answered at once, not forwarded."""

    status, slug, title, error_class = 503, "circuit-open", "The upstream's circuit breaker is open", o.CIRCUIT_OPEN

    def __init__(self, detail: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.headers["Retry-After"] = str(retry_after_s)


class LoopSuspected(ProxyError):
    """A run called one handoff more often than `loops.max_calls_per_run` within the window (`loops.block`)."""

    status, slug, title, error_class = 429, "loop-suspected", "The run is calling this handoff in a loop", o.LOOP_SUSPECTED


class IdempotencyKeyMissing(ProxyError):
    status, slug, title, error_class = 400, "idempotency-key-missing", "This handoff requires an Idempotency-Key", o.BAD_REQUEST


class IdempotencyKeyReused(ProxyError):
    status, slug, title, error_class = (
        422,
        "idempotency-key-reused",
        "The Idempotency-Key was already used for another request",
        o.DUPLICATE,
    )


class IdempotencyInFlight(ProxyError):
    status, slug, title, error_class = (
        409,
        "idempotency-in-flight",
        "A request with this Idempotency-Key is still in flight",
        o.DUPLICATE,
    )


class OutcomeUnknown(ProxyError):
    status, slug, title, error_class = (
        409,
        "outcome-unknown",
        "The first request with this Idempotency-Key has an unknown outcome: check it, do not repeat it",
        o.OUTCOME_UNKNOWN,
    )


class OutcomeKnown(ProxyError):
    status, slug, title, error_class = (
        409,
        "outcome-known",
        "The first request with this Idempotency-Key finished, but its response cannot be replayed",
        o.DUPLICATE,
    )


class GuardStoreDown(ProxyError):
    status, slug, title, error_class = (
        503,
        "guard-store-unavailable",
        "The duplicate guard's store is unavailable",
        o.GUARD_UNAVAILABLE,
    )


class RateLimitedLocally(ProxyError):
    status, slug, title, error_class = 429, "rate-limited-locally", "Local rate limit of the upstream", o.RATE_LIMITED_LOCALLY

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers["Retry-After"] = str(retry_after_s)


class ClientDisconnected(ProxyError):
    """The client closed its connection while Seamline held its call (a retry's backoff, a rate-limit queue): the
    call goes no further, and this answer reaches nobody; it is recorded (nginx's 499 "client closed request")."""

    status, slug, title, error_class = 499, "client-disconnected", "The client went away", o.CLIENT_DISCONNECTED


class UpstreamError(ProxyError):
    status, slug, title, error_class = 502, "upstream-unreachable", "Upstream unreachable", o.CONNECT

    def __init__(self, detail: str, error_class: str) -> None:
        super().__init__(detail)
        self.error_class = error_class


class UpstreamTimeout(ProxyError):
    status, slug, title, error_class = 504, "upstream-timeout", "Upstream timed out", o.TIMEOUT


def problem(
    status: int, slug: str, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """An RFC 9457 problem+json response: the one builder for every answer Seamline gives itself."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return ExactResponse(status=status, body=orjson.dumps(body), content_type="application/problem+json", headers=headers)


def problem_response(err: ProxyError, *, run_id: str, trace_id: str, headers: dict[str, str] | None = None) -> web.Response:
    """The proxy's answer for a typed error, with the call's run and trace IDs and its error class."""
    if err.headers:
        headers = {**(headers or {}), **err.headers}
    return problem(
        err.status, err.slug, err.title, err.detail, headers=headers,
        run_id=run_id, trace_id=trace_id, error_class=err.error_class, **err.extra,
    )  # fmt: skip
