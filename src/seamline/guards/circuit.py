"""The circuit breaker: one per upstream, so an outage answers fast instead of piling up timeouts.

Semantics, compared with the two usual anchors:

- **resilience4j** (CircuitBreaker, `slidingWindowType: TIME_BASED`): a time-based sliding window of partial
  aggregations (buckets), opens when the failure rate is ≥ `failureRateThreshold` once the window holds
  `minimumNumberOfCalls`; after `waitDurationInOpenState` it lets `permittedNumberOfCallsInHalfOpenState` calls
  through and judges their failure rate. Taken from it: the bucketed time window (O(1) per call), the rate with a
  minimum of calls, ≥ as the threshold test, and a fixed number of half-open probes.
- **Envoy outlier detection**: ejects a host after `consecutive_5xx` (default 5) failures in a row, 5xx responses
  and local-origin errors (connect, timeout, reset) alike, for `base_ejection_time` (30 s); each Envoy judges for
  itself, nothing is shared between instances. Taken from it: the consecutive-failure trigger with its default, what
  a failure is, and the per-instance state. Not taken: ejection (Seamline has one upstream per name, so "open" means
  answering 503, not picking another host) and the growing ejection time.

Chosen: **closed** counts each finished call in a sliding window of `window` seconds, kept as `BUCKETS` buckets of
`window / BUCKETS` seconds (the window is the last BUCKETS buckets, so it spans between (BUCKETS-1)/BUCKETS and 1 ×
`window`); it opens when failures / calls ≥ `failure_rate` with ≥ `min_calls` calls in the window, or after
`consecutive_failures` failures in a row. **Open** answers every call at once with 503 `circuit-open` and
`Retry-After` = the seconds left open. After `open_for` the next call finds it **half-open**: exactly
`half_open_probes` calls are let through (concurrently), the others still get 503; all probes succeed → closed with
an empty window; any probe fails → open again for `open_for`. Stricter than resilience4j's half-open rate: one
failing probe of three is enough to stay away from an upstream that is still sick.

A failure is the upstream's: a transport error (connect, timeout, TLS, DNS, a malformed response, a body cut
mid-way) or a 5xx status. Not a failure, and not a success: Seamline's own refusals (a call stopped before it was
forwarded) and a client that went away before an answer came (a probe slot it held is given back). Every other
answer (2xx-4xx, 429 included) is a success: the upstream is up and answering.

Each attempt of a retried call is a call of its own here (`seamline.guards.retry.AttemptGuard`): an attempt that
is retried is counted when it ends, and once the breaker opens the retries stop (the client gets the upstream's
own last answer); attempt 2..N is admitted like any call (a half-open probe slot included) or answered 503.

State lives in this process, one breaker per upstream per replica, as in Envoy: each Seamline judges its own view
of the upstream (N replicas may send up to N × `half_open_probes` probes). Outcomes of calls admitted before the
last state change are ignored (each change starts a new generation), so a slow call from the closed period cannot
close or re-open a breaker that has moved on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from seamline import errors
from seamline import outcomes as o
from seamline.config.guards import CircuitBreaker
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound

if TYPE_CHECKING:
    from seamline.guards.retry import Attempted

log = logging.getLogger("seamline.guards.circuit")

BUCKETS = 20
Result = Literal["success", "failure", "ignored"]


class State(IntEnum):
    """The values of `seamline_circuit_state{upstream}`."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


STATE_NAMES = {State.CLOSED: "closed", State.HALF_OPEN: "half_open", State.OPEN: "open"}


@dataclass(frozen=True, slots=True)
class Admission:
    """A call the breaker let through: the generation it belongs to, and whether it is a half-open probe."""

    generation: int
    probe: bool


Transition = Callable[["Breaker", State, State, str], None]


class Breaker:
    """The state machine of one upstream's breaker; `clock` is a monotonic function (injected by tests)."""

    def __init__(
        self,
        name: str,
        cfg: CircuitBreaker,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.clock = clock
        self.on_transition = on_transition
        self.state = State.CLOSED
        self.generation = 0
        self.opened_at = 0.0
        self._width = cfg.window / BUCKETS
        self._calls = [0] * BUCKETS
        self._fails = [0] * BUCKETS
        self._head = 0  # absolute index of the newest bucket
        self.calls = 0  # in the window
        self.failures = 0  # in the window
        self.consecutive = 0
        self._probes_out = 0  # probes let through this half-open period, not yet given back
        self._probes_ok = 0

    # -- the two entry points ------------------------------------------------------------------------------------

    def admit(self) -> Admission | None:
        """Let one call through (an Admission) or refuse it (None: answer 503 with `retry_after_s()`)."""
        state = self.current_state()
        if state is State.CLOSED:
            return Admission(self.generation, False)
        if state is State.HALF_OPEN and self._probes_out < self.cfg.half_open_probes:
            self._probes_out += 1
            return Admission(self.generation, True)
        return None

    def record(self, admission: Admission, result: Result) -> None:
        """The outcome of a call `admit` let through."""
        if admission.generation != self.generation:
            return  # admitted before the last state change: says nothing about the state now
        if admission.probe:
            if self.state is not State.HALF_OPEN:
                return
            if result == "failure":
                self._open(f"a half-open probe failed ({self._probes_ok} of {self.cfg.half_open_probes} had succeeded)")
            elif result == "success":
                self._probes_ok += 1
                if self._probes_ok >= self.cfg.half_open_probes:
                    self._close()
            else:
                self._probes_out -= 1  # no verdict: let another call probe instead
            return
        if self.state is not State.CLOSED or result == "ignored":
            return
        self._count(result == "failure")
        cfg = self.cfg
        if result == "failure" and self.consecutive >= cfg.consecutive_failures:
            self._open(f"{self.consecutive} consecutive failures")
        elif self.calls >= cfg.min_calls and self.failures >= cfg.failure_rate * self.calls:
            self._open(f"{self.failures} of {self.calls} calls failed within {cfg.window:g} s")

    # -- reading it ----------------------------------------------------------------------------------------------

    def current_state(self) -> State:
        """The state now: an open breaker whose `open_for` has passed turns half-open here (on the next call or read)."""
        if self.state is State.OPEN and self.clock() >= self.opened_at + self.cfg.open_for:
            self._move(State.HALF_OPEN, f"open for {self.cfg.open_for:g} s")
            self._probes_out = self._probes_ok = 0
        return self.state

    def retry_after_s(self) -> int:
        """Whole seconds until a call may be let through again (at least 1, as Retry-After counts whole seconds)."""
        if self.state is State.OPEN:
            return max(1, math.ceil(self.opened_at + self.cfg.open_for - self.clock()))
        return 1  # half-open with every probe out: their verdict is due within one call's time

    # -- internals -----------------------------------------------------------------------------------------------

    def _count(self, failed: bool) -> None:
        idx = int(self.clock() / self._width)
        if idx != self._head:
            if idx - self._head >= BUCKETS:
                self._reset_window()
            else:
                for i in range(self._head + 1, idx + 1):  # at most BUCKETS steps: O(1) per call
                    b = i % BUCKETS
                    self.calls -= self._calls[b]
                    self.failures -= self._fails[b]
                    self._calls[b] = self._fails[b] = 0
            self._head = idx
        b = idx % BUCKETS
        self._calls[b] += 1
        self.calls += 1
        if failed:
            self._fails[b] += 1
            self.failures += 1
            self.consecutive += 1
        else:
            self.consecutive = 0

    def _reset_window(self) -> None:
        self._calls = [0] * BUCKETS
        self._fails = [0] * BUCKETS
        self.calls = self.failures = 0

    def _open(self, reason: str) -> None:
        self.opened_at = self.clock()
        self._move(State.OPEN, reason)

    def _close(self) -> None:
        self._reset_window()
        self.consecutive = 0
        self._move(State.CLOSED, f"{self.cfg.half_open_probes} half-open probes succeeded")

    def _move(self, to: State, reason: str) -> None:
        before, self.state = self.state, to
        self.generation += 1
        if self.on_transition is not None:
            self.on_transition(self, before, to, reason)


def _state_value(br: Breaker) -> float:
    return float(br.current_state())


def judge(ex: Exchange) -> Result:
    """What a finished exchange says about its upstream (see the module docstring). Pure."""
    return judge_result(ex.status, ex.error_class)


def judge_result(status: int, error_class: str) -> Result:
    """What one call's status (0: none) and error class say about its upstream. Pure."""
    if error_class in o.TRANSPORT_CLASSES or status >= 500:
        return "failure"
    if status:
        return "success"
    if error_class == o.SERVER_ERROR:  # no status: the upstream's answer was not HTTP
        return "failure"
    return "ignored"  # Seamline refused it, or the client left before an answer


class CircuitGuard:
    """The breakers of every upstream that has one: a request stage (admit or 503) and a done stage (feed the result)."""

    name = "circuit_breaker"
    essential = False  # a broken breaker must not stop traffic: the call goes on unguarded

    def __init__(self, config: Config, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.breakers: dict[str, Breaker] = {
            name: Breaker(name, up.circuit_breaker, clock=clock, on_transition=self._transition)
            for name, up in config.upstreams.items()
            if up.circuit_breaker.enabled
        }
        self._admitted: dict[int, tuple[Breaker, Admission]] = {}  # id(exchange) → its admission, until done
        self._state = Gauge(
            "seamline_circuit_state", "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.", ["upstream"],
            registry=registry,
        )  # fmt: skip
        self._transitions = Counter(
            "seamline_circuit_transitions", "Circuit breaker state changes, by the state entered.", ["upstream", "to"],
            registry=registry,
        )  # fmt: skip
        for name, br in self.breakers.items():
            # Read at scrape time: an open breaker whose open_for has passed shows half-open without waiting for a call.
            self._state.labels(name).set_function(partial(_state_value, br))

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        self._admit(ex)

    def before_retry(self, ex: Exchange, http: web.BaseRequest | None, budget_s: float) -> None:
        """Attempt ≥ 2 of a retried call: admitted like any call, or 503 circuit-open (not sent)."""
        self._admit(ex)

    def retrying(self, ex: Exchange, a: Attempted) -> bool:
        """An attempt that would be retried: its result counts now; no retry once the breaker is open."""
        entry = self._admitted.pop(id(ex), None)
        if entry is None:
            return True
        br, admission = entry
        status = a.response.status if a.response is not None else 0
        br.record(admission, judge_result(status, a.error.error_class if a.error is not None else o.NONE))
        return br.current_state() is not State.OPEN

    def _admit(self, ex: Exchange) -> None:
        br = self.breakers.get(ex.upstream)
        if br is None:
            return
        admission = br.admit()
        if admission is None:
            ex.guard = o.GUARD_CIRCUIT_OPEN
            wait = br.retry_after_s()
            state = STATE_NAMES[br.state]
            raise errors.CircuitOpen(
                f"the circuit breaker of upstream {br.name!r} is {state.replace('_', '-')}; the call was not forwarded, "
                f"retry in {wait} s",
                retry_after_s=wait, upstream=br.name, circuit_state=state,
            )  # fmt: skip
        if admission.probe:
            ex.guard = o.GUARD_CIRCUIT_PROBE
        self._admitted[id(ex)] = (br, admission)

    def done(self, ex: Exchange) -> None:
        entry = self._admitted.pop(id(ex), None)
        if entry is not None:
            entry[0].record(entry[1], judge(ex))

    def _transition(self, br: Breaker, before: State, to: State, reason: str) -> None:
        self._transitions.labels(br.name, STATE_NAMES[to]).inc()
        log.warning(
            "circuit breaker of upstream %s: %s → %s (%s)", br.name, STATE_NAMES[before], STATE_NAMES[to], reason,
            extra={"upstream": br.name, "from_state": STATE_NAMES[before], "to_state": STATE_NAMES[to], "reason": reason,
                   "open_for_s": br.cfg.open_for if to is State.OPEN else None},
        )  # fmt: skip
