"""The one wall clock test fixtures are placed by: now, in UTC, floored to a whole unit.

Stored rows are judged by the engine's clock (TTLs, `now()` in dashboard queries, `since` windows), so a fixture
stamped with a literal date starts failing the day that date ages past a TTL. Floored values stay exact through
every store and format (DateTime64, ISO strings, HTTP dates, rollup minutes), so tests can still compare with `==`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def utc_now(unit: timedelta = timedelta(seconds=1)) -> datetime:
    """The current UTC time floored to `unit` (a whole number of seconds, e.g. one minute)."""
    step = int(unit.total_seconds())
    assert step >= 1 and step == unit.total_seconds(), unit
    return datetime.fromtimestamp(int(time.time()) // step * step, UTC)


def now_us() -> int:
    """The current time as integer microseconds since the epoch (an event's `ts`)."""
    return time.time_ns() // 1_000
