"""One comparative benchmark, one run, one machine: direct vs nginx vs bare aiohttp vs mitmproxy vs Seamline (issue #15).

    PYTHONPATH=src .venv/bin/python bench/compare.py            # 3 interleaved rounds of 6 s, GET and POST, c=1,16,64
    PYTHONPATH=src .venv/bin/python bench/compare.py --quick    # 1 round of 3 s: a smoke run, not a figure

The same workload against every target: 1 KiB JSON GET and POST (wrk, keep-alive, one thread; each request carries a
caller run ID, a bearer token to redact and, on POST, a fresh Idempotency-Key). Targets:

- `direct`     the upstream itself (nginx returning a fixed 1 KiB JSON body);
- `nginx`      nginx as a reverse proxy (upstream keepalive), one worker;
- `bare`       bench/_bare_proxy.py: aiohttp + uvloop pass-through, the floor of any Python proxy;
- `mitmproxy`  mitmdump in reverse mode (its own venv under bench/.venvs/, created when absent);
- `seamline`   recording into embedded ClickHouse + contracts (schemas, assertion, echo, extraction) + redaction,
               every guard off;
- `seamline+guards`  the same with all of #13's guards: dedup on the never_repeat POST, retries on the GET, the
               circuit breaker, loop detection blocking, a local rate limit far above the offered load;
- `seamline+failures` / `seamline+sample`  optional (`--targets`): `capture.keep_bodies: failures | sample`;
- `seamline+nostore`  optional: `storage.enabled: false`, the request path alone (no recorder, no engine).
- `seamline+flush2s`  optional: `storage.flush_interval_ms: 2000`, `max_unacked_ms: 2500` (the engine inserts 4×
               less often; up to ~4.5 s of events lost on SIGKILL).

Each proxy and everything it starts (Seamline's engine process, nginx's worker) is pinned to CPU 1; wrk and the
upstream share CPU 0. CPU µs per request is the proxy's whole process tree (utime + stime from /proc/<pid>/stat,
children included) over the wrk run, divided by the requests wrk completed. Rounds interleave every target (the
order rotates each round), so a noisy neighbour hits them all; medians are printed with min–max. Results go to
bench/results/compare-<time>.{md,json}. nginx and wrk are installed with apt-get when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from proxy import BODY, RESPONSE, free_port, pinned, stop_all, wait_port

HERE = Path(__file__).resolve().parent
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")
MITM_VENV = HERE / ".venvs" / "mitmproxy"
TOKEN = "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc"  # a secret for redaction to find (not a real key)
DEFAULT_TARGETS = "direct,nginx,bare,mitmproxy,seamline,seamline+guards"
PROXY_CPU, LOAD_CPU = "1", "0"


# -- tools ----------------------------------------------------------------------------------------------------------


def ensure_apt(binary: str, package: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found:
        return found
    print(f"installing {package} (apt-get)…", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", package], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which(binary) or f"/usr/sbin/{binary}"
    if not Path(found).exists():
        sys.exit(f"{binary} not found after apt-get install {package}")
    return found


def ensure_mitmproxy() -> Path:
    mitmdump = MITM_VENV / "bin" / "mitmdump"
    if not mitmdump.exists():
        # Its own venv: mitmproxy pins old versions of libraries Seamline uses.
        print("creating bench/.venvs/mitmproxy (pip install mitmproxy)…", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(MITM_VENV)], check=True)
        subprocess.run([str(MITM_VENV / "bin" / "pip"), "install", "-q", "mitmproxy"], check=True)
    return mitmdump


def version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout + out.stderr).strip().splitlines()[0][:120]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# -- CPU of a process tree ------------------------------------------------------------------------------------------


def tree_cpu_s(root: int) -> tuple[float, float]:
    """utime + stime (seconds) of `root` and of all its live descendants (Seamline's engine process, nginx's worker)."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(d.name)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / CLK
    children = 0.0
    for pid in cpu:
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root and pid != root:
            children += cpu[pid]
    return cpu.get(root, 0.0), children


# -- the targets ----------------------------------------------------------------------------------------------------

NGINX_COMMON = "client_body_temp_path {t}; proxy_temp_path {t}; fastcgi_temp_path {t}; uwsgi_temp_path {t}; scgi_temp_path {t};"


def nginx_conf(tmp: Path, name: str, server: str) -> Path:
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"daemon off; worker_processes 1; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; keepalive_requests 10000000; {NGINX_COMMON.format(t=tmp)}\n{server}\n}}\n"
    )
    return conf


def upstream_server(port: int) -> str:
    return f"server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json; return 200 '{RESPONSE}'; }} }}"


def nginx_proxy_server(port: int, up: int) -> str:
    return (
        f"upstream up {{ server 127.0.0.1:{up}; keepalive 128; }}\n"
        f"server {{ listen 127.0.0.1:{port}; location /bench/ {{ proxy_pass http://up/; proxy_http_version 1.1;"
        ' proxy_set_header Connection ""; proxy_buffering on; } }'
    )


CONTRACT: dict[str, Any] = {
    "status": [200, 201],
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
    "extract": {"charge_id": "response.body.id"},
}
POST_CONTRACT: dict[str, Any] = {
    **CONTRACT,
    "request_schema": {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
    },
    "echo": ["amount", "currency"],
}


def seamline_config(tmp: Path, name: str, up: int) -> Path:
    guards = "guards" in name
    off = {"dedup": False, "retry": False}
    upstream: dict[str, Any] = {"base_url": f"http://127.0.0.1:{up}", "allow_private": True, "max_connections": 256}
    if guards:  # a bucket far above what one core can offer: it is consulted on every call and never binds
        upstream["rate_limit"] = {"rps": 1_000_000, "burst": 100_000, "max_wait": "100ms"}
    else:
        upstream |= {"retry": False, "circuit_breaker": False}
    get = {"upstream": "bench", "match": "GET /item", "safety": "safe_to_repeat", "contract": CONTRACT}
    post = {"upstream": "bench", "match": "POST /item", "safety": "never_repeat", "contract": POST_CONTRACT}
    if not guards:
        get, post = get | off, post | off
    data = tmp / f"data-{name.replace('+', '_')}"
    cfg: dict[str, Any] = {
        "upstreams": {"bench": upstream},
        "handoffs": {"bench.get": get, "bench.post": post},
        "storage": {"enabled": True, "clickhouse_url": f"chdb://{data}", "spool_dir": f"{data}-spool"},
    }
    if guards:
        cfg["loops"] = {"max_calls_per_run": 20, "window": "10m", "block": True}
    if name.endswith("+failures"):
        cfg["capture"] = {"keep_bodies": "failures"}
    elif name.endswith("+sample"):
        cfg["capture"] = {"keep_bodies": "sample", "ok_sample_rate": 0.01}
    elif name.endswith("+nostore"):  # the request path alone: no recorder, no engine process
        cfg["storage"] = {"enabled": False}
    elif name.endswith("+flush2s"):  # the engine's fixed cost per insert paid 4x less often (a wider SIGKILL window)
        cfg["storage"] |= {"flush_interval_ms": 2000, "max_unacked_ms": 2500}
    path = tmp / f"{data.name}.json"
    path.write_text(json.dumps(cfg))
    return path


class Target:
    def __init__(self, name: str, url: str, proc: subprocess.Popen[bytes] | None, admin: int | None = None) -> None:
        self.name, self.url, self.proc, self.admin = name, url, proc, admin


def start_target(name: str, up: int, tmp: Path, tools: dict[str, Any]) -> Target:
    if name == "direct":
        return Target(name, f"http://127.0.0.1:{up}/item", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}/bench/item"
    if name == "nginx":
        conf = nginx_conf(tmp, "proxy", nginx_proxy_server(port, up))
        proc = subprocess.Popen(pinned([tools["nginx"], "-c", str(conf), "-e", str(tmp / "proxy.err")], PROXY_CPU))
    elif name == "bare":
        # Its stderr to a file: aiohttp logs every POST that wrk cuts off when a run ends.
        log = (tmp / "bare.log").open("wb")
        cmd = [PY, str(HERE / "_bare_proxy.py"), str(port), f"http://127.0.0.1:{up}"]
        proc = subprocess.Popen(pinned(cmd, PROXY_CPU), stderr=log)
    elif name == "mitmproxy":
        cmd = [
            str(tools["mitmdump"]),
            "-q",
            "--listen-host",
            "127.0.0.1",
            "-p",
            str(port),
            "--mode",
            f"reverse:http://127.0.0.1:{up}",
        ]
        proc = subprocess.Popen(pinned([*cmd, "--set", "flow_detail=0"], PROXY_CPU), stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/item"
    elif name.startswith("seamline"):
        admin = free_port()
        cfg = seamline_config(tmp, name, up)
        cmd = [PY, "-m", "seamline", "serve", "--config", str(cfg), "--port", str(port), "--admin-port", str(admin)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
        log = (tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(pinned([*cmd, "--log-level", "WARNING"], PROXY_CPU), env=env, stderr=log)
        wait_port(port, 90)
        return Target(name, url, proc, admin)
    else:
        sys.exit(f"unknown target {name!r}")
    wait_port(port, 60)
    return Target(name, url, proc)


# -- load -----------------------------------------------------------------------------------------------------------


def lua_script(tmp: Path, method: str) -> Path:
    """Every request: a caller run ID (a new run every 10 calls: loop detection counts, never blocks), a bearer token,
    and on POST a fresh Idempotency-Key (the duplicate guard stores every call, replays none)."""
    prefix = uuid.uuid4().hex[:12]  # unique per wrk run: no run or key carries over between runs
    body = json.dumps(BODY)
    post = method == "POST"
    path = tmp / f"load-{prefix}.lua"
    path.write_text(
        f'local n = 0\nwrk.method = "{method}"\n'
        + (f"wrk.body = {body}\n" if post else "")
        + "request = function()\n  n = n + 1\n"
        + f'  local h = {{["X-Run-ID"] = "{prefix}-" .. math.floor(n / 10), ["Authorization"] = "{TOKEN}"'
        + (f', ["Idempotency-Key"] = "{prefix}-k" .. n, ["Content-Type"] = "application/json"' if post else "")
        + "}\n  return wrk.format(nil, nil, h)\nend\n"
    )
    return path


def wrk(target: Target, conns: int, duration: int, method: str, tmp: Path) -> dict[str, Any]:
    script = lua_script(tmp, method)
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), target.url]
    before = tree_cpu_s(target.proc.pid) if target.proc else (0.0, 0.0)
    out = subprocess.run(pinned(cmd, LOAD_CPU), capture_output=True, text=True, check=True).stdout
    after = tree_cpu_s(target.proc.pid) if target.proc else (0.0, 0.0)
    own, children = after[0] - before[0], after[1] - before[1]
    used = own + children
    script.unlink()
    served = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def lat(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        assert m is not None, out
        return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_us": lat("50"),
        "p99_us": lat("99"),
        "cpu_us": used / served * 1e6 if target.proc and served else 0.0,
        "children_cpu_us": children / served * 1e6 if target.proc and served else 0.0,  # of which in child processes
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


RECORD_METRIC = re.compile(r"(seamline_record_(?:rows_written|dropped|spooled_batches|write_errors)_total)(\{[^}]*\})? (\S+)$")


def recorded(target: Target) -> dict[str, float]:
    """What the recorder says it did (Prometheus text on the admin port): proof the rows were written, not dropped."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{target.admin}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    got: dict[str, float] = {}
    for line in text.splitlines():
        m = RECORD_METRIC.match(line)
        if m:
            got[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return got


# -- report ---------------------------------------------------------------------------------------------------------

METRICS = ("rps", "p50_us", "p99_us", "cpu_us", "children_cpu_us")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(runs)}
    for k in METRICS:
        vals = [r.get(k, 0.0) for r in runs]
        out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    out["non2xx"] = sum(r["non2xx"] for r in runs)
    out["socket_errors"] = sum(r["socket_errors"] for r in runs)
    return out


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "rps") -> float | None:
    if not a or not b or not b[key]["median"]:
        return None
    return float(a[key]["median"] / b[key]["median"])


def core_used(s: dict[str, Any]) -> float | None:
    return s["rps"]["median"] * s["cpu_us"]["median"] / 1e6 if s["cpu_us"]["median"] else None


def capacity(s: dict[str, Any]) -> float | None:
    return 1e6 / s["cpu_us"]["median"] if s["cpu_us"]["median"] else None


def cpu_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """a's CPU per request ÷ b's: b's one-core capacity as a share of a's."""
    if not a or not b or not a["cpu_us"]["median"] or not b["cpu_us"]["median"]:
        return None
    return float(a["cpu_us"]["median"] / b["cpu_us"]["median"])


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def report(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# bench/compare.py — {meta['started']}",
        "",
        f"Machine: {meta['cpus']} × {meta['cpu_model']}, load average {meta['load_before']} before, {meta['load_after']} after"
        f" (shared). Proxies on CPU {PROXY_CPU}, wrk + upstream on CPU {LOAD_CPU}. {meta['rounds']} round(s) × "
        f"{meta['duration']} s per cell, interleaved; median (min–max).",
        f"Tools: {meta['versions']}",
        "",
        "`core used` = req/s × CPU µs/req: the share of CPU 1 the proxy's process tree got. Well under 100 % while wrk "
        "waits means other jobs held the core (the machine is shared): then req/s measures the share, and `1-core "
        "capacity` = 10⁶ / CPU µs per request is the steadier comparison (what the proxy would do with the core to "
        "itself, at this per-request cost).",
        "",
    ]
    for method, by_c in summary.items():
        lines += [
            f"## {method}",
            "",
            "| target | c | req/s | p50 µs | p99 µs | +p50 µs vs direct | CPU µs/req | of which children | core used "
            "| 1-core capacity | ÷ bare | ÷ nginx | × mitmproxy | capacity ÷ bare | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c, by_t in by_c.items():
            direct = by_t.get("direct")
            for name, s in by_t.items():
                rps, p50, p99, cpu = (s[k] for k in METRICS[:4])
                kids = s.get("children_cpu_us") or {"median": 0.0}  # absent from older results
                added = p50["median"] - direct["p50_us"]["median"] if direct else None
                lines.append(
                    f"| {name} | {c} | {rps['median']:,.0f} ({rps['min']:,.0f}–{rps['max']:,.0f}) | {p50['median']:,.0f} "
                    f"| {p99['median']:,.0f} | {fmt(added, ',.0f') if name != 'direct' else ''} "
                    f"| {cpu['median']:,.0f} ({cpu['min']:,.0f}–{cpu['max']:,.0f}) | {kids['median']:,.0f} "
                    f"| {fmt(core_used(s), '.0%')} "
                    f"| {fmt(capacity(s), ',.0f')} | {fmt(ratio(s, by_t.get('bare')))} "
                    f"| {fmt(ratio(s, by_t.get('nginx')))} | {fmt(ratio(s, by_t.get('mitmproxy')))} "
                    f"| {fmt(cpu_ratio(by_t.get('bare'), s))} "
                    f"| {s['non2xx'] + s['socket_errors']} |".replace("| 0 (0–0) |", "| – |")
                )
        lines.append("")
    lines += ["## Targets (#15) and the guards' cost (#13), from this run", "", *targets_section(summary), ""]
    if meta.get("recorded"):
        lines += ["## What Seamline's recorders reported at the end", ""]
        lines += [f"- {k}: {json.dumps(v)}" for k, v in meta["recorded"].items()] + [""]
    return "\n".join(lines)


def targets_section(summary: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for method, by_c in summary.items():
        for c, by_t in by_c.items():
            s, bare = by_t.get("seamline"), by_t.get("bare")
            if not s or not bare:
                continue
            bits = [f"**{method} c={c}**: Seamline ÷ bare {fmt(ratio(s, bare))} req/s, {fmt(cpu_ratio(bare, s))} by CPU/request"]
            if m := by_t.get("mitmproxy"):
                bits.append(f"× mitmproxy {fmt(ratio(s, m))} req/s, {fmt(cpu_ratio(m, s))} by CPU/request (target ≥ 5)")
            if int(c) == 1 and "direct" in by_t:
                d = by_t["direct"]["p50_us"]["median"]
                added, bare_added = s["p50_us"]["median"] - d, bare["p50_us"]["median"] - d
                bits.append(
                    f"added p50 {added:,.0f} µs (target ≤ 500) = {fmt(added / bare_added if bare_added > 0 else None)}× bare's"
                    f" {bare_added:,.0f} µs (target ≤ 1.5)"
                )
            else:
                bits.append("(target ≥ 0.70)")
            if g := by_t.get("seamline+guards"):
                cost = 1 - g["rps"]["median"] / s["rps"]["median"]
                cpu_cost = ratio(g, s, "cpu_us")
                bits.append(
                    f"guards on cost {cost:.1%} of req/s, {fmt(cpu_cost - 1 if cpu_cost else None, '.1%')} more CPU/request "
                    "(target ≤ 10 %)"
                )
            for extra in ("seamline+failures", "seamline+sample"):
                if e := by_t.get(extra):
                    bits.append(
                        f"{extra} ÷ bare {fmt(ratio(e, bare))} req/s, {fmt(cpu_ratio(bare, e))} by CPU/request "
                        f"({e['cpu_us']['median']:,.0f} µs against {s['cpu_us']['median']:,.0f})"
                    )
            out.append("- " + "; ".join(bits))
    return out


# -- main -----------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s per cell (a smoke run)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--methods", default="GET,POST")
    ap.add_argument("--targets", default=DEFAULT_TARGETS, help=f"comma-separated, from {DEFAULT_TARGETS},seamline+failures,…")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--report", type=Path, default=None, help="only print the Markdown of a saved results JSON")
    args = ap.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        print(report(saved["summary"], saved["meta"]))
        return 0
    if args.quick:
        args.rounds, args.duration = 1, 3
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two CPUs: the proxies on one, wrk and the upstream on the other")
    names = args.targets.split(",")
    tools: dict[str, Any] = {"nginx": ensure_apt("nginx", "nginx")}
    ensure_apt("wrk", "wrk")
    if "mitmproxy" in names:
        tools["mitmdump"] = ensure_mitmproxy()
    tmp = Path(tempfile.mkdtemp(prefix="seamline-compare-"))
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    meta: dict[str, Any] = {
        "started": started,
        "cpus": os.cpu_count(),
        "cpu_model": next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?"),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rounds": args.rounds,
        "duration": args.duration,
        "python": platform.python_version(),
    }
    meta["versions"] = "; ".join(
        [version([tools["nginx"], "-v"]), version(["wrk", "-v"]), f"Python {meta['python']}"]
        + ([f"mitmproxy {version([str(tools['mitmdump']), '--version'])}"] if "mitmproxy" in tools else [])
    )
    upstream: subprocess.Popen[bytes] | None = None
    targets: list[Target] = []
    try:
        up = free_port()
        conf = nginx_conf(tmp, "upstream", upstream_server(up))
        upstream = subprocess.Popen(pinned([tools["nginx"], "-c", str(conf), "-e", str(tmp / "upstream.err")], LOAD_CPU))
        wait_port(up)
        targets = [start_target(n, up, tmp, tools) for n in names]
        methods, concs = args.methods.split(","), [int(c) for c in args.concurrency.split(",")]
        for t in targets:  # warm-up: pools, imports, the first chdb parts
            for m in methods:
                wrk(t, 16, 2, m, tmp)
        runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for m in methods:
                for c in concs:
                    order = targets[r % len(targets) :] + targets[: r % len(targets)]  # rotate: no fixed position
                    for t in order:
                        got = wrk(t, c, args.duration, m, tmp)
                        runs.setdefault((m, c, t.name), []).append(got)
                        bad = got["non2xx"] + got["socket_errors"]
                        print(
                            f"round {r + 1} {m} c={c:<3} {t.name:<18} {got['rps']:>9,.0f} req/s  p50 {got['p50_us']:>7,.0f} µs"
                            f"  p99 {got['p99_us']:>8,.0f} µs  CPU {got['cpu_us']:>6,.0f} µs/req"
                            + (f"  errors {bad}" if bad else ""),
                            flush=True,
                        )
        meta["recorded"] = {t.name: recorded(t) for t in targets if t.admin}
        meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        summary: dict[str, Any] = {}
        for (m, c, name), rs in runs.items():
            summary.setdefault(m, {}).setdefault(str(c), {})[name] = summarise(rs)
        text = report(summary, meta)
        print("\n" + text)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"compare-{started.replace(' ', 'T').replace(':', '')}"
        stem.with_suffix(".md").write_text(text)
        raw = {f"{m} c={c} {n}": rs for (m, c, n), rs in runs.items()}
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": raw}, indent=2))
        print(f"written: {stem}.md, {stem}.json")
    finally:
        up = [upstream] if upstream else []
        stop_all([t.proc for t in targets if t.proc] + up, 20, graceful=tuple(up))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
