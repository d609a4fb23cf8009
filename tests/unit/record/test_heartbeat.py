"""The health row: every column filled by name, in the table's order; a store that refuses is counted, not raised."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.chdb_path import chdb_url, unique_database
from support.clock import utc_now

from seamline import __version__
from seamline.record.heartbeat import HEALTH_COLUMNS, STATE_COLUMNS, Heartbeat, health_row
from seamline.record.metrics import RecordMetrics
from seamline.record.store import open_store


def state() -> dict[str, Any]:
    return {c: f"<{c}>" for c in STATE_COLUMNS}


def test_the_row_follows_the_columns_by_name() -> None:
    now = utc_now()
    row = health_row(state(), instance="sc-1", store_kind="chdb", now=now)
    assert dict(zip(HEALTH_COLUMNS, row, strict=True)) == {
        "ts": now, "proxy_instance": "sc-1", "version": __version__, "store": "chdb", **state(),
    }  # fmt: skip


def test_a_missing_state_value_fails_loudly_instead_of_shifting_columns() -> None:
    partial = state()
    del partial["queue_depth"]
    with pytest.raises(KeyError, match="queue_depth"):
        health_row(partial, instance="sc-1", store_kind="chdb", now=utc_now())


async def test_a_refused_heartbeat_is_counted_and_returns_false() -> None:
    store = await open_store(chdb_url(), unique_database("heartbeat_refused"))
    await store.command(f"DROP DATABASE `{store.database}`")
    await store.close()  # every call fails now
    reg = CollectorRegistry()
    beat = Heartbeat(store, "sc-1", RecordMetrics(reg), state=state, timeout_s=5)
    assert not await beat.beat()
    assert reg.get_sample_value("seamline_record_heartbeats_total", {"result": "error"}) == 1
