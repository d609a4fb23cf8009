"""Fixtures of the recording tests: a fresh database (`db`), storage configs for it (`storage`), recorders (`recorders`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.recording import db, storage

from seamline.config.models import Storage
from seamline.record.recorder import Recorder
from seamline.record.store import open_store


@pytest.fixture
async def recorders() -> AsyncIterator[Callable[..., Recorder]]:
    """Recorder factory; every recorder made is stopped after the test."""
    made: list[Recorder] = []

    def make(cfg: Storage, **kw: Any) -> Recorder:
        kw.setdefault("heartbeat_interval_s", 0)
        kw.setdefault("backoff_base_s", 0.01)
        kw.setdefault("backoff_max_s", 0.05)
        registry = kw.pop("registry", CollectorRegistry())
        rec = Recorder(cfg, lambda: open_store(cfg.clickhouse_url, cfg.database), registry, "test-1", **kw)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        await rec.stop(5)
