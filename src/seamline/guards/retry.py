"""Retries, only where a repeat is safe (issue #13 item 2).

Which calls: a handoff marked `safe_to_repeat` in the config (whatever its method); a handoff whose `safety` was
left at its default, unless its method is POST or PATCH (nobody said the step is safe to repeat); an unmatched
`<upstream>.other` call only for the idempotent methods of RFC 9110 §9.2.2 (GET, HEAD, OPTIONS, PUT, DELETE);
`never_repeat` and `safe_once` never. And only when the request body can be sent again: no body, or one of known
length read whole (`retry.max_body_bytes`); a streamed body is never retried.

On what: `connect` (no connection was made, so nothing was sent: refused, unreachable, DNS, connect timeout),
`timeout` (sent, no answer in time, or the connection dropped before an answer: the outcome is unknown, so only
when listed), and the listed upstream statuses. A `Retry-After` (seconds or HTTP-date) is waited for up to
`max_retry_after`; a longer one is not: that answer goes back to the client.

The schedule is tenacity's (`wait_random_exponential`: AWS "full jitter", a wait drawn from [0, min(max_backoff,
backoff·2ⁿ⁻¹)]; `stop_after_attempt`; `stop_before_delay`: no attempt starts after `deadline`, counting the wait
before it). stamina, the friendlier wrapper around tenacity, cannot express it: its jitter is added on top of the
exponential wait (not drawn below it), it retries on exceptions only (a 503 is a response, not an error), and its
time limit is checked before the coming wait is known, so an attempt could start after the deadline; its default
instrumentation also logs a warning and counts into the process-global Prometheus registry on every retry.

Each attempt is its own event and CLIENT span: the attempt that is followed by another is released (its body read
when small, for the record) and never reaches the client, and is kept in `Exchange.prior_attempts` (guard
`retried`), recorded by the same after stages as the last one. `may_retry` is the one decision ("may this outcome
be retried?"), taken once per attempt.

The guards that count calls see every attempt, not one result per exchange (`AttemptGuard`, given in request-path
order): an attempt the policy would retry is handed to each (`retrying`: the circuit breaker records its result and
stops the retries once it opens, so the client gets that attempt's own answer; the rate limit is paused by its 429),
and before attempt 2..N each may wait or refuse (`before_retry`: the rate limit takes a token, waiting within what is
left of the deadline; the breaker admits the attempt or answers 503 circuit-open). A client that disconnects during
a backoff ends the call there: the next attempt is recorded not sent, `client_disconnected`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, stop_before_delay
from tenacity.wait import wait_random_exponential

from seamline import errors
from seamline import outcomes as o
from seamline.config.guards import Retry
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.netguard import RefusedAddress, find_refusal
from seamline.proxy.routing import Target
from seamline.proxy.spans import Spans
from seamline.proxy.waits import sleep_while_connected

log = logging.getLogger("seamline.guards.retry")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # RFC 9110 §9.2.2
UNSAFE_BY_DEFAULT = frozenset({"POST", "PATCH"})  # not retried unless the handoff says safe_to_repeat
CONNECT, TIMEOUT = "connect", "timeout"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A `retry` config, compiled once: what is retried, how often, how long."""

    attempts: int
    deadline: float
    statuses: frozenset[int]
    connect: bool
    timeout: bool
    max_retry_after: float
    backoff: float
    max_backoff: float
    max_body_bytes: int

    @classmethod
    def from_config(cls, r: Retry | None) -> RetryPolicy | None:
        if r is None or not r.enabled or r.attempts < 2:
            return None
        return cls(
            attempts=r.attempts,
            deadline=r.deadline,
            statuses=frozenset(v for v in r.on if isinstance(v, int)),
            connect=CONNECT in r.on,
            timeout=TIMEOUT in r.on,
            max_retry_after=r.max_retry_after,
            backoff=r.backoff,
            max_backoff=r.max_backoff,
            max_body_bytes=r.max_body_bytes,
        )


@dataclass(slots=True)
class Attempted:
    """What one attempt got: a response (body unread) or an error, and why it may be retried ('' = it may not)."""

    response: aiohttp.ClientResponse | None = None
    error: errors.ProxyError | None = None
    reason: str = ""  # connect | timeout | the status, when the policy lists it
    retry_after: float | None = None  # the upstream's Retry-After, in seconds
    again: bool | None = None  # `Retries.may_retry`'s verdict, once taken (it has side effects on the guards)


class AttemptGuard(Protocol):
    """A guard that counts upstream calls, told of each attempt of a retried call (see the module docstring)."""

    name: str

    def retrying(self, ex: Exchange, a: Attempted) -> bool:
        """An attempt the policy would retry has ended (`ex` still describes it): take its result. False stops the
        retries: the client gets this attempt's answer."""

    def before_retry(self, ex: Exchange, http: web.BaseRequest | None, budget_s: float) -> Awaitable[None] | None:
        """Attempt ≥ 2 is about to be sent (`ex` describes it): wait at most `budget_s` (what is left of the deadline),
        or raise a `ProxyError` to answer instead of sending it."""


def failure_reason(exc: BaseException, err: errors.ProxyError) -> str:
    """`connect` when nothing was sent, `timeout` when it was and no answer came; '' for what a repeat won't fix."""
    if isinstance(exc, RefusedAddress) or find_refusal(exc) is not None or err.error_class == o.TLS:
        return ""
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return ""
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return CONNECT
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError, aiohttp.ServerDisconnectedError)):
        return TIMEOUT  # the request (or part of it) was sent: the upstream may have acted on it
    return ""


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """`Retry-After` (RFC 9110 §10.2.3) in seconds from now: delay-seconds or an HTTP-date; None if unreadable."""
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.retries = Counter(
            "seamline_retries", "Attempts Seamline sent again, by upstream and reason.", ["upstream", "reason"], registry=registry
        )
        self.retried_calls = Counter(
            "seamline_retried_calls",
            "Calls retried at least once, by how the last attempt ended: recovered (an answer that is no failure) or failed.",
            ["upstream", "result"],
            registry=registry,
        )


class Retries:
    """The retry guard: which calls may be retried (`policy_for`), and the attempts (`run`)."""

    def __init__(
        self,
        config: Config,
        spans: Spans,
        registry: CollectorRegistry,
        safe: Callable[[str], str],
        guards: Sequence[AttemptGuard] = (),
    ) -> None:
        self.spans = spans
        self.guards = tuple(guards)
        self.metrics = RetryMetrics(registry)
        self._safe = safe
        self._other = {n: RetryPolicy.from_config(u.retry) for n, u in config.upstreams.items()}
        # Per handoff: its policy (its own `retry` wins over its upstream's), and whether its safety was set.
        self._handoffs: dict[str, tuple[RetryPolicy | None, bool]] = {}
        for name, h in config.handoffs.items():
            policy = None
            if h.safety == "safe_to_repeat":
                policy = RetryPolicy.from_config(h.retry if h.retry is not None else config.upstreams[h.upstream].retry)
            self._handoffs[name] = (policy, "safety" in h.model_fields_set)
        self._read_s = {n: u.timeouts.read for n, u in config.upstreams.items()}

    def policy_for(self, target: Target, method: str) -> RetryPolicy | None:
        """The policy of this call, or None when it must not be retried (its safety, its method)."""
        route = target.handoff
        if route.spec is None:  # `<upstream>.other`
            return self._other.get(route.upstream) if method in IDEMPOTENT_METHODS else None
        policy, safety_set = self._handoffs.get(route.name, (None, False))
        if policy is not None and not safety_set and method in UNSAFE_BY_DEFAULT:
            return None
        return policy

    def may_retry(self, ex: Exchange, policy: RetryPolicy, a: Attempted) -> bool:
        """The one decision: may this attempt's outcome be retried? (The attempt cap and deadline are the schedule's.)
        Taken once per attempt: an outcome the policy would retry is handed to every attempt guard, which may stop it."""
        if a.again is not None:
            return a.again
        again = bool(a.reason) and (a.retry_after is None or a.retry_after <= policy.max_retry_after)
        if again:
            for guard in self.guards:  # every guard sees the attempt, whatever the one before it said
                try:
                    if not guard.retrying(ex, a):
                        again = False
                except Exception:  # a broken guard must not break the call: logged, the retry goes on
                    log.exception("%s: retrying hook failed", guard.name, extra={"run_id": ex.run_id, "stage": guard.name})
        a.again = again
        return again

    def classify(self, policy: RetryPolicy, a: Attempted, exc: BaseException | None = None) -> Attempted:
        """Fill in why `a` may be retried under `policy` (its reason and the upstream's Retry-After)."""
        if a.response is not None:
            status = a.response.status
            if status in policy.statuses:
                a.reason = str(status)
                ra = a.response.headers.get("Retry-After")
                a.retry_after = parse_retry_after(ra) if ra else None
        elif exc is not None and a.error is not None:
            reason = failure_reason(exc, a.error)
            if (reason == CONNECT and policy.connect) or (reason == TIMEOUT and policy.timeout):
                a.reason = reason
        return a

    async def run(
        self,
        ex: Exchange,
        policy: RetryPolicy,
        attempt: Callable[[], Awaitable[Attempted]],
        http: web.BaseRequest | None = None,
    ) -> Attempted:
        """Attempts until one may not be retried, the attempt cap, or the deadline; returns the last one's outcome.
        `http`: the client's request, whose connection a backoff or a guard's wait watches (None: not watched)."""
        started = time.monotonic()
        first = await attempt()
        if not self.may_retry(ex, policy, first):
            return first  # the common case, without the retry machinery (tenacity costs ~100 µs a call)
        made = [first]  # the first attempt, already made: handed to tenacity as its first outcome
        backoff = wait_random_exponential(multiplier=policy.backoff, max=policy.max_backoff)
        waits: list[float] = []  # the wait before the attempt about to start (set when another attempt follows)

        def wait(rs: RetryCallState) -> float:
            a: Attempted = rs.outcome.result()  # type: ignore[union-attr]
            return a.retry_after if a.retry_after is not None else backoff(rs)

        async def released(rs: RetryCallState) -> None:
            # Another attempt follows (tenacity calls this only then): this one's answer never reaches the client.
            a: Attempted = rs.outcome.result()  # type: ignore[union-attr]
            await self._finish_failed(ex, a)
            self.metrics.retries.labels(ex.upstream, a.reason).inc()
            waits.append(rs.upcoming_sleep)

        async def backoff_sleep(seconds: float) -> None:
            t = time.monotonic()
            try:
                await sleep_while_connected(http, seconds)
            except errors.ClientDisconnected:
                # The next attempt is never sent: it is recorded as such (its wait, not sent, client_disconnected).
                self._begin_retry(ex, time.monotonic() - t)
                waits.pop()
                ex.not_sent = True
                raise

        async def one() -> Attempted:
            if made:
                return made.pop()
            self._begin_retry(ex, waits.pop())
            refused = await self._before_retry(ex, http, policy.deadline - (time.monotonic() - started))
            a = refused if refused is not None else await attempt()
            self.may_retry(ex, policy, a)
            return a

        retrying = AsyncRetrying(
            # The deadline counts from the first attempt's start; tenacity's clock starts now.
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline - (time.monotonic() - started)),
            wait=wait,
            retry=retry_if_result(lambda a: self.may_retry(ex, policy, a)),
            before_sleep=released,
            retry_error_callback=lambda rs: rs.outcome.result(),  # type: ignore[union-attr]  # stopped: the last outcome
            sleep=backoff_sleep,
        )
        last: Attempted = await retrying(one)
        if ex.prior_attempts:
            resp = last.response
            ok = resp is not None and resp.status < 500 and resp.status != 429
            self.metrics.retried_calls.labels(ex.upstream, "recovered" if ok else "failed").inc()
        return last

    async def _before_retry(self, ex: Exchange, http: web.BaseRequest | None, budget: float) -> Attempted | None:
        """The attempt guards' say before attempt ≥ 2 is sent: None to send it, or its outcome (a guard's refusal)."""
        for guard in self.guards:
            try:
                waiting = guard.before_retry(ex, http, max(0.0, budget))
                if waiting is not None:
                    t = time.monotonic()
                    await waiting
                    budget -= time.monotonic() - t
            except errors.ProxyError as err:
                ex.not_sent = True
                return Attempted(error=err, again=False)
            except Exception:  # a broken guard must not break the call: logged, the attempt goes
                log.exception("%s: before_retry hook failed", guard.name, extra={"run_id": ex.run_id, "stage": guard.name})
        return None

    def _begin_retry(self, ex: Exchange, waited: float) -> None:
        """The failed attempt becomes its own record; the exchange becomes the next attempt, with its own span."""
        failed = ex.next_attempt()
        failed.guard = o.GUARD_RETRIED
        ex.guard_wait_s = waited
        ex.ts_us, ex.t0 = time.time_ns() // 1000, time.perf_counter()
        self.spans.next_attempt(failed, ex)

    async def _finish_failed(self, ex: Exchange, a: Attempted) -> None:
        """Put an attempt that will be retried on the record: its status, headers and (small) body, or its error."""
        resp = a.response
        if resp is None:
            assert a.error is not None
            ex.error_class, ex.error_detail, ex.error_status = a.error.error_class, self._safe(a.error.detail), a.error.status
        else:
            ex.status = resp.status
            ex.response_headers = list(resp.headers.items())
            await self._drain(ex, resp)
        ex.duration_s = time.perf_counter() - ex.t0

    async def _drain(self, ex: Exchange, resp: aiohttp.ClientResponse) -> None:
        """Read a small body of known length into the record (the connection can then be reused); else close it."""
        tap, length = ex.response_tap, resp.content_length
        if tap is None or length is None or length > tap.cap or ex.method == "HEAD":
            resp.close()
            return
        try:
            async with asyncio.timeout(self._read_s.get(ex.upstream, 10.0)):
                tap.feed(await resp.content.readexactly(length))
        except (TimeoutError, aiohttp.ClientError, asyncio.IncompleteReadError):
            resp.close()
            return
        resp.release()
