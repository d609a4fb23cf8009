"""The HTTP store through the real async client and the ClickHouse-HTTP adapter: typed results, compression, outages."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import orjson
import pytest
from support.chdb_path import unique_database
from support.chhttp import ClickHouseHttpAdapter, adapter  # adapter: a fixture
from support.clock import utc_now

from seamline.record.store import StoreError, open_store


async def test_http_store_round_trip_with_compressed_inserts(adapter: ClickHouseHttpAdapter) -> None:
    db = unique_database("http_rt")
    store = await open_store(f"{adapter.url}/{db}", "ignored")
    try:
        assert store.database == db and await store.ping()
        await store.command(
            "CREATE TABLE t (id UUID, ts DateTime64(6, 'UTC'), m Map(LowCardinality(String), String), body String) "
            "ENGINE = MergeTree ORDER BY ts SETTINGS non_replicated_deduplication_window = 100"
        )
        ids = [uuid4() for _ in range(300)]
        at = utc_now()
        us = int(at.timestamp()) * 1_000_000
        await store.insert("t", [[i, us + n, {"k": str(n)}, "x" * 10] for n, i in enumerate(ids)], ["id", "ts", "m", "body"])
        big = orjson.dumps([{"id": str(uuid4()), "ts": str(us), "m": {}, "body": "y" * 1000} for _ in range(200)])
        assert len(big) > 64 * 1024  # zstd-compressed on the wire
        await store.insert_json("t", big, settings={"insert_deduplication_token": "once"})
        await store.insert_json("t", big, settings={"insert_deduplication_token": "once"})
        rows = await store.query("SELECT id, ts, m FROM t WHERE id = {id:UUID}", {"id": str(ids[7])})
        # DateTime64(6, 'UTC') comes back naive, in UTC, to the microsecond.
        assert rows == [{"id": ids[7], "ts": at.replace(tzinfo=None) + timedelta(microseconds=7), "m": {"k": "7"}}]
        assert (await store.query("SELECT count() AS n FROM t"))[0]["n"] == 500
        assert adapter.requests > 0
    finally:
        await store.command(f"DROP DATABASE `{db}`")
        await store.close()


async def test_outage_is_a_store_error_and_recovers(adapter: ClickHouseHttpAdapter) -> None:
    store = await open_store(adapter.url, unique_database("http_outage"))
    await adapter.stop()
    assert not await store.ping()
    with pytest.raises(StoreError):
        await store.query("SELECT 1")
    await adapter.start()
    assert await store.ping()
    assert (await store.query("SELECT 1 AS one")) == [{"one": 1}]
    await store.command(f"DROP DATABASE `{store.database}`")
    await store.close()
