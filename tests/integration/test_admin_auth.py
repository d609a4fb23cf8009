"""The admin listener is not open: a real sidecar on 127.0.0.1 with `admin.token`, over real sockets."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from conftest import proxy_config
from support.handoff_rows import fresh_store, handoff_row, insert_rows
from support.rawhttp import raw_request

from seamline.cli import build_parser
from seamline.read.auth import COOKIE, OVERVIEW_COOKIE, session_value

TOKEN = secrets.token_urlsafe(32)
WRONG = secrets.token_urlsafe(32)
PROTECTED = ["/api/runs", "/api/runs/order-1", "/api/calls", "/runs", "/runs/order-1", "/handoffs", "/api/handoffs"]


@pytest.fixture
async def store(request):
    store, _ = await fresh_store(request.node.name)
    at = datetime.now(UTC) - timedelta(minutes=5)
    row = handoff_row(
        "order-1", "billing.charge", at_ms=0, ts=at, status=500, outcome="http_error", error_class="server_error",
        response_body='{"id":"ch_1"}',
    )  # fmt: skip
    await insert_rows(store, [row])  # a failed run: the /runs page lists failed runs by default
    yield store
    await store.close()


async def _sidecar(make_sidecar, store, **admin):
    return await make_sidecar(proxy_config({}, admin={"token": TOKEN, **admin}), store=store)


@pytest.fixture
async def guarded(make_sidecar, store):
    sc = await _sidecar(make_sidecar, store)
    async with httpx.AsyncClient(base_url=sc.admin_url, timeout=10, follow_redirects=False) as client:
        yield sc, client


def _cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


def _assert_401(resp: httpx.Response, *, wrong: bool) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/admin-unauthorized") and body["status"] == 401
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="seamline-admin"') and ('error="invalid_token"' in challenge) is wrong
    assert TOKEN not in resp.text and WRONG not in resp.text and "order-1" not in resp.text and "ch_1" not in resp.text


@pytest.mark.parametrize("path", PROTECTED)
async def test_each_protected_route_is_401_without_or_with_a_wrong_token_and_200_with_it(guarded, path):
    _, client = guarded
    _assert_401(await client.get(path), wrong=False)
    _assert_401(await client.get(path, headers={"Authorization": f"Bearer {WRONG}"}), wrong=True)
    _assert_401(await client.get(path, headers={"Authorization": f"Basic {TOKEN}"}), wrong=True)  # bearer only
    _assert_401(await client.get(path, headers={"Authorization": f"Bearer {TOKEN[:-1]}"}), wrong=True)
    ok = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "order-1" in ok.text


async def test_an_unknown_admin_path_is_401_too_not_a_route_map(guarded):
    _, client = guarded
    _assert_401(await client.get("/nothing-here"), wrong=False)
    assert (await client.get("/nothing-here", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 404


async def test_health_probes_and_metrics_stay_open(guarded):
    _, client = guarded
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200, path


async def test_protect_metrics_puts_metrics_behind_the_token_but_not_the_probes(make_sidecar, store):
    sc = await _sidecar(make_sidecar, store, protect_metrics=True)
    async with httpx.AsyncClient(base_url=sc.admin_url, timeout=10) as client:
        _assert_401(await client.get("/metrics"), wrong=False)
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "seamline_requests_total" in ok.text
        assert (await client.get("/healthz")).status_code == 200 and (await client.get("/readyz")).status_code == 200


async def test_wrong_tokens_reach_neither_the_answer_nor_the_logs(guarded, caplog):
    _, client = guarded
    caplog.set_level(logging.DEBUG)
    await client.get("/api/runs", headers={"Authorization": f"Bearer {WRONG}"})
    await client.get(f"/runs?token={WRONG}")
    await client.post("/login", data={"token": WRONG, "next": "/runs"})
    await client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    ours = [r.getMessage() + str(r.__dict__) for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert not [line for line in ours if TOKEN in line or WRONG in line]  # (the test's own client logs its URLs)


async def test_a_link_with_the_token_sets_a_strict_httponly_session_cookie_and_drops_the_token_from_the_url(guarded):
    _, client = guarded
    resp = await client.get(f"/runs/order-1?token={TOKEN}&bodies=true")
    assert resp.status_code == 303 and resp.headers["location"] == "/runs/order-1?bodies=true"
    assert resp.headers["cache-control"] == "no-store" and resp.headers["referrer-policy"] == "no-referrer"
    raw = resp.headers["set-cookie"]
    morsel = SimpleCookie(raw)[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/runs"
    assert int(morsel["max-age"]) == 12 * 3600
    assert TOKEN not in raw  # the cookie proves the token was shown; it does not hold it
    page = await client.get("/runs/order-1", headers=_cookie(morsel.value))
    assert page.status_code == 200 and "billing.charge" in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    bad = await client.get(f"/runs?token={WRONG}", headers={"Accept": "text/html"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers


async def test_an_expired_or_forged_session_cookie_is_refused(guarded):
    _, client = guarded
    now = int(datetime.now(UTC).timestamp())
    expired = session_value(TOKEN, now - 1)
    forged = session_value(WRONG, now + 3600)
    for value in (expired, forged, "garbage", f"{now + 3600}.{expired.split('.')[1]}"):
        _assert_401(await client.get("/runs", headers=_cookie(value)), wrong=True)
    assert (await client.get("/runs", headers=_cookie(session_value(TOKEN, now + 60)))).status_code == 200


async def test_a_browser_gets_a_login_form_that_posts_the_token_and_returns_to_the_page(guarded):
    _, client = guarded
    form = await client.get("/runs/order-1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert form.status_code == 401 and form.headers["content-type"].startswith("text/html")
    assert '<form class="filters" method="post" action="/login">' in form.text
    assert 'name="next" value="/runs/order-1"' in form.text and 'type="password" name="token"' in form.text
    assert "form-action 'self'" in form.headers["content-security-policy"]
    wrong = await client.post("/login", data={"token": WRONG, "next": "/runs/order-1"})
    assert wrong.status_code == 401 and "not accepted" in wrong.text and "set-cookie" not in wrong.headers
    ok = await client.post("/login", data={"token": TOKEN, "next": "/runs/order-1"})
    assert ok.status_code == 303 and ok.headers["location"] == "/runs/order-1"
    cookie = SimpleCookie(ok.headers["set-cookie"])[COOKIE].value
    assert (await client.get("/runs/order-1", headers=_cookie(cookie))).status_code == 200
    away = await client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
    assert away.headers["location"] == "/runs"  # never a redirect off this listener


async def test_without_a_token_the_loopback_listener_answers_loopback_host_names_only(make_sidecar, store):
    """DNS rebinding: a web page whose name now points at 127.0.0.1 must not read the runs."""
    sc = await make_sidecar(proxy_config({}), store=store)
    port = sc.admin_port
    rebound = await raw_request(port, b"GET /api/runs HTTP/1.1\r\nHost: attacker.example:9090\r\nConnection: close\r\n\r\n")
    assert rebound.status == 421 and rebound.header("content-type") == "application/problem+json"
    assert b"order-1" not in rebound.body and b"attacker" not in rebound.body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        ok = await raw_request(port, f"GET /api/runs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert ok.status == 200 and b"order-1" in ok.body, host
    probe = await raw_request(port, b"GET /readyz HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
    assert probe.status == 200


async def _cli(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(args.func, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_trace_and_runs_send_the_token_from_env_file_or_config(guarded, monkeypatch, tmp_path):
    sc, _ = guarded
    for var in ("SEAMLINE_ADMIN_TOKEN", "SEAMLINE_ADMIN_TOKEN_FILE", "SEAMLINE_ADMIN_URL", "SEAMLINE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./seamline.yaml here
    code, out, err = await _cli("runs", "--since", "1h", "--admin-url", sc.admin_url)
    assert code == 3 and out == "" and "needs its admin token" in err and "SEAMLINE_ADMIN_TOKEN" in err

    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", WRONG)
    code, _, err = await _cli("trace", "order-1", "--admin-url", sc.admin_url)
    assert code == 3 and "did not accept the admin token" in err and WRONG not in err

    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", TOKEN)
    code, out, _ = await _cli("runs", "--since", "1h", "--admin-url", sc.admin_url)
    assert code == 0 and "order-1" in out
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN")

    secret = tmp_path / "admin.token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN_FILE", str(secret))
    code, out, _ = await _cli("trace", "order-1", "--admin-url", sc.admin_url)
    assert code == 0 and "billing.charge" in out
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN_FILE")

    # The sidecar's own config gives both the admin URL and the token.
    config = tmp_path / "seamline.yaml"
    config.write_text(
        f"server: {{admin_host: 127.0.0.1, admin_port: {sc.admin_port}}}\nadmin: {{token_file: {secret}}}\n"
        "storage: {enabled: false}\n"
    )
    code, out, _ = await _cli("trace", "order-1", "--config", str(config))
    assert code == 0 and "billing.charge" in out
    code, out, _ = await _cli("runs", "--since", "1h")  # ./seamline.yaml, found on its own
    assert code == 0 and "order-1" in out


async def test_the_alert_check_needs_the_token_and_the_overview_page_shares_the_session(guarded):
    _, client = guarded
    _assert_401(await client.get("/api/alerts"), wrong=False)
    ok = await client.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "evaluations" in ok.json()
    form = await client.get("/handoffs", headers={"Accept": "text/html"})
    assert form.status_code == 401 and 'name="next" value="/handoffs"' in form.text
    signed = await client.post("/login", data={"token": TOKEN, "next": "/handoffs?since=24h"})
    assert signed.status_code == 303 and signed.headers["location"] == "/handoffs?since=24h"
    cookies = {c.split("=", 1)[0]: c for c in signed.headers.get_list("set-cookie")}
    overview = SimpleCookie(cookies[OVERVIEW_COOKIE])[OVERVIEW_COOKIE]
    assert overview["path"] == "/handoffs" and overview["httponly"] and overview["samesite"] == "Strict"
    page = await client.get("/handoffs?since=24h", headers={"Cookie": f"{OVERVIEW_COOKIE}={overview.value}"})
    assert page.status_code == 200 and "billing.charge" in page.text
