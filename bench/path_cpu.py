"""The request path's own cost: bare vs Seamline from two source trees, paired and interleaved (issue #15).

    PYTHONPATH=src .venv/bin/python bench/path_cpu.py --before /path/to/old/checkout [--after .] [--rounds 5]
        [--concurrency 1,16,64] [--methods GET,POST] [--storage off|on] [--duration 5]

bench/compare.py's workload and layout (nginx upstream and wrk on CPU 0, each proxy and all it starts on CPU 1;
a caller run ID, a bearer token and on POST a fresh Idempotency-Key per request; compare.py's contracts, guards
off, OTEL_* unset so no span exporter) against three targets: `bare` (bench/_bare_proxy.py), `before` and `after`
(`seamline serve` from each tree). `--storage off` (the default) sets `storage.enabled: false`: what is left is
the request path itself, the part Seamline shares with no recorder. Every round runs each cell on each target,
in an order that rotates per round, so a neighbour's burst hits them all. Prints, per cell, the median and
min–max of CPU µs per request (utime + stime of the process tree from /proc over the wrk run ÷ requests served)
and of p50 latency, and the ratios after/before and bare/after (one-core capacity as a share of bare's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from compare import LOAD_CPU, PROXY_CPU, Target, ensure_apt, nginx_conf, seamline_config, upstream_server, wrk
from proxy import free_port, pinned, stop_all, wait_port

HERE = Path(__file__).resolve().parent


def start(name: str, tree: Path | None, up: int, tmp: Path, storage: bool) -> Target:
    port = free_port()
    url = f"http://127.0.0.1:{port}/bench/item"
    log = (tmp / f"{name}.log").open("wb")
    if tree is None:
        cmd = [sys.executable, str(HERE / "_bare_proxy.py"), str(port), f"http://127.0.0.1:{up}"]
        proc = subprocess.Popen(pinned(cmd, PROXY_CPU), stderr=log)
        wait_port(port, 60)
        return Target(name, url, proc)
    cfg_path = seamline_config(tmp, f"seamline-{name}", up)
    cfg = json.loads(cfg_path.read_text())
    if not storage:
        cfg["storage"] = {"enabled": False}
    cfg_path.write_text(json.dumps(cfg))
    admin = free_port()
    cmd = [sys.executable, "-m", "seamline", "serve", "--config", str(cfg_path), "--port", str(port), "--admin-port", str(admin)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
    env["PYTHONPATH"] = str(tree / "src")
    proc = subprocess.Popen(pinned([*cmd, "--log-level", "WARNING"], PROXY_CPU), env=env, stderr=log, cwd=tree)
    wait_port(port, 90)
    return Target(name, url, proc, admin)


def med(vals: list[float]) -> str:
    return f"{statistics.median(vals):,.0f} ({min(vals):,.0f}–{max(vals):,.0f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", default=HERE.parent, type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--methods", default="GET,POST")
    ap.add_argument("--storage", choices=("off", "on"), default="off")
    ap.add_argument("--targets", default="bare,before,after")
    args = ap.parse_args()
    nginx = ensure_apt("nginx", "nginx")
    ensure_apt("wrk", "wrk")
    tmp = Path(tempfile.mkdtemp(prefix="seamline-path-"))
    procs: list[subprocess.Popen[bytes]] = []
    storage = args.storage == "on"
    try:
        up = free_port()
        procs.append(subprocess.Popen(pinned([nginx, "-c", str(nginx_conf(tmp, "upstream", upstream_server(up)))], LOAD_CPU)))
        wait_port(up)
        trees = {"bare": None, "before": args.before.resolve(), "after": args.after.resolve()}
        targets = [start(n, trees[n], up, tmp, storage) for n in args.targets.split(",")]
        procs += [t.proc for t in targets if t.proc]
        methods, concs = args.methods.split(","), [int(c) for c in args.concurrency.split(",")]
        for t in targets:
            for m in methods:
                wrk(t, 16, 2, m, tmp)  # warm-up
        got: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for m in methods:
                for c in concs:
                    order = targets[r % len(targets) :] + targets[: r % len(targets)]
                    for t in order:
                        res = wrk(t, c, args.duration, m, tmp)
                        got.setdefault((m, c, t.name), []).append(res)
                        print(
                            f"round {r + 1} {m} c={c:<3} {t.name:<7} {res['rps']:>8,.0f} req/s  p50 {res['p50_us']:>6,.0f} µs"
                            f"  CPU {res['cpu_us']:>6,.0f} µs/req"
                            + (
                                f"  errors {res['non2xx'] + res['socket_errors']}" if res["non2xx"] + res["socket_errors"] else ""
                            ),
                            flush=True,
                        )
        print(f"\nstorage {args.storage}; {args.rounds} rounds × {args.duration} s; median (min–max)")
        print("| cell | target | req/s | p50 µs | CPU µs/req |")
        print("|---|---|---:|---:|---:|")
        for (m, c, name), rs in got.items():
            print(
                f"| {m} c={c} | {name} | {med([x['rps'] for x in rs])} | {med([x['p50_us'] for x in rs])} "
                f"| {med([x['cpu_us'] for x in rs])} |"
            )
        print()
        for m in methods:
            for c in concs:
                cpu = {n: statistics.median(x["cpu_us"] for x in got[(m, c, n)]) for n in trees if (m, c, n) in got}
                p50 = {n: statistics.median(x["p50_us"] for x in got[(m, c, n)]) for n in trees if (m, c, n) in got}
                bits = [f"{m} c={c}:"]
                if "before" in cpu and "after" in cpu:
                    bits.append(f"CPU after/before {cpu['after'] / cpu['before']:.3f}")
                for n in ("before", "after"):
                    if "bare" in cpu and n in cpu:
                        bits.append(f"bare/{n} by CPU {cpu['bare'] / cpu[n]:.2f}")
                if "before" in p50 and "after" in p50:
                    bits.append(f"p50 before {p50['before']:,.0f} after {p50['after']:,.0f} bare {p50.get('bare', 0):,.0f} µs")
                print("  ".join(bits))
    finally:
        stop_all(procs, 20)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
