"""The circuit breaker's state machine on an injected clock, and what a finished exchange says about its upstream."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from seamline import outcomes as o
from seamline.config.guards import CircuitBreaker
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.guards.circuit import Admission, Breaker, CircuitGuard, State, judge


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def breaker(clock: Clock, transitions: list[tuple[State, State]] | None = None, **cfg: Any) -> Breaker:
    seen = transitions if transitions is not None else []
    return Breaker("billing", CircuitBreaker(**cfg), clock=clock, on_transition=lambda b, a, to, why: seen.append((a, to)))


def feed(br: Breaker, *results: str) -> None:
    for r in results:
        adm = br.admit()
        assert adm is not None, "refused while feeding"
        br.record(adm, r)  # type: ignore[arg-type]


def test_consecutive_failures_open_it_and_a_success_in_between_resets_the_run() -> None:
    clock = Clock()
    br = breaker(clock, consecutive_failures=3, min_calls=100)
    feed(br, "failure", "failure", "success", "failure", "failure")
    assert br.current_state() is State.CLOSED
    feed(br, "failure")
    assert br.current_state() is State.OPEN
    assert br.admit() is None


def test_failure_rate_needs_min_calls_in_the_window() -> None:
    clock = Clock()
    br = breaker(clock, failure_rate=0.5, min_calls=10, consecutive_failures=100, window=60)
    feed(br, *["success", "failure"] * 4, "success")  # 4 of 9 failed: under min_calls
    feed(br, "success")  # 10 calls, 4 failed: 40 %, under the rate
    assert br.current_state() is State.CLOSED
    feed(br, "failure")  # 11 calls, 5 failed: 45 %
    assert br.current_state() is State.CLOSED
    feed(br, "failure")  # 12 calls, 6 failed: exactly 50 %: ≥ opens
    assert br.current_state() is State.OPEN


def test_calls_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    br = breaker(clock, failure_rate=0.5, min_calls=4, consecutive_failures=100, window=10)
    feed(br, "failure", "failure", "success")  # 3 calls: under min_calls
    clock.t += 10.5  # those three left the window
    feed(br, "success", "success", "success", "failure")  # 4 calls in the window, 1 failed: 25 %
    assert (br.calls, br.failures) == (4, 1)
    assert br.current_state() is State.CLOSED


def test_the_window_slides_bucket_by_bucket() -> None:
    clock = Clock()
    br = breaker(clock, failure_rate=0.5, min_calls=2, consecutive_failures=100, window=10)
    feed(br, "success")
    clock.t += 5  # half a window on
    feed(br, "success")
    assert (br.calls, br.failures) == (2, 0)
    clock.t += 5.5  # the first call left, the second did not
    feed(br, "success")
    assert (br.calls, br.failures) == (2, 0)


def test_open_refuses_with_the_seconds_left_then_half_opens_after_open_for() -> None:
    clock = Clock()
    seen: list[tuple[State, State]] = []
    br = breaker(clock, seen, consecutive_failures=2, open_for=30)
    feed(br, "failure", "failure")
    assert br.admit() is None and br.retry_after_s() == 30
    clock.t += 12.5
    assert br.admit() is None and br.retry_after_s() == 18  # ceil(17.5)
    clock.t += 17.5
    assert br.current_state() is State.HALF_OPEN
    assert seen == [(State.CLOSED, State.OPEN), (State.OPEN, State.HALF_OPEN)]


def open_then_half_open(clock: Clock, seen: list[tuple[State, State]] | None = None, probes: int = 3) -> Breaker:
    br = breaker(clock, seen, consecutive_failures=1, open_for=5, half_open_probes=probes)
    feed(br, "failure")
    clock.t += 5
    return br


def test_half_open_lets_exactly_the_probes_through_and_closes_when_all_succeed() -> None:
    clock = Clock()
    br = open_then_half_open(clock, probes=3)
    probes = [br.admit() for _ in range(3)]
    assert all(p is not None and p.probe for p in probes)
    assert br.admit() is None and br.retry_after_s() == 1  # the fourth waits for their verdict
    for p in probes[:2]:
        assert p is not None
        br.record(p, "success")
    assert br.current_state() is State.HALF_OPEN
    assert probes[2] is not None
    br.record(probes[2], "success")
    assert br.current_state() is State.CLOSED
    assert (br.calls, br.failures, br.consecutive) == (0, 0, 0)  # starts over with an empty window
    assert br.admit() == Admission(br.generation, False)


def test_one_failed_probe_opens_it_again_for_open_for() -> None:
    clock = Clock()
    seen: list[tuple[State, State]] = []
    br = open_then_half_open(clock, seen)
    first, second = br.admit(), br.admit()
    assert first is not None and second is not None
    br.record(first, "success")
    br.record(second, "failure")
    assert br.current_state() is State.OPEN and br.retry_after_s() == 5
    assert seen[-1] == (State.HALF_OPEN, State.OPEN)
    clock.t += 4.9
    assert br.admit() is None
    clock.t += 0.1
    assert br.current_state() is State.HALF_OPEN


def test_a_probe_without_verdict_gives_its_slot_back() -> None:
    clock = Clock()
    br = open_then_half_open(clock, probes=1)
    probe = br.admit()
    assert probe is not None and br.admit() is None
    br.record(probe, "ignored")  # the client left before the upstream answered
    again = br.admit()
    assert again is not None and again.probe


def test_results_of_calls_admitted_before_a_state_change_are_ignored() -> None:
    clock = Clock()
    br = breaker(clock, consecutive_failures=2, open_for=5, half_open_probes=1)
    slow = br.admit()  # admitted while closed, answers late
    feed(br, "failure", "failure")
    clock.t += 5
    probe = br.admit()
    assert slow is not None and probe is not None
    br.record(slow, "failure")  # from the closed period: must not re-open the half-open breaker
    assert br.current_state() is State.HALF_OPEN
    br.record(probe, "success")
    assert br.current_state() is State.CLOSED
    br.record(probe, "failure")  # a stale probe verdict (a second one cannot exist, but a late one may)
    assert br.current_state() is State.CLOSED


def test_counting_is_constant_time_whatever_the_gap() -> None:
    clock = Clock()
    br = breaker(clock, window=60, min_calls=1_000_000, consecutive_failures=1_000_000)
    t0 = time.perf_counter()
    for i in range(20_000):
        clock.t += 0.01 if i % 2 else 1e6  # long gaps reset the window without walking it
        feed(br, "success")
    assert time.perf_counter() - t0 < 2.0


def ex_with(status: int = 0, error_class: str = o.NONE) -> Exchange:
    return Exchange(ts_us=0, t0=0.0, mode="reverse", method="GET", status=status, error_class=error_class)


@pytest.mark.parametrize(
    ("status", "error_class", "expected"),
    [
        (200, o.NONE, "success"),
        (404, o.NONE, "success"),
        (429, o.NONE, "success"),  # the upstream answers: rate limits are not outages
        (500, o.NONE, "failure"),
        (503, o.NONE, "failure"),
        (0, o.CONNECT, "failure"),
        (0, o.TIMEOUT, "failure"),
        (0, o.TLS, "failure"),
        (0, o.DNS, "failure"),
        (0, o.SERVER_ERROR, "failure"),  # a malformed response
        (200, o.TIMEOUT, "failure"),  # the body stalled mid-way
        (200, o.CLIENT_DISCONNECTED, "success"),  # the upstream answered; the client left
        (0, o.CLIENT_DISCONNECTED, "ignored"),
        (0, o.CIRCUIT_OPEN, "ignored"),
        (0, o.TOO_LARGE, "ignored"),
        (0, o.CONTRACT, "ignored"),  # enforce: request refused it before it was sent
        (0, o.NONE, "ignored"),
    ],
)
def test_judge(status: int, error_class: str, expected: str) -> None:
    assert judge(ex_with(status, error_class)) == expected


def test_guard_exports_state_and_transitions(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    registry = CollectorRegistry()
    cfg = Config(
        upstreams={
            "billing": {"base_url": "http://127.0.0.1:1", "circuit_breaker": {"consecutive_failures": 1, "open_for": 2}},
            "crm": {"base_url": "http://127.0.0.1:2", "circuit_breaker": False},
        },
        storage={"enabled": False},
    )
    guard = CircuitGuard(cfg, registry, clock=clock)
    assert set(guard.breakers) == {"billing"}
    ex = ex_with()
    ex.upstream = "billing"
    guard.request(ex, None, None)  # type: ignore[arg-type]
    ex.error_class = o.CONNECT
    with caplog.at_level("WARNING", "seamline.guards.circuit"):
        guard.done(ex)
    text = generate_latest(registry).decode()
    assert 'seamline_circuit_state{upstream="billing"} 2.0' in text
    assert 'seamline_circuit_transitions_total{to="open",upstream="billing"} 1.0' in text
    assert [r.to_state for r in caplog.records] == ["open"]  # type: ignore[attr-defined]
    clock.t += 2
    assert 'seamline_circuit_state{upstream="billing"} 1.0' in generate_latest(registry).decode()  # read at scrape time
