"""`seamline demo`: mocks + a real Seamline sidecar (embedded store) + the order workflow, then a summary.

Three modes (the docker-compose demo runs the last two as separate containers):
- default: mocks, an embedded sidecar and the driver in one process;
- `--mocks-only`: just the four mock APIs, on fixed ports if asked, until SIGTERM/SIGINT;
- `--proxy-url URL`: just the driver, through a sidecar running elsewhere (whose config points at the mocks).

The mocks decide every fault from (seed, failure rate, handoff, X-Demo-Order, X-Demo-Attempt), so a mocks-only
process and a `--proxy-url` driver must be given the same `--seed` and `--failure-rate`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import sys
from typing import Any

from rich.console import Console
from yarl import URL

from seamline.config.loader import ConfigError, load_config
from seamline.demo.config import demo_config
from seamline.demo.driver import DemoSummary, SidecarUnavailable, run_demo, wait_for_sidecar
from seamline.demo.mocks import SERVICES, MockFleet

DEFAULT_RUNS = 40
DEFAULT_CONCURRENCY = 8
DEFAULT_ADMIN_PORT = 9090
DEFAULT_MOCK_HOST = "127.0.0.1"
DEFAULT_WAIT_S = 60.0

# The flags (argparse dests) each mode takes; the rest default to None/False so a stray one is an error, not ignored.
_COMMON = frozenset({"seed", "failure_rate"})
MODE_FLAGS: dict[str, frozenset[str]] = {
    "embedded": _COMMON | {"runs", "concurrency", "port", "admin_port", "keep_serving", "no_progress", "mock_host", "mock_ports"},
    "mocks-only": _COMMON | {"mocks_only", "mock_host", "mock_ports"},
    "proxy": _COMMON | {"runs", "concurrency", "no_progress", "proxy_url", "admin_url", "wait"},
}
_OPTIONAL = (
    "runs",
    "concurrency",
    "port",
    "admin_port",
    "keep_serving",
    "no_progress",
    "mock_host",
    "mock_ports",
    "mocks_only",
    "proxy_url",
    "admin_url",
    "wait",
)


async def demo(
    *,
    runs: int = DEFAULT_RUNS,
    seed: int = 7,
    failure_rate: float = 0.2,
    concurrency: int = DEFAULT_CONCURRENCY,
    admin_port: int = DEFAULT_ADMIN_PORT,
    proxy_port: int = 0,
    storage: dict[str, Any] | None = None,
    keep_serving: bool = False,
    console: Console | None = None,
    progress: bool = True,
    stop_event: asyncio.Event | None = None,
    mock_host: str = DEFAULT_MOCK_HOST,
    mock_ports: tuple[int, ...] | None = None,
) -> DemoSummary:
    """Start the mocks and a sidecar, drive the runs, print the summary; with `keep_serving`, wait for `stop_event`."""
    from seamline.sidecar import Sidecar

    console = console or Console(stderr=True, soft_wrap=True)
    fleet = MockFleet(seed=seed, failure_rate=failure_rate, host=mock_host, ports=mock_ports)
    await fleet.start()
    sidecar = None
    try:
        sidecar = await _start_sidecar(Sidecar, fleet.urls, admin_port, proxy_port, storage, console)
        recorder = getattr(sidecar, "recorder", None)

        async def flush() -> None:
            if recorder is not None:
                await recorder.flush(10.0)

        console.print(
            f"[bold]Seamline demo[/]: {runs} orders through {sidecar.proxy_url} "
            f"(seed {seed}, failure rate {failure_rate:.0%}); admin {sidecar.admin_url}",
            highlight=False,
        )
        summary = await run_demo(
            runs,
            seed,
            failure_rate,
            sidecar.proxy_url,
            admin_url=sidecar.admin_url,
            concurrency=concurrency,
            flush=flush,
            console=console,
            progress=progress,
        )
        summary.render(console)
        if keep_serving:
            console.print(
                f"\nServing: proxy {sidecar.proxy_url} · admin {sidecar.admin_url} · runs page {sidecar.admin_url}/runs"
                " — Ctrl-C to stop.",
                highlight=False,
            )
            await (stop_event or _signal_event()).wait()
        elif summary.trace_commands:
            console.print(
                "[dim](The sidecar stops with the demo; run `seamline demo --keep-serving` to try these "
                "against it while it serves.)[/]"
            )
        return summary
    finally:
        if sidecar is not None:
            await sidecar.stop()
        await fleet.stop()


async def serve_mocks(
    *,
    seed: int = 7,
    failure_rate: float = 0.2,
    host: str = DEFAULT_MOCK_HOST,
    ports: tuple[int, ...] | None = None,
    console: Console | None = None,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> MockFleet:
    """`--mocks-only`: serve the four mocks until `stop_event` (default: SIGTERM/SIGINT); sets `ready` once listening."""
    console = console or Console(stderr=True, soft_wrap=True)
    fleet = MockFleet(seed=seed, failure_rate=failure_rate, host=host, ports=ports)
    stop = stop_event or _signal_event()
    await fleet.start()
    try:
        console.print(
            f"[bold]Seamline demo mocks[/] on {host} (seed {seed}, failure rate {failure_rate:g}); "
            f"drive them with `seamline demo --proxy-url … --seed {seed} --failure-rate {failure_rate:g}`.",
            highlight=False,
        )
        for service in SERVICES:
            console.print(f"  {service:<13} {fleet.urls[service]}", highlight=False)
        console.print("SIGTERM or Ctrl-C stops.", highlight=False)
        if ready is not None:
            ready.set()
        await stop.wait()
        return fleet
    finally:
        await fleet.stop()


async def drive_external(
    *,
    proxy_url: str,
    admin_url: str | None = None,
    runs: int = DEFAULT_RUNS,
    seed: int = 7,
    failure_rate: float = 0.2,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait_s: float = DEFAULT_WAIT_S,
    console: Console | None = None,
    progress: bool = True,
) -> DemoSummary:
    """`--proxy-url`: wait for a sidecar run elsewhere, drive the runs through it, print the summary.

    `seed` and `failure_rate` must be the mocks' (they decide the faults); with `admin_url` the summary also
    reads the sidecar's record to count silent failures. Tokens come from the environment as in docker-compose.yml:
    SEAMLINE_CLIENT_TOKEN (X-Seamline-Token) and SEAMLINE_ADMIN_TOKEN (the admin API).
    """
    console = console or Console(stderr=True, soft_wrap=True)
    console.print(f"Waiting up to {wait_s:g}s for the sidecar at {admin_url or proxy_url} …", highlight=False)
    await wait_for_sidecar(proxy_url, admin_url, wait_s)
    console.print(
        f"[bold]Seamline demo[/]: {runs} orders through {proxy_url} "
        f"(the mocks must run with seed {seed}, failure rate {failure_rate:g})"
        + (f"; admin {admin_url}" if admin_url else "; no --admin-url, so Seamline's record is not read"),
        highlight=False,
    )
    summary = await run_demo(
        runs,
        seed,
        failure_rate,
        proxy_url,
        admin_url=admin_url,
        concurrency=concurrency,
        console=console,
        progress=progress,
        client_token=os.environ.get("SEAMLINE_CLIENT_TOKEN") or None,
        admin_token=os.environ.get("SEAMLINE_ADMIN_TOKEN") or None,
    )
    summary.render(console)
    if summary.trace_commands:
        console.print(f"[dim](Run these where {summary.admin_url or 'the admin API'} is reachable.)[/]", highlight=False)
    return summary


async def _start_sidecar(
    sidecar_cls: Any, urls: dict[str, str], admin_port: int, proxy_port: int, storage: dict[str, Any] | None, console: Console
) -> Any:
    cfg = load_config(None, overrides=demo_config(urls, admin_port=admin_port, proxy_port=proxy_port, storage=storage))
    sidecar = sidecar_cls(cfg)
    try:
        await sidecar.start()
        return sidecar
    except OSError as e:
        if e.errno != errno.EADDRINUSE or admin_port == 0:
            raise
        with contextlib.suppress(Exception):
            await sidecar.stop()
    console.print(f"[yellow]admin port {admin_port} is busy; using an ephemeral port[/]")
    cfg = load_config(None, overrides=demo_config(urls, admin_port=0, proxy_port=proxy_port, storage=storage))
    sidecar = sidecar_cls(cfg)
    await sidecar.start()
    return sidecar


def _signal_event() -> asyncio.Event:
    ev = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, ev.set)
    return ev


def demo_mode(args: argparse.Namespace) -> str:
    """'mocks-only', 'proxy' (an external sidecar) or 'embedded'."""
    if args.mocks_only:
        return "mocks-only"
    return "proxy" if args.proxy_url else "embedded"


def check_args(args: argparse.Namespace) -> str | None:
    """Why these demo arguments do not make sense together (None when they do)."""
    mode = demo_mode(args)
    stray = [d for d in _OPTIONAL if getattr(args, d) not in (None, False) and d not in MODE_FLAGS[mode]]
    if stray:
        flags = ", ".join("--" + d.replace("_", "-") for d in stray)
        what = {"mocks-only": "--mocks-only", "proxy": "--proxy-url", "embedded": "the embedded demo (no --proxy-url)"}[mode]
        return f"{flags} cannot be used with {what}"
    if not 0.0 <= args.failure_rate <= 1.0:
        return "--failure-rate must be between 0 and 1"
    if args.runs is not None and args.runs < 1:
        return "--runs must be at least 1"
    if args.concurrency is not None and args.concurrency < 1:
        return "--concurrency must be at least 1"
    if args.wait is not None and args.wait < 0:
        return "--wait must be 0 or more seconds"
    return None


def parse_ports(text: str) -> tuple[int, ...]:
    """'9101,9102,9103,9104' → four distinct ports, for crm, billing, provisioning and email in that order."""
    try:
        ports = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give {len(SERVICES)} port numbers separated by commas") from None
    if len(ports) != len(SERVICES):
        raise argparse.ArgumentTypeError(f"{text!r}: give {len(SERVICES)} ports, one each for {', '.join(SERVICES)}")
    if any(not 1 <= p <= 65535 for p in ports) or len(set(ports)) != len(ports):
        raise argparse.ArgumentTypeError(f"{text!r}: ports must be distinct and between 1 and 65535")
    return ports


def parse_http_url(text: str) -> str:
    """An http(s) base URL with a host, without a trailing slash."""
    try:
        url = URL(text)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"{text!r}: give an http:// or https:// URL with a host, e.g. http://seamline:8080")
    return text.rstrip("/")


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def cmd_demo(args: argparse.Namespace) -> int:
    problem = check_args(args)
    if problem:
        print(f"seamline demo: {problem}", file=sys.stderr)
        return 2
    mode = demo_mode(args)
    runs, concurrency = _or(args.runs, DEFAULT_RUNS), _or(args.concurrency, DEFAULT_CONCURRENCY)
    try:
        if mode == "mocks-only":
            asyncio.run(
                serve_mocks(
                    seed=args.seed,
                    failure_rate=args.failure_rate,
                    host=_or(args.mock_host, DEFAULT_MOCK_HOST),
                    ports=args.mock_ports,
                )
            )
        elif mode == "proxy":
            asyncio.run(
                drive_external(
                    proxy_url=args.proxy_url,
                    admin_url=args.admin_url,
                    runs=runs,
                    seed=args.seed,
                    failure_rate=args.failure_rate,
                    concurrency=concurrency,
                    wait_s=_or(args.wait, DEFAULT_WAIT_S),
                    progress=not args.no_progress,
                )
            )
        else:
            asyncio.run(
                demo(
                    runs=runs,
                    seed=args.seed,
                    failure_rate=args.failure_rate,
                    concurrency=concurrency,
                    admin_port=_or(args.admin_port, DEFAULT_ADMIN_PORT),
                    proxy_port=_or(args.port, 0),
                    keep_serving=args.keep_serving,
                    progress=not args.no_progress,
                    mock_host=_or(args.mock_host, DEFAULT_MOCK_HOST),
                    mock_ports=args.mock_ports,
                )
            )
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except SidecarUnavailable as e:
        print(f"seamline demo: the sidecar is not ready: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"seamline demo: cannot start: {e}", file=sys.stderr)
        return 2
    return 0


def add_parsers(subparsers: Any) -> None:
    """Add `demo` to the CLI (sets `func(args) -> exit code`)."""
    p = subparsers.add_parser(
        "demo",
        help="run a demo workflow with injected failures through Seamline",
        description="Start mock CRM, billing, provisioning and email APIs with seeded failures, a Seamline "
        "sidecar on the embedded store, and N order runs through it; then print what Seamline caught. "
        "--mocks-only and --proxy-url split this across processes (docker-compose's demo profile): "
        "give both the same --seed and --failure-rate, since the mocks decide the faults.",
    )
    p.add_argument("--runs", type=int, default=None, help=f"order runs to drive (default {DEFAULT_RUNS})")
    p.add_argument("--seed", type=int, default=7, help="failure-injection seed: same seed, same failures (default 7)")
    p.add_argument("--failure-rate", type=float, default=0.2, help="share of calls that get a fault, 0..1 (default 0.2)")
    p.add_argument("--concurrency", type=int, default=None, help=f"runs in flight at once (default {DEFAULT_CONCURRENCY})")
    p.add_argument("--port", type=int, default=None, help="proxy port (default: ephemeral)")
    p.add_argument(
        "--admin-port", type=int, default=None, help=f"admin port for trace/runs/run pages (default {DEFAULT_ADMIN_PORT})"
    )
    p.add_argument("--keep-serving", action="store_true", help="keep the sidecar and mocks up after the runs (Ctrl-C stops)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--mock-host",
        default=None,
        metavar="HOST",
        help=f"address the mocks bind (default {DEFAULT_MOCK_HOST}; 0.0.0.0 in a container)",
    )
    p.add_argument(
        "--mock-ports",
        type=parse_ports,
        default=None,
        metavar="CRM,BILLING,PROVISIONING,EMAIL",
        help="fixed mock ports, e.g. 9101,9102,9103,9104 (default: ephemeral)",
    )
    split = p.add_mutually_exclusive_group()
    split.add_argument(
        "--mocks-only", action="store_true", help="serve only the four mock APIs until SIGTERM/SIGINT (no sidecar, no runs)"
    )
    split.add_argument(
        "--proxy-url",
        type=parse_http_url,
        default=None,
        metavar="URL",
        help="drive the runs through a sidecar running elsewhere, e.g. http://seamline:8080 "
        "(no embedded sidecar, no mocks: its config points at a --mocks-only process)",
    )
    p.add_argument(
        "--admin-url",
        type=parse_http_url,
        default=None,
        metavar="URL",
        help="with --proxy-url: that sidecar's admin API, e.g. http://seamline:9090; waited on via /readyz "
        "and read for the summary's silent failures",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"with --proxy-url: how long to wait for the sidecar to answer (default {DEFAULT_WAIT_S:g})",
    )
    p.set_defaults(func=cmd_demo)
