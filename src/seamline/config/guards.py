"""The guards' configuration (issue #13's interface): duplicate guard, retries, circuit breaker, loop detection and
the local rate limit. Durations are written `250ms`, `2s`, `10m`, `24h` or `1d` (or a number of seconds).

Where each key lives: `handoffs.<name>.dedup`, `upstreams.<name>.retry` / `handoffs.<name>.retry`,
`upstreams.<name>.circuit_breaker`, `loops` / `handoffs.<name>.loops`, `upstreams.<name>.rate_limit`, and the shared
state's `redis_url` (SEAMLINE_REDIS_URL) at the top level. `false` turns a guard that is on by default off.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_DURATION_RE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(v: Any) -> Any:
    """`2s` → 2.0 (seconds); a number is seconds already; anything else is left for pydantic to reject."""
    if isinstance(v, str):
        m = _DURATION_RE.match(v)
        if not m:
            raise ValueError(f"not a duration: {v[:40]!r}; write e.g. 250ms, 2s, 10m, 24h or 1d")
        return float(m.group("n")) * _UNIT_S[m.group("unit")]
    return v


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _false_is_off(v: Any) -> Any:
    # `dedup: false` reads as {enabled: false}: one model type per key, so a mistake inside it gets one error with
    # its field's path, not a second one saying it is not `false` either.
    return {"enabled": False} if v is False else v


Off = BeforeValidator(_false_is_off)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Dedup(_Model):
    """The duplicate guard (IETF Idempotency-Key draft, Stripe's semantics). On by default for `never_repeat` and
    `safe_once` handoffs, keyed by the `Idempotency-Key` header; `dedup: false` turns it off."""

    enabled: bool = Field(True, description="false (or `dedup: false`): no duplicate guard.")
    key: str | None = Field(
        None,
        description="JMESPath over {request: {method, path, query, headers, body}} giving the key when the request has "
        "no Idempotency-Key header, e.g. join('/', [request.body.invoice_id, to_string(request.body.amount)]).",
    )
    window: Duration = Field(86400.0, gt=0, description="How long a key and its response are kept (24h).")
    require_key: bool = Field(False, description="A request with no key gets 400 problem+json instead of going through.")
    on_store_down: Literal["fail_open", "fail_closed"] | None = Field(
        None,
        description="When the shared store (Redis) is down: fail_open records and forwards, fail_closed answers 503. "
        "Default: fail_closed for never_repeat, fail_open for safe_once.",
    )
    max_response_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Largest upstream response kept whole for replay; a duplicate of a larger one gets 409 outcome-known.",
    )

    @field_validator("key")
    @classmethod
    def _check_key(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(v)
        except JMESPathError as e:
            raise ValueError(f"not a JMESPath expression ({str(e).splitlines()[0][:120]})") from None
        return v


RetryOn = Literal["connect", "timeout", 429, 500, 502, 503, 504]
DEFAULT_RETRY_ON: tuple[RetryOn, ...] = ("connect", 502, 503, 504, 429)


class Retry(_Model):
    """Retries with exponential backoff and full jitter. On by default for `safe_to_repeat` handoffs only (never for
    `never_repeat`/`safe_once`, never after a streamed body that cannot be re-sent); `retry: false` turns it off."""

    enabled: bool = Field(True, description="false (or `retry: false`): no retries.")
    attempts: int = Field(3, ge=1, le=20, description="All attempts, the first included.")
    deadline: Duration = Field(10.0, gt=0, description="No attempt starts after this long since the first one started.")
    on: list[RetryOn] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        description="What is retried: connect (no connection made), timeout (no answer: only if the upstream is "
        "idempotent for real), or an upstream status.",
    )
    max_retry_after: Duration = Field(
        30.0, ge=0, description="A Retry-After longer than this is not waited for: the answer goes back to the client."
    )
    backoff: Duration = Field(0.1, gt=0, description="First backoff (before jitter); doubles each attempt.")
    max_backoff: Duration = Field(5.0, gt=0, description="Cap of one backoff.")
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Largest request body (of known length) read whole so it can be re-sent; a larger or chunked "
        "body is streamed upstream and that call is never retried.",
    )


class CircuitBreaker(_Model):
    """A breaker per upstream: opens on a failure rate over a sliding window (with a minimum of calls) or on N
    consecutive failures; while open every call gets 503 circuit-open; after `open_for` a few probes go through."""

    enabled: bool = Field(True, description="false (or `circuit_breaker: false`): no breaker.")
    failure_rate: float = Field(0.5, gt=0, le=1, description="Open when this share of the window's calls failed.")
    window: Duration = Field(60.0, gt=0, description="Sliding window of the failure rate.")
    min_calls: int = Field(20, ge=1, description="Calls the window needs before the failure rate counts.")
    consecutive_failures: int = Field(5, ge=1, description="Open after this many failures in a row, whatever the rate.")
    open_for: Duration = Field(30.0, gt=0, description="How long it stays open before half-open probes.")
    half_open_probes: int = Field(3, ge=1, description="Probes let through half-open; all must succeed to close.")


class Loops(_Model):
    """Loop detection: calls of one run to one handoff counted over a window."""

    max_calls_per_run: int = Field(20, ge=1, description="Above this, calls are flagged loop_suspected.")
    window: Duration = Field(600.0, gt=0, description="The counting window (10m).")
    block: bool = Field(False, description="Answer calls above the threshold 429 loop-suspected instead of forwarding.")


class RateLimit(_Model):
    """A token bucket per upstream (shared through Redis when configured): a call waits for its token up to `max_wait`
    (in arrival order); one whose token is further gets 429 rate-limited-locally at once. The upstream's own 429 +
    Retry-After pauses the bucket."""

    rps: float = Field(gt=0, description="Tokens added per second (the sustained rate the external API allows).")
    burst: int = Field(1, ge=1, description="Bucket size: calls that may go at once after a quiet period.")
    max_wait: Duration = Field(2.0, ge=0, description="Longest a call waits for a token before 429.")
    max_pause: Duration = Field(
        300.0,
        ge=0,
        description="Longest pause the upstream's own 429 Retry-After imposes on the bucket (a larger one is cut to this).",
    )
