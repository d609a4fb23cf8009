"""`seamline alerts check` against a real store through the admin API: exit 1 and the firing rule just over a
threshold, exit 0 just under it, and a real local webhook receiver gets one JSON body per firing alert (retried)."""

from __future__ import annotations

import asyncio
import io
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from support.handoff_rows import fresh_store, handoff_row, insert_rows
from support.servers import serve

from seamline.read import alerting, alerts_cli, rules
from seamline.read.api import setup_routes

HEALTH_COLUMNS = ("ts", "proxy_instance", "version", "store", "ready", "sink_up", "reasons")


HTTP_500 = {"outcome": "http_error", "status": 500, "error_class": "server_error"}
SILENT = {"outcome": "silent_failure", "error_class": "contract"}


def _calls(handoff: str, ok: int, failed: int, now: datetime, failure: dict[str, Any] = HTTP_500) -> list[dict[str, Any]]:
    """ok + failed validated calls of one handoff inside the last 4 minutes (the success rules look at 5)."""
    rows = []
    for i in range(ok + failed):
        bad = failure if i < failed else {}
        rows.append(handoff_row(f"run-{handoff}-{i}", handoff, at_ms=0, ts=now - timedelta(seconds=5 + i * 2), **bad))
    return rows


async def _store_with(request: Any, rows: list[dict[str, Any]], now: datetime) -> Any:
    store, _ = await fresh_store(request.node.name)
    await insert_rows(store, rows)
    beat = [now - timedelta(seconds=20), "test", "0.1.0", "embedded", True, True, []]  # a live heartbeat
    await store.insert("seamline_health", [beat], HEALTH_COLUMNS)
    return store


def _args(base: str, webhook: str | None = None) -> Namespace:
    return Namespace(admin_url=base, config=None, clickhouse_url=None, database="seamline", webhook=webhook, json=False)


async def _check(store: Any, webhook: str | None = None) -> tuple[int, str, str]:
    app = web.Application()
    setup_routes(app, store)
    async with serve(app) as base:
        out, err = io.StringIO(), io.StringIO()
        # The CLI is synchronous (httpx): run it off the loop that serves the admin app.
        code = await asyncio.to_thread(alerts_cli.cmd_check, _args(base, webhook), out=out, err=err)
    return code, out.getvalue().replace(base, "<admin>"), err.getvalue()


async def test_fires_just_under_the_critical_success_rate_and_is_silent_just_over_it(request):
    now = datetime.now(UTC)
    under = await _store_with(request, _calls("crm.update", 79, 21, now), now)  # 79 % < 80 %
    try:
        code, out, _ = await _check(under)
    finally:
        await under.close()
    assert code == alerts_cli.EXIT_FIRING
    (line,) = [x for x in out.splitlines() if "CRITICAL" in x]
    assert "Handoff business success rate below 80%" in line and "handoff=crm.update" in line
    assert "value 79" in line and "threshold lt 80" in line and "<admin>/runs?handoff=crm.update&failed=true" in line

    request.node.name += "_ok"
    fine = await _store_with(request, _calls("crm.update", 96, 4, now), now)  # 96 %: above both thresholds
    try:
        code, out, _ = await _check(fine)
    finally:
        await fine.close()
    assert code == 0 and "0 firing" in out


async def test_webhook_receiver_gets_one_payload_per_firing_alert_after_a_retry(request):
    now = datetime.now(UTC)
    received: list[dict[str, Any]] = []
    answers = [503]  # the first delivery fails: it must be retried

    async def hook(req: web.Request) -> web.Response:
        received.append(await req.json())
        return web.Response(status=answers.pop(0) if answers else 200)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    store = await _store_with(request, _calls("billing.charge", 70, 30, now, SILENT), now)  # critical; silent-failure too
    try:
        async with serve(receiver) as hook_base:
            code, _, err = await _check(store, webhook=f"{hook_base}/hook")
    finally:
        await store.close()
    assert code == 1 and err == ""
    delivered = {body["alert"]["uid"] for body in received}
    assert delivered == {"seamline-success-rate-critical", "seamline-silent-failure-rate"}
    assert len(received) == 3  # two alerts, one of them sent twice
    body = next(b for b in received if b["alert"]["uid"] == "seamline-success-rate-critical")
    assert body["text"].startswith("[critical] Handoff business success rate below 80%: billing.charge is 70")
    assert body["alert"]["labels"] == {"handoff": "billing.charge"} and body["alert"]["threshold"] == rules.SUCCESS_CRIT_PCT
    assert "/runs?handoff=billing.charge&failed=true" in body["alert"]["link"]


def test_a_rule_whose_silence_alerts_fires_with_no_rows() -> None:
    spec = next(s for s in rules.RULES if s.uid == "seamline-heartbeat-missing")
    (ev,) = alerting.evaluate_rows(spec, [])
    assert ev.firing and ev.value is None and ev.labels == {"handoff": "all"} and ev.link == "/handoffs?since=24h"
    assert alerting.evaluate_rows(next(s for s in rules.RULES if s.op == "lt"), []) == []  # NoData=OK: silent
