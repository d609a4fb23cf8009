"""Guarded replay through real sockets: a recording sidecar (chdb), counting upstream apps, the admin API and the CLI.

Each replay goes through the sidecar's own proxy listener, so the guards apply and the replay is recorded with
`replay_of`; the credentials are the config's, never the redacted record's."""

from __future__ import annotations

import asyncio
import io
import secrets
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from aiohttp import web
from conftest import proxy_config
from support.chdb_path import chdb_url, unique_database
from support.upstream import Upstream

from seamline.cli import build_parser

TOKEN = secrets.token_urlsafe(32)
CREDENTIAL = "Bearer sk_live_from_config"
HANDOFFS: dict[str, Any] = {
    "crm.get_contact": {"upstream": "crm", "match": "GET /contacts/{id}", "safety": "safe_to_repeat", "retry": False},
    "billing.charge": {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"},
    "billing.refund": {"upstream": "billing", "match": "POST /v1/refunds", "safety": "safe_once"},
    "billing.import": {"upstream": "billing", "match": "POST /v1/imports", "safety": "safe_to_repeat",
                       "capture": {"max_body_bytes": 16}},
}  # fmt: skip


def count(up: Upstream, path: str) -> int:
    return len([r for r in up.received if r.path_qs == path])


def flaky(fails: int, status: int = 503, body: Any = None):
    """Answers `status` to the first `fails` calls, then 200 with `body`."""
    seen = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        seen["n"] += 1
        if seen["n"] <= fails:
            return web.json_response({"error": "busy"}, status=status)
        return web.json_response(body or {"id": f"x_{seen['n']}"}, status=200)

    return handler


@pytest.fixture
async def sidecar(upstream, make_sidecar, tmp_path, request):
    storage = {"enabled": True, "clickhouse_url": chdb_url(), "database": unique_database("replay"),
               "spool_dir": str(tmp_path / "spool"), "flush_interval_ms": 20}  # fmt: skip
    extra: dict[str, Any] = {}
    if getattr(request, "param", None) == "token":
        extra["admin"] = {"token": TOKEN}
    cfg = proxy_config({"crm": upstream.url + "/crm", "billing": upstream.url}, handoffs=HANDOFFS, storage=storage, **extra)
    billing = cfg.upstreams["billing"].model_copy(update={"headers": {"Authorization": CREDENTIAL}})
    cfg = cfg.model_copy(update={"upstreams": {**cfg.upstreams, "billing": billing}})
    return await make_sidecar(cfg)


async def call(sc: Any, method: str, path: str, run_id: str, body: Any = None, **headers: str) -> int:
    async with aiohttp.ClientSession() as s:
        data = orjson.dumps(body) if body is not None else None
        h = {"X-Run-ID": run_id, **({"Content-Type": "application/json"} if data else {}), **headers}
        async with s.request(method, sc.proxy_url + path, data=data, headers=h) as r:
            await r.read()
            return r.status


async def rows(sc: Any, run_id: str) -> list[dict[str, Any]]:
    assert await sc.flush(30)
    got = await sc.store.query(
        "SELECT toString(event_id) AS event_id, handoff, outcome, status, replay_of, guard, request_headers, attempt "
        "FROM handoffs WHERE run_id = {r:String} ORDER BY ts",
        {"r": run_id},
    )
    return list(got)


async def replay(sc: Any, event_id: str, token: str | None = None, **options: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=sc.admin_url, timeout=30) as client:
        return await client.post(f"/api/events/{event_id}/replay", json=options, headers=headers)


async def test_failed_safe_get_is_replayed_to_the_upstream_and_recorded_with_replay_of(sidecar, upstream):
    upstream.routes["/crm/contacts/7"] = flaky(1, body={"id": "c_7"})
    assert await call(sidecar, "GET", "/crm/contacts/7", "run-get") == 503
    (first,) = await rows(sidecar, "run-get")
    assert first["outcome"] == "http_error"

    resp = await replay(sidecar, first["event_id"])
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["status"] == 200 and result["outcome"] == "ok" and result["run_id"] == "run-get"
    assert count(upstream, "/crm/contacts/7") == 2
    second = (await rows(sidecar, "run-get"))[1]
    assert second["replay_of"] == first["event_id"] and second["event_id"] == result["replay_event_id"]
    assert second["outcome"] == "ok" and second["attempt"] == 1
    assert upstream.last.header("X-Seamline-Replay") is None  # the mark never goes upstream


async def test_never_repeat_needs_force_and_a_key_and_the_guard_protects_the_replay(sidecar, upstream):
    upstream.routes["/v1/charges"] = flaky(1, status=502)
    status = await call(sidecar, "POST", "/billing/v1/charges", "run-charge", {"amount": 500},
                        Authorization="Bearer client-secret-token")  # fmt: skip
    assert status == 502
    (first,) = await rows(sidecar, "run-charge")
    assert first["request_headers"]["authorization"] != "Bearer client-secret-token"  # redacted in the record

    refused = await replay(sidecar, first["event_id"])
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/replay-needs-force")
    no_key = await replay(sidecar, first["event_id"], force=True)
    assert no_key.status_code == 409 and no_key.json()["type"].endswith("/replay-needs-idempotency-key")
    assert count(upstream, "/v1/charges") == 1  # nothing sent

    once = (await replay(sidecar, first["event_id"], force=True, idempotency_key="replay-1")).json()
    assert once["status"] == 200 and once["outcome"] == "ok" and not once["replayed_by_guard"]
    sent = upstream.last
    assert sent.header("Authorization") == CREDENTIAL  # the config's credential, not the record's
    assert sent.header("Idempotency-Key") == "replay-1" and sent.body == b'{"amount":500}'
    assert not any("REDACTED" in v for _, v in sent.headers)

    again = (await replay(sidecar, first["event_id"], force=True, idempotency_key="replay-1")).json()
    assert again["replayed_by_guard"] and again["status"] == 200 and again["guard"] == "replayed"
    assert count(upstream, "/v1/charges") == 2  # the original and one replay: the second replay was answered by the guard
    recorded = await rows(sidecar, "run-charge")
    assert [r["replay_of"] for r in recorded] == ["", first["event_id"], first["event_id"]]


async def test_safe_once_replay_needs_the_original_key_or_a_new_one(sidecar, upstream):
    upstream.routes["/v1/refunds"] = flaky(1, status=500)
    await call(sidecar, "POST", "/billing/v1/refunds", "run-refund", {"charge": "ch_1"})  # no key
    await call(sidecar, "POST", "/billing/v1/refunds", "run-refund", {"charge": "ch_2"}, **{"Idempotency-Key": "rf-2"})
    no_key, keyed = await rows(sidecar, "run-refund")
    refused = await replay(sidecar, no_key["event_id"])
    assert refused.status_code == 409 and refused.json()["type"].endswith("/replay-needs-idempotency-key")
    ok = (await replay(sidecar, keyed["event_id"])).json()  # the original key, the original call's result kept: answered
    assert ok["status"] == 200 and upstream.last.header("Idempotency-Key") == "rf-2"
    assert (await replay(sidecar, no_key["event_id"], idempotency_key="rf-new")).json()["status"] == 200


async def test_a_truncated_body_is_refused_and_nothing_is_sent(sidecar, upstream):
    await call(sidecar, "POST", "/billing/v1/imports", "run-big", {"rows": ["a" * 40]})
    (row,) = await rows(sidecar, "run-big")
    resp = await replay(sidecar, row["event_id"])
    assert resp.status_code == 409 and resp.json()["type"].endswith("/replay-body-not-captured")
    assert count(upstream, "/v1/imports") == 1


async def test_unknown_event_and_malformed_requests(sidecar):
    missing = await replay(sidecar, "0190f2a4-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/event-not-found")
    async with httpx.AsyncClient(base_url=sidecar.admin_url, timeout=30) as client:
        bad = await client.post("/api/events/not-a-uuid/replay", json={})
        form = await client.post("/api/events/0190f2a4-0000-7000-8000-000000000000/replay", data={"force": "true"})
        typed = await client.post("/api/events/0190f2a4-0000-7000-8000-000000000000/replay", json={"force": "yes"})
    assert bad.status_code == 400
    assert form.status_code == 415  # a cross-origin form cannot trigger a replay
    assert typed.status_code == 400 and "force" in typed.json()["detail"]


@pytest.mark.parametrize("sidecar", ["token"], indirect=True)
async def test_the_replay_endpoint_needs_the_admin_token(sidecar, upstream):
    await call(sidecar, "GET", "/crm/contacts/1", "run-tok")
    (row,) = await rows(sidecar, "run-tok")
    without = await replay(sidecar, row["event_id"])
    assert without.status_code == 401 and without.headers["content-type"] == "application/problem+json"
    wrong = await replay(sidecar, row["event_id"], token="x" * 40)
    assert wrong.status_code == 401
    assert count(upstream, "/crm/contacts/1") == 1
    ok = await replay(sidecar, row["event_id"], token=TOKEN)
    assert ok.status_code == 200 and count(upstream, "/crm/contacts/1") == 2


async def test_a_caller_cannot_forge_a_replay_mark(sidecar, upstream):
    await call(sidecar, "GET", "/crm/contacts/2", "run-forge")
    (row,) = await rows(sidecar, "run-forge")
    forged = f"{row['event_id']};0190f2a4-0000-7000-8000-000000000001;9999999999;AAAA"
    await call(sidecar, "GET", "/crm/contacts/2", "run-forge", **{"X-Seamline-Replay": forged})
    later = (await rows(sidecar, "run-forge"))[1]
    assert later["replay_of"] == "" and later["event_id"] != "0190f2a4-0000-7000-8000-000000000001"
    assert upstream.last.header("X-Seamline-Replay") is None
    # A genuine mark (signed by this sidecar) cannot be reused either: it is single-use.
    mark = sidecar.replay_marks.sign(row["event_id"], "0190f2a4-0000-7000-8000-000000000002", "run-forge")
    assert sidecar.replay_marks.verify(mark, "run-forge") is not None
    assert sidecar.replay_marks.verify(mark, "run-forge") is None
    assert sidecar.replay_marks.verify(sidecar.replay_marks.sign(row["event_id"], row["event_id"], "run-a"), "run-b") is None


async def _cli(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(args.func, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_cli_replays_a_runs_failed_events_and_prints_a_summary(sidecar, upstream, monkeypatch, tmp_path):
    for var in ("SEAMLINE_ADMIN_TOKEN", "SEAMLINE_ADMIN_TOKEN_FILE", "SEAMLINE_ADMIN_URL", "SEAMLINE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    upstream.routes["/crm/contacts/3"] = flaky(1)
    upstream.routes["/v1/charges"] = flaky(1, status=502)
    await call(sidecar, "GET", "/crm/contacts/3", "run-cli")
    await call(sidecar, "POST", "/billing/v1/charges", "run-cli", {"amount": 1})
    await call(sidecar, "GET", "/crm/contacts/4", "run-cli")  # ok: not replayed
    assert await sidecar.flush(30)

    code, out, err = await _cli("replay", "--run", "run-cli", "--failed", "--admin-url", sidecar.admin_url)
    assert code == 4, err  # the never_repeat charge was refused without --force
    assert "crm.get_contact" in out and "replay-needs-force" in out and "2 event(s): 1 replayed (1 ok), 1 refused" in out
    assert count(upstream, "/crm/contacts/3") == 2 and count(upstream, "/v1/charges") == 1

    code, out, err = await _cli(
        "replay", "--run", "run-cli", "--failed", "--force", "--idempotency-key", "fix-1", "--admin-url", sidecar.admin_url
    )
    assert code == 0, err + out
    assert "1 event(s): 1 replayed (1 ok)" in out  # the recovered GET is not replayed again
    assert count(upstream, "/v1/charges") == 2
    assert upstream.last.header("Idempotency-Key") == "fix-1"  # one event: the key as given

    code, out, _ = await _cli("replay", "--run", "run-cli", "--failed", "--admin-url", sidecar.admin_url)
    assert code == 0 and "no failed events left" in out
