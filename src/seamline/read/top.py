"""`seamline top`: the handoff overview live in the terminal, worst handoff first (`q` quits, `--once` prints once).

Reads through the sidecar's admin API (`/api/handoffs`, `/readyz`) like `seamline runs`: the embedded store is the
sidecar's. With `--clickhouse-url` it queries a ClickHouse server directly, the same SQL (seamline.read.overview).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from seamline.read import overview
from seamline.read.terminal import EXIT_OK, AdminError, _add_admin_url, admin_target, clean, fetch, make_console

DEFAULT_INTERVAL = 5.0
SPARK = "▁▂▃▄▅▆▇█"


def _pct(v: Any) -> str:
    return "—" if v is None else f"{float(v):.1f}%"


def _ms(v: Any) -> str:
    return "—" if v is None else f"{float(v) / 1000:.2f}s" if float(v) >= 1000 else f"{float(v):.0f}ms"


def _rate_style(v: Any) -> str:
    return "" if v is None else "green" if v >= 95 else "yellow" if v >= 80 else "bold red"


def delta_text(delta: Any, *, higher_is_better: bool | None, unit: str = "pp", steady: float = 0.5) -> Text:
    """▲/▼ and the change against the previous window, green when better, red when worse."""
    if delta is None or abs(float(delta)) < steady:
        return Text("")
    up = float(delta) > 0
    style = "dim" if higher_is_better is None else "green" if up == higher_is_better else "red"
    shown = f"{float(delta):+.0f}" if unit == "" else f"{float(delta):+.1f}{unit}"
    return Text(f" {'▲' if up else '▼'}{shown}", style=style)


def spark(points: list[dict[str, Any]]) -> str:
    """Calls per bucket as block characters (the page draws business success on top; a terminal cell holds one)."""
    peak = max((int(p.get("calls") or 0) for p in points), default=0)
    if not peak:
        return " " * len(points)
    return "".join(" " if not p.get("calls") else SPARK[min(int(p["calls"] / peak * 7.999), 7)] for p in points)


def header(data: dict[str, Any], state: dict[str, Any] | None) -> Text:
    t = data.get("totals") or {}
    head = Text("seamline top", style="bold")
    head.append(f"  {clean(data.get('since'))}  ·  {t.get('calls_per_s', 0):g} calls/s  ·  business success ")
    rate = t.get("business_success_pct")
    head.append(_pct(rate), style=_rate_style(rate))
    if state is not None:
        sink = state.get("sink_up")
        head.append("  ·  sink ")
        head.append("up" if sink else "down" if sink is not None else "?", style="green" if sink else "bold red")
        head.append(f"  ·  spool {int(state.get('spool_records') or 0)} records")
        if state.get("dropped"):
            head.append(f"  ·  {int(state['dropped'])} dropped", style="bold red")
    head.append(f"  ·  {datetime.now(UTC).strftime('%H:%M:%S')} UTC  ·  q quits", style="dim")
    return head


def table(data: dict[str, Any]) -> Table:
    tab = Table(box=None, pad_edge=False, show_edge=False, header_style="bold dim")
    for name in ("handoff", "calls", "HTTP ok", "business ok", "silent", "p50", "p95", "top error", "429", "auth exp", "dups"):
        tab.add_column(name, justify="left" if name in ("handoff", "top error") else "right", no_wrap=True)
    tab.add_column("trend", no_wrap=True)
    for r in data.get("handoffs") or []:
        ch = r.get("change") or {}
        biz = r.get("business_success_pct")
        calls = Text(str(r.get("calls", 0)))
        calls.append_text(delta_text(ch.get("calls"), higher_is_better=None, unit="", steady=1))
        http = Text(_pct(r.get("http_success_pct")))
        http.append_text(delta_text(ch.get("http_success_pct"), higher_is_better=True))
        business = Text(_pct(biz), style=_rate_style(biz))
        business.append_text(delta_text(ch.get("business_success_pct"), higher_is_better=True))
        p95 = Text(_ms(r.get("p95_ms")))
        p95.append_text(delta_text(ch.get("p95_ms"), higher_is_better=False, unit="ms", steady=5))
        silent = int(r.get("silent_failures") or 0)
        tab.add_row(
            Text(clean(r.get("handoff") or "(unrouted)"), style="bold" if biz is not None and biz < 95 else ""),
            calls,
            http,
            business,
            Text(str(silent), style="magenta" if silent else "dim"),
            Text(_ms(r.get("p50_ms"))),
            p95,
            Text(clean(r.get("top_error_class") or "—"), style="red" if r.get("top_error_class") else "dim"),
            Text(str(r.get("rate_limited", 0))),
            Text(str(r.get("auth_expired", 0))),
            Text(str(r.get("duplicates_prevented", 0))),
            Text(spark(r.get("sparkline") or []), style="blue"),
        )
    return tab


def view(data: dict[str, Any], state: dict[str, Any] | None) -> Group:
    if not data.get("handoffs"):
        return Group(header(data, state), Text(f"No handoffs recorded in the last {clean(data.get('since'))}.", style="dim"))
    return Group(header(data, state), table(data))


def _direct_state_sql() -> str:
    # The latest heartbeat of every instance that wrote one in the last 10 minutes (what /readyz says, from the store).
    return (
        "SELECT min(sink_up) AS sink_up, sum(spool_records) AS spool_records, sum(dropped) AS dropped FROM "
        "(SELECT proxy_instance, argMax(sink_up, ts) AS sink_up, argMax(spool_records, ts) AS spool_records, "
        "argMax(dropped, ts) AS dropped FROM seamline_health WHERE ts > now() - INTERVAL 10 MINUTE "
        "GROUP BY proxy_instance)"
    )


def source(args: argparse.Namespace) -> Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]:
    """A function returning (overview, sink/spool state): through the admin API, or straight from ClickHouse."""
    if args.clickhouse_url:
        from seamline.record.store import open_store

        async def direct() -> tuple[dict[str, Any], dict[str, Any] | None]:
            store = open_store(args.clickhouse_url, args.database)
            try:
                data = await overview.handoff_health(store, args.since)
                rows = await store.query(_direct_state_sql())
            finally:
                await store.close()
            return data, (rows[0] if rows and rows[0].get("sink_up") is not None else None)

        return lambda: asyncio.run(direct())
    target = admin_target(args.admin_url, args.config)

    def via_admin() -> tuple[dict[str, Any], dict[str, Any] | None]:
        data = fetch(target.base, "/api/handoffs", {"since": args.since}, token=target.token)
        try:
            state: dict[str, Any] | None = fetch(target.base, "/readyz", token=target.token)
        except AdminError:
            state = {"sink_up": None, "ready": False}  # 503: not ready (spool full or recorder stopped)
        return data, state

    return via_admin


@contextmanager
def _keys(stream: TextIO) -> Iterator[Callable[[float], str]]:
    """`wait(timeout) -> key or ''`: cbreak mode on a terminal (so `q` needs no Enter); a plain wait otherwise."""
    if not stream.isatty():
        yield lambda timeout: (select.select([], [], [], timeout), "")[1]
        return
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield lambda timeout: os.read(fd, 1).decode(errors="replace") if select.select([fd], [], [], timeout)[0] else ""
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def cmd_top(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    try:
        get = source(args)
        data, state = get()
    except AdminError as e:
        print(f"seamline top: {e}", file=err or sys.stderr)
        return e.exit_code
    console = make_console(out)
    if args.once:
        console.print(view(data, state))
        return EXIT_OK
    with Live(view(data, state), console=console, screen=False, auto_refresh=False) as live, _keys(sys.stdin) as wait:
        while True:
            if wait(max(args.interval, 0.5)).lower() == "q":
                return EXIT_OK
            try:
                data, state = get()
            except AdminError as e:
                live.update(Group(Text(f"seamline top: {e}", style="bold red"), view(data, state)), refresh=True)
                continue
            live.update(view(data, state), refresh=True)


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "top",
        help="live handoff health in the terminal",
        description="Handoff health, worst first, refreshed every --interval seconds (q quits).",
    )
    p.add_argument("--since", default=overview.DEFAULT_WINDOW, choices=list(overview.WINDOWS), help="window (default 1h)")
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds between refreshes (default 5)")
    p.add_argument("--once", action="store_true", help="print the table once and exit")
    add_store_args(p)
    p.set_defaults(func=cmd_top)


def add_store_args(p: argparse.ArgumentParser) -> None:
    _add_admin_url(p)
    p.add_argument(
        "--clickhouse-url",
        default=None,
        metavar="URL",
        help="query this ClickHouse server directly (http(s)://user:pass@host:8123) instead of the admin API",
    )
    p.add_argument("--database", default="seamline", help="database with --clickhouse-url (default seamline)")
