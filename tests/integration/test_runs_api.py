"""The admin run API and pages on a real socket over a real chdb store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import orjson
import pytest
from aiohttp import web
from support.handoff_rows import fresh_store, handoff_row, insert_rows
from support.servers import serve

from seamline.read.api import setup_routes

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NOW = datetime.now(UTC)


def _now_row(run_id: str, handoff: str, at_ms: float, **kw):
    return handoff_row(run_id, handoff, at_ms=at_ms, ts=NOW - timedelta(minutes=5) + timedelta(milliseconds=at_ms), **kw)


@pytest.fixture
async def admin(request):
    store, _ = await fresh_store(request.node.name)
    await insert_rows(
        store,
        [
            _now_row(
                "order-1",
                "crm.create_contact",
                0,
                duration_ms=40,
                status=201,
                request_body='{"email":"a@example.com","password":"[REDACTED]"}',
            ),
            _now_row(
                "order-1",
                "billing.charge",
                60,
                duration_ms=90,
                outcome="silent_failure",
                error_class="contract",
                violations=["assert:payment_succeeded"],
                response_body='{"id":"ch_1","status":"declined"}',
            ),
            _now_row("order-2", "crm.create_contact", 200, duration_ms=30),
            _now_row(
                XSS,
                "email.send_welcome",
                300,
                duration_ms=10,
                status=500,
                outcome="http_error",
                error_class="server_error",
                response_body=XSS,
                request_headers={"x-evil": XSS},
            ),
        ],
    )
    app = web.Application()
    setup_routes(app, store)
    async with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client
    await store.close()


async def test_run_json_lists_handoffs_in_order_with_payloads(admin):
    resp = await admin.get("/api/runs/order-1")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    run = resp.json()
    assert run["run_id"] == "order-1"
    assert [h["handoff"] for h in run["handoffs"]] == ["crm.create_contact", "billing.charge"]
    charge = run["handoffs"][1]
    assert charge["offset_ms"] == 60.0 and charge["duration_ms"] == 90.0
    assert charge["outcome"] == "silent_failure" and charge["violations"] == ["assert:payment_succeeded"]
    assert charge["response_body"] == '{"id":"ch_1","status":"declined"}'
    assert run["summary"]["worst_outcome"] == "silent_failure" and run["summary"]["duration_ms"] == 150.0
    datetime.fromisoformat(charge["ts"])


async def test_run_json_without_bodies(admin):
    run = (await admin.get("/api/runs/order-1", params={"bodies": "false"})).json()
    assert "response_body" not in run["handoffs"][1] and "request_headers" not in run["handoffs"][0]


async def test_unknown_run_is_404_problem(admin):
    resp = await admin.get("/api/runs/no-such-run")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["type"].endswith("/run-not-found") and body["status"] == 404 and "no-such-run" in body["detail"]


async def test_run_list_filters(admin):
    resp = await admin.get("/api/runs", params={"since": "1h", "failed": "true"})
    assert resp.status_code == 200
    body = resp.json()
    assert sorted(r["run_id"] for r in body["runs"]) == sorted(["order-1", XSS])
    assert body["count"] == 2 and body["filters"]["failed"] is True
    body = (await admin.get("/api/runs", params={"outcome": "silent_failure"})).json()
    assert [r["run_id"] for r in body["runs"]] == ["order-1"]
    body = (await admin.get("/api/runs", params={"handoff": "crm.create_contact", "limit": "1"})).json()
    assert body["count"] == 1
    body = (await admin.get("/api/runs", params={"since": "1m"})).json()
    assert body["runs"] == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"outcome": "great"}, "outcome"),
        ({"failed": "maybe"}, "failed"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"handoff": "h" * 500}, "handoff"),
    ],
)
async def test_bad_list_parameters_are_400_problems(admin, params, field):
    resp = await admin.get("/api/runs", params=params)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["detail"].startswith(field + ":")


async def test_run_page_escapes_untrusted_values(admin):
    resp = await admin.get("/runs/" + quote(XSS, safe=""))
    assert resp.status_code == 200
    html = resp.text
    assert "<img src=x" not in html and '<script>alert("x")' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html  # the run ID, escaped, in the title
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'nonce-" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    # Exactly two script elements: the inert JSON data block and the nonce'd page script.
    assert len(scripts) == 2
    (data_attrs, data), (js_attrs, _) = scripts
    assert 'type="application/json"' in data_attrs and f'nonce="{nonce}"' in js_attrs
    payload = orjson.loads(data)
    assert payload["handoffs"][0]["response_body"] == XSS
    assert payload["handoffs"][0]["request_headers"] == {"x-evil": XSS}


async def test_run_page_draws_a_bar_per_handoff(admin):
    html = (await admin.get("/runs/order-1")).text
    bars = re.findall(r'class="bar" style="left:([\d.]+)%;width:([\d.]+)%"', html)
    assert [(float(a), float(b)) for a, b in bars] == [(0.0, pytest.approx(26.667, abs=0.01)), (40.0, 60.0)]
    assert "assert:payment_succeeded" in html and "silent_failure" in html
    assert "http://" not in html.replace("http://127.0.0.1:1/", "")  # no external assets


async def test_unknown_run_page_is_404(admin):
    resp = await admin.get("/runs/nope")
    assert resp.status_code == 404 and "Run not found" in resp.text


async def test_failed_runs_page_lists_failed_runs_with_escaped_links(admin):
    resp = await admin.get("/runs")
    assert resp.status_code == 200
    html = resp.text
    assert "Recent failed runs" in html
    assert 'href="/runs/order-1"' in html and "order-2" not in html
    assert 'href="/runs/' + quote(XSS, safe="") + '"' in html
    assert "<img src=x" not in html


async def test_runs_page_bad_parameter_is_400(admin):
    resp = await admin.get("/runs", params={"since": "<b>soon</b>"})
    assert resp.status_code == 400 and "&lt;b&gt;soon&lt;/b&gt;" in resp.text


@pytest.fixture
async def refusals(request):
    store, _ = await fresh_store(request.node.name)
    await insert_rows(
        store,
        [
            _now_row("order-r", "crm.create_contact", 0, duration_ms=40, status=201),
            _now_row(
                "order-r",
                "",
                60,
                duration_ms=1,
                status=404,
                outcome="refused",
                error_class="unknown_upstream",
                error_detail="no upstream named 'biling' is configured",
            ),
            _now_row("order-fine", "crm.create_contact", 200, duration_ms=30),
        ],
    )
    app = web.Application()
    setup_routes(app, store)
    async with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client
    await store.close()


async def test_runs_with_refusals_are_failed_runs_labelled_refused(refusals):
    body = (await refusals.get("/api/runs", params={"failed": "true"})).json()
    (run,) = body["runs"]
    assert (run["run_id"], run["failed"], run["refused"], run["worst_outcome"]) == ("order-r", 1, 1, "refused")
    assert [r["run_id"] for r in (await refusals.get("/api/runs", params={"outcome": "refused"})).json()["runs"]] == ["order-r"]
    listing = (await refusals.get("/runs")).text
    assert '<span class="badge o-refused" title="Seamline answered this call itself' in listing
    assert "1 (1 refused)" in listing and "order-fine" not in listing
    assert '<option value="refused">refused</option>' in listing
    page = (await refusals.get("/runs/order-r")).text
    rows = re.findall(r'<div class="wf-row (o-\w+)" role="listitem" tabindex="0" data-index="\d+"( data-failed)?>', page)
    assert rows == [("o-ok", ""), ("o-refused", " data-failed")]
    assert "<dt>failed</dt><dd>1 (1 refused)</dd>" in page and "unknown_upstream" in page
