"""`seamline alerts check`: evaluate the shipped alert rules now and print the firing ones; exit 1 when any fires.

Through the admin API (`/api/alerts`: the sidecar evaluates them on its store) or, with `--clickhouse-url`, straight
against a ClickHouse server. `--webhook URL` POSTs one JSON body per firing alert (Slack-compatible `text`), retried.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

import httpx
from rich.text import Text
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from seamline.read import alerting
from seamline.read.terminal import EXIT_OK, AdminError, admin_target, clean, fetch, make_console
from seamline.read.top import add_store_args

EXIT_FIRING = 1
WEBHOOK_ATTEMPTS = 4
WEBHOOK_TIMEOUT_S = 10.0


class WebhookError(Exception):
    """A delivery that may succeed when tried again (transport error, 429, 5xx)."""


def payload(alert: dict[str, Any], base: str) -> dict[str, Any]:
    """The JSON body for one firing alert: `text` for Slack-compatible receivers, the figures for everything else."""
    link = base + alert["link"] if alert.get("link") else base
    labels = alert.get("labels") or {}
    who = (
        labels.get("handoff")
        if labels.get("handoff") not in (None, "all")
        else labels.get("upstream") or labels.get("proxy_instance", "")
    )
    value = "no data" if alert.get("value") is None else f"{alert['value']:g}"
    text = (
        f"[{alert['severity']}] {alert['title']}: {who} is {value} "
        f"(threshold {alert['op']} {alert['threshold']:g}, last {alert['window_s'] // 60} min) {link}"
    )
    return {"text": text, "alert": {**alert, "link": link}}


def post_webhook(url: str, body: dict[str, Any], *, attempts: int = WEBHOOK_ATTEMPTS, wait_max: float = 4.0) -> None:
    """POST with retries on transport errors, 429 and 5xx (exponential backoff); other answers fail at once."""

    def once() -> None:
        try:
            resp = httpx.post(url, json=body, timeout=WEBHOOK_TIMEOUT_S)
        except httpx.HTTPError as e:
            raise WebhookError(f"{type(e).__name__}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise WebhookError(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise ValueError(f"the webhook refused the alert: HTTP {resp.status_code}")

    for attempt in Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.25, max=wait_max),
        retry=retry_if_exception_type(WebhookError),
        reraise=True,
    ):
        with attempt:
            once()


def _evaluations(args: argparse.Namespace, base: str, token: str | None) -> list[dict[str, Any]]:
    if args.clickhouse_url:
        from seamline.record.store import open_store

        async def direct() -> list[dict[str, Any]]:
            store = open_store(args.clickhouse_url, args.database)
            try:
                return [ev.as_dict() for ev in await alerting.evaluate(store)]
            finally:
                await store.close()

        return asyncio.run(direct())
    return list(fetch(base, "/api/alerts", token=token).get("evaluations") or [])


def cmd_check(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    try:
        target = admin_target(args.admin_url, args.config)
        evaluations = _evaluations(args, target.base, target.token)
    except AdminError as e:
        print(f"seamline alerts check: {e}", file=err)
        return e.exit_code
    fired = [a for a in evaluations if a["firing"]]
    if args.json:
        print(json.dumps({"firing": fired, "evaluated": len(evaluations)}, indent=2), file=out or sys.stdout)
    else:
        console = make_console(out)
        for a in fired:
            line = Text(f"{a['severity'].upper():8} ", style="bold red" if a["severity"] == "critical" else "yellow")
            labels = ", ".join(f"{k}={v}" for k, v in sorted((a.get("labels") or {}).items()))
            value = "no data" if a.get("value") is None else f"{a['value']:g}"
            line.append(clean(f"{a['title']}  {labels}  value {value}  threshold {a['op']} {a['threshold']:g}  "))
            line.append(clean(target.base + a["link"]), style="cyan")
            console.print(line)
        ok_rules = len({a["uid"] for a in evaluations}) - len({a["uid"] for a in fired})
        console.print(Text(f"{len(fired)} firing, {ok_rules} rule(s) with data under their threshold", style="dim"))
    for a in fired if args.webhook else ():
        try:
            post_webhook(args.webhook, payload(a, target.base))
        except (WebhookError, ValueError) as e:
            print(f"seamline alerts check: webhook delivery failed for {a['uid']}: {e}", file=err)
    return EXIT_FIRING if fired else EXIT_OK


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("alerts", help="evaluate the shipped alert rules", description="The shipped alert rules.")
    sub = p.add_subparsers(dest="alerts_command", required=True)
    c = sub.add_parser(
        "check",
        help="print the firing alerts; exit 1 when any fires",
        description="Evaluate every shipped alert rule (grafana/provisioning/alerting/rules.yaml) now; exit 1 when any fires.",
    )
    c.add_argument("--webhook", default=None, metavar="URL", help="POST each firing alert as JSON (Slack-compatible text)")
    c.add_argument("--json", action="store_true", help="print the firing alerts as JSON")
    add_store_args(c)
    c.set_defaults(func=cmd_check)
