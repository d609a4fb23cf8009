"""The sink on the real engine: inserts carry their dedup token, failures and timeouts mark it down, loudly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.recording import counts, make_event

from seamline.record.metrics import RecordMetrics, Totals
from seamline.record.rows import Batch, encode_event, seal
from seamline.record.sink import Sink


def a_batch(n: int) -> Batch:
    events = [make_event() for _ in range(n)]
    return seal([encode_event(e) for e in events], [e["event_id"] for e in events])


async def test_a_batch_sent_twice_lands_once(storage, db) -> None:
    store, name = db
    reg = CollectorRegistry()
    totals = Totals()
    sink = Sink(store, storage(), RecordMetrics(reg), totals)
    assert await sink.connect() and sink.up  # opens and migrates
    batch = a_batch(5)
    assert await sink.insert(batch, path="direct")
    assert await sink.insert(batch, path="replay")  # its ack was lost: sent again from the spool
    assert await counts(store, name) == (5, 5)
    assert reg.get_sample_value("seamline_record_batches_written_total", {"path": "replay"}) == 1
    assert reg.get_sample_value("seamline_record_sink_up") == 1
    assert totals.batches_written == 2


async def test_a_refused_insert_marks_the_sink_down_once(storage, db, caplog: pytest.LogCaptureFixture) -> None:
    store, _ = db
    reg = CollectorRegistry()
    sink = Sink(store, storage(), RecordMetrics(reg), Totals(), migrate_schema=False)
    assert await sink.connect()
    with caplog.at_level("WARNING", logger="seamline.record"):
        assert not await sink.insert(a_batch(2), path="direct")  # no schema: the engine refuses
        assert not await sink.insert(a_batch(2), path="direct")
    assert not sink.up and reg.get_sample_value("seamline_record_sink_up") == 0
    assert reg.get_sample_value("seamline_record_write_errors_total") == 2
    assert caplog.text.count("clickhouse sink down") == 1


class Hanging:
    """A real store whose inserts never answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_json(self, table: str, payload: bytes, settings: Any = None) -> None:
        await asyncio.Event().wait()


async def test_an_insert_that_does_not_answer_in_time_fails(storage, db) -> None:
    store, _ = db
    sink = Sink(Hanging(store), storage(), RecordMetrics(CollectorRegistry()), Totals(), timeout_s=0.05)  # type: ignore[arg-type]
    assert await sink.connect()
    assert not await asyncio.wait_for(sink.insert(a_batch(1), path="direct"), 10)
    assert not sink.up
