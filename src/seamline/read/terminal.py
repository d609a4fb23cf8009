"""`seamline trace RUN_ID` and `seamline runs`: read runs through the running sidecar's admin API and draw them.

The CLI never opens the store itself: an embedded (chdb) store is locked by the sidecar's process. It sends the
admin token (SEAMLINE_ADMIN_TOKEN, SEAMLINE_ADMIN_TOKEN_FILE, or `admin.token`/`admin.token_file` of the config).
Colour only when writing to a terminal (rich decides; NO_COLOR is honoured).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import httpx
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from seamline import outcomes as o

DEFAULT_ADMIN_URL = "http://127.0.0.1:9090"
EXIT_OK, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_UNAUTHORIZED = 0, 1, 2, 3
DEFAULT_CONFIG = "seamline.yaml"
BAR_WIDTH = 32

OUTCOME_STYLE = {
    o.OK: "green",
    o.UNVALIDATED: "dim",
    o.SILENT_FAILURE: "bold magenta",
    o.CONTRACT_VIOLATION: "yellow",
    o.HTTP_ERROR: "red",
    o.TRANSPORT_ERROR: "bold red",
    o.REFUSED: "cyan",  # Seamline answered itself: not the upstream's red
}
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class AdminError(Exception):
    """The admin API could not answer; `exit_code` says how the CLI should end."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def clean(value: Any) -> str:
    """Untrusted text made harmless for a terminal: control characters (ANSI escapes too) shown as \\xNN."""
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None else str(value))


@dataclass(frozen=True)
class AdminTarget:
    """Where the admin API is and the token it wants (None: send none)."""

    base: str
    token: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"AdminTarget(base={self.base!r}, token={'set' if self.token else None})"


def admin_target(url_arg: str | None, config_arg: str | None) -> AdminTarget:
    """The admin URL (--admin-url, SEAMLINE_ADMIN_URL, the config's listener, the default) and token
    (SEAMLINE_ADMIN_TOKEN, SEAMLINE_ADMIN_TOKEN_FILE, the config's admin.token / admin.token_file).

    The config is --config, SEAMLINE_CONFIG, or ./seamline.yaml when it exists; an explicit one that does not load
    is an error (exit 2), an implicit one is skipped with a note.
    """
    from seamline.config.admin import read_token_file
    from seamline.config.loader import ConfigError, load_config

    url = url_arg or os.environ.get("SEAMLINE_ADMIN_URL")
    token = os.environ.get("SEAMLINE_ADMIN_TOKEN") or None
    if token is None and os.environ.get("SEAMLINE_ADMIN_TOKEN_FILE"):
        try:
            token = read_token_file(os.environ["SEAMLINE_ADMIN_TOKEN_FILE"])
        except ValueError as e:
            raise AdminError(f"SEAMLINE_ADMIN_TOKEN_FILE: {e}", EXIT_UNREACHABLE) from None
    explicit = config_arg or os.environ.get("SEAMLINE_CONFIG")
    path = explicit or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    if path is not None and (token is None or url is None):
        try:
            cfg = load_config(path)
        except ConfigError as e:
            if explicit:
                raise AdminError(str(e), EXIT_UNREACHABLE) from None
            print(f"note: ignoring ./{DEFAULT_CONFIG}: {str(e).splitlines()[0]}", file=sys.stderr)
        else:
            try:
                token = token or cfg.admin.secret()
            except ValueError as e:
                raise AdminError(f"{path}: admin.token_file: {e}", EXIT_UNREACHABLE) from None
            if url is None and cfg.server.admin_port:
                host = cfg.server.admin_host
                host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
                url = f"http://{host}:{cfg.server.admin_port}"
    return AdminTarget((url or DEFAULT_ADMIN_URL).rstrip("/"), token)


def fetch(
    base: str, path: str, params: dict[str, str] | None = None, *, timeout: float = 10.0, token: str | None = None
) -> dict[str, Any]:
    """GET a JSON document from the admin API, turning every failure into an AdminError with a next step."""
    url = base + path
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        resp = httpx.get(url, params=params, timeout=timeout, headers=headers)
    except httpx.HTTPError as e:
        raise AdminError(
            f"cannot reach the Seamline admin API at {base} ({type(e).__name__}: {e}).\n"
            "Is the sidecar running? Point at it with --admin-url URL or SEAMLINE_ADMIN_URL.",
            EXIT_UNREACHABLE,
        ) from None
    if resp.status_code == 401:
        raise AdminError(
            f"the admin API at {base} did not accept the admin token sent"
            if token
            else f"the admin API at {base} needs its admin token: set SEAMLINE_ADMIN_TOKEN (or SEAMLINE_ADMIN_TOKEN_FILE), "
            "or pass --config with the sidecar's seamline.yaml (admin.token / admin.token_file)",
            EXIT_UNAUTHORIZED,
        )
    try:
        body = resp.json()
    except ValueError:
        raise AdminError(
            f"{url} answered {resp.status_code} with a non-JSON body; is {base} a Seamline admin listener?", EXIT_UNREACHABLE
        ) from None
    if not isinstance(body, dict):
        raise AdminError(
            f"{url} answered {resp.status_code} with JSON that is not an object; is {base} a Seamline admin listener?",
            EXIT_UNREACHABLE,
        )
    if resp.status_code == 404:
        raise AdminError(str(body.get("detail") or "not found"), EXIT_NOT_FOUND)
    if resp.status_code == 400:
        raise AdminError(str(body.get("detail") or "bad request"), EXIT_UNREACHABLE)
    if resp.status_code >= 400:
        raise AdminError(f"{url} answered {resp.status_code}: {body.get('detail') or body.get('title') or ''}", EXIT_NOT_FOUND)
    return body


def _ms(v: Any) -> str:
    v = float(v or 0)
    if v == 0:
        return "0ms"
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.0f}ms" if v >= 10 else f"{v:.1f}ms"


def _path(url: str) -> str:
    parts = urlsplit(url or "")
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if parts.scheme else (url or "")


def duration_bar(offset_ms: float, duration_ms: float, total_ms: float, width: int = BAR_WIDTH) -> str:
    """A fixed-width bar: blanks up to the offset, then at least one block for the duration."""
    total = max(total_ms, 1e-9)
    start = min(int(offset_ms / total * width), width - 1)
    length = max(1, round(duration_ms / total * width))
    length = min(length, width - start)
    return " " * start + "█" * length + " " * (width - start - length)


def _ts(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return clean(value)


def _failed(summary: dict[str, Any], *, short: bool = False) -> str:
    """`3 failed (1 refused)`: Seamline's own refusals count as failed steps but are told apart."""
    failed, refused = int(summary.get("failed") or 0), int(summary.get("refused") or 0)
    text = str(failed) if short else f"{failed} failed"
    return f"{text} ({refused} refused)" if refused else text


def _failed_style(summary: dict[str, Any]) -> str:
    failed, refused = int(summary.get("failed") or 0), int(summary.get("refused") or 0)
    return "" if not failed else OUTCOME_STYLE[o.REFUSED] if failed == refused else "red"


def render_run(run: dict[str, Any], console: Console, *, bodies: bool = False) -> None:
    """Draw one run (the JSON of GET /api/runs/{run_id}) as a timeline."""
    s = run.get("summary") or {}
    rows = run.get("handoffs") or []
    total = float(s.get("duration_ms") or 0)
    worst = str(s.get("worst_outcome") or "")
    head = Text()
    head.append("Run ", style="bold")
    head.append(clean(run.get("run_id")), style="bold cyan")
    head.append("  ")
    head.append(clean(worst or "—"), style=OUTCOME_STYLE.get(worst, ""))
    head.append(f"  {len(rows)} handoffs · {_ms(total)} · {_failed(s)} · started {_ts(s.get('first_ts'))}")
    traces = list(s.get("trace_ids") or [])
    if traces:
        more = f" (+{len(traces) - 2} more)" if len(traces) > 2 else ""
        head.append(f" · trace {clean(', '.join(traces[:2]))}{more}", style="dim")
    console.print(head)

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold dim")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("offset", "right"),
        ("handoff", "left"),
        ("request", "left"),
        ("status", "right"),
        ("timeline", "left"),
        ("duration", "right"),
        ("outcome", "left"),
        ("error", "left"),
    )
    for header, justify in columns:
        table.add_column(header, justify=justify, no_wrap=True, overflow="ellipsis")
    for row in rows:
        outcome = str(row.get("outcome") or "")
        style = OUTCOME_STYLE.get(outcome, "")
        err = str(row.get("error_class") or "")
        attempt = int(row.get("attempt") or 1)
        name = Text(clean(row.get("handoff") or "—"))  # unrouted (e.g. an unknown upstream)
        if attempt > 1:
            name.append(f" #{attempt}", style="dim")
        status = int(row.get("status") or 0)
        table.add_row(
            Text(f"+{_ms(row.get('offset_ms'))}"),
            name,
            Text(f"{clean(row.get('method'))} {clean(_path(str(row.get('url') or '')))}"),
            Text(
                str(status) if status else "—",
                style=style if outcome == o.REFUSED else "red" if status >= 400 or not status else "",
            ),
            Text(
                duration_bar(float(row.get("offset_ms") or 0), float(row.get("duration_ms") or 0), total), style=style or "blue"
            ),
            Text(_ms(row.get("duration_ms"))),
            Text(clean(outcome or "—"), style=style),
            Text(clean("" if err == o.NONE else err), style=style if outcome == o.REFUSED else "red"),
        )
    console.print(table)
    for row in rows:
        notes = []
        if row.get("outcome") == o.REFUSED:
            notes.append(f"refused by Seamline ({row.get('error_class') or '?'}), not an upstream failure")
        if row.get("violations"):
            notes.append("violations: " + ", ".join(map(str, row["violations"])))
        if row.get("error_detail"):
            notes.append("detail: " + str(row["error_detail"]))
        if row.get("external_ids"):
            notes.append("ids: " + ", ".join(f"{k}={v}" for k, v in sorted(row["external_ids"].items())))
        if notes:
            line = Text(f"  {clean(row.get('handoff') or '—')}: ", style="bold")
            line.append(clean(" · ".join(notes)), style=OUTCOME_STYLE.get(str(row.get("outcome") or ""), ""))
            console.print(line)
    if bodies:
        for row in rows:
            _render_bodies(row, console)


def _pretty(body: Any) -> str:
    if body in (None, ""):
        return "(empty)"
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(body)


def _render_bodies(row: dict[str, Any], console: Console) -> None:
    console.print(Text(f"\n── {clean(row.get('handoff'))} · {clean(row.get('method'))} {clean(row.get('url'))}", style="bold"))
    for label, hkey, bkey in (("request", "request_headers", "request_body"), ("response", "response_headers", "response_body")):
        console.print(Text(f"{label} headers:", style="dim"))
        for k, v in sorted((row.get(hkey) or {}).items()):
            console.print(Text(f"  {clean(k)}: {clean(v)}"))
        truncated = " (truncated)" if row.get(f"{label}_truncated") else ""
        console.print(Text(f"{label} body{truncated}:", style="dim"))
        console.print(Text(clean(_pretty(row.get(bkey)))))


def render_runs(listing: dict[str, Any], console: Console) -> None:
    """Draw the JSON of GET /api/runs as a table, most recent first."""
    rows = listing.get("runs") or []
    if not rows:
        console.print("No runs match.")
        return
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold dim")
    for name, justify in (
        ("last activity", "left"),
        ("run", "left"),
        ("handoffs", "right"),
        ("failed", "right"),
        ("worst outcome", "left"),
        ("error classes", "left"),
        ("failed handoffs", "left"),
        ("duration", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    for r in rows:
        worst = str(r.get("worst_outcome") or "")
        table.add_row(
            Text(_ts(r.get("last_ts"))),
            Text(clean(r.get("run_id")), style="cyan"),
            Text(str(r.get("handoffs", 0))),
            Text(_failed(r, short=True), style=_failed_style(r)),
            Text(clean(worst), style=OUTCOME_STYLE.get(worst, "")),
            Text(clean(", ".join(r.get("error_classes") or []))),
            Text(clean(", ".join(r.get("failed_handoffs") or []))),
            Text(_ms(r.get("duration_ms"))),
        )
    console.print(table)
    console.print(Text("trace one with: seamline trace RUN_ID", style="dim"))


def make_console(file: TextIO | None = None) -> Console:
    out = file or sys.stdout
    tty = out.isatty()
    # Piped output keeps full lines instead of rich's 80-column default.
    return Console(file=out, width=None if tty else 200, highlight=False, emoji=False, soft_wrap=False)


def cmd_trace(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    params = None if args.bodies or args.json else {"bodies": "false"}
    try:
        target = admin_target(args.admin_url, args.config)
        run = fetch(target.base, "/api/runs/" + quote(args.run_id, safe=""), params, token=target.token)
    except AdminError as e:
        print(f"seamline trace: {e}", file=err or sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(run, indent=2, ensure_ascii=False), file=out or sys.stdout)
    else:
        render_run(run, make_console(out), bodies=args.bodies)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    params = {"since": args.since, "limit": str(args.limit), "failed": "true" if args.failed else "false"}
    if args.outcome:
        params["outcome"] = args.outcome
    if args.handoff:
        params["handoff"] = args.handoff
    try:
        target = admin_target(args.admin_url, args.config)
        listing = fetch(target.base, "/api/runs", params, token=target.token)
    except AdminError as e:
        print(f"seamline runs: {e}", file=err or sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(listing, indent=2, ensure_ascii=False), file=out or sys.stdout)
    else:
        render_runs(listing, make_console(out))
    return EXIT_OK


def _add_admin_url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-url",
        default=None,
        metavar="URL",
        help=f"the sidecar's admin listener (env SEAMLINE_ADMIN_URL; default: the config's, else {DEFAULT_ADMIN_URL})",
    )
    p.add_argument(
        "--config",
        "-c",
        default=None,
        metavar="FILE",
        help=f"the sidecar's seamline.yaml, for its admin URL and token (env SEAMLINE_CONFIG; default ./{DEFAULT_CONFIG} "
        "if present); SEAMLINE_ADMIN_TOKEN or SEAMLINE_ADMIN_TOKEN_FILE give the token without one",
    )


def add_parsers(subparsers: Any) -> None:
    """Add `trace` and `runs` to the CLI; each sets `func(args) -> exit code`."""
    p = subparsers.add_parser(
        "trace", help="show one run as a terminal timeline", description="Show one run's handoffs as a timeline."
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="print the run as JSON")
    p.add_argument("--bodies", action="store_true", help="also print the redacted headers and bodies")
    _add_admin_url(p)
    p.set_defaults(func=cmd_trace)

    p = subparsers.add_parser("runs", help="list recent runs", description="List recent runs, most recent first.")
    p.add_argument(
        "--failed",
        action="store_true",
        help="only runs with a failed handoff (Seamline's own refusals included, counted as refused)",
    )
    p.add_argument("--since", default="1h", help="time window: 15m, 1h, 2d, an ISO time, or 'all' (default 1h)")
    p.add_argument("--outcome", default=None, help=f"only runs with a handoff of this outcome ({', '.join(o.OUTCOMES)})")
    p.add_argument("--handoff", default=None, help="only runs that include this handoff")
    p.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    _add_admin_url(p)
    p.set_defaults(func=cmd_runs)
