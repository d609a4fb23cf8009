"""RSS while streaming a 1 GiB body through the proxy (issue #15 item 5: < 64 MiB growth).

    PYTHONPATH=src .venv/bin/python bench/stream_rss.py                 # 1 GiB each way, bare then Seamline
    PYTHONPATH=src .venv/bin/python bench/stream_rss.py --size-mib 128  # a quicker look

A real `seamline serve` (embedded store, recording + contracts on, default capture caps) and the bare aiohttp
pass-through (bench/_bare_proxy.py) in front of one real upstream on 127.0.0.1 (this script in `--upstream` mode:
it counts what it receives and streams what it is asked for). Through each proxy, one after the other:

- `upload chunked`   POST 1 GiB of JSON (`{"blob":"xxx…"}`), Transfer-Encoding: chunked;
- `upload length`    the same with Content-Length;
- `download chunked` GET 1 GiB of JSON the upstream streams chunked;
- `download length`  the same with Content-Length.

While each stream runs, the proxy's RSS (and that of Seamline's engine child process) is read from /proc every
100 ms. Printed per stream: the RSS just before it (baseline), the peak during it, growth = peak - baseline, and
throughput in MiB/s. Seamline's recorded rows for the four calls are then read back from its admin API: sizes must
be the true 1 GiB, bodies capped at capture.max_body_bytes and marked truncated. Proxies on CPU 1, the client and
the upstream on CPU 0. Results go to bench/results/stream_rss-<time>.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from proxy import free_port, pinned, wait_port

HERE = Path(__file__).resolve().parent
PY = sys.executable
MIB = 1024 * 1024
CHUNK = 256 * 1024
PROXY_CPU, LOAD_CPU = "1", "0"
STREAMS = ("upload chunked", "upload length", "download chunked", "download length")
GROWTH_LIMIT_MIB = 64


# -- the upstream (this script with --upstream PORT) ------------------------------------------------------------------


def json_chunks(total: int) -> Any:
    """`total` bytes of one JSON object `{"blob":"xxx…"}`, in CHUNK-sized pieces, without ever holding more than one."""
    head, tail = b'{"blob":"', b'"}'
    filler = b"x" * CHUNK
    left = total - len(head) - len(tail)
    yield head
    while left > 0:
        n = min(left, CHUNK)
        yield filler if n == CHUNK else filler[:n]
        left -= n
    yield tail


def run_upstream(port: int) -> None:
    import uvloop
    from aiohttp import web

    async def sink(request: web.Request) -> web.Response:
        got = 0
        async for chunk in request.content.iter_any():
            got += len(chunk)
        return web.json_response({"status": "received", "bytes": got})

    async def blob(request: web.Request) -> web.StreamResponse:
        size = int(request.query["bytes"])
        out = web.StreamResponse(headers={"Content-Type": "application/json"})
        if request.query.get("chunked") == "1":
            out.enable_chunked_encoding()
        else:
            out.content_length = size
        await out.prepare(request)
        for chunk in json_chunks(size):
            await out.write(chunk)
        await out.write_eof()
        return out

    app = web.Application(client_max_size=2**40)
    app.router.add_post("/sink", sink)
    app.router.add_get("/blob", blob)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- sampling ---------------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    out = []
    for pid in parent:
        p = pid
        while p and p != root:
            p = parent.get(p, 0)
        if p == root and pid != root:
            out.append(pid)
    return out


class Sampler:
    """RSS of the proxy and (summed) of its descendants, every `interval` s on a thread of its own."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.children = descendants(pid)  # the engine process: started with the proxy, lives as long
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> tuple[int, int]:
        return rss_kib(self.pid), sum(rss_kib(c) for c in self.children)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), *self.now()))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the streams ------------------------------------------------------------------------------------------------------


async def stream(url: str, kind: str, size: int, run_id: str) -> tuple[int, str]:
    """One stream of `size` bytes through the proxy at `url`: (bytes the far end got, response status line)."""
    import aiohttp

    async def body() -> Any:
        for chunk in json_chunks(size):
            yield chunk

    headers = {"X-Run-ID": run_id, "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as s:
        if kind.startswith("upload"):
            if kind.endswith("length"):
                headers["Content-Length"] = str(size)
            async with s.post(f"{url}/sink", data=body(), headers=headers) as r:
                reply = await r.read()
                try:
                    got = int(json.loads(reply)["bytes"])
                except (ValueError, KeyError, TypeError):
                    got = -1
                return got, f"{r.status} {reply[:200]!r}"
        chunked = "1" if kind.endswith("chunked") else "0"
        async with s.get(f"{url}/blob", params={"bytes": str(size), "chunked": chunked}, headers=headers) as r:
            got = 0
            async for chunk in r.content.iter_any():
                got += len(chunk)
            return got, f"{r.status} {r.headers.get('Transfer-Encoding') or 'Content-Length ' + str(r.content_length)}"


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, url: str, pid: int, kind: str, size: int, run_id: str) -> dict[str, Any]:
    """One stream through one proxy, its RSS sampled throughout, its process tree's CPU time before and after."""
    with Sampler(pid) as sampler:
        time.sleep(0.3)  # a few samples of the idle process: the baseline
        base = sampler.samples[-1][1:]
        cpu0 = cpu_s(pid) + sum(cpu_s(c) for c in sampler.children)
        t0 = time.monotonic()
        got, status = asyncio.run(stream(url, kind, size, run_id))
        elapsed = time.monotonic() - t0
        cpu = cpu_s(pid) + sum(cpu_s(c) for c in sampler.children) - cpu0
        time.sleep(0.3)
        after = sampler.samples[-1][1:]
    during = [s for s in sampler.samples if t0 <= s[0] <= t0 + elapsed] or sampler.samples
    peak = max(s[1] for s in during), max(s[2] for s in during)
    row = {
        "target": name,
        "stream": kind,
        "bytes": got,
        "complete": got == size,
        "status": status,
        "seconds": elapsed,
        "mib_s": size / MIB / elapsed,
        # CPU seconds per GiB of the proxy and its children: steadier than MiB/s on a shared machine
        "cpu_s_per_gib": cpu / (size / 1024 / MIB),
        "baseline_kib": base[0],
        "peak_kib": peak[0],
        "growth_kib": peak[0] - base[0],
        "after_kib": after[0],
        "child_baseline_kib": base[1],
        "child_peak_kib": peak[1],
        "child_growth_kib": peak[1] - base[1],
        "samples": len(during),
    }
    print(
        f"{name:<9} {kind:<17} {row['mib_s']:>7.1f} MiB/s {row['cpu_s_per_gib']:5.1f} CPU s/GiB  RSS {base[0] / 1024:>6.1f}"
        f" → peak {peak[0] / 1024:>6.1f} MiB (+{row['growth_kib'] / 1024:.1f}), after {after[0] / 1024:.1f};"
        f" engine +{row['child_growth_kib'] / 1024:.1f} MiB  [{status}]"
        + ("" if row["complete"] else f"  INCOMPLETE: {got} bytes"),
        flush=True,
    )
    return row


# -- Seamline ---------------------------------------------------------------------------------------------------------


def seamline_config(tmp: Path, up: int) -> Path:
    obj = {"type": "object", "properties": {"blob": {"type": "string"}}}
    data = tmp / "data"
    cfg = {
        "upstreams": {"big": {"base_url": f"http://127.0.0.1:{up}", "allow_private": True}},
        "handoffs": {
            "big.upload": {
                "upstream": "big",
                "match": "POST /sink",
                "contract": {"status": [200], "request_schema": obj, "response_schema": {"type": "object"}},
            },
            "big.download": {
                "upstream": "big",
                "match": "GET /blob",
                "contract": {"status": [200], "response_schema": obj},
            },
        },
        "storage": {"enabled": True, "clickhouse_url": f"chdb://{data}", "spool_dir": f"{data}-spool"},
    }
    path = tmp / "seamline.json"
    path.write_text(json.dumps(cfg))
    return path


def recorded_rows(admin: int, run_id: str, want: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The run's rows from the admin API, once all `want` are there (the recorder flushes in batches)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            got = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/runs/{run_id}", timeout=10).read())
            rows = got.get("handoffs") or got.get("calls") or []
            if len(rows) >= want:
                return rows
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        time.sleep(0.5)
    return rows


ROW_KEYS = (
    "handoff",
    "method",
    "status",
    "outcome",
    "request_bytes",
    "response_bytes",
    "request_truncated",
    "response_truncated",
)


def row_summary(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in ROW_KEYS}
    out["request_body_chars"] = len(row.get("request_body") or "")
    out["response_body_chars"] = len(row.get("response_body") or "")
    out["unvalidated_reason"] = (row.get("attributes") or {}).get("unvalidated_reason")
    return out


# -- main -------------------------------------------------------------------------------------------------------------


def start(name: str, up: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str, int | None]:
    port = free_port()
    log = (tmp / f"{name}.log").open("wb")
    if name == "bare":
        cmd = [PY, str(HERE / "_bare_proxy.py"), str(port), f"http://127.0.0.1:{up}"]
        proc = subprocess.Popen(pinned(cmd, PROXY_CPU), stderr=log)
        wait_port(port, 60)
        return proc, f"http://127.0.0.1:{port}/big", None
    admin = free_port()
    cfg = seamline_config(tmp, up)
    cmd = [PY, "-m", "seamline", "serve", "--config", str(cfg), "--port", str(port), "--admin-port", str(admin)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEAMLINE_", "OTEL_"))}
    proc = subprocess.Popen(pinned([*cmd, "--log-level", "WARNING"], PROXY_CPU), env=env, stderr=log)
    wait_port(port, 90)
    wait_port(admin, 30)
    return proc, f"http://127.0.0.1:{port}/big", admin


def report(rows: list[dict[str, Any]], recorded: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# bench/stream_rss.py — {meta['started']}",
        "",
        f"{meta['size_mib']} MiB per stream, {CHUNK // 1024} KiB client chunks; proxy on CPU {PROXY_CPU}, client + upstream on"
        f" CPU {LOAD_CPU}; load average {meta['load_before']} before, {meta['load_after']} after (shared machine). RSS from"
        f" /proc every 100 ms; growth = peak during the stream - RSS just before it (limit {GROWTH_LIMIT_MIB} MiB).",
        "",
        "| stream | target | MiB/s | CPU s/GiB | RSS before MiB | peak MiB | growth MiB | after MiB | engine growth MiB "
        "| complete |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stream']} | {r['target']} | {r['mib_s']:.1f} | {r['cpu_s_per_gib']:.1f} "
            f"| {r['baseline_kib'] / 1024:.1f} | {r['peak_kib'] / 1024:.1f} "
            f"| {r['growth_kib'] / 1024:.1f} | {r['after_kib'] / 1024:.1f} "
            f"| {r['child_growth_kib'] / 1024:.1f} | {'yes' if r['complete'] else 'NO'} |".replace("| 0.0 | yes", "| – | yes")
        )
    worst = max((r["growth_kib"] for r in rows if r["target"] == "seamline"), default=0) / 1024
    lines += ["", f"Seamline's worst growth: {worst:.1f} MiB — {'within' if worst < GROWTH_LIMIT_MIB else 'OVER'} the limit.", ""]
    if recorded:
        lines += ["Seamline's recorded rows:", "", "| " + " | ".join(recorded[0]) + " |", "|" + "---|" * len(recorded[0])]
        lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in recorded]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--targets", default="bare,seamline")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.upstream:
        run_upstream(args.upstream)
        return 0
    size = args.size_mib * MIB
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # the client beside the upstream, off the proxy's core
    tmp = Path(tempfile.mkdtemp(prefix="seamline-stream-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    meta: dict[str, Any] = {
        "started": started,
        "size_mib": args.size_mib,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []
    try:
        up = free_port()
        procs.append(subprocess.Popen(pinned([PY, __file__, "--upstream", str(up)], LOAD_CPU)))
        wait_port(up)
        started_targets = []
        for name in args.targets.split(","):  # all up at once, so the streams interleave: a noisy minute hits both
            proc, url, admin = start(name, up, tmp)
            procs.append(proc)
            started_targets.append((name, proc, url, admin))
        run_id = f"stream-{uuid.uuid4().hex[:12]}"
        for _, _, url, _ in started_targets:
            for kind in ("upload chunked", "download length"):  # warm-up: pools, imports, the first rows
                asyncio.run(stream(url, kind, MIB, f"{run_id}-warm"))
        for kind in STREAMS:
            for name, proc, url, _ in started_targets:
                rows.append(measure(name, url, proc.pid, kind, size, run_id))
        for _, _, _, admin in started_targets:
            if admin:
                recorded = [row_summary(r) for r in recorded_rows(admin, run_id, len(STREAMS))]
                for r in recorded:
                    print("recorded:", json.dumps(r), flush=True)
        meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        text = report(rows, recorded, meta)
        print("\n" + text)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"stream_rss-{started.replace(' ', 'T').replace(':', '')}"
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "streams": rows, "recorded": recorded}, indent=2))
        print(f"written: {stem}.md, {stem}.json")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
