"""Loop detection through a real sidecar: a run calling one handoff over and over is flagged after the threshold,
blocked with `block: true` (the upstream sees exactly the threshold), and recorded on real chdb; shared through a
real Redis by two sidecars, and counted in-process when Redis is down."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from conftest import proxy_config
from support.chdb_path import chdb_url, unique_database

LIMIT = 5


async def start(make_sidecar, upstream, tmp_path, *, block: bool, record: bool = True, **extra: Any):
    storage: dict[str, Any] = {"enabled": False}
    if record:
        storage = {
            "enabled": True, "clickhouse_url": chdb_url(), "database": unique_database("loops"),
            "spool_dir": str(tmp_path / f"spool-{time.monotonic_ns()}"), "flush_interval_ms": 20,
        }  # fmt: skip
    handoffs = {
        "crm.sync": {"upstream": "crm", "match": "PATCH /contacts/{id}", "loops": {"max_calls_per_run": LIMIT, "block": block}},
    }
    return await make_sidecar(proxy_config({"crm": upstream.url}, handoffs=handoffs, storage=storage, **extra))


async def patch(sc, run_id: str | None = "run-loop") -> tuple[int, Any]:
    headers = {"X-Run-ID": run_id} if run_id else {}
    async with aiohttp.ClientSession() as s:
        async with s.patch(sc.proxy_url + "/crm/contacts/ct_1", json={"n": 1}, headers=headers) as r:
            return r.status, await r.json(content_type=None)


async def rows_of(sc, run_id: str) -> list[dict[str, Any]]:
    assert await sc.recorder.flush(30)
    return await sc.store.query(
        "SELECT status, outcome, error_class, guard, loop_suspected FROM handoffs WHERE run_id = {r:String} ORDER BY ts",
        {"r": run_id},
    )


async def test_a_looping_run_is_blocked_at_the_threshold(upstream, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream, tmp_path, block=True)
    answers = [await patch(sc) for _ in range(LIMIT + 3)]
    assert [s for s, _ in answers] == [200] * LIMIT + [429] * 3
    assert len(upstream.received) == LIMIT  # the loop stopped at the threshold
    body = answers[LIMIT][1]
    assert body["type"].endswith("/loop-suspected") and body["error_class"] == "loop_suspected"
    assert (body["run_id"], body["handoff"], body["calls"], body["window_s"]) == ("run-loop", "crm.sync", LIMIT + 1, 600.0)
    assert "'run-loop'" in body["detail"] and "6 times within 600 s" in body["detail"]
    assert (await patch(sc, "run-other"))[0] == 200  # another run is not affected
    rows = await rows_of(sc, "run-loop")
    assert [r["loop_suspected"] for r in rows] == [0] * LIMIT + [1] * 3
    assert {(r["outcome"], r["error_class"], r["guard"]) for r in rows[LIMIT:]} == {("refused", "loop_suspected", "loop_blocked")}
    assert {(r["outcome"], r["guard"]) for r in rows[:LIMIT]} == {("ok", "")}


async def test_without_block_calls_are_flagged_and_forwarded(upstream, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream, tmp_path, block=False)
    assert [(await patch(sc))[0] for _ in range(LIMIT + 2)] == [200] * (LIMIT + 2)
    assert len(upstream.received) == LIMIT + 2
    rows = await rows_of(sc, "run-loop")
    assert [(r["outcome"], r["loop_suspected"]) for r in rows] == [("ok", 0)] * LIMIT + [("ok", 1)] * 2


async def test_calls_without_a_run_id_of_the_callers_are_never_counted(upstream, make_sidecar, tmp_path):
    sc = await start(make_sidecar, upstream, tmp_path, block=True, record=False)
    assert [(await patch(sc, None))[0] for _ in range(LIMIT * 2)] == [200] * (LIMIT * 2)  # a new run ID each


async def test_two_sidecars_share_the_count_through_redis(upstream, make_sidecar, tmp_path, redis_server):
    a = await start(make_sidecar, upstream, tmp_path, block=True, record=False, redis_url=redis_server.url)
    b = await start(make_sidecar, upstream, tmp_path, block=True, record=False, redis_url=redis_server.url)
    statuses = [(await patch(sc))[0] for sc in (a, b) * 4]  # alternating: neither sees more than 4 itself
    assert statuses == [200] * LIMIT + [429] * 3
    assert len(upstream.received) == LIMIT


async def test_redis_down_counts_in_process_and_never_blocks_traffic(upstream, make_sidecar, tmp_path, redis_server):
    sc = await start(make_sidecar, upstream, tmp_path, block=True, record=False, redis_url=redis_server.url, redis_timeout=0.3)
    assert (await patch(sc))[0] == 200  # counted in Redis
    redis_server.pause()  # frozen: commands time out rather than fail at once
    try:
        t0 = time.monotonic()
        statuses = [(await patch(sc))[0] for _ in range(LIMIT + 1)]
        elapsed = time.monotonic() - t0
    finally:
        redis_server.resume()
    # Counted here from the first timeout on (Redis is left alone meanwhile): the in-process count blocks at LIMIT.
    assert statuses == [200] * LIMIT + [429]
    assert elapsed < 0.3 + 2.0  # one redis_timeout, not one per call
