"""`seamline demo`: mocks + a real Seamline sidecar (embedded store) + the order workflow, then a summary."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
from typing import Any

from rich.console import Console

from seamline.config import ConfigError, load_config
from seamline.demo.config import demo_config
from seamline.demo.driver import DemoSummary, run_demo
from seamline.demo.mocks import MockFleet


async def demo(
    *,
    runs: int = 40,
    seed: int = 7,
    failure_rate: float = 0.2,
    concurrency: int = 8,
    admin_port: int = 9090,
    proxy_port: int = 0,
    storage: dict[str, Any] | None = None,
    keep_serving: bool = False,
    console: Console | None = None,
    progress: bool = True,
    stop_event: asyncio.Event | None = None,
) -> DemoSummary:
    """Start the mocks and a sidecar, drive the runs, print the summary; with `keep_serving`, wait for `stop_event`."""
    from seamline.sidecar import Sidecar

    console = console or Console(stderr=True, soft_wrap=True)
    fleet = MockFleet(seed=seed, failure_rate=failure_rate)
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
            runs, seed, failure_rate, sidecar.proxy_url,
            admin_url=sidecar.admin_url, concurrency=concurrency, flush=flush, console=console, progress=progress,
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


def cmd_demo(args: argparse.Namespace) -> int:
    if not 0.0 <= args.failure_rate <= 1.0:
        print("seamline demo: --failure-rate must be between 0 and 1", file=sys.stderr)
        return 2
    if args.runs < 1:
        print("seamline demo: --runs must be at least 1", file=sys.stderr)
        return 2
    try:
        asyncio.run(demo(
            runs=args.runs, seed=args.seed, failure_rate=args.failure_rate, concurrency=args.concurrency,
            admin_port=args.admin_port, proxy_port=args.port, keep_serving=args.keep_serving, progress=not args.no_progress,
        ))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except OSError as e:
        print(f"seamline demo: cannot start: {e}", file=sys.stderr)
        return 2
    return 0


def add_parsers(subparsers: Any) -> None:
    """Add `demo` to the CLI (sets `func(args) -> exit code`)."""
    p = subparsers.add_parser(
        "demo", help="run a demo workflow with injected failures through Seamline",
        description="Start mock CRM, billing, provisioning and email APIs with seeded failures, a Seamline "
                    "sidecar on the embedded store, and N order runs through it; then print what Seamline caught.",
    )
    p.add_argument("--runs", type=int, default=40, help="order runs to drive (default 40)")
    p.add_argument("--seed", type=int, default=7, help="failure-injection seed: same seed, same failures (default 7)")
    p.add_argument("--failure-rate", type=float, default=0.2, help="share of calls that get a fault, 0..1 (default 0.2)")
    p.add_argument("--concurrency", type=int, default=8, help="runs in flight at once (default 8)")
    p.add_argument("--port", type=int, default=0, help="proxy port (default: ephemeral)")
    p.add_argument("--admin-port", type=int, default=9090, help="admin port for trace/runs/run pages (default 9090)")
    p.add_argument("--keep-serving", action="store_true", help="keep the sidecar and mocks up after the runs (Ctrl-C stops)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
