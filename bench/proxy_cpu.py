"""CPU per request of the Seamline process, for two source trees, interleaved: did a change cost proxy CPU?

    .venv/bin/python bench/proxy_cpu.py --before /path/to/old/checkout [--after .] [--rounds 5] [--method GET|POST]

Throughput on these 2-vCPU VMs varies ±20 % between runs (bench/proxy.py says so), far more than a refactoring
costs. The proxy process's own CPU time (user + system, from /proc) divided by the requests it served is a steadier
figure: each round starts `seamline serve` from each tree in turn (recording off, same config: one upstream,
a handoff with a contract), pinned to CPU 1, and loads it for 5 s with wrk (c=16, keep-alive, CPU 0) in front of
an aiohttp upstream (CPU 0). Prints µs of CPU per request, median and min–max over the rounds, and
the ratio after/before.

`--record` turns recording on (embedded chdb in a fresh directory per run, the engine in its own process, where
events are built and redacted): the CPU counted is then the proxy's plus its children's (the engine process),
so the figure includes the event build and redaction each request costs.

`--idempotency` (POST only) turns the duplicate guard on for the handoff (in-process store, an `extract` of the
response's `id`) and sends a fresh `Idempotency-Key` on every request: each call is a first call, claimed, stored
and settled, none replayed (the guard's per-call cost, issue #13).
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

from proxy import BODY, free_port, pinned, wait_port

HERE = Path(__file__).resolve().parent
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` and its live descendants (the engine process, when recording)."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(tree_cpu_seconds(int(c)) for c in children)
    return total


def config(upstream_port: int, tmp: Path, record: bool = False, idempotency: bool = False) -> Path:
    cfg = {
        "upstreams": {"api": {"base_url": f"http://127.0.0.1:{upstream_port}", "allow_private": True}},
        "handoffs": {
            "api.item": {
                "upstream": "api",
                "match": "* /item",
                "contract": {"status": [200], "response_schema": {"type": "object", "required": ["id", "status"]}},
            }
        },
        "storage": {"enabled": False},
    }
    if idempotency:
        item = cfg["handoffs"]["api.item"]
        item["dedup"] = {"enabled": True}
        item["contract"]["extract"] = {"charge_id": "response.body.id"}
    if record:
        cfg["storage"] = {"enabled": True, "clickhouse_url": f"chdb://{tmp / 'data'}", "embedded_engine": "process"}
    path = tmp / "seamline.json"
    path.write_text(json.dumps(cfg))
    return path


def one(tree: Path, cfg: Path, method: str, tmp: Path, record: bool = False, idempotency: bool = False) -> float:
    port, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLINE_")}
    env["PYTHONPATH"] = str(tree / "src")
    cmd = [sys.executable, "-m", "seamline", "serve", "--config", str(cfg), "--port", str(port), "--admin-port", str(admin)]
    proc = subprocess.Popen(pinned([*cmd, "--log-level", "WARNING"], "1"), env=env, cwd=tree)
    try:
        wait_port(port)
        script = tmp / "post.lua"
        lua = f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\nwrk.headers["Content-Type"] = "application/json"\n'
        if idempotency:  # a fresh key per request, unique per run: every call is a first call
            prefix = os.urandom(6).hex()
            lua += (
                "local n = 0\nrequest = function()\n  n = n + 1\n"
                f'  return wrk.format(nil, nil, {{["Idempotency-Key"] = "{prefix}-" .. n}})\nend\n'
            )
        script.write_text(lua)
        warm = ["wrk", "-t1", "-c16", "-d1s", f"http://127.0.0.1:{port}/api/item"]
        if method == "POST":
            warm[1:1] = ["-s", str(script)]  # warm the path measured (the guarded POST), not a GET
        subprocess.run(pinned(warm, "0"), capture_output=True, check=True)
        measure = tree_cpu_seconds if record else cpu_seconds
        before = measure(proc.pid)
        wrk = ["wrk", "-t1", "-c16", "-d5s", "--latency"]
        if method == "POST":
            wrk += ["-s", str(script)]
        out = subprocess.run(pinned([*wrk, f"http://127.0.0.1:{port}/api/item"], "0"), capture_output=True, text=True, check=True)
        used = measure(proc.pid) - before
        served = int(out.stdout.split(" requests in ")[0].rsplit("\n", 1)[-1].strip())
        return used / served * 1e6
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", default=HERE.parent, type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--method", default="GET")
    ap.add_argument("--record", action="store_true", help="recording on; count the engine process's CPU too")
    ap.add_argument("--idempotency", action="store_true", help="POST: the duplicate guard on, a fresh Idempotency-Key per call")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="seamline-cpu-"))
    up_port = free_port()
    upstream = subprocess.Popen(pinned([sys.executable, str(HERE / "_upstream.py"), str(up_port)], "0"))
    try:
        wait_port(up_port)
        got: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.rounds):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                run_tmp = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))  # a fresh database per run
                cfg = config(up_port, run_tmp, args.record, args.idempotency)
                tree = getattr(args, name).resolve()
                got[name].append(one(tree, cfg, args.method, run_tmp, args.record, args.idempotency))
                time.sleep(0.5)
        med = {k: statistics.median(v) for k, v in got.items()}
        print(
            f"method={args.method} rounds={args.rounds} (proxy on CPU 1; wrk and upstream on CPU 0; "
            f"recording {'on, engine process counted' if args.record else 'off'}"
            f"{'; dedup on, a fresh Idempotency-Key per call' if args.idempotency else ''})"
        )
        for k, v in got.items():
            print(f"{k:7s} CPU µs/request: median {med[k]:.1f}  min–max {min(v):.1f}–{max(v):.1f}  {[round(x, 1) for x in v]}")
        print(f"after/before: {med['after'] / med['before']:.3f}")
    finally:
        upstream.terminate()
        upstream.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
