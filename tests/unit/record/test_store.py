"""The chdb store: lazy open, server-side parameters, typed errors, one owned thread."""

from __future__ import annotations

import os
import threading

import pytest
from support.chdb_path import chdb_url, unique_database

from seamline.record.store import ChdbStore, HttpStore, StoreError, chdb_path_from_url, open_store


def test_chdb_urls_resolve_relative_and_absolute_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert chdb_path_from_url("chdb:///./.seamline/data") == str(tmp_path / ".seamline" / "data")
    assert chdb_path_from_url("chdb:///var/lib/seamline") == "/var/lib/seamline"
    with pytest.raises(StoreError):
        open_store("mysql://x", "db")


def test_http_url_database_overrides_the_argument() -> None:
    s = open_store("https://u:p%40ss@ch.example:8443/obs", "seamline")
    assert isinstance(s, HttpStore) and s.database == "obs" and s.endpoint == "https://ch.example:8443"
    assert "p@ss" not in s.endpoint
    assert open_store("http://ch:8123", "seamline").database == "seamline"


async def test_query_with_parameters_and_insert_round_trip() -> None:
    db = unique_database("store_rt")
    store = open_store(chdb_url(), db)  # lazy: connects on first use
    assert isinstance(store, ChdbStore)
    try:
        await store.command("CREATE TABLE t (id UInt32, name String, tags Array(String)) ENGINE = MergeTree ORDER BY id")
        await store.insert("t", [[1, "a", ["x"]], [2, "b", []]], ["id", "name", "tags"])
        await store.insert_json("t", b'[{"id": 3, "name": "c", "tags": ["y", "z"]}]')
        rows = await store.query("SELECT * FROM t WHERE id >= {min:UInt32} ORDER BY id", {"min": 2})
        assert rows == [{"id": 2, "name": "b", "tags": []}, {"id": 3, "name": "c", "tags": ["y", "z"]}]
        assert await store.ping()
    finally:
        await store.command(f"DROP DATABASE `{db}`")
        await store.close()


async def test_errors_are_store_errors_and_closed_store_refuses() -> None:
    store = await open_store(chdb_url(), unique_database("store_err"))
    with pytest.raises(StoreError, match="query failed"):
        await store.query("SELECT * FROM no_such_table")
    await store.command(f"DROP DATABASE `{store.database}`")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.query("SELECT 1")
    assert not await store.ping()


async def test_all_engine_calls_run_on_one_owned_thread() -> None:
    store = await open_store(chdb_url(), unique_database("store_thread"), engine="thread")
    seen: set[int] = set()
    engine = store._local  # type: ignore[attr-defined]
    real_ping = engine.ping
    engine.ping = lambda: seen.add(threading.get_ident()) or real_ping()
    for _ in range(3):
        assert await store.ping()
    assert len(seen) == 1 and threading.get_ident() not in seen
    await store.command(f"DROP DATABASE `{store.database}`")
    await store.close()
    assert not any(t.name.startswith("seamline-chdb") and t.ident in seen for t in threading.enumerate())


def test_chdb_path_is_shared_by_the_process() -> None:
    assert os.environ["SEAMLINE_TEST_CHDB_PATH"] in chdb_url()
