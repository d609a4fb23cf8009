"""`seamline contracts suggest` and `seamline contracts diff`: contracts learned from recorded traffic, and the
drift of that traffic from the contracts configured.

Both read the calls through the sidecar's admin API (the embedded store is the sidecar's), or straight from a
ClickHouse server when the config's `storage.clickhouse_url` is one and no `--admin-url` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from seamline.config.loader import ConfigError, load_config
from seamline.config.models import Config
from seamline.learn import render, yamlout
from seamline.learn.diff import DriftReport, Reference
from seamline.learn.source import AdminSource, CallFilter, CallSource, StoreSource, read_calls
from seamline.learn.suggest import TrafficGrouper
from seamline.read.api import ParamError, parse_since
from seamline.read.queries import resolve_since
from seamline.read.terminal import DEFAULT_CONFIG, EXIT_OK, EXIT_UNREACHABLE, AdminError, admin_target, clean, make_console
from seamline.record.store import StoreError

EXIT_DRIFT = 1


class UsageError(Exception):
    """The command cannot run as asked; the message says what to change."""


def _config(path: str | None) -> tuple[Config | None, str | None]:
    """The config (--config, SEAMLINE_CONFIG, ./seamline.yaml if present), and its path; (None, None) without one."""
    explicit = path or os.environ.get("SEAMLINE_CONFIG")
    chosen = explicit or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    if chosen is None:
        return None, None
    try:
        return load_config(chosen), chosen
    except ConfigError as e:
        raise UsageError(str(e)) from None


def _source(args: argparse.Namespace, cfg: Config | None) -> CallSource:
    url = args.admin_url or os.environ.get("SEAMLINE_ADMIN_URL")
    if url is None and cfg is not None and cfg.storage.clickhouse_url.startswith(("http://", "https://")):
        return StoreSource(cfg.storage)
    return AdminSource(admin_target(args.admin_url, args.config))


def _filter(args: argparse.Namespace) -> CallFilter:
    try:
        since = parse_since(args.since)
    except ParamError as e:
        raise UsageError(str(e)) from None
    if args.max_calls < 1:
        raise UsageError("--max-calls must be at least 1")
    return CallFilter(upstream=args.upstream, handoff=args.handoff, since=resolve_since(since), max_calls=args.max_calls)


def _read(args: argparse.Namespace, cfg: Config | None, err: Console | None) -> tuple[list[dict[str, Any]], CallFilter, str]:
    flt = _filter(args)
    source = _source(args, cfg)
    try:
        rows = list(read_calls(source, flt, console=err))
    finally:
        source.close()
    return rows, flt, source.describe()


def _run(name: str, fn: Any, args: argparse.Namespace, out: TextIO | None, err: TextIO | None) -> int:
    stderr = err or sys.stderr
    try:
        return int(fn(args, out or sys.stdout, stderr))
    except UsageError as e:
        print(f"seamline contracts {name}: {e}", file=stderr)
        return 2
    except AdminError as e:
        print(f"seamline contracts {name}: {e}", file=stderr)
        return e.exit_code
    except StoreError as e:  # a ClickHouse server that cannot be read: one line, not a traceback
        print(f"seamline contracts {name}: cannot read the store: {e}", file=stderr)
        return EXIT_UNREACHABLE


# -- suggest -----------------------------------------------------------------------------------------------------------


def cmd_suggest(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    return _run("suggest", _suggest, args, out, err)


def _suggest(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cfg, _ = _config(args.config)
    if args.handoff and cfg is not None and args.handoff not in cfg.handoffs and not args.handoff.endswith(".other"):
        known = ", ".join(sorted(cfg.handoffs)) or "none"
        raise UsageError(f"--handoff {args.handoff!r} is not a handoff of the config (known: {known})")
    if args.upstream and cfg is not None and args.upstream not in cfg.upstreams:
        raise UsageError(f"--upstream {args.upstream!r} is not an upstream of the config (known: {', '.join(cfg.upstreams)})")
    rows, flt, where = _read(args, cfg, _err_console(err))
    grouper = TrafficGrouper(cfg)
    grouper.extend(rows)
    traffic = sorted(grouper.handoffs.values(), key=lambda t: t.name)
    if not traffic:
        print(f"seamline contracts suggest: no answered calls recorded for {flt.describe()} ({where})", file=err)
        return 1
    header = (
        f"Suggested by `seamline contracts suggest` from {len(rows)} calls ({flt.describe()}, read from {where}).\n"
        "Review it: every schema accepts exactly what was seen. Uncomment the `enum` lines you want enforced, check\n"
        "`required`, then put it in seamline.yaml (or a contract file) and run `seamline check-config`."
    )
    if len(rows) >= flt.max_calls:
        header += f"\nOnly the {flt.max_calls} most recent calls were read (--max-calls)."
    if args.as_ == "openapi":
        upstreams = sorted({t.upstream for t in traffic})
        if len(upstreams) != 1:
            raise UsageError(f"--as openapi describes one upstream; these calls span {', '.join(upstreams)}")
        base = cfg.upstreams[upstreams[0]].base_url if cfg is not None and upstreams[0] in cfg.upstreams else None
        doc = render.openapi_document(upstreams[0], traffic, base_url=base, since=flt.describe())
    else:
        wanted = [n for n, h in (cfg.handoffs.items() if cfg else ()) if h.upstream == args.upstream or n == args.handoff]
        doc = render.handoffs_document(traffic, not_called=[n for n in wanted if n not in grouper.handoffs])
    text = yamlout.dump(doc, header=header)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(traffic)} handoff(s) from {len(rows)} calls)", file=err)
    else:
        out.write(text)
    return EXIT_OK


# -- diff --------------------------------------------------------------------------------------------------------------


def references(cfg: Config, source: str) -> dict[str, Reference]:
    """What each handoff is compared with: the contracts the sidecar would compile from this config.

    `Validator` is the one place contracts come from, so an OpenAPI document's derived contracts
    (`upstreams.<name>.openapi`) are references here as soon as the validator knows them.
    """
    from seamline.validate.validator import Validator

    try:
        return dict(Validator(cfg, source=source).contracts)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def cmd_diff(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    return _run("diff", _diff, args, out, err)


def _diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cfg, path = _config(args.config)
    if cfg is None or path is None:
        raise UsageError(
            f"diff compares traffic with the configured contracts: pass --config (or run where ./{DEFAULT_CONFIG} is)"
        )
    if args.upstream and args.upstream not in cfg.upstreams:
        raise UsageError(f"--upstream {args.upstream!r} is not an upstream of the config (known: {', '.join(cfg.upstreams)})")
    refs = references(cfg, path)
    rows, flt, where = _read(args, cfg, _err_console(err))
    report = DriftReport(refs)
    report.extend(rows)
    if args.json:
        doc = {"filter": flt.describe(), "source": where, "calls": len(rows), **report.to_json()}
        print(json.dumps(doc, indent=2, ensure_ascii=False), file=out)
    else:
        render_drift(report, make_console(out), flt.describe(), len(rows))
    return EXIT_DRIFT if args.exit_code and report.has_drift() else EXIT_OK


_KIND_LABEL = {"unknown_field": "field not in schema", "missing_field": "required field missing", "undocumented_status": "status"}


def render_drift(report: DriftReport, console: Console, what: str, calls: int) -> None:
    """One table: per handoff, each drift finding with its count and an example event."""
    console.print(Text(f"Schema drift · {what} · {calls} calls", style="bold"))
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold dim")
    for name, justify in (
        ("handoff", "left"),
        ("drift", "left"),
        ("field / status", "left"),
        ("calls", "right"),
        ("share", "right"),
        ("last seen", "left"),
        ("example run · event", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    quiet: list[str] = []
    for d in sorted(report.handoffs.values(), key=lambda x: x.name):
        if d.reference == "none":
            quiet.append(d.name)
            continue
        findings = d.sorted_findings()
        if not findings:
            table.add_row(
                Text(clean(d.name)), Text("none", style="green"), Text(""), Text(str(d.calls)), Text(""), Text(""), Text("")
            )
        for f in findings:
            table.add_row(
                Text(clean(d.name)),
                Text(_KIND_LABEL[f.kind], style="yellow" if f.kind == "unknown_field" else "red"),
                Text(clean(f.item)),
                Text(str(f.count)),
                Text(f"{f.count / d.calls:.0%}" if d.calls else ""),
                Text(_when(f.last_seen)),
                Text(f"{clean(f.example_run)} · {clean(f.example)}", style="cyan"),
            )
    console.print(table)
    if quiet:
        names = ", ".join(clean(n) for n in quiet)
        console.print(
            Text(f"no contract to compare with: {names} (suggest one: seamline contracts suggest --handoff NAME)", style="dim")
        )
    if report.has_drift():
        console.print(
            Text("open an example with: seamline trace --json RUN_ID, or find it by event ID in the run pages", style="dim")
        )


def _when(ts: Any) -> str:
    if isinstance(ts, datetime):
        return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    try:
        return datetime.fromisoformat(str(ts)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return clean(ts)


def _err_console(err: TextIO) -> Console:
    return Console(file=err, highlight=False, emoji=False)


# -- parsers -----------------------------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, *, default_since: str) -> None:
    p.add_argument("--since", default=default_since, help=f"time window: 1h, 7d, an ISO time, or 'all' (default {default_since})")
    p.add_argument(
        "--max-calls", type=int, default=20_000, metavar="N", help="read at most the N most recent calls (default 20000)"
    )
    p.add_argument(
        "--admin-url",
        default=None,
        metavar="URL",
        help="the sidecar's admin listener (env SEAMLINE_ADMIN_URL; default: the config's); a config whose "
        "storage.clickhouse_url is a ClickHouse server is read directly unless this is given",
    )
    p.add_argument(
        "--config",
        "-c",
        default=None,
        metavar="FILE",
        help=f"the sidecar's seamline.yaml (env SEAMLINE_CONFIG; default ./{DEFAULT_CONFIG} if present): its handoffs, "
        "contracts, store, admin URL and token",
    )


def add_parsers(subparsers: Any) -> None:
    """Add `contracts suggest` and `contracts diff` to the CLI; each sets `func(args) -> exit code`."""
    c = subparsers.add_parser(
        "contracts",
        help="contracts learned from recorded traffic, and drift from them",
        description="Suggest contracts from recorded calls, and compare recorded calls with the configured contracts.",
    )
    sub = c.add_subparsers(dest="contracts_command", required=True)

    s = sub.add_parser(
        "suggest",
        help="print contracts (or an OpenAPI document) learned from recorded calls",
        description="Learn each handoff's contract from its recorded ok calls: status, response (and request) JSON "
        "Schema, required fields, formats, enum and extract candidates. Review, then commit it to seamline.yaml.",
    )
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--handoff", default=None, help="one handoff")
    which.add_argument("--upstream", default=None, help="every handoff of one upstream (calls no handoff matched included)")
    s.add_argument(
        "--as", dest="as_", choices=("config", "openapi"), default="config", help="config YAML (default) or OpenAPI 3.1"
    )
    s.add_argument("--output", "-o", default=None, metavar="FILE", help="write to FILE instead of stdout")
    _common(s, default_since="7d")
    s.set_defaults(func=cmd_suggest)

    d = sub.add_parser(
        "diff",
        help="recorded traffic against the configured contracts: unknown fields, missing fields, undocumented statuses",
        description="Compare recorded calls with each handoff's configured contract, per handoff, with counts and an "
        "example event ID for each finding.",
    )
    which = d.add_mutually_exclusive_group(required=True)
    which.add_argument("--upstream", default=None, help="every handoff of one upstream")
    which.add_argument("--handoff", default=None, help="one handoff")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--exit-code", action="store_true", help=f"exit {EXIT_DRIFT} when there is drift (for CI)")
    _common(d, default_since="7d")
    d.set_defaults(func=cmd_diff)
