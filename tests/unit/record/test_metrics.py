"""Drops: counted by reason and totalled every time, logged at most once a second per reason."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from support.recording import FakeClock

from seamline.record.metrics import Drops, RecordMetrics, Totals


def test_drops_are_all_counted_but_logged_once_a_second_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    reg, totals, clock = CollectorRegistry(), Totals(), FakeClock()
    drop = Drops(RecordMetrics(reg), totals, clock=clock)
    with caplog.at_level("ERROR", logger="seamline.record"):
        for _ in range(3):
            drop(10, "spool_full")
        drop(1, "spool_backlog")  # another reason is logged at once
        clock.advance(1.0)
        drop(10, "spool_full")
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "spool_full"}) == 40
    assert reg.get_sample_value("seamline_record_dropped_total", {"reason": "spool_backlog"}) == 1
    assert totals.dropped == 41
    assert [(r.reason, r.dropped_total) for r in caplog.records] == [
        ("spool_full", 10),
        ("spool_backlog", 31),
        ("spool_full", 41),
    ]  # type: ignore[attr-defined]
