"""The run page in headless Chromium: the waterfall renders and a click shows the (escaped) payloads."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from support.cdp import CHROMIUM, chromium
from support.handoff_rows import fresh_store, handoff_row, insert_rows
from support.png import decode_png, pixel
from support.servers import serve

from seamline.read.api import setup_routes

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
T = datetime.now(UTC) - timedelta(minutes=1)


@pytest.fixture
async def admin(request):
    store, _ = await fresh_store(request.node.name)
    rows = [
        handoff_row(
            "order-42",
            "crm.create_contact",
            at_ms=0,
            duration_ms=120,
            status=201,
            ts=T,
            request_body='{"email":"ada@example.com","name":"Ada"}',
            response_body='{"id":"ct_1","name":"Ada"}',
            outcome="silent_failure",
            error_class="contract",
            violations=["echo:missing:email"],
        ),
        handoff_row(
            "order-42",
            "billing.charge",
            at_ms=150,
            duration_ms=300,
            status=200,
            ts=T + timedelta(milliseconds=150),
            request_body='{"amount":4900,"currency":"eur"}',
            response_body=XSS,
            request_headers={"authorization": "[REDACTED]", "x-note": XSS},
        ),
        handoff_row(
            "order-42",
            "email.send_welcome",
            at_ms=500,
            duration_ms=100,
            status=500,
            ts=T + timedelta(milliseconds=500),
            outcome="http_error",
            error_class="server_error",
        ),
    ]
    await insert_rows(store, rows)
    app = web.Application()
    setup_routes(app, store)
    async with serve(app) as base:
        yield base
    await store.close()


def _coloured(rgb: tuple[int, int, int]) -> bool:
    return max(rgb) - min(rgb) > 60  # a saturated bar colour, not white/grey background


async def test_waterfall_renders_and_click_shows_payloads(admin, tmp_path):
    async with chromium() as page:
        await page.goto(f"{admin}/runs/order-42")
        assert await page.evaluate("document.title") == "Run order-42 · Seamline"
        rects = await page.evaluate(
            "[...document.querySelectorAll('.bar')].map(b => { const r = b.getBoundingClientRect();"
            " return [r.x, r.y, r.width, r.height]; })"
        )
        assert len(rects) == 3
        (x0, _, w0, _), (x1, _, w1, _), (x2, _, _, _) = rects
        assert x0 < x1 < x2 and w1 > w0  # placed by offset, sized by duration

        shot = await page.send("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        out = Path(os.environ.get("SEAMLINE_SCREENSHOT_DIR", tmp_path)) / "run-page.png"
        out.write_bytes(png)
        width, _height, pixels, bpp = decode_png(png)
        assert width == 1400
        for x, y, w, h in rects:
            cx, cy = int(x + w / 2), int(y + h / 2)
            assert _coloured(pixel(pixels, bpp, cx, cy)), f"bar at ({cx},{cy}) is not drawn"
        # The area between bars on one track is background, so bars are real shapes, not a smear.
        x, y, w, h = rects[0]
        assert not _coloured(pixel(pixels, bpp, int(x + w + 40), int(y + h / 2)))
        # Colours follow outcomes: silent failure purple-ish, ok green-ish, http error red-ish.
        r, g, b = pixel(pixels, bpp, int(rects[0][0] + 3), int(rects[0][1] + rects[0][3] / 2))
        assert r > g and b > g
        r, g, b = pixel(pixels, bpp, int(rects[1][0] + 3), int(rects[1][1] + rects[1][3] / 2))
        assert g > r and g > b
        r, g, b = pixel(pixels, bpp, int(rects[2][0] + 3), int(rects[2][1] + rects[2][3] / 2))
        assert r > g and r > b

        assert await page.evaluate("document.getElementById('detail').hidden") is True
        row = await page.evaluate(
            "(() => { const r = document.querySelectorAll('.wf-row[data-index]')[1].getBoundingClientRect();"
            " return [r.x + 60, r.y + r.height / 2]; })()"
        )
        await page.click(*row)
        assert await page.evaluate("document.getElementById('detail').hidden") is False
        detail = await page.evaluate("document.getElementById('detail').innerText")
        assert "billing.charge" in detail and '"amount": 4900' in detail
        assert XSS in detail and "authorization: [REDACTED]" in detail  # shown as text
        assert await page.evaluate("document.querySelectorAll('#detail img, #detail script').length") == 0
        assert await page.evaluate("window.__xss === undefined") is True
        assert await page.evaluate("document.querySelector('.wf-row.selected').dataset.index") == "1"

        after = base64.b64decode((await page.send("Page.captureScreenshot", format="png"))["data"])
        (out.parent / "run-page-clicked.png").write_bytes(after)
        assert after != png


async def test_failed_runs_list_links_to_the_run_page(admin):
    async with chromium() as page:
        await page.goto(f"{admin}/runs")
        links = await page.evaluate("[...document.querySelectorAll('table.runs a')].map(a => a.getAttribute('href'))")
        assert links == ["/runs/order-42"]
        await page.goto(f"{admin}{links[0]}")
        assert await page.evaluate("document.querySelectorAll('.wf-row[data-index]').length") == 3


@pytest.fixture
async def refused_run(request):
    store, _ = await fresh_store(request.node.name)
    await insert_rows(
        store,
        [
            handoff_row("order-43", "crm.create_contact", at_ms=0, duration_ms=120, status=201, ts=T),
            handoff_row(
                "order-43",
                "",
                at_ms=150,
                duration_ms=100,
                status=413,
                ts=T + timedelta(milliseconds=150),
                outcome="refused",
                error_class="too_large",
                error_detail="request body of 5000 bytes exceeds 1000",
            ),
        ],
    )
    app = web.Application()
    setup_routes(app, store)
    async with serve(app) as base:
        yield base
    await store.close()


async def test_a_refused_handoff_has_its_own_colour_and_opens_as_the_first_failure(refused_run, tmp_path):
    async with chromium() as page:
        await page.goto(f"{refused_run}/runs/order-43#first-failure")
        detail = await page.evaluate("document.getElementById('detail').innerText")
        assert "outcome refused · error too_large" in detail and "exceeds 1000" in detail
        assert await page.evaluate("document.querySelector('.wf-row.selected').dataset.index") == "1"
        rects = await page.evaluate(
            "[...document.querySelectorAll('.bar')].map(b => { const r = b.getBoundingClientRect();"
            " return [r.x, r.y, r.width, r.height]; })"
        )
        png = base64.b64decode((await page.send("Page.captureScreenshot", format="png"))["data"])
        (Path(os.environ.get("SEAMLINE_SCREENSHOT_DIR", tmp_path)) / "run-page-refused.png").write_bytes(png)
        _, _, pixels, bpp = decode_png(png)
        x, y, _, h = rects[1]
        r, g, b = pixel(pixels, bpp, int(x + 3), int(y + h / 2))
        assert g > r and b > r and b > 80  # teal: neither the upstream's red nor ok's green
        badge = await page.evaluate("getComputedStyle(document.querySelectorAll('.wf-row[data-index] .badge')[1]).color")
        assert badge == "rgb(15, 118, 110)"


@pytest.fixture
async def guarded_admin(request):
    """The run pages behind an admin token, as a sidecar with `admin.token` serves them."""
    from pydantic import SecretStr

    from seamline.config.admin import Admin
    from seamline.read.auth import setup_auth

    store, _ = await fresh_store(request.node.name)
    row = handoff_row("order-7", "billing.charge", at_ms=0, status=500, ts=T, outcome="http_error", error_class="server_error")
    await insert_rows(store, [row])
    token = "browser-" + "t" * 32
    app = web.Application()
    setup_auth(app, Admin(token=SecretStr(token)))
    setup_routes(app, store)
    async with serve(app) as base:
        yield base, token
    await store.close()


async def test_a_browser_signs_in_once_with_the_form_and_then_browses_the_run_pages(guarded_admin):
    base, token = guarded_admin
    async with chromium() as page:
        await page.goto(f"{base}/runs/order-7")
        assert await page.evaluate("document.title") == "Admin token required · Seamline"
        assert await page.evaluate("document.cookie") == ""
        loaded = page.expect("Page.loadEventFired")
        await page.evaluate(
            f"(() => {{ document.querySelector('input[name=token]').value = {token!r}; document.forms[0].submit(); }})()"
        )
        await asyncio.wait_for(loaded, 30)
        assert await page.evaluate("location.pathname") == "/runs/order-7"
        assert await page.evaluate("document.querySelectorAll('.wf-row[data-index]').length") == 1
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script on the page can read the session
        await page.goto(f"{base}/runs")  # the session carries on to the list
        assert await page.evaluate("[...document.querySelectorAll('table.runs a')].length") == 1
