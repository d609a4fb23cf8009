"""A soak at half the maximum rate: is Seamline flat over time? (issue #15 item 5)

    PYTHONPATH=src .venv/bin/python bench/soak.py --minutes 10
    PYTHONPATH=src .venv/bin/python bench/soak.py --minutes 1 --interval 5     # a smoke run

Seamline as bench/compare.py runs it (recording into the embedded store + contracts + redaction; `--target
seamline+guards` adds every guard), the proxy and its engine process pinned to CPU 1, an nginx upstream (1 KiB
JSON) and the load on CPU 0. First the maximum rate is measured briefly with wrk (c=16, GET and POST, as
compare.py); then an open-loop client of this script's own (aiohttp, a fixed schedule: request i leaves at
t0 + i/rate whatever happened to the ones before, half GET and half POST, each with a caller run ID, a bearer
token to redact and on POST a fresh Idempotency-Key) offers half that rate for `--minutes` (wrk2 is used instead
when installed). Every `--interval` s: RSS and open FDs (/proc/<pid>/fd) of the proxy and of its engine process,
the spool's size on disk, the rows stored / dropped / failed writes (the recorder's /metrics) and the client's
requests, errors and late sends. The verdict on flatness: the least-squares slope of each RSS over the second half
(MiB/min), FDs at the start vs the end, the spool at the end, errors. Results: bench/results/soak-<time>.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from compare import LOAD_CPU, TOKEN, ensure_apt, nginx_conf, start_target, upstream_server, wrk
from proxy import BODY, free_port, pinned, stop_all, wait_port

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
FLAT_MIB_PER_MIN = 1.0  # second-half RSS slope under this (≈ +60 MiB an hour at most, and falling) reads as flat
FD_SLACK = 8  # pooled connections come and go: a handful more FDs at the end is churn, not a leak


# -- what is sampled ------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def fd_kinds(pid: int) -> dict[str, int]:
    """What a process's open FDs point at: socket, pipe, anon_inode:…, or a file by its extension (what a growing
    count is made of: sockets are connections, *.bin / *.mrk files are ClickHouse parts being read or merged)."""
    kinds: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for n in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        if target.startswith("/"):
            base = target.rsplit("/", 1)[-1]
            kind = "file *" + base[base.rfind(".") :] if "." in base else f"file {base[:24]}"
        else:
            kind = target.split(":", 1)[0] if not target.startswith("anon_inode") else target
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def store_fds(pid: int, data: Path) -> int:
    """FDs on files under the data directory: parts being inserted, read or merged (transient: a merge of 100
    columns holds 200 at once), counted apart from the process's own."""
    root = str(data.resolve())
    n = 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for name in names:
        try:
            n += os.readlink(f"/proc/{pid}/fd/{name}").startswith(root)
        except OSError:
            continue
    return n


def threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def children(root: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root:
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                continue
    return total


METRIC = re.compile(
    r"^seamline_record_(rows_written|dropped|write_errors|spool_bytes|spool_records|queue_depth)(?:_total)?(\{[^}]*\})? (\S+)$"
)


def recorder(admin: int) -> dict[str, float]:
    """The recorder's counters (summed over labels) from the admin port's Prometheus text."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    got: dict[str, float] = {}
    for line in text.splitlines():
        if m := METRIC.match(line):
            got[m.group(1)] = got.get(m.group(1), 0.0) + float(m.group(3))
    return got


# -- the open-loop client ---------------------------------------------------------------------------------------------


class Load:
    """Offers `rate` requests/s on a fixed schedule (open loop), counting what came back."""

    def __init__(self, url: str, rate: float, concurrency: int = 256) -> None:
        self.url, self.rate = url, rate
        self.sent = self.ok = self.errors = self.late = self.unsent = 0
        self.error_kinds: dict[str, int] = {}
        self.latencies: list[float] = []  # this interval's, in ms (reset at each sample)
        self._slots = asyncio.Semaphore(concurrency)  # more in flight than this = the proxy has fallen behind: count late
        self._prefix = uuid.uuid4().hex[:12]
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self, session: Any, i: int) -> None:
        headers = {"X-Run-ID": f"{self._prefix}-{i // 10}", "Authorization": TOKEN}
        t0 = time.monotonic()
        try:
            if i % 2:
                headers |= {"Idempotency-Key": f"{self._prefix}-k{i}", "Content-Type": "application/json"}
                resp = session.post(self.url, data=BODY, headers=headers)
            else:
                resp = session.get(self.url, headers=headers)
            async with resp as r:
                await r.read()
                if 200 <= r.status < 300:
                    self.ok += 1
                else:
                    self._error(f"HTTP {r.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:  # counted by kind: the verdict depends on them
            self._error(type(e).__name__)
        finally:
            self.latencies.append((time.monotonic() - t0) * 1000)
            self._slots.release()

    def _error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    async def run(self, seconds: float) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), timeout=timeout) as session:
            t0 = time.monotonic()
            n = int(seconds * self.rate)
            for i in range(n):
                if time.monotonic() >= t0 + seconds:  # the soak lasts its duration: what is still unsent is counted
                    self.unsent = n - i
                    break
                due = t0 + i / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # the schedule itself, not a wait for a condition
                elif delay < -0.1:
                    self.late += 1
                await self._slots.acquire()
                self.sent += 1
                task = asyncio.create_task(self._one(session, i))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=35)


class Wrk2Load:
    """The same offered rate through wrk2 (-R), when installed: GET only, one run for the whole soak."""

    def __init__(self, url: str, rate: float, tmp: Path) -> None:
        self.url, self.rate, self.tmp = url, rate, tmp
        self.sent = self.ok = self.errors = self.late = self.unsent = 0
        self.error_kinds: dict[str, int] = {}
        self.latencies: list[float] = []

    async def run(self, seconds: float) -> None:
        cmd = ["wrk2", "-t1", "-c64", f"-d{int(seconds)}s", f"-R{int(self.rate)}", "--latency", self.url]
        proc = await asyncio.create_subprocess_exec(*pinned(cmd, LOAD_CPU), stdout=subprocess.PIPE)
        out = (await proc.communicate())[0].decode()
        served = int(m.group(1)) if (m := re.search(r"(\d+) requests in", out)) else 0
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        self.sent, self.errors = served, int(bad.group(1)) if bad else 0
        self.ok = served - self.errors


# -- the run ----------------------------------------------------------------------------------------------------------


def probe_max(target: Any, tmp: Path, seconds: int) -> dict[str, float]:
    """Closed-loop maximum with wrk at c=16, GET and POST: the 50/50 mix's rate is their harmonic mean."""
    got = {m: wrk(target, 16, seconds, m, tmp)["rps"] for m in ("GET", "POST")}
    got["mix"] = 2 / (1 / got["GET"] + 1 / got["POST"])
    return got


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def observe(pid: int, engine: list[int], admin: int, spool: Path, data: Path) -> dict[str, Any]:
    """One reading of the processes, the disk and the recorder (blocking I/O: run on a thread, off the client's loop)."""
    rec = recorder(admin)
    return {
        "proxy_rss_kib": rss_kib(pid),
        "engine_rss_kib": sum(rss_kib(c) for c in engine),
        "proxy_fds": fds(pid),
        "engine_fds": sum(fds(c) for c in engine),
        "proxy_fd_kinds": fd_kinds(pid),
        "engine_fd_kinds": fd_kinds(engine[0]) if engine else {},
        "engine_store_fds": sum(store_fds(c, data) for c in engine),
        # ClickHouse keeps /proc/thread-self/{stat,schedstat,io} open in every thread of its pools: 3 FDs a thread
        "proxy_threads": threads(pid),
        "engine_threads": sum(threads(c) for c in engine),
        "proxy_cpu_s": cpu_s(pid),
        "engine_cpu_s": sum(cpu_s(c) for c in engine),
        "spool_bytes": du(spool),
        "data_bytes": du(data),
        "rows_written": rec.get("rows_written", 0.0),
        "dropped": rec.get("dropped", 0.0),
        "write_errors": rec.get("write_errors", 0.0),
        "queue_depth": rec.get("queue_depth", 0.0),
    }


async def soak(
    target: Any, load: Load | Wrk2Load, seconds: float, interval: float, spool: Path, data: Path
) -> list[dict[str, Any]]:
    """Samples every `interval` s while the load runs: the first before it starts, the last once it has ended."""
    pid = target.proc.pid
    engine = children(pid)
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    task: asyncio.Task[None] | None = None

    async def sample(phase: str) -> None:
        got = await asyncio.to_thread(observe, pid, engine, target.admin, spool, data)
        lat = sorted(load.latencies)
        load.latencies.clear()
        t = time.monotonic() - t0
        prev = samples[-1] if samples else None
        span = t - prev["t_s"] if prev else 0.0
        got |= {
            "t_s": round(t, 1),
            "phase": phase,
            "sent": load.sent,
            "interval_rps": (load.sent - prev["sent"]) / span if prev and span else 0.0,
            # share of one core over the interval: under 100 % at half the maximum is expected
            "proxy_cpu_pct": (got["proxy_cpu_s"] - prev["proxy_cpu_s"]) / span * 100 if prev and span else 0.0,
            "engine_cpu_pct": (got["engine_cpu_s"] - prev["engine_cpu_s"]) / span * 100 if prev and span else 0.0,
            "ok": load.ok,
            "errors": load.errors,
            "late": load.late,
            "p50_ms": lat[len(lat) // 2] if lat else None,
            "p99_ms": lat[int(len(lat) * 0.99)] if lat else None,
        }
        samples.append(got)
        s = got
        print(
            f"{s['t_s']:>6.0f} s  proxy {s['proxy_rss_kib'] / 1024:6.1f} MiB {s['proxy_fds']:>4} fds {s['proxy_cpu_pct']:3.0f}%"
            f"  engine {s['engine_rss_kib'] / 1024:6.1f} MiB {s['engine_fds']:>4} fds {s['engine_cpu_pct']:3.0f}%"
            f"  spool {s['spool_bytes'] / 1024:6.0f} KiB  rows {s['rows_written']:>9,.0f}  sent {s['sent']:>8,}"
            f" ({s['interval_rps']:,.0f}/s)  errors {s['errors']}  late {s['late']}"
            + (f"  p50 {s['p50_ms']:.1f} ms p99 {s['p99_ms']:.1f} ms" if lat else ""),
            flush=True,
        )

    await sample("idle")  # before the first request
    task = asyncio.create_task(load.run(seconds))
    while not task.done():
        await asyncio.wait({task}, timeout=max(0.0, t0 + len(samples) * interval - time.monotonic()))
        if not task.done():
            await sample("load")
    await task
    await sample("after")
    return samples


async def drained_fds(pid: int, limit: int, timeout: float = 90.0) -> tuple[int, float]:
    """Once the load has stopped, the proxy's open FDs fall back to `limit` as idle connections close
    (the client's at once, the upstream pool's at its keep-alive timeout); a leak never does. (FDs, seconds waited)."""
    t0 = time.monotonic()
    n = fds(pid)
    while n > limit and time.monotonic() - t0 < timeout:
        await asyncio.sleep(1.0)  # polling a condition (the FD count) once a second, bounded by `timeout`
        n = fds(pid)
    return n, time.monotonic() - t0


def slope_mib_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB) in MiB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 60 / 1024 if den else 0.0


def verdict(samples: list[dict[str, Any]], drained: tuple[int, float]) -> dict[str, Any]:
    loaded = [s for s in samples if s["phase"] == "load"] or samples
    half = [s for s in loaded if s["t_s"] >= loaded[-1]["t_s"] / 2]
    first, last = loaded[0], loaded[-1]
    idle = samples[0]
    out: dict[str, Any] = {
        "proxy_rss_slope_mib_min": slope_mib_per_min([(s["t_s"], s["proxy_rss_kib"]) for s in half]),
        "engine_rss_slope_mib_min": slope_mib_per_min([(s["t_s"], s["engine_rss_kib"]) for s in half]),
        "proxy_rss_start_end_mib": (first["proxy_rss_kib"] / 1024, last["proxy_rss_kib"] / 1024),
        "engine_rss_start_end_mib": (first["engine_rss_kib"] / 1024, last["engine_rss_kib"] / 1024),
        "proxy_fds_start_end": (first["proxy_fds"], last["proxy_fds"]),
        "engine_fds_start_end": (first["engine_fds"], last["engine_fds"]),
        "engine_own_fds_idle_after": (
            idle["engine_fds"] - idle["engine_store_fds"],
            samples[-1]["engine_fds"] - samples[-1]["engine_store_fds"],
        ),
        "engine_store_fds_max_end": (max(s["engine_store_fds"] for s in samples), samples[-1]["engine_store_fds"]),
        "engine_threads_start_end": (idle.get("engine_threads"), samples[-1].get("engine_threads")),
        "engine_fds_slope_per_min": slope_mib_per_min([(s["t_s"], s["engine_fds"] * 1024) for s in half]),
        "proxy_fds_idle_before": idle["proxy_fds"],
        "proxy_fds_drained": drained[0],
        "drain_s": drained[1],
        "spool_bytes_max": max(s["spool_bytes"] for s in samples),
        "spool_bytes_end": last["spool_bytes"],
        "errors": samples[-1]["errors"],
        "late": samples[-1]["late"],
        "dropped": samples[-1]["dropped"] - idle["dropped"],
        "write_errors": samples[-1]["write_errors"] - idle["write_errors"],
        "rows_recorded": samples[-1]["rows_written"] - idle["rows_written"],
        "sent": samples[-1]["sent"],
    }
    out["flat"] = (
        out["proxy_rss_slope_mib_min"] <= FLAT_MIB_PER_MIN
        and out["engine_rss_slope_mib_min"] <= FLAT_MIB_PER_MIN
        and samples[-1]["engine_fds"] - samples[-1]["engine_store_fds"]
        <= idle["engine_fds"] - idle["engine_store_fds"] + FD_SLACK
        and drained[0] <= idle["proxy_fds"] + FD_SLACK
    )
    return out


def report(samples: list[dict[str, Any]], v: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# bench/soak.py — {meta['started']}",
        "",
        f"Target `{meta['target']}`, {meta['minutes']} min at {meta['rate']:,.0f} req/s offered (half the measured maximum "
        f"{meta['max']['mix']:,.0f}: GET {meta['max']['GET']:,.0f}, POST {meta['max']['POST']:,.0f} req/s with wrk c=16), "
        f"client: {meta['client']}. Proxy + engine on CPU 1, load + upstream on CPU 0; load average {meta['load_before']} "
        f"before, {meta['load_after']} after (shared machine). Sampled every {meta['interval']} s.",
        "",
        "| t s | phase | proxy RSS MiB | engine RSS MiB | proxy FDs | engine FDs | engine threads | proxy CPU | engine CPU "
        "| spool KiB | data MiB | rows written | sent | req/s | p50 ms | p99 ms | errors | late |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        p50 = "–" if s["p50_ms"] is None else f"{s['p50_ms']:.1f}"
        p99 = "–" if s["p99_ms"] is None else f"{s['p99_ms']:.1f}"
        lines.append(
            f"| {s['t_s']:.0f} | {s['phase']} | {s['proxy_rss_kib'] / 1024:.1f} | {s['engine_rss_kib'] / 1024:.1f} "
            f"| {s['proxy_fds']} | {s['engine_fds']} | {s.get('engine_threads', '–')} "
            f"| {s['proxy_cpu_pct']:.0f} % | {s['engine_cpu_pct']:.0f} % "
            f"| {s['spool_bytes'] / 1024:.0f} | {s['data_bytes'] / MIB:.1f} | {s['rows_written']:,.0f} "
            f"| {s['sent']:,} | {s['interval_rps']:,.0f} | {p50} | {p99} | {s['errors']} | {s['late']} |"
        )
    ps, pe = v["proxy_rss_start_end_mib"]
    es, ee = v["engine_rss_start_end_mib"]
    lines += [
        "",
        f"**Verdict: {'flat' if v['flat'] else 'NOT flat'}** (flat = second-half RSS slope ≤ {FLAT_MIB_PER_MIN} MiB/min for "
        f"both processes; the proxy's FDs, once the load stops, back to ≤ {FD_SLACK} above their idle count before it "
        f"(connections under load follow the latency, so their count is no leak signal, their return is); the engine's "
        f"FDs other than on its data files (parts being written or merged) back to ≤ {FD_SLACK} above their idle count).",
        "",
        f"- proxy RSS {ps:.1f} → {pe:.1f} MiB, second-half slope {v['proxy_rss_slope_mib_min']:+.2f} MiB/min; "
        f"FDs {v['proxy_fds_idle_before']} idle before, {v['proxy_fds_start_end'][0]} → {v['proxy_fds_start_end'][1]} under "
        f"load, {v['proxy_fds_drained']} {v['drain_s']:.0f} s after the load stopped",
        f"- engine RSS {es:.1f} → {ee:.1f} MiB, second-half slope {v['engine_rss_slope_mib_min']:+.2f} MiB/min; "
        f"FDs {v['engine_fds_start_end'][0]} → {v['engine_fds_start_end'][1]} under load (second-half slope "
        f"{v['engine_fds_slope_per_min']:+.1f}/min), of which on data files at most {v['engine_store_fds_max_end'][0]}, "
        f"{v['engine_store_fds_max_end'][1]} at the end; its own FDs {v['engine_own_fds_idle_after'][0]} idle before, "
        f"{v['engine_own_fds_idle_after'][1]} after; its threads {v.get('engine_threads_start_end', ['–'])[0]} → "
        f"{v.get('engine_threads_start_end', [0, '–'])[1]}; at the end: {json.dumps(samples[-1]['engine_fd_kinds'])}",
        f"- spool on disk: max {v['spool_bytes_max'] / 1024:.0f} KiB, end {v['spool_bytes_end'] / 1024:.0f} KiB",
        f"- requests sent {v['sent']:,}, errors {v['errors']} {json.dumps(meta.get('error_kinds') or {})}, late sends "
        f"(> 100 ms behind schedule) {v['late']}, unsent at the end "
        f"(the proxy behind the schedule) {meta.get('unsent', 0):,}; rows recorded {v['rows_recorded']:,.0f}, "
        f"dropped {v['dropped']:.0f}, failed writes {v['write_errors']:.0f}",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--probe-seconds", type=int, default=5, help="wrk's run per method to find the maximum")
    ap.add_argument("--fraction", type=float, default=0.5, help="of the maximum rate to offer")
    ap.add_argument("--rate", type=float, default=None, help="offer this rate instead of probing")
    ap.add_argument("--target", default="seamline", choices=("seamline", "seamline+guards"))
    ap.add_argument("--client", default="auto", choices=("auto", "python", "wrk2"))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--report", type=Path, default=None, help="only print the Markdown of a saved results JSON")
    ap.add_argument("--every", type=float, default=0.0, help="with --report: one table row per this many seconds")
    args = ap.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        rows, next_t = [], 0.0
        for s in saved["samples"]:
            if s["phase"] != "load" or s["t_s"] >= next_t or s is saved["samples"][-2]:
                rows.append(s)
                next_t = s["t_s"] + args.every if s["phase"] == "load" else next_t
        print(report(rows, saved["verdict"], saved["meta"]))
        return 0
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two CPUs: the proxy on one, the load and the upstream on the other")
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    nginx = ensure_apt("nginx", "nginx")
    ensure_apt("wrk", "wrk")
    tmp = Path(tempfile.mkdtemp(prefix="seamline-soak-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    meta: dict[str, Any] = {
        "started": started,
        "target": args.target,
        "minutes": args.minutes,
        "interval": args.interval,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    upstream: subprocess.Popen[bytes] | None = None
    target = None
    try:
        up = free_port()
        conf = nginx_conf(tmp, "upstream", upstream_server(up))
        upstream = subprocess.Popen(pinned([nginx, "-c", str(conf), "-e", str(tmp / "upstream.err")], LOAD_CPU))
        wait_port(up)
        target = start_target(args.target, up, tmp, {"nginx": nginx})
        for m in ("GET", "POST"):  # warm-up: pools, imports, the first chdb parts
            wrk(target, 16, 2, m, tmp)
        meta["max"] = probe_max(target, tmp, args.probe_seconds)
        meta["rate"] = args.rate or meta["max"]["mix"] * args.fraction
        print(f"maximum {meta['max']}; offering {meta['rate']:,.0f} req/s for {args.minutes} min", flush=True)
        use_wrk2 = args.client == "wrk2" or (args.client == "auto" and shutil.which("wrk2"))
        load: Load | Wrk2Load = Wrk2Load(target.url, meta["rate"], tmp) if use_wrk2 else Load(target.url, meta["rate"])
        meta["client"] = "wrk2 -R (GET)" if use_wrk2 else "aiohttp open loop, fixed schedule, GET/POST alternating"
        data = tmp / f"data-{args.target.replace('+', '_')}"
        spool = Path(f"{data}-spool")
        samples = asyncio.run(soak(target, load, args.minutes * 60, args.interval, spool, data))
        drained = asyncio.run(drained_fds(target.proc.pid, samples[0]["proxy_fds"] + FD_SLACK))
        meta["error_kinds"] = load.error_kinds
        meta["unsent"] = load.unsent
        meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        v = verdict(samples, drained)
        text = report(samples, v, meta)
        print("\n" + text)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"soak-{started.replace(' ', 'T').replace(':', '')}"
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "verdict": v, "samples": samples}, indent=2))
        print(f"written: {stem}.md, {stem}.json")
    finally:
        up = [upstream] if upstream else []
        stop_all(([target.proc] if target and target.proc else []) + up, 30, graceful=tuple(up))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
