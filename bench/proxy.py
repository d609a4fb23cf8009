"""Proxy throughput and added latency: direct vs bare aiohttp pass-through vs Seamline, in one run.

    .venv/bin/python bench/proxy.py [--duration 5] [--concurrency 1,16,64] [--layout split|onecore]
                                    [--variants bare+headers,seamline,seamline+record,seamline+contracts] [--method GET|POST]

Starts an upstream (nginx if installed, else an aiohttp app), the bare pass-through baseline and
Seamline as separate processes, loads each with wrk, and prints req/s, p50/p99 and ratios to the
bare proxy. `bare+headers` is the bare proxy sending the correlation headers Seamline must add (constants):
what those headers alone cost inside aiohttp. `split` pins the proxy to CPU 1 and upstream + wrk to CPU 0;
`onecore` pins everything to CPU 0 (the control for added latency: no cross-core wake-ups). Recording variants keep the embedded
ClickHouse process (`storage.embedded_cpus`) on the load generator's CPU, off the proxy's, as on a
multi-core host or with a ClickHouse server; `+samecore` leaves it on the proxy's CPU (everything Seamline
does on one core). Variants are interleaved per round and the median of `--rounds` is reported (single
runs vary ±20 % on these VMs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
BODY = json.dumps({"amount": 1000, "currency": "eur", "customer": "cus_1", "pad": "p" * 950})
RESPONSE = json.dumps({"id": "ch_123", "status": "succeeded", "amount": 1000, "currency": "eur", "pad": "x" * 900})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu is not None and shutil.which("taskset") else cmd


def stop_all(procs: list[subprocess.Popen], timeout: float, graceful: tuple[subprocess.Popen, ...] = ()) -> None:
    """SIGTERM every process (SIGQUIT to those in `graceful`: nginx's graceful stop), then wait up to `timeout` s each
    and kill what is left."""
    for p in procs:
        p.send_signal(signal.SIGQUIT if p in graceful else signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def start_upstream(port: int, cpu: str | None, tmp: Path) -> subprocess.Popen:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        conf = tmp / "nginx.conf"
        conf.write_text(f"""
daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json; return 200 '{RESPONSE}'; }} }} }}
""")
        return subprocess.Popen(pinned([nginx, "-c", str(conf), "-e", str(tmp / "nginx.err")], cpu))
    return subprocess.Popen(pinned([PY, str(HERE / "_upstream.py"), str(port)], cpu))


def seamline_config(tmp: Path, upstream_port: int, variant: str, engine_cpu: str | None = None) -> Path:
    contract = {
        "status": [200, 201],
        "request_schema": {
            "type": "object",
            "required": ["amount", "currency"],
            "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
        },
        "response_schema": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string"},
                "amount": {"type": "integer"},
                "currency": {"type": "string"},
            },
        },
        "assert": {"payment_succeeded": "response.body.status == 'succeeded'"},
        "echo": ["amount", "currency"],
        "extract": {"charge_id": "response.body.id"},
    }
    handoff: dict = {"upstream": "bench", "match": "* /item"}
    if "contracts" in variant:
        handoff["contract"] = contract
    data = dir_ = tmp / f"data-{variant.replace('+', '_')}"
    cfg = {
        "upstreams": {"bench": {"base_url": f"http://127.0.0.1:{upstream_port}", "allow_private": True, "max_connections": 256}},
        "handoffs": {"bench.item": handoff},
        "storage": {
            "enabled": "record" in variant or "contracts" in variant,
            "clickhouse_url": f"chdb://{data}",
            "spool_dir": str(dir_) + "-spool",
        },
    }
    if engine_cpu is not None and "samecore" not in variant:
        cfg["storage"]["embedded_cpus"] = [int(engine_cpu)]
    path = tmp / f"seamline-{variant.replace('+', '_')}.json"
    path.write_text(json.dumps(cfg))
    return path


def start_proxy(
    kind: str, port: int, upstream_port: int, cpu: str | None, tmp: Path, engine_cpu: str | None = None
) -> subprocess.Popen:
    if kind in ("bare", "bare+headers"):
        flags = ["--correlation-headers"] if kind == "bare+headers" else []
        return subprocess.Popen(
            pinned([PY, str(HERE / "_bare_proxy.py"), str(port), f"http://127.0.0.1:{upstream_port}", *flags], cpu)
        )
    cfg = seamline_config(tmp, upstream_port, kind, engine_cpu)
    cmd = [
        PY,
        "-m",
        "seamline",
        "serve",
        "--config",
        str(cfg),
        "--port",
        str(port),
        "--admin-port",
        str(free_port()),
        "--log-level",
        "WARNING",
    ]
    env = dict(os.environ)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return subprocess.Popen(pinned(cmd, cpu), env=env, stderr=subprocess.DEVNULL)


def wrk(url: str, conns: int, duration: int, method: str, cpu: str | None, tmp: Path) -> dict:
    script = tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\nwrk.headers["Content-Type"] = "application/json"\n')
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", url]
    if method == "POST":
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(pinned(cmd, cpu), capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def lat(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 1, "ms": 1000, "s": 1e6}[unit]

    return {"rps": rps, "p50_us": lat("50"), "p99_us": lat("99"), "non2xx": int(errors.group(1)) if errors else 0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--layout", choices=["split", "onecore"], default="split")
    ap.add_argument("--variants", default="seamline,seamline+record,seamline+contracts,seamline+record+samecore")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--json", default=None, help="write results here too")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is required: apt-get install wrk", file=sys.stderr)
        return 2
    proxy_cpu, load_cpu = ("1", "0") if args.layout == "split" and os.cpu_count() and os.cpu_count() > 1 else ("0", "0")
    tmp = Path(tempfile.mkdtemp(prefix="seamline-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        procs.append(start_upstream(up_port, load_cpu, tmp))
        wait_port(up_port)
        targets = {"direct": f"http://127.0.0.1:{up_port}/item"}
        for kind in ["bare", *args.variants.split(",")]:
            port = free_port()
            procs.append(start_proxy(kind, port, up_port, proxy_cpu, tmp, engine_cpu=load_cpu))
            wait_port(port, 60)
            targets[kind] = f"http://127.0.0.1:{port}/bench/item"
        for url in targets.values():  # warm up pools, imports, first chdb parts
            wrk(url, 16, 1, args.method, load_cpu, tmp)
        results: dict[str, dict[int, list[dict]]] = {k: {} for k in targets}
        for _ in range(args.rounds):
            for c in [int(x) for x in args.concurrency.split(",")]:
                for name, url in targets.items():
                    results[name].setdefault(c, []).append(wrk(url, c, args.duration, args.method, load_cpu, tmp))
        summary: dict = {}
        print(f"\nlayout={args.layout} method={args.method} duration={args.duration}s rounds={args.rounds} (medians)")
        print(
            f"{'target':<22}{'conc':>5}{'req/s':>10}{'p50 µs':>9}{'p99 µs':>9}{'+p50 µs':>9}"
            f"{'rps/bare':>9}{'+p50/bare':>10}{'non2xx':>8}"
        )
        for c in results["direct"]:
            med = {
                n: {k: statistics.median(r[k] for r in results[n][c]) for k in ("rps", "p50_us", "p99_us", "non2xx")}
                for n in results
            }
            base = med["direct"]["p50_us"]
            bare_added = max(med["bare"]["p50_us"] - base, 1e-9)
            for n, m in med.items():
                added = m["p50_us"] - base
                ratio = m["rps"] / med["bare"]["rps"]
                lat_ratio = added / bare_added if n not in ("direct",) else float("nan")
                print(
                    f"{n:<22}{c:>5}{m['rps']:>10.0f}{m['p50_us']:>9.0f}{m['p99_us']:>9.0f}{added:>9.0f}{ratio:>9.2f}{lat_ratio:>10.2f}{m['non2xx']:>8.0f}"
                )
                summary.setdefault(n, {})[c] = {**m, "added_p50_us": added, "rps_vs_bare": ratio, "added_p50_vs_bare": lat_ratio}
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
    finally:
        stop_all(procs, 15)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
