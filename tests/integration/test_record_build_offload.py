"""Events built in the engine process (the default with the embedded engine): same rows as built in the proxy,
and when the engine cannot build, the proxy builds them: nothing lost, nothing duplicated."""

from __future__ import annotations

import aiohttp
import pytest
from conftest import proxy_config

pytestmark = pytest.mark.slow

CONTRACT = {
    "status": [200],
    "assert": {"paid": "response.body.status == 'succeeded'"},
    "extract": {"charge_id": "response.body.id"},
}


@pytest.fixture
async def offloaded(upstream, make_sidecar, tmp_path, monkeypatch):
    monkeypatch.delenv("SEAMLINE_STORAGE__EMBEDDED_ENGINE")  # the default: an engine process (see conftest)
    storage = {
        "enabled": True, "clickhouse_url": f"chdb://{tmp_path / 'data'}", "database": "off",
        "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20,
        # A cold engine's first insert holds it ~1 s here, past the offload's share of the default max_unacked_ms;
        # these tests are about where events are built, not about a stalled engine (test_record_stall_kill.py).
        "max_unacked_ms": 10_000,
    }  # fmt: skip
    handoffs = {"billing.charge": {"upstream": "billing", "match": "POST /v1/charges", "contract": CONTRACT}}
    upstream.routes["/v1/charges"] = _declined
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, handoffs=handoffs, storage=storage))
    assert sc.offload is not None
    return sc


async def _declined(request):
    from aiohttp import web

    return web.json_response({"id": "ch_9", "status": "declined", "echo": request.headers.get("X-Api-Key", "")})


async def send(sc, run_id: str, n: int) -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            headers = {"X-Run-ID": run_id, "X-Api-Key": "sk_live_secret_value_1", "Authorization": "Bearer tok_abcdef123456"}
            async with s.post(
                f"{sc.proxy_url}/billing/v1/charges?api_key=qs_secret_42&i={i}", json={"amount": i}, headers=headers
            ) as r:
                assert r.status == 200


async def rows(sc, run_id: str) -> list[dict]:
    assert await sc.flush(30)
    return await sc.store.query("SELECT * FROM handoffs WHERE run_id = {r:String} ORDER BY ts", {"r": run_id})


def built(sc, where: str) -> float:
    return sc.registry.get_sample_value("seamline_record_events_built_total", {"where": where}) or 0.0


async def test_engine_built_rows_carry_contract_outcome_extraction_and_redaction(offloaded) -> None:
    sc = offloaded
    await send(sc, "off-1", 5)
    got = await rows(sc, "off-1")
    assert len(got) == 5 and built(sc, "engine") == 5 and built(sc, "proxy") == 0
    for row in got:
        assert row["handoff"] == "billing.charge" and row["route"] == "/v1/charges"  # target resolved again in the engine
        assert (row["outcome"], row["error_class"]) == ("silent_failure", "contract")
        assert row["external_ids"] == {"charge_id": "ch_9"}
        text = repr(row)
        assert "sk_live_secret_value_1" not in text and "tok_abcdef123456" not in text and "qs_secret_42" not in text


async def test_a_batch_the_engine_does_not_build_in_time_is_built_in_the_proxy(offloaded) -> None:
    sc = offloaded
    sc.offload.timeout_s = 1e-6  # the engine runs, but no reply can arrive in time
    await send(sc, "off-2", 6)
    got = await rows(sc, "off-2")
    assert built(sc, "proxy") == 6 and built(sc, "engine") == 0
    assert len({r["event_id"] for r in got}) == len(got) == 6
    assert all(r["outcome"] == "silent_failure" and "sk_live_secret_value_1" not in repr(r) for r in got)


async def test_an_exchange_the_engine_cannot_build_is_built_in_the_proxy(offloaded, upstream) -> None:
    sc = offloaded
    from seamline.config.models import Config

    # The engine now knows another config: the billing upstream is unknown there, so every exchange fails there.
    other = Config(upstreams={"other": {"base_url": upstream.url, "allow_private": True}})
    await sc.offload.configure(other, "elsewhere")
    await send(sc, "off-3", 4)
    got = await rows(sc, "off-3")
    assert built(sc, "proxy") == 4 and len(got) == 4
    assert all(r["proxy_instance"] == sc.instance for r in got)
