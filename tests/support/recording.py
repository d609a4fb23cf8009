"""Helpers for recording tests: events, a hand-driven clock, row counts, and the `db`/`storage` fixtures (import them)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from seamline.config.models import Storage
from seamline.event.columns import new_event
from seamline.record.store import Store, open_store
from support.chdb_path import chdb_url, unique_database


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_event(run_id: str = "run-1", **values: Any) -> dict[str, Any]:
    """A complete event with a fresh UUID and the current time in µs."""
    values.setdefault("ts", int(time.time() * 1e6))
    return new_event(event_id=str(uuid.uuid4()), run_id=run_id, handoff="crm.create", upstream="crm", outcome="ok", **values)


async def counts(store: Store, database: str) -> tuple[int, int]:
    """(rows, distinct event_ids) in `handoffs`."""
    rows = await store.query(f"SELECT count() AS n, uniqExact(event_id) AS u FROM `{database}`.handoffs")
    return int(rows[0]["n"]), int(rows[0]["u"])


@pytest.fixture
async def db(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, str]]:
    """(reader store, database name): a fresh database dropped after the test."""
    name = unique_database(request.node.name)
    store = await open_store(chdb_url(), name)
    yield store, name
    await store.command(f"DROP DATABASE IF EXISTS `{name}`")
    await store.close()


@pytest.fixture
def storage(tmp_path: Path, db: tuple[Store, str]) -> Callable[..., Storage]:
    """Storage config factory for the test's database and a spool under tmp_path."""

    def make(**kw: Any) -> Storage:
        kw.setdefault("clickhouse_url", chdb_url())
        kw.setdefault("database", db[1])
        kw.setdefault("spool_dir", str(tmp_path / "spool"))
        kw.setdefault("spool_max_bytes", 64 << 20)
        return Storage(**kw)

    return make
