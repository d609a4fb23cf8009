"""The embedded engine in its own process (the default): round trips, a killed engine, a dead parent, CPU pinning,
and a recording sidecar whose engine is killed under traffic.

Each test gives the engine process its own directory (the test process holds its own chdb directory elsewhere).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from conftest import proxy_config
from support.waiting import wait_for

from seamline.record.store import ChdbStore, StoreError, open_store

pytestmark = pytest.mark.slow


def engine_pid(store: ChdbStore) -> int:
    pid = store._process.pid  # type: ignore[union-attr]
    assert pid is not None and pid != os.getpid()
    return pid


def exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # our own child: reap it, or it stays a zombie that kill(pid, 0) still finds
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


async def wait_exit(pid: int, timeout: float = 10.0) -> None:
    await wait_for(lambda: exited(pid), timeout, what=f"process {pid} to exit")  # no exit event for a pid


async def test_round_trip_and_errors_through_the_engine_process(tmp_path: Path) -> None:
    store = await open_store(f"chdb://{tmp_path / 'data'}", "eng", engine="process")
    assert isinstance(store, ChdbStore)
    try:
        pid = engine_pid(store)
        await store.command("CREATE TABLE t (id UInt32, s String, tags Array(String)) ENGINE = MergeTree ORDER BY id")
        await store.insert("t", [[1, "a", ["x"]]], ["id", "s", "tags"])
        await store.insert_json("t", b'[{"id": 2, "s": "\\u00e9", "tags": []}]', settings={"insert_deduplicate": 1})
        rows = await store.query("SELECT * FROM t WHERE id >= {m:UInt32} ORDER BY id", {"m": 1})
        assert rows == [{"id": 1, "s": "a", "tags": ["x"]}, {"id": 2, "s": "é", "tags": []}]
        with pytest.raises(StoreError, match=r"query failed: .*no_such_table"):
            await store.query("SELECT * FROM no_such_table")
        assert await store.ping() and engine_pid(store) == pid  # an error does not cost the process
    finally:
        await store.close()
    await wait_exit(pid)
    with pytest.raises(StoreError, match="closed"):
        await store.query("SELECT 1")


async def test_a_killed_engine_fails_the_call_and_the_next_call_starts_a_new_one(tmp_path: Path) -> None:
    store = await open_store(f"chdb://{tmp_path / 'data'}", "eng", engine="process")
    try:
        await store.command("CREATE TABLE t (id UInt32) ENGINE = MergeTree ORDER BY id")
        await store.insert_json("t", b'[{"id": 1}]')
        first = engine_pid(store)
        slow = asyncio.ensure_future(store.query("SELECT sleepEachRow(0.5) FROM numbers(4)"))
        # In flight: the call holds the engine's lock from before it sends the query until the reply (2 s away).
        await wait_for(store._process._lock.locked, 5, what="the slow query to be in flight")  # type: ignore[union-attr]
        os.kill(first, signal.SIGKILL)
        with pytest.raises(StoreError, match="exited"):
            await slow
        rows = await store.query("SELECT count() AS n FROM t")  # new process, same directory, data intact
        assert rows == [{"n": 1}] and engine_pid(store) != first
    finally:
        await store.close()


async def test_a_cancelled_call_does_not_hand_its_reply_to_the_next_one(tmp_path: Path) -> None:
    store = await open_store(f"chdb://{tmp_path / 'data'}", "eng", engine="process")
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.query("SELECT 'late' AS v, sleep(0.5)"), 0.1)
        assert await store.query("SELECT 'mine' AS v") == [{"v": "mine"}]
    finally:
        await store.close()


async def test_the_engine_dies_with_its_parent_and_releases_the_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        import asyncio, sys
        from seamline.record.store import open_store
        async def main():
            store = await open_store("chdb://{data}", "eng", engine="process")
            print(store._process.pid, flush=True)
            await asyncio.sleep(60)  # the parent lives until the test kills it (60 s bounds a leaked one)
        asyncio.run(main())
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(await asyncio.wait_for(asyncio.to_thread(parent.stdout.readline), 30))  # type: ignore[union-attr]
        parent.kill()
        parent.wait(10)
        await wait_exit(child)
    finally:
        parent.kill()
    store = await open_store(f"chdb://{data}", "eng", engine="process")  # the lock went with the process
    try:
        assert await store.query("SELECT 1 AS one") == [{"one": 1}]
    finally:
        await store.close()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
async def test_embedded_cpus_pin_the_engine_process(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    store = await open_store(f"chdb://{tmp_path / 'data'}", "eng", engine="process", cpus=[cpu])
    try:
        assert os.sched_getaffinity(engine_pid(store)) == {cpu}
    finally:
        await store.close()


async def test_recording_survives_its_engine_being_killed_under_traffic(
    upstream, make_sidecar, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("SEAMLINE_STORAGE__EMBEDDED_ENGINE")  # the default: an engine process (see conftest)
    storage = {
        "enabled": True, "clickhouse_url": f"chdb://{tmp_path / 'data'}", "database": "eng",
        "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20, "batch_size": 10,
        "max_unacked_ms": 10_000,  # a cold engine's first insert holds it ~1 s here: built there all the same
    }  # fmt: skip
    sc = await make_sidecar(proxy_config({"up": upstream.url}, storage=storage))
    store = sc.recorder.store
    assert isinstance(store, ChdbStore) and store.engine == "process"
    sent = 0

    async def burst(n: int) -> None:
        nonlocal sent
        async with aiohttp.ClientSession() as s:
            for _ in range(n):
                async with s.post(f"{sc.proxy_url}/up/echo", json={"i": sent}, headers={"X-Run-ID": "engine-kill"}) as r:
                    assert r.status == 200
                    sent += 1

    await burst(40)
    assert await sc.flush(30)
    built = sc.registry.get_sample_value
    assert built("seamline_record_events_built_total", {"where": "engine"}) == 40  # offloaded, none built here
    assert not built("seamline_record_events_built_total", {"where": "proxy"})
    killed = engine_pid(store)
    os.kill(killed, signal.SIGKILL)
    await burst(40)  # traffic never waits for the engine; batches that fail go to the spool

    async def all_stored() -> tuple[int, int] | None:
        await sc.flush(5)
        if not sc.recorder.spool.records:
            try:
                rows = await store.query(
                    "SELECT count() AS n, uniqExact(event_id) AS u FROM handoffs WHERE run_id = 'engine-kill'"
                )
            except StoreError:
                rows = []
            if rows and rows[0]["n"] >= sent:
                return rows[0]["n"], rows[0]["u"]
        await sc.recorder.replay_now()
        return None

    n, distinct = await wait_for(all_stored, 30, what="every event stored after the engine restarted")
    assert (n, distinct) == (sent, sent)
    assert engine_pid(store) != killed
    assert sc.registry.get_sample_value("seamline_record_engine_process_starts") == 2  # on-call sees the restart


async def test_an_engine_that_cannot_start_is_retried_after_a_backoff_not_on_every_call(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = open_store(f"chdb://{blocker / 'data'}", "eng", engine="process")  # its directory cannot be created
    try:
        with pytest.raises(StoreError, match="open failed"):
            await store.query("SELECT 1")
        assert store._process.pid is None  # type: ignore[union-attr]
        spawn = store._process._spawn  # type: ignore[union-attr]
        spawned = 0

        async def counting() -> None:
            nonlocal spawned
            spawned += 1
            await spawn()

        store._process._spawn = counting  # type: ignore[union-attr]
        for _ in range(5):
            with pytest.raises(StoreError, match=r"did not start .*retrying in"):
                await store.query("SELECT 1")
        assert spawned == 0
        # The first backoff (0.5 s) elapsing is the behaviour under test; the engine reads time.monotonic(), no
        # clock to inject.
        await asyncio.sleep(0.6)
        with pytest.raises(StoreError, match="open failed"):
            await store.query("SELECT 1")
        assert spawned == 1
    finally:
        await store.close()


async def test_the_engine_outlives_group_signals_until_its_sidecar_lets_it_go(tmp_path: Path) -> None:
    store = await open_store(f"chdb://{tmp_path / 'data'}", "eng", engine="process")
    pid = engine_pid(store)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):  # what Ctrl-C or systemd send to the whole group
            os.kill(pid, sig)
        # No pause needed: a signal is pending once kill() returns, and the engine acts on it (dies, by default)
        # before its next system call returns, so it cannot answer the query below without having survived both.
        assert (
            await store.query("SELECT 1 AS one") == [{"one": 1}] and engine_pid(store) == pid
        )  # still serving the shutdown flush
    finally:
        await store.close()
    await wait_exit(pid)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
async def test_an_impossible_cpu_set_is_a_structured_warning_and_the_engine_still_runs(tmp_path: Path) -> None:
    import json

    script = textwrap.dedent(f"""
        import asyncio
        from seamline.logs import setup_logging
        from seamline.record.store import open_store
        async def main():
            setup_logging("INFO")
            store = await open_store("chdb://{tmp_path / "data"}", "eng", engine="process", cpus=[4096])
            print(await store.query("SELECT 1 AS one"), flush=True)
            await store.close()
        asyncio.run(main())
    """)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and b"[{'one': 1}]" in out
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    warning = next(r for r in lines if r["msg"].startswith("storage.embedded_cpus not applied"))
    assert warning["level"] == "warning" and warning["cpus"] == "4096"
