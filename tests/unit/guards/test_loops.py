"""Loop detection: counting per run and handoff on an injected clock, bounded memory, flag and block."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from seamline import errors
from seamline import outcomes as o
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.guards.loops import LocalCounts, LoopGuard


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def test_counts_per_run_and_handoff_within_the_window() -> None:
    clock = Clock()
    counts = LocalCounts(clock=clock)
    assert [counts.hit(("r1", "h"), 10) for _ in range(3)] == [1, 2, 3]
    assert counts.hit(("r1", "other"), 10) == 1
    assert counts.hit(("r2", "h"), 10) == 1
    clock.t += 9.9
    assert counts.hit(("r1", "h"), 10) == 4
    clock.t += 0.1  # the window opened at the first call has passed
    assert counts.hit(("r1", "h"), 10) == 1


def test_expired_counters_are_dropped_and_memory_is_capped() -> None:
    clock = Clock()
    counts = LocalCounts(clock=clock, max_runs=100)
    for i in range(100):
        counts.hit((f"r{i}", "h"), 10)
    assert counts.size == 100
    counts.hit(("r-new", "h"), 10)  # over the cap: the oldest goes
    assert counts.size == 100
    assert counts.hit(("r0", "h"), 10) == 1  # it was forgotten (and r1 went to make room)
    clock.t += 10
    counts.hit(("later", "h"), 10)
    assert counts.size == 1  # everything else expired on the way


def test_counters_of_different_windows_expire_on_their_own() -> None:
    clock = Clock()
    counts = LocalCounts(clock=clock, max_runs=2)
    counts.hit(("long", "a"), 600)
    clock.t += 1
    counts.hit(("short", "b"), 5)
    counts.hit(("third", "c"), 5)  # the cap drops the counter nearest its end, whichever window it is in: "short"
    assert counts.hit(("long", "a"), 600) == 2
    assert counts.hit(("short", "b"), 5) == 1
    assert counts.size == 2


def config(**loops: Any) -> Config:
    return Config(
        upstreams={"crm": {"base_url": "http://127.0.0.1:1"}},
        handoffs={
            "crm.sync": {"upstream": "crm", "match": "PATCH /contacts/{id}", "loops": {"max_calls_per_run": 3, **loops}},
            "crm.read": {"upstream": "crm", "match": "GET /contacts/{id}"},
        },
        loops={"max_calls_per_run": 5},
        storage={"enabled": False},
    )


def call(guard: LoopGuard, handoff: str = "crm.sync", run_id: str = "run-1", source: str = "header") -> Exchange:
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="PATCH", run_id=run_id, run_id_source=source, handoff=handoff)
    assert guard.request(ex, None, None) is None  # type: ignore[arg-type]  # in-process: decided at once
    return ex


def test_calls_above_the_handoffs_threshold_are_flagged_not_blocked_by_default() -> None:
    guard = LoopGuard(config(), CollectorRegistry(), clock=Clock())
    flags = [call(guard).loop_suspected for _ in range(5)]
    assert flags == [False, False, False, True, True]
    assert [call(guard, "crm.read").loop_suspected for _ in range(6)] == [False] * 5 + [True]  # the top-level 5


def test_generated_run_ids_are_never_counted() -> None:
    guard = LoopGuard(config(), CollectorRegistry(), clock=Clock())
    for source in ("generated", "replaced"):
        assert not any(call(guard, source=source).loop_suspected for _ in range(10))
    assert not any(call(guard, source="correlation", run_id="r2").loop_suspected for _ in range(3))


def test_block_refuses_above_the_threshold_naming_run_handoff_count_and_window() -> None:
    registry = CollectorRegistry()
    guard = LoopGuard(config(block=True, window="2m"), registry, clock=Clock())
    for _ in range(3):
        assert call(guard).guard == ""
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="PATCH", run_id="run-1", run_id_source="header", handoff="crm.sync")
    with pytest.raises(errors.LoopSuspected) as info:
        guard.request(ex, None, None)  # type: ignore[arg-type]
    err = info.value
    assert (err.status, err.slug, err.error_class) == (429, "loop-suspected", o.LOOP_SUSPECTED)
    assert "'run-1'" in err.detail and "'crm.sync'" in err.detail and "4 times within 120 s" in err.detail
    assert err.extra == {"handoff": "crm.sync", "calls": 4, "window_s": 120.0, "max_calls_per_run": 3}
    assert ex.loop_suspected and ex.guard == o.GUARD_LOOP_BLOCKED
    with pytest.raises(errors.LoopSuspected):
        call(guard)
    assert registry.get_sample_value("seamline_loops_suspected_total", {"handoff": "crm.sync", "blocked": "true"}) == 1
