"""`seamline replay EVENT_ID` and `seamline replay --run RUN_ID --failed`: replay through the sidecar's admin API.

The sidecar does the replay (`POST /api/events/{id}/replay`): it reads the event from its store (embedded or a
ClickHouse server alike), re-sends it through its own proxy listener with the credentials of its config, and
records it. The CLI finds the admin API and its token as `seamline runs` does. Exit 0 when every replay was sent,
4 when one was refused (nothing sent for it), 1 when an event or run is unknown, 2/3 as `seamline runs`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from seamline import outcomes as o
from seamline.read.terminal import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    OUTCOME_STYLE,
    AdminError,
    _add_admin_url,
    admin_target,
    clean,
    fetch,
    make_console,
)
from seamline.replay.plan import failed_events

EXIT_REFUSED = 4
TIMEOUT_S = 330.0  # a replay waits for the upstream call (the sidecar bounds it) and the record


def post_replay(base: str, event_id: str, *, force: bool, key: str, token: str | None) -> dict[str, Any]:
    """The admin API's answer for one replay: the outcome, or a problem (with `refused`: True when nothing was sent)."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/api/events/{quote(event_id, safe='')}/replay"
    body = json.dumps({"force": force, "idempotency_key": key})
    try:
        resp = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as e:
        raise AdminError(f"cannot reach the Seamline admin API at {base} ({type(e).__name__}: {e})", EXIT_UNREACHABLE) from None
    if resp.status_code == 401:
        raise AdminError(f"the admin API at {base} did not accept the admin token (or needs one)", EXIT_UNAUTHORIZED)
    if resp.status_code == 404 and "json" not in resp.headers.get("content-type", ""):
        raise AdminError(f"{base} has no replay API: is the sidecar recording (storage.enabled)?", EXIT_UNREACHABLE)
    try:
        doc = resp.json()
    except ValueError:
        raise AdminError(f"{url} answered {resp.status_code} with a non-JSON body", EXIT_UNREACHABLE) from None
    if not isinstance(doc, dict):
        raise AdminError(f"{url} answered {resp.status_code} with JSON that is not an object", EXIT_UNREACHABLE)
    if resp.status_code >= 400:
        slug = str(doc.get("type") or "").rsplit("/", 1)[-1]
        return {"event_id": event_id, "refused": True, "http_status": resp.status_code, "problem": slug,
                "detail": str(doc.get("detail") or "")}  # fmt: skip
    return doc


def _key_for(key: str, event_id: str, many: bool) -> str:
    """One key per event when several are replayed (one key for two requests would be refused as reused); derived
    from the event, so running the same command again is protected by the duplicate guard too."""
    return f"{key}:{event_id}" if key and many else key


def render_results(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold dim")
    for name in ("event", "handoff", "→ status", "outcome", "guard / refusal", "new event"):
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for r in results:
        if r.get("refused"):
            table.add_row(
                Text(clean(r["event_id"]), style="cyan"), Text(clean(r.get("handoff") or "")), Text("not sent", style="yellow"),
                Text("—"), Text(clean(r.get("problem")), style="yellow"), Text("—"),
            )  # fmt: skip
            continue
        outcome = str(r.get("outcome") or "")
        guard = str(r.get("guard") or r.get("problem_type") or "")
        if r.get("replayed_by_guard"):
            guard = "replayed by the duplicate guard"
        table.add_row(
            Text(clean(r.get("event_id")), style="cyan"), Text(clean(r.get("handoff"))), Text(str(r.get("status") or "—")),
            Text(clean(outcome or "(not recorded yet)"), style=OUTCOME_STYLE.get(outcome, "")), Text(clean(guard)),
            Text(clean(r.get("replay_event_id"))),
        )  # fmt: skip
    console.print(table)
    sent = [r for r in results if not r.get("refused")]
    ok = [r for r in sent if r.get("outcome") in (o.OK, o.REPLAYED, o.UNVALIDATED)]
    refused = len(results) - len(sent)
    summary = f"{len(results)} event(s): {len(sent)} replayed ({len(ok)} ok), {refused} refused (not sent)"
    console.print(Text(summary, style="bold"))
    for r in results:
        if r.get("refused") and r.get("detail"):
            console.print(Text(f"  {clean(r['event_id'])}: {clean(r['detail'])}", style="yellow"))


def cmd_replay(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    if bool(args.event_id) == bool(args.run):
        print("seamline replay: give one EVENT_ID, or --run RUN_ID --failed", file=err)
        return EXIT_UNREACHABLE
    if args.run and not args.failed:
        print("seamline replay: --run replays a run's failed events only: add --failed", file=err)
        return EXIT_UNREACHABLE
    try:
        target = admin_target(args.admin_url, args.config)
        if args.event_id:
            events = [{"event_id": args.event_id, "handoff": ""}]
        else:
            run = fetch(target.base, "/api/runs/" + quote(args.run, safe=""), {"bodies": "false"}, token=target.token)
            events = failed_events(list(run.get("handoffs") or []))
        results = _replay_all(events, args, target.base, target.token, err)
    except AdminError as e:
        print(f"seamline replay: {e}", file=err)
        return e.exit_code
    if args.json:
        print(json.dumps({"results": results}, indent=2, ensure_ascii=False, default=str), file=out or sys.stdout)
    elif not results:
        make_console(out).print(f"Run {clean(args.run)}: no failed events left to replay.")
    else:
        render_results(results, make_console(out))
    if len(results) == 1 and results[0].get("refused") and results[0].get("http_status") == 404:
        return EXIT_NOT_FOUND
    return EXIT_REFUSED if any(r.get("refused") for r in results) else EXIT_OK


def _replay_all(events: list[dict[str, Any]], args: argparse.Namespace, base: str, token: str | None, err: TextIO) -> list[Any]:
    many = len(events) > 1
    results: list[dict[str, Any]] = []
    console = Console(file=err, highlight=False)
    with Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        console=console, transient=True, disable=not many or args.json,
    ) as progress:  # fmt: skip
        task = progress.add_task("", total=len(events))
        for ev in events:
            eid = str(ev["event_id"])
            progress.update(task, description=clean(ev.get("handoff") or eid))
            r = post_replay(base, eid, force=args.force, key=_key_for(args.idempotency_key or "", eid, many), token=token)
            r.setdefault("handoff", ev.get("handoff") or "")
            results.append(r)
            progress.advance(task)
    return results


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="re-send recorded requests through the sidecar (every guard applies)",
        description="Re-send a recorded request (or a run's failed ones) through the running sidecar's proxy: its "
        "credentials are the config's, never the redacted record's; each replay is recorded with replay_of. "
        "never_repeat steps need --force and --idempotency-key; safe_once steps need a key (the original's or a new one).",
    )
    p.add_argument("event_id", nargs="?", metavar="EVENT_ID", help="the event to replay")
    p.add_argument("--run", metavar="RUN_ID", default=None, help="replay this run's failed events (with --failed)")
    p.add_argument("--failed", action="store_true", help="with --run: its failed events that did not recover since")
    p.add_argument("--force", action="store_true", help="allow replaying never_repeat steps (with --idempotency-key)")
    p.add_argument(
        "--idempotency-key", default=None, metavar="KEY",
        help="sent as Idempotency-Key, so the duplicate guard lets the replay through at most once "
        "(with several events: KEY:<event id> each)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    _add_admin_url(p)
    p.set_defaults(func=cmd_replay)
