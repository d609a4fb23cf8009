"""The engine frozen under load, then `seamline serve` SIGKILLed: only the events of the last
max_unacked_ms + flush_interval_ms may be lost, none is stored twice (README "Delivery guarantee").

On main before storage.max_unacked_ms, a 15 s freeze at 40 req/s lost 622 of 680 answered events (bench/stall_kill.py
runs that variant); here a 3 s freeze at 40 req/s, enough for the engine's insert and build calls to hang past
max_unacked_ms and for events to pile up behind them.
"""

from __future__ import annotations

import pytest
from support.stall_kill import stall_then_kill

pytestmark = pytest.mark.slow


async def test_sigkill_after_the_engine_froze_under_load_loses_only_the_last_window(tmp_path) -> None:
    fig = await stall_then_kill(
        tmp_path, rate=40, warm_s=1.5, frozen_s=3.0, storage={"max_unacked_ms": 1000, "unacked_degraded_after": "1s"}
    )
    print(fig.line())
    assert fig.answered >= 150, fig.line()
    assert fig.duplicates == 0, fig.line()
    assert fig.lost_outside_window == 0, fig.line()
    assert fig.lost <= fig.answered_in_window, fig.line()
    # While it happened, the signals said so: the gauge, and /readyz degraded with its reason.
    assert fig.oldest_unacked_s is not None and fig.oldest_unacked_s >= 1.0, fig.line()
    assert "unacked_too_long" in fig.readyz_before_kill["reasons"] and fig.readyz_before_kill["degraded"], fig.line()
