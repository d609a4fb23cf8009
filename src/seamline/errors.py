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
    headers: dict[str, str] | None = None  # response headers of its own (Retry-After), next to the correlation ones

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


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


class RateLimitedLocally(ProxyError):
    status, slug, title, error_class = 429, "rate-limited-locally", "Local rate limit of the upstream", o.RATE_LIMITED_LOCALLY

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


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
    return problem(
        err.status, err.slug, err.title, err.detail, headers=headers,
        run_id=run_id, trace_id=trace_id, error_class=err.error_class, **err.extra,
    )  # fmt: skip
