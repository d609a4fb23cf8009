"""Throughput 1 → 2 workers: `seamline serve --workers N`, recording + contracts, the workload of compare.py (#15 item 4).

    PYTHONPATH=src .venv/bin/python bench/workers.py             # 3 interleaved rounds of 5 s, GET and POST, c=16,64
    PYTHONPATH=src .venv/bin/python bench/workers.py --quick     # 1 round of 3 s: a smoke run, not a figure

Targets (each Seamline exactly compare.py's `seamline`: embedded ClickHouse, contracts, redaction, guards off):

- `w1 cpu1`    one process (its engine process too) pinned to CPU 1; wrk and the upstream on CPU 0: compare.py's
               one-core figure, the load generator on its own core;
- `w1 cpu0-1`  one process free to use both CPUs (its engine, and the build offload, then run beside it);
- `w2 cpu0-1`  `--workers 2`: supervisor, two workers and the one engine process on both CPUs. On a 2-vCPU machine
               wrk and the upstream can have no core of their own here: they stay on CPU 0 and share it with
               whatever the scheduler puts there. What each target's process tree used is measured (CPU µs per
               request, utime + stime of the tree from /proc), so the report says where the cores went.

Rounds interleave the targets (the order rotates each round); medians with min–max. Results go to
bench/results/workers-<time>.{md,json}. Needs nginx (the upstream) and wrk, installed with apt-get when absent.
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
import time
from pathlib import Path
from typing import Any

from compare import LOAD_CPU, Target, ensure_apt, nginx_conf, recorded, seamline_config, summarise, upstream_server, wrk
from proxy import free_port, pinned, stop_all, wait_port

HERE = Path(__file__).resolve().parent
PY = sys.executable
TARGETS = {"w1 cpu1": (1, "1"), "w1 cpu0-1": (1, "0,1"), "w2 cpu0-1": (2, "0,1")}


def start(name: str, up: int, tmp: Path) -> Target:
    workers, cpus = TARGETS[name]
    port, admin = free_port(), free_port()
    cfg = seamline_config(tmp, f"seamline-{name.replace(' ', '-')}", up)
    cmd = [PY, "-m", "seamline", "serve", "--config", str(cfg), "--port", str(port), "--admin-port", str(admin)]
    cmd += ["--workers", str(workers), "--log-level", "WARNING"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
    log = (tmp / f"{name.replace(' ', '-')}.log").open("wb")
    proc = subprocess.Popen(pinned(cmd, cpus), env=env, stderr=log)
    wait_port(port, 120)
    wait_port(admin, 120)
    return Target(name, f"http://127.0.0.1:{port}/bench/item", proc, admin)


def rows_written(t: Target) -> float:
    return sum(v for k, v in recorded(t).items() if k.startswith("seamline_record_rows_written_total"))


def report(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# bench/workers.py — {meta['started']}",
        "",
        f"Machine: {meta['cpus']} vCPUs, load average {meta['load_before']} before, {meta['load_after']} after (shared). "
        f"wrk + upstream on CPU {LOAD_CPU}. {meta['rounds']} round(s) × {meta['duration']} s per cell, interleaved; "
        "median (min–max). `cores used` = req/s × CPU µs/req of the target's process tree.",
        "",
        "| method | c | target | req/s | p50 µs | p99 µs | CPU µs/req | cores used | ÷ w1 cpu1 | ÷ w1 cpu0-1 | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, by_c in summary.items():
        for c, by_t in by_c.items():
            base1, base2 = by_t.get("w1 cpu1"), by_t.get("w1 cpu0-1")
            for name, s in by_t.items():
                rps, cpu = s["rps"], s["cpu_us"]
                used = rps["median"] * cpu["median"] / 1e6
                r1 = rps["median"] / base1["rps"]["median"] if base1 and base1["rps"]["median"] else None
                r2 = rps["median"] / base2["rps"]["median"] if base2 and base2["rps"]["median"] else None
                lines.append(
                    f"| {method} | {c} | {name} | {rps['median']:,.0f} ({rps['min']:,.0f}–{rps['max']:,.0f}) "
                    f"| {s['p50_us']['median']:,.0f} | {s['p99_us']['median']:,.0f} "
                    f"| {cpu['median']:,.0f} ({cpu['min']:,.0f}–{cpu['max']:,.0f}) | {used:.2f} "
                    f"| {'–' if r1 is None else f'{r1:.2f}'} | {'–' if r2 is None else f'{r2:.2f}'} "
                    f"| {s['non2xx'] + s['socket_errors']} |"
                )
    lines += ["", "Rows the recorders reported written at the end (every worker's, from the merged /metrics):", ""]
    lines += [f"- {k}: {v:,.0f}" for k, v in meta["rows_written"].items()] + [""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--concurrency", default="16,64")
    ap.add_argument("--methods", default="GET,POST")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two CPUs")
    nginx = ensure_apt("nginx", "nginx")
    ensure_apt("wrk", "wrk")
    tmp = Path(tempfile.mkdtemp(prefix="seamline-workers-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    meta: dict[str, Any] = {
        "started": started,
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rounds": args.rounds,
        "duration": args.duration,
    }
    upstream: subprocess.Popen[bytes] | None = None
    targets: list[Target] = []
    try:
        up = free_port()
        conf = nginx_conf(tmp, "upstream", upstream_server(up))
        upstream = subprocess.Popen(pinned([nginx, "-c", str(conf), "-e", str(tmp / "upstream.err")], LOAD_CPU))
        wait_port(up)
        targets = [start(n, up, tmp) for n in args.targets.split(",")]
        methods, concs = args.methods.split(","), [int(c) for c in args.concurrency.split(",")]
        for t in targets:  # warm-up: pools, imports, the first chdb parts
            for m in methods:
                wrk(t, 16, 2, m, tmp)
        runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for m in methods:
                for c in concs:
                    for t in targets[r % len(targets) :] + targets[: r % len(targets)]:
                        got = wrk(t, c, args.duration, m, tmp)
                        runs.setdefault((m, c, t.name), []).append(got)
                        print(
                            f"round {r + 1} {m} c={c:<3} {t.name:<10} {got['rps']:>9,.0f} req/s  p50 {got['p50_us']:>7,.0f} µs"
                            f"  CPU {got['cpu_us']:>6,.0f} µs/req",
                            flush=True,
                        )
        time.sleep(2)  # the last batches (flush_interval_ms 500) reach ClickHouse before the counters are read
        meta["rows_written"] = {t.name: rows_written(t) for t in targets}
        meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        summary: dict[str, Any] = {}
        for (m, c, name), rs in runs.items():
            summary.setdefault(m, {}).setdefault(str(c), {})[name] = summarise(rs)
        text = report(summary, meta)
        print("\n" + text)
        for method, by_c in summary.items():
            for c, by_t in by_c.items():
                if "w2 cpu0-1" in by_t and "w1 cpu1" in by_t:
                    pairs = zip(runs[(method, int(c), "w2 cpu0-1")], runs[(method, int(c), "w1 cpu1")], strict=True)
                    ratios = [a["rps"] / b["rps"] for a, b in pairs if b["rps"]]  # the same round: the same neighbours
                    per_round = ", ".join(f"{x:.2f}" for x in ratios)
                    print(f"{method} c={c}: 2 workers ÷ 1 worker on one core, per round: {per_round}"
                          f" (median {statistics.median(ratios or [0.0]):.2f})")  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"workers-{started.replace(' ', 'T').replace(':', '')}"
        stem.with_suffix(".md").write_text(text)
        raw = {f"{m} c={c} {n}": rs for (m, c, n), rs in runs.items()}
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": raw}, indent=2))
        print(f"written: {stem}.md, {stem}.json")
    finally:
        up = [upstream] if upstream else []
        stop_all([t.proc for t in targets if t.proc] + up, 60, graceful=tuple(up))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
