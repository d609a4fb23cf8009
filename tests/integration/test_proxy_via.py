"""Via on every forwarded request, and a loop back through the same Seamline cut at the second hop (508)."""

from __future__ import annotations

import aiohttp
import pytest
from conftest import proxy_config
from support.chdb_path import chdb_url, unique_database
from support.servers import free_ports


async def test_via_names_seamline_after_the_callers_own(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"instance": "sc-7"}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/v1/x", headers={"Via": "1.1 edge.example"}) as r:
            assert r.status == 200
            assert "Via" not in r.headers  # the response reaches the client as the upstream sent it
    assert upstream.last.header_all("Via") == ["1.1 edge.example", "1.1 seamline-sc-7"]


@pytest.mark.parametrize("recorded", [False, True])
async def test_a_request_that_loops_back_through_seamline_is_stopped_at_the_second_hop(make_sidecar, tmp_path, recorded):
    (port,) = free_ports(1)
    extra = {}
    database = unique_database("via")
    if recorded:
        extra["storage"] = {"enabled": True, "clickhouse_url": chdb_url(), "database": database,
                            "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20}  # fmt: skip
    cfg = proxy_config({"self": f"http://127.0.0.1:{port}/self"}, server={"port": port, "instance": "sc-loop"}, **extra)
    sc = await make_sidecar(cfg)
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/self/x", headers={"X-Run-ID": "run-loop"}) as r:
            body = await r.json(content_type=None)
    assert r.status == 508
    assert body["type"].endswith("/loop-detected") and body["error_class"] == "loop_detected"
    assert "seamline-sc-loop" in body["detail"]
    if recorded:
        assert await sc.recorder.flush(30)
        rows = await sc.store.query(
            "SELECT outcome, error_class, status FROM handoffs WHERE run_id = {r:String} ORDER BY ts",
            {"r": "run-loop"},
        )
        # Two hops, not dozens: the inner one refused by Seamline itself, the outer one got its 508.
        assert [(x["outcome"], x["error_class"]) for x in rows] == [("http_error", "server_error"), ("refused", "loop_detected")]
