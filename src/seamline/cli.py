"""`seamline` command line: serve, check-config, migrate, schema, trace, runs, top, alerts, contracts, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from typing import Any

from seamline import __version__
from seamline.config.loader import ConfigError, load_config_or_report
from seamline.demo import cli as demo_cli
from seamline.learn import cli as learn_cli
from seamline.read import alerts_cli, terminal, top
from seamline.record import cli as record_cli
from seamline.replay import cli as replay_cli

# Subcommands contributed by other modules, each through add_parsers(subparsers), in `--help` order:
# migrate, schema (record); trace, runs, top, alerts (read); contracts (learn); replay; demo.
_SUBCOMMANDS = (record_cli, terminal, top, alerts_cli, learn_cli, replay_cli, demo_cli)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    server: dict[str, Any] = {}
    if getattr(args, "port", None) is not None:
        server["port"] = args.port
    if getattr(args, "admin_port", None) is not None:
        server["admin_port"] = args.admin_port
    if getattr(args, "host", None) is not None:
        server["host"] = args.host
    if getattr(args, "workers", None) is not None:
        server["workers"] = args.workers
    return {"server": server} if server else {}


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(args.file)
    if cfg is None:
        return 2
    from seamline.validate.validator import Validator

    try:
        Validator(cfg, source=str(args.file))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    from seamline.validate.openapi import openapi_specs

    specs = openapi_specs(cfg)
    derived = f" ({len(specs.derived)} derived from OpenAPI)" if specs.documents else ""
    print(f"{args.file}: OK — {len(cfg.upstreams)} upstream(s), {len(cfg.handoffs)} handoff(s){derived}")
    print(f"reverse mode: http://{cfg.server.host}:{cfg.server.port}/<upstream>/<path>")
    for name, up in cfg.upstreams.items():
        print(f"  /{name}/…  →  {up.base_url}" + ("  (private addresses allowed)" if up.allow_private else ""))
        doc = specs.documents.get(name)
        if doc is not None:
            ops = sum(1 for b in specs.bindings.values() if b[0] == name)
            own = sum(1 for h, b in specs.bindings.items() if b[0] == name and h not in specs.derived)
            server = f"; document's server {doc.servers[0]}" if doc.servers else ""
            about = f"OpenAPI {doc.version}, {doc.title!r}"
            print(f"      openapi: {doc.file} ({about}): {ops} operation(s), {ops - own} derived{server}")
            for why in doc.skipped:
                print(f"      skipped: {why}")
        for hname, h in cfg.handoffs.items():
            if h.upstream == name:
                op = specs.operation(hname)
                contract = "contract" if h.contract else "no contract"
                if op is not None:
                    contract = f"openapi {' '.join(op.statuses) or '(no statuses)'}" + (" + contract" if h.contract else "")
                print(f"      {h.match:<40} {hname}  [{h.safety}, {contract}]")
        print(f"      {'* (anything else)':<40} {name}.other")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from seamline.logs import setup_logging

    setup_logging(args.log_level)
    cfg = load_config_or_report(args.config, overrides=_overrides(args))
    if cfg is None:
        return 2
    slot = None
    if args.worker_slot is not None:  # started by the supervisor of `serve --workers N`
        from seamline.workers.slot import WorkerSlot

        slot = WorkerSlot.from_arg(args.worker_slot)
        slot.tag_logs()
        slot.die_with_supervisor()
        cfg = slot.configure(cfg)
    elif cfg.server.workers > 1:
        from seamline.workers.supervisor import Supervisor

        return asyncio.run(Supervisor(cfg, str(args.config), log_level=args.log_level).run())
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        pass
    return asyncio.run(_serve(cfg, str(args.config), slot))


async def _serve(cfg: Any, source: str, slot: Any = None) -> int:
    from seamline.sidecar import Sidecar

    try:
        sidecar = Sidecar(cfg, source=source, worker=slot)  # contracts compile here: a bad one is a config error
        await sidecar.start()
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    # Start-up objects (config, compiled contracts, imported modules) live for the whole process:
    # keep the cyclic GC from rescanning them on every collection.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if slot is not None:
        from seamline.workers.slot import ready

        ready()  # the supervisor prints the banner once every worker is ready
    else:
        print(f"seamline {__version__}: proxy {sidecar.proxy_url}  admin {sidecar.admin_url}", file=sys.stderr, flush=True)
    await stop.wait()
    await sidecar.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seamline", description="Observability sidecar for integration handoffs.")
    p.add_argument("--version", action="version", version=f"seamline {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the proxy and the admin listener")
    s.add_argument("--config", "-c", default=os.environ.get("SEAMLINE_CONFIG", "seamline.yaml"))
    s.add_argument("--host", default=None, help="proxy listen address (default from config: 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="proxy port (default 8080)")
    s.add_argument("--admin-port", type=int, default=None, help="admin port (default 9090)")
    s.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="proxy processes sharing the port under one supervisor (default from config: 1, one process)",
    )  # fmt: skip
    s.add_argument("--log-level", default=os.environ.get("SEAMLINE_LOG_LEVEL", "INFO"))
    s.add_argument("--worker-slot", default=None, help=argparse.SUPPRESS)  # set by the supervisor for its workers
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("check-config", help="validate a config file and print the resolved routes")
    c.add_argument("file")
    c.set_defaults(func=cmd_check_config)

    for module in _SUBCOMMANDS:
        module.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
