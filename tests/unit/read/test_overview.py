"""The overview's window: whole seconds for the time macros, rounded up so the last second's calls count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.handoff_rows import fresh_store, handoff_row, insert_rows

from seamline.read.overview import handoff_health


async def test_calls_in_the_last_fraction_of_a_second_are_counted() -> None:
    store, _ = await fresh_store("overview_last_second")
    try:
        now = datetime.now(UTC).replace(microsecond=600_000)
        # Both after the whole second `now` falls in: truncating the window's end to its second drops them.
        rows = [handoff_row("run-1", "billing.charge", at_ms=0, ts=now - timedelta(milliseconds=ms)) for ms in (100, 300)]
        await insert_rows(store, rows)
        data = await handoff_health(store, "15m", now=now)
        assert [(r["handoff"], r["calls"]) for r in data["handoffs"]] == [("billing.charge", 2)]
    finally:
        await store.close()
