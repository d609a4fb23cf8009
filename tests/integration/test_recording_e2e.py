"""Through the proxy into the real engine: every rule of a contract, every outcome, redaction, CONNECT.

Real upstream apps on 127.0.0.1 return crafted responses; each test reads the stored row back.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import proxy_config
from support.chdb_path import chdb_url, unique_database
from support.rawhttp import raw_request
from support.waiting import wait_for

CHARGE_CONTRACT = {
    "status": [200, 201],
    "request_schema": {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
    },
    "response_schema": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string"},
            "amount": {"type": "integer"},
            "currency": {"type": "string"},
        },
    },
    "assert": {"payment_succeeded": "response.body.status == 'succeeded'"},
    "echo": ["amount", "currency"],
    "extract": {"charge_id": "response.body.id"},
}
CONTACT_CONTRACT = {
    "status": [201],
    "response_schema": {
        "type": "object",
        "required": ["id", "email"],
        "properties": {"id": {"type": "string"}, "email": {"type": "string"}, "name": {"type": "string"}},
    },
    "echo": ["email", "name"],
    "extract": {"contact_id": "response.body.id"},
}


@pytest.fixture
async def rec(upstream, make_sidecar, tmp_path):
    """A recording sidecar (chdb, one database per test) in front of `upstream`."""
    database = unique_database("e2e")

    async def make(**extra: Any):
        handoffs = {
            "billing.charge": {
                "upstream": "billing",
                "match": "POST /v1/charges",
                "safety": "never_repeat",
                "contract": CHARGE_CONTRACT,
            },
            "billing.charge_strict": {
                "upstream": "billing",
                "match": "POST /v1/strict",
                "contract": {**CHARGE_CONTRACT, "enforce": "request"},
            },
            "crm.create_contact": {"upstream": "crm", "match": "POST /contacts", "contract": CONTACT_CONTRACT},
        }
        storage = {
            "enabled": True,
            "clickhouse_url": chdb_url(),
            "database": database,
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_ms": 20,
        }
        ups = {"billing": upstream.url, "crm": upstream.url + "/crm"}
        override = extra.pop("upstreams", None)
        cfg = proxy_config(ups, handoffs=handoffs, storage=storage, **extra)
        if override:
            cfg = cfg.model_copy(
                update={
                    "upstreams": {**cfg.upstreams, **{n: type(cfg.upstreams[n]).model_validate(u) for n, u in override.items()}}
                }
            )
        return await make_sidecar(cfg)

    return make


async def rows_of(sc, run_id: str) -> list[dict[str, Any]]:
    assert await sc.recorder.flush(30)
    return await sc.store.query("SELECT * FROM handoffs WHERE run_id = {r:String} ORDER BY ts", {"r": run_id})


def reply(
    status: int = 200,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    ctype: str = "application/json",
):
    import orjson

    async def handler(request: web.Request) -> web.Response:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
        return web.Response(status=status, body=data, headers={"Content-Type": ctype, **(headers or {})})

    return handler


async def post(
    sc, path: str, run_id: str, json_body: Any = None, data: bytes | None = None, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as s:
        kw: dict[str, Any] = {"json": json_body} if data is None else {"data": data}
        async with s.post(sc.proxy_url + path, headers={"X-Run-ID": run_id, **(headers or {})}, **kw) as r:
            await r.read()
            return r


async def test_payment_declined_with_200_is_a_silent_failure(rec, upstream):
    upstream.routes["/v1/charges"] = reply(200, {"id": "ch_1", "status": "declined", "amount": 500, "currency": "eur"})
    sc = await rec()
    r = await post(sc, "/billing/v1/charges", "run-declined", {"amount": 500, "currency": "eur"})
    assert r.status == 200  # relayed unchanged: the app sees what the upstream said
    (row,) = await rows_of(sc, "run-declined")
    assert row["outcome"] == "silent_failure" and row["error_class"] == "contract"
    assert "assert:payment_succeeded" in row["violations"]
    assert row["external_ids"] == {"charge_id": "ch_1"}
    assert row["safety"] == "never_repeat" and row["handoff"] == "billing.charge"


async def test_successful_payment_is_ok_with_its_external_id(rec, upstream):
    upstream.routes["/v1/charges"] = reply(201, {"id": "ch_2", "status": "succeeded", "amount": 500, "currency": "eur"})
    sc = await rec()
    await post(sc, "/billing/v1/charges", "run-ok", {"amount": 500, "currency": "eur"})
    (row,) = await rows_of(sc, "run-ok")
    assert (row["outcome"], row["error_class"], row["violations"]) == ("ok", "none", [])
    assert row["external_ids"] == {"charge_id": "ch_2"}
    assert row["unknown_fields"] == [] and row["missing_fields"] == []


async def test_crm_that_drops_a_field_is_caught_by_echo_and_drift(rec, upstream):
    upstream.routes["/crm/contacts"] = reply(201, {"id": "c_9", "name": "Ada", "tier": "gold"})
    sc = await rec()
    await post(sc, "/crm/contacts", "run-crm", {"email": "ada@example.com", "name": "Ada"})
    (row,) = await rows_of(sc, "run-crm")
    assert row["outcome"] == "silent_failure"
    assert "echo:missing:email" in row["violations"]
    assert "schema:/email:required" in row["violations"]
    assert row["missing_fields"] == ["email"]
    assert row["unknown_fields"] == ["tier"]


async def test_expired_token_401_is_auth_expired(rec, upstream):
    upstream.routes["/v1/charges"] = reply(
        401,
        {"error": "unauthorized"},
        headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'},
    )
    sc = await rec()
    await post(sc, "/billing/v1/charges", "run-401", {"amount": 5, "currency": "eur"})
    (row,) = await rows_of(sc, "run-401")
    assert (row["outcome"], row["error_class"]) == ("http_error", "auth_expired")


async def test_429_records_rate_limited_and_retry_after(rec, upstream):
    upstream.routes["/v1/charges"] = reply(429, {"error": "slow down"}, headers={"Retry-After": "7"})
    sc = await rec()
    await post(sc, "/billing/v1/charges", "run-429", {"amount": 5, "currency": "eur"})
    (row,) = await rows_of(sc, "run-429")
    assert (row["outcome"], row["error_class"], row["retry_after_s"]) == ("http_error", "rate_limited", 7.0)


async def test_json_content_type_that_is_not_json(rec, upstream):
    upstream.routes["/v1/charges"] = reply(200, raw=b"<html>oops</html>")
    sc = await rec()
    await post(sc, "/billing/v1/charges", "run-notjson", {"amount": 5, "currency": "eur"})
    (row,) = await rows_of(sc, "run-notjson")
    assert row["outcome"] == "silent_failure"
    assert "body:not_json" in row["violations"]
    assert row["response_body"] == "<html>oops</html>"


async def test_empty_body_on_success(rec, upstream):
    upstream.routes["/v1/charges"] = reply(200, raw=b"")
    sc = await rec()
    await post(sc, "/billing/v1/charges", "run-empty", {"amount": 5, "currency": "eur"})
    (row,) = await rows_of(sc, "run-empty")
    assert row["outcome"] == "silent_failure" and "body:empty" in row["violations"]


async def test_body_over_the_capture_cap_is_unvalidated_with_true_size(rec, upstream):
    big = {"id": "ch_big", "status": "succeeded", "amount": 5, "currency": "eur", "pad": "x" * 5000}
    upstream.routes["/v1/charges"] = reply(200, big)
    sc = await rec(capture={"max_body_bytes": 1024})
    await post(sc, "/billing/v1/charges", "run-big", {"amount": 5, "currency": "eur"})
    (row,) = await rows_of(sc, "run-big")
    assert row["outcome"] == "unvalidated"
    assert row["attributes"]["unvalidated_reason"] == "body_truncated"
    assert row["response_truncated"] is True
    assert row["response_bytes"] > 5000
    assert len(row["response_body"]) <= 1100


async def test_request_breaking_its_contract_is_recorded_but_forwarded_by_default(rec, upstream):
    upstream.routes["/v1/charges"] = reply(200, {"id": "ch_3", "status": "succeeded"})
    sc = await rec()
    r = await post(sc, "/billing/v1/charges", "run-req", {"amount": "five"})
    assert r.status == 200
    assert len(upstream.received) == 1
    (row,) = await rows_of(sc, "run-req")
    assert row["outcome"] == "contract_violation"
    assert "request:schema:/currency:required" in row["violations"]
    assert "request:schema:/amount:type" in row["violations"]


async def test_enforce_request_rejects_with_422_and_never_forwards(rec, upstream):
    sc = await rec()
    async with aiohttp.ClientSession() as s:
        async with s.post(sc.proxy_url + "/billing/v1/strict", json={"amount": 5}, headers={"X-Run-ID": "run-422"}) as r:
            assert r.status == 422
            assert r.content_type == "application/problem+json"
            body = await r.json()
    assert "request:schema:/currency:required" in body["violations"]
    assert upstream.received == []
    (row,) = await rows_of(sc, "run-422")
    assert (row["outcome"], row["error_class"], row["status"]) == ("contract_violation", "contract", 422)


async def test_enforce_request_forwards_a_valid_request_unchanged(rec, upstream):
    upstream.routes["/v1/strict"] = reply(200, {"id": "ch_s", "status": "succeeded", "amount": 5, "currency": "eur"})
    sc = await rec()
    r = await post(sc, "/billing/v1/strict", "run-strict-ok", {"amount": 5, "currency": "eur"})
    assert r.status == 200
    assert upstream.last.body == b'{"amount": 5, "currency": "eur"}'
    (row,) = await rows_of(sc, "run-strict-ok")
    assert row["outcome"] == "ok"


async def test_enforce_request_validator_crash_is_recorded_but_forwarded(rec, upstream):
    """The live 422 decision is the contract's own: a request validator that raises rejects nothing."""
    upstream.routes["/v1/strict"] = reply(200, {"id": "ch_s", "status": "succeeded", "amount": 5, "currency": "eur"})
    sc = await rec()

    class Broken:
        def is_valid(self, _: Any) -> bool:
            raise ValueError("validator bug")

    sc.validator.contracts["billing.charge_strict"]._req_validator = Broken()  # a crash of the validator library
    r = await post(sc, "/billing/v1/strict", "run-strict-crash", {"amount": 5, "currency": "eur"})
    assert r.status == 200
    assert upstream.last.body == b'{"amount": 5, "currency": "eur"}'
    (row,) = await rows_of(sc, "run-strict-crash")
    assert row["status"] == 200 and row["outcome"] != "contract_violation"
    assert "request:validator_error:ValueError" in row["violations"]


async def test_error_detail_is_stored_short_and_redacted(rec):
    from support.canned import CannedServer

    secret = "sk_live_51Habc0123456789SECRET"
    garbage = b"HTTP/1.1 2OO OK api_key=" + secret.encode() + b" " + b"x" * 70_000
    server = await CannedServer({"/v1/x": garbage}).start()
    try:
        sc = await rec(upstreams={"billing": {"base_url": server.url, "allow_private": True}})
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/billing/v1/x", headers={"X-Run-ID": "run-garbage"}) as r:
                assert r.status == 502
                detail = (await r.json(content_type=None))["detail"]
        (row,) = await rows_of(sc, "run-garbage")
    finally:
        await server.stop()
    assert row["error_detail"] == detail
    assert 0 < len(row["error_detail"]) <= 512 and secret not in row["error_detail"]


async def test_transport_errors_are_recorded(rec, upstream):
    release = asyncio.Event()

    async def hang(request):
        await release.wait()
        return web.Response()

    upstream.routes["/v1/charges"] = hang
    sc = await rec(
        upstreams={
            "billing": {"base_url": upstream.url, "allow_private": True, "timeouts": {"connect": 1, "read": 0.2, "total": 0.3}}
        }
    )
    try:
        r = await post(sc, "/billing/v1/charges", "run-timeout", {"amount": 5, "currency": "eur"})
        assert r.status == 504
    finally:
        release.set()
    (row,) = await rows_of(sc, "run-timeout")
    assert (row["outcome"], row["error_class"], row["status"]) == ("transport_error", "timeout", 504)


async def test_unknown_upstream_and_refusals_are_recorded_too(rec, upstream):
    sc = await rec()
    async with aiohttp.ClientSession() as s:
        await (await s.get(sc.proxy_url + "/nowhere/x", headers={"X-Run-ID": "run-404"})).read()
    (row,) = await rows_of(sc, "run-404")
    assert (row["status"], row["error_class"]) == (404, "unknown_upstream")
    assert row["outcome"] == "refused"  # Seamline's own answer, not an upstream's http_error


TOKEN = "tok-refusals-0123456789"


async def test_seamline_refusals_are_recorded_as_refused_with_their_own_class(rec, upstream):
    """Unknown upstream, refused target, too large, unauthorized, malformed: outcome refused.

    None of them is an upstream failure (the upstream never saw them), so none may be http_error/transport_error;
    an upstream's own 404 stays http_error: the decision is the error class, not the status.
    """
    upstream.routes["/v1/missing"] = reply(404, {"error": "no such thing"})
    sc = await rec(
        server={"max_request_body_bytes": 1000, "client_tokens": {TOKEN: "checkout"}},
        upstreams={"crm": {"base_url": upstream.url + "/crm", "allow_private": False}},  # loopback: a refused target
    )
    auth = {"X-Seamline-Token": TOKEN}
    async with aiohttp.ClientSession() as s:
        for run_id, method, path, headers, data, status in (
            ("run-unknown", "GET", "/nowhere/x", auth, None, 404),
            ("run-forbidden", "POST", "/crm/contacts", auth, b"{}", 403),
            ("run-too-large", "POST", "/billing/v1/charges", auth, b"x" * 5000, 413),
            ("run-no-token", "GET", "/billing/v1/charges", {}, None, 401),
            ("run-upstream-404", "GET", "/billing/v1/missing", auth, None, 404),
        ):
            async with s.request(method, sc.proxy_url + path, headers={"X-Run-ID": run_id, **headers}, data=data) as r:
                assert r.status == status, run_id
                await r.read()
    # (An Upgrade was the not-implemented example, a 501; WebSockets are proxied now: test_proxy_websocket.py.)
    malformed = await raw_request(
        sc.proxy_port,
        f"CONNECT nohost HTTP/1.1\r\nHost: x\r\nX-Seamline-Token: {TOKEN}\r\nX-Run-ID: run-malformed\r\n\r\n".encode(),
    )
    assert malformed.status == 400
    assert [r.path_qs for r in upstream.received] == ["/v1/missing"]  # only the real call reached the upstream

    got = {}
    for run_id in ("run-unknown", "run-forbidden", "run-too-large", "run-no-token", "run-malformed", "run-upstream-404"):
        (row,) = await rows_of(sc, run_id)
        got[run_id] = (row["outcome"], row["error_class"], row["status"])
    assert got == {
        "run-unknown": ("refused", "unknown_upstream", 404),
        "run-forbidden": ("refused", "refused", 403),
        "run-too-large": ("refused", "too_large", 413),
        "run-no-token": ("refused", "unauthorized", 401),
        "run-malformed": ("refused", "bad_request", 400),
        "run-upstream-404": ("http_error", "client_error", 404),
    }


async def test_a_secret_in_every_position_is_stored_nowhere(rec, upstream):
    secret = "sk_live_9f8e7d6c5b4a3210"
    basic = base64.b64encode(f"svc:{secret}".encode()).decode()
    card = "4111 1111 1111 1111"
    upstream.routes["/v1/charges"] = reply(
        400,
        {"error": f"invalid key {secret}", "echo": {"password": secret}, "card": card},
        headers={"Set-Cookie": f"session={secret}; HttpOnly", "X-Debug-Token": secret},
    )
    sc = await rec()
    headers = {
        "Authorization": f"Bearer {secret}",
        "Proxy-Authorization": f"Basic {basic}",
        "Cookie": f"sid={secret}; theme=dark",
        "X-Api-Key": secret,
        "X-Client-Secret": secret,
    }
    body = {
        "amount": 5,
        "currency": "eur",
        "nested": {"deep": [{"token": secret, "card_number": card}]},
        "note": f"my key is {secret}",
        "cc": card,
    }
    await post(sc, f"/billing/v1/charges?api_key={secret}&q=1", "run-secret", body, headers=headers)
    rows = await rows_of(sc, "run-secret")
    assert len(rows) == 1
    flat = repr(rows[0])
    assert secret not in flat
    assert basic not in flat
    assert "4111" not in flat.replace(" ", "")
    assert "[REDACTED]" in rows[0]["request_body"]
    assert rows[0]["request_headers"]["authorization"].startswith("Bearer ")
    assert "q=1" in rows[0]["url"]


async def test_non_utf8_and_compressed_bodies_are_recorded_for_reading(rec, upstream):
    import gzip

    upstream.routes["/v1/charges"] = reply(
        200,
        raw=gzip.compress(b'{"id": "ch_gz", "status": "succeeded", "amount": 5, "currency": "eur"}'),
        headers={"Content-Encoding": "gzip"},
    )
    sc = await rec()
    await post(sc, "/billing/v1/charges", "run-gz", {"amount": 5, "currency": "eur"})
    upstream.routes["/v1/binary"] = reply(200, raw=b"\xff\xfe\x00binary", ctype="application/octet-stream")
    await post(sc, "/billing/v1/binary", "run-bin", data=b"\x80\x81\x82 not utf-8", headers={"Content-Type": "text/plain"})
    (gz,) = await rows_of(sc, "run-gz")
    assert gz["outcome"] == "ok" and gz["external_ids"] == {"charge_id": "ch_gz"}
    assert '"ch_gz"' in gz["response_body"]
    (binrow,) = await rows_of(sc, "run-bin")
    assert binrow["response_body"].startswith("[binary") and binrow["request_body"].startswith("[binary")
    assert binrow["handoff"] == "billing.other"


async def test_connect_tunnel_is_recorded_with_host_and_bytes(rec, upstream):
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sc = await rec(upstreams={"billing": {"base_url": f"https://127.0.0.1:{port}", "allow_private": True}})
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Run-ID: run-tunnel\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"12345")
        assert await reader.readexactly(5) == b"12345"
        writer.close()
        async with asyncio.timeout(5):
            while not (rows := await rows_of(sc, "run-tunnel")):
                await sc.recorder.flush(1)
    finally:
        server.close()
    (row,) = rows
    assert row["mode"] == "connect" and row["url"] == f"127.0.0.1:{port}"
    assert row["attributes"]["tunnel_bytes_sent"] == "5"
    assert row["request_body"] == "" and row["response_body"] == ""


async def test_a_lone_event_is_written_by_the_flush_interval_without_any_flush_call(rec, upstream):
    upstream.routes["/v1/charges"] = reply(201, {"id": "ch_t", "status": "succeeded", "amount": 5, "currency": "eur"})
    sc = await rec()  # flush_interval_ms=20, batch_size 2000: only the timer can write this row
    await post(sc, "/billing/v1/charges", "run-timer", {"amount": 5, "currency": "eur"})
    # No flush call to await: the recorder's own timer writing the row is the behaviour under test.
    await wait_for(lambda: sc.store.query("SELECT 1 FROM handoffs WHERE run_id = 'run-timer'"), 30, what="the timer's write")


async def test_chunked_body_over_the_limit_is_413_recorded_too_large_and_the_upload_aborted(rec, upstream):
    """A streamed body that grows past max_request_body_bytes once the upstream is already reading it: 413 for the
    client, `refused`/`too_large` in the row, and the upstream's request aborted mid-body (its reader fails), never
    ended as if the body were whole."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    seen: asyncio.Future[tuple[str, int]] = loop.create_future()

    async def count(request: web.Request) -> web.Response:
        n = 0
        try:
            async for chunk in request.content.iter_any():
                n += len(chunk)
                if not started.done():
                    started.set_result(None)
        except (ConnectionError, aiohttp.ClientPayloadError) as e:
            seen.set_result((type(e).__name__, n))
            raise
        seen.set_result(("complete", n))
        return web.json_response({"n": n})

    upstream.read_body = False
    upstream.routes["/v1/upload"] = count
    sc = await rec(server={"max_request_body_bytes": 500_000})
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    chunk = b"%x\r\n%s\r\n" % (32768, b"x" * 32768)
    try:
        writer.write(b"POST /billing/v1/upload HTTP/1.1\r\nHost: x\r\nX-Run-ID: run-chunked-big\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n" + chunk)
        await asyncio.wait_for(started, 5)  # the upstream is reading the body: the cut happens mid-upload
        writer.write(chunk * 40)  # 1.3 MB more, far past the limit, and never a last chunk
        status, _, rest = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 413 ") and b"application/problem+json" in rest
    finally:
        writer.close()
    how, got = await asyncio.wait_for(seen, 5)
    assert how != "complete" and 0 < got <= 500_000, (how, got)
    (row,) = await rows_of(sc, "run-chunked-big")
    assert (row["outcome"], row["error_class"], row["status"]) == ("refused", "too_large", 413)


async def test_forward_mode_userinfo_is_refused_and_recorded_without_it(rec, upstream):
    sc = await rec()
    target = f"http://evil:pw-SECRET@127.0.0.1:{upstream.port}/v1/charges"
    r = await raw_request(
        sc.proxy_port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Run-ID: run-userinfo\r\nConnection: close\r\n\r\n".encode()
    )
    assert r.status == 400 and r.header("Content-Type") == "application/problem+json"
    assert b"userinfo" in r.body and b"SECRET" not in r.body
    assert upstream.received == []
    (row,) = await rows_of(sc, "run-userinfo")
    assert (row["outcome"], row["error_class"]) == ("refused", "bad_request")
    assert "SECRET" not in row["url"] and "evil" not in row["url"] and row["url"].endswith("/v1/charges")


# -- capture.keep_bodies: whose bodies the record keeps, decided once the outcome is known ---------------------------

DECLINED = {"id": "ch_3", "status": "declined", "amount": 500, "currency": "eur"}
SUCCEEDED = {"id": "ch_4", "status": "succeeded", "amount": 500, "currency": "eur"}


async def test_keep_bodies_failures_drops_an_ok_calls_bodies_and_headers_but_keeps_its_verdict(rec, upstream):
    upstream.routes["/v1/charges"] = reply(201, SUCCEEDED)
    sc = await rec(capture={"keep_bodies": "failures"})
    await post(sc, "/billing/v1/charges", "run-kb-ok", {"amount": 500, "currency": "eur"}, headers={"X-Trace-Me": "1"})
    (row,) = await rows_of(sc, "run-kb-ok")
    assert (row["outcome"], row["violations"], row["external_ids"]) == ("ok", [], {"charge_id": "ch_4"})  # still judged
    assert (row["request_body"], row["response_body"], row["request_headers"], row["response_headers"]) == ("", "", {}, {})
    assert row["attributes"]["bodies"] == "not_kept"
    assert row["request_bytes"] > 0 and row["response_bytes"] > 0 and row["response_content_type"] == "application/json"


async def test_keep_bodies_failures_keeps_a_failures_bodies_and_headers_redacted(rec, upstream):
    secret = "sk_live_9f8e7d6c5b4a3210"
    upstream.routes["/v1/charges"] = reply(200, DECLINED)
    sc = await rec(capture={"keep_bodies": "failures"})
    body = {"amount": 500, "currency": "eur", "token": secret}
    await post(sc, "/billing/v1/charges", "run-kb-fail", body, headers={"Authorization": f"Bearer {secret}"})
    (row,) = await rows_of(sc, "run-kb-fail")
    assert row["outcome"] == "silent_failure" and "bodies" not in row["attributes"]
    assert '"status":"declined"' in row["response_body"] and "[REDACTED]" in row["request_body"]
    assert row["request_headers"]["authorization"].startswith("Bearer ") and secret not in repr(row)


async def test_keep_bodies_sample_keeps_whole_runs(rec, upstream):
    from seamline.event.build import run_sampled

    upstream.routes["/v1/charges"] = reply(201, SUCCEEDED)
    sc = await rec(capture={"keep_bodies": "sample", "ok_sample_rate": 0.5})
    runs = [f"run-kb-sample-{i}" for i in range(40)]
    kept = next(r for r in runs if run_sampled(r, 0.5))
    dropped = next(r for r in runs if not run_sampled(r, 0.5))
    for run in (kept, dropped, kept, dropped):
        await post(sc, "/billing/v1/charges", run, {"amount": 500, "currency": "eur"})
    kept_rows, dropped_rows = await rows_of(sc, kept), await rows_of(sc, dropped)
    assert len(kept_rows) == len(dropped_rows) == 2
    assert all(r["response_body"] and r["request_headers"] and "bodies" not in r["attributes"] for r in kept_rows)
    assert all(r["response_body"] == "" and r["attributes"]["bodies"] == "not_kept" for r in dropped_rows)


async def test_keep_bodies_failures_still_scrubs_an_extracted_id_that_is_a_secret(rec, upstream):
    # The extracted ID equals a value under a secret body key: kept or not, the body's secrets are known to scrub().
    secret = "tok_live_5e4d3c2b1a09"
    upstream.routes["/v1/charges"] = reply(201, {**SUCCEEDED, "id": secret, "client_secret": secret})
    sc = await rec(capture={"keep_bodies": "failures"})
    await post(sc, "/billing/v1/charges", "run-kb-secret", {"amount": 500, "currency": "eur"})
    (row,) = await rows_of(sc, "run-kb-secret")
    assert row["outcome"] == "ok" and row["external_ids"] == {"charge_id": "[REDACTED]"} and secret not in repr(row)
