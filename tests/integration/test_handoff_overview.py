"""The handoff overview after a seeded demo: /api/handoffs equals what the recorded rows say (independent SQL),
the page renders in headless Chromium without console errors or stray scripts, `seamline top --once` lists every
handoff, and a handoff whose business success dropped sorts first. With SEAMLINE_SCREENSHOTS=1 the README's
screenshots (docs/img/) are rewritten from the same run."""

from __future__ import annotations

import asyncio
import base64
import io
import os
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from rich.console import Console
from support.cdp import CHROMIUM, chromium
from support.chdb_path import chdb_url, unique_database
from support.handoff_rows import fresh_store, handoff_row, insert_rows
from support.servers import serve

from seamline.demo.cli import demo
from seamline.read import top
from seamline.read.api import setup_routes
from seamline.record.store import open_store

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SCREENSHOTS = os.environ.get("SEAMLINE_SCREENSHOTS") == "1"

# Written without seamline.read.sql: what "business success" and the rest mean, stated again from the rows.
INDEPENDENT = """
SELECT handoff, count() AS calls,
    countIf(outcome = 'ok') AS ok,
    countIf(outcome NOT IN ('unvalidated', 'refused', 'replayed')) AS validated,
    countIf(outcome != 'refused') AS upstream_calls,
    countIf(outcome != 'refused' AND status >= 200 AND status < 400) AS http_ok,
    countIf(outcome = 'silent_failure') AS silent_failures,
    countIf(error_class IN ('rate_limited', 'rate_limited_locally')) AS rate_limited,
    countIf(error_class = 'auth_expired') AS auth_expired,
    countIf(guard IN ('replayed', 'blocked_in_flight', 'blocked_unknown', 'key_reused', 'outcome_known')) AS dups,
    groupArrayIf(duration_ms, outcome != 'refused') AS durations,
    groupArrayIf(error_class, error_class NOT IN ('', 'none')) AS classes
FROM handoffs GROUP BY handoff
"""


def _quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what ClickHouse's quantile gives below 8192 values)."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> str:
    """A seeded demo recorded into its own database (module-scoped: it takes a few seconds)."""
    database = unique_database("overview_demo")

    async def go() -> None:
        await demo(
            runs=30,
            seed=11,
            failure_rate=0.3,
            admin_port=0,
            progress=False,
            storage={
                "clickhouse_url": chdb_url(),
                "database": database,
                "spool_dir": str(tmp_path_factory.mktemp("spool")),
                "flush_interval_ms": 50,
            },
            console=Console(file=io.StringIO(), width=160),
        )

    asyncio.run(go())
    return database


@pytest.fixture
async def admin(demo_db):
    store = open_store(chdb_url(), demo_db)
    app = web.Application()
    setup_routes(app, store)
    async with serve(app) as base:
        yield base, store
    await store.close()


@pytest.mark.slow
async def test_overview_numbers_equal_the_recorded_rows(admin):
    base, store = admin
    async with httpx.AsyncClient(timeout=30) as client:  # a bound: the overview scans every row
        data = (await client.get(f"{base}/api/handoffs", params={"since": "1h"})).json()
    truth = {r["handoff"]: r for r in await store.query(INDEPENDENT)}
    got = {r["handoff"]: r for r in data["handoffs"]}
    assert set(got) == set(truth) and len(got) >= 5
    for name, t in truth.items():
        r = got[name]
        assert r["calls"] == t["calls"], name
        assert r["business_success_pct"] == (round(100 * t["ok"] / t["validated"], 2) if t["validated"] else None), name
        http = round(100 * t["http_ok"] / t["upstream_calls"], 2) if t["upstream_calls"] else None
        assert r["http_success_pct"] == http, name
        assert (r["silent_failures"], r["rate_limited"], r["auth_expired"]) == (
            t["silent_failures"], t["rate_limited"], t["auth_expired"],
        ), name  # fmt: skip
        assert r["duplicates_prevented"] == t["dups"], name
        for key, q in (("p50_ms", 0.5), ("p95_ms", 0.95)):
            want = _quantile([float(d) for d in t["durations"]], q)
            assert (r[key] is None) if want is None else r[key] == pytest.approx(round(want, 1), abs=0.051), (name, key)
        classes = list(t["classes"])
        if classes:
            assert classes.count(r["top_error_class"]) == max(classes.count(c) for c in set(classes)), name
        else:
            assert r["top_error_class"] == "", name
        assert r["previous"] is None and r["change"]["calls"] == t["calls"]  # nothing in the hour before the demo
        assert sum(p["calls"] for p in r["sparkline"]) == t["calls"]
    assert data["totals"]["calls"] == sum(t["calls"] for t in truth.values())
    rates = [r["business_success_pct"] for r in data["handoffs"] if r["business_success_pct"] is not None]
    assert rates == sorted(rates)  # worst first


async def test_a_handoff_whose_business_success_dropped_sorts_first(request):
    store, _ = await fresh_store(request.node.name)
    now = datetime.now(UTC)
    rows = []
    for i in range(20):
        before, current = now - timedelta(minutes=16, seconds=30 * i), now - timedelta(seconds=30 * (i + 1))
        rows.append(handoff_row(f"r-{i}", "crm.steady", at_ms=0, ts=current))
        rows.append(handoff_row(f"p-{i}", "crm.steady", at_ms=0, ts=before))
        rows.append(handoff_row(f"p-{i}", "billing.charge", at_ms=0, ts=before))  # 100 % the window before
        bad = {"outcome": "silent_failure", "error_class": "contract"} if i < 4 else {}
        rows.append(handoff_row(f"r-{i}", "billing.charge", at_ms=0, ts=current, **bad))  # 80 % now
        slow = {"outcome": "http_error", "status": 500, "error_class": "server_error"} if i < 3 else {}
        rows.append(handoff_row(f"r-{i}", "email.send", at_ms=0, ts=current, **slow))  # 85 %, never better
        rows.append(handoff_row(f"p-{i}", "email.send", at_ms=0, ts=before, **slow))
    await insert_rows(store, rows)
    app = web.Application()
    setup_routes(app, store)
    try:
        async with serve(app) as base, httpx.AsyncClient(timeout=30) as client:
            data = (await client.get(f"{base}/api/handoffs", params={"since": "15m"})).json()
            page = await client.get(f"{base}/handoffs", params={"since": "15m"})
            bad = await client.get(f"{base}/api/handoffs", params={"since": "2y"})
    finally:
        await store.close()
    order = [r["handoff"] for r in data["handoffs"]]
    assert order == ["billing.charge", "email.send", "crm.steady"]
    first = data["handoffs"][0]
    assert first["business_success_pct"] == 80.0 and first["previous"]["business_success_pct"] == 100.0
    assert first["change"]["business_success_pct"] == -20.0 and first["last_failed_run"].startswith("r-")
    assert data["handoffs"][1]["change"]["business_success_pct"] == 0.0
    html = page.text
    assert page.status_code == 200 and html.index("billing.charge") < html.index("email.send") < html.index("crm.steady")
    assert "▼ -20.0 pp" in html and 'href="/runs?handoff=billing.charge&amp;failed=true&amp;since=15m"' in html
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")


@pytest.mark.slow
def test_top_once_lists_every_handoff(admin_sync):
    base, names = admin_sync
    out = io.StringIO()
    args = Namespace(since="1h", interval=5.0, once=True, admin_url=base, config=None, clickhouse_url=None, database="seamline")
    assert top.cmd_top(args, out=out) == 0
    text = out.getvalue()
    assert "calls/s" in text and "business success" in text and "sink" in text
    for name in names:
        assert name in text, name
    if SCREENSHOTS:
        console = Console(record=True, width=150, file=io.StringIO(), force_terminal=True)
        data, state = top.source(args)()
        console.print(top.view(data, state))
        IMG.mkdir(parents=True, exist_ok=True)
        console.save_svg(str(IMG / "seamline-top.svg"), title="seamline top --once")


@pytest.fixture
def admin_sync(demo_db):
    """The admin app on a thread of its own, for the synchronous CLI (it blocks on httpx)."""
    import threading

    ready: dict[str, Any] = {}
    stop = threading.Event()

    def run() -> None:
        async def main() -> None:
            store = open_store(chdb_url(), demo_db)
            app = web.Application()

            async def readyz(request: web.Request) -> web.Response:
                return web.json_response({"ready": True, "sink_up": True, "spool_records": 0})

            app.router.add_get("/readyz", readyz)
            setup_routes(app, store)
            async with serve(app) as base:
                ready["base"] = base
                ready["names"] = [r["handoff"] for r in await store.query("SELECT DISTINCT handoff FROM handoffs")]
                ready["event"].set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)  # the server thread's own loop: polls the stop flag, no test waits on it
            await store.close()

        asyncio.run(main())

    ready["event"] = threading.Event()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready["event"].wait(30)
    yield ready["base"], ready["names"]
    stop.set()
    t.join(30)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
async def test_overview_page_in_chromium_has_no_errors_and_no_stray_script(admin):
    base, _ = admin
    async with chromium() as page:
        await page.send("Runtime.enable")
        await page.send("Log.enable")
        await page.goto(f"{base}/handoffs?since=1h")
        assert await page.evaluate("document.title") == "Handoff health · Seamline"
        rows = await page.evaluate("document.querySelectorAll('table.handoffs tbody tr').length")
        assert rows >= 5
        assert await page.evaluate("document.querySelectorAll('svg.spark').length") == rows
        # No script at all (the CSP allows only the nonce'd one; the overview needs none), no inline handlers.
        assert await page.evaluate("document.scripts.length") == 0
        assert (
            await page.evaluate(
                "[...document.querySelectorAll('*')].some(e => [...e.attributes].some(a => a.name.startsWith('on')))"
            )
            is False
        )
        assert page.problems() == []
        if SCREENSHOTS:
            shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            IMG.mkdir(parents=True, exist_ok=True)
            (IMG / "handoffs-overview.png").write_bytes(base64.b64decode(shot["data"]))
