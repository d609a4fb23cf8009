"""Ingest rate of the Recorder (events/s with 1 KiB bodies) and the engine's CPU per row, chdb embedded and over HTTP.

Usage: python bench/ingest.py [--events 100000] [--batch 2000] [--modes recorder-chdb,baseline-native,...]
Each mode runs in its own subprocess (clean RSS; chdb allows one data directory per process) on a fresh database:

- recorder-chdb    Recorder.submit() for every event (JSON row encode on the loop), batches into chdb in its engine
                   process (the default); the clock stops when every row is in ClickHouse (batches that overflowed
                   the queue to the spool are replayed first)
- recorder-chdb-thread  the same with chdb on a thread of this process (storage.embedded_engine: thread)
- recorder-http    the same through clickhouse-connect's async client and the ClickHouse-HTTP adapter (tests/support)
                   run in a process of its own: the "server". It is chdb behind aiohttp, not clickhouse-server (no
                   ClickHouse server binary on these machines; Debian's clickhouse-server is 18.16 from 2018, which
                   predates the Map type the schema uses), so its CPU is chdb's plus the adapter's HTTP handling
- baseline-native  clickhouse-connect sync client.insert() of pre-built row lists (Native), same batch size, no Recorder
- baseline-json    client.raw_insert() of pre-encoded JSONEachRow batches, no Recorder
- spool            Spool.append() of one batch, fsync=always vs never (the per-batch fsync cost)

Engine CPU per row: the utime + stime of whatever hosts ClickHouse, over the ingest (until every row is in) and
again once its background merges have settled (system.merges empty, up to 60 s more), divided by the rows: the
engine process's /proc/<pid>/stat (recorder-chdb), the adapter's process (recorder-http), this process's threads
other than the event loop's (recorder-chdb-thread: chdb's threads and the store's executor thread), this whole
process (baselines: there the client's Python is counted too). "recorder µs/row" is the event loop's own CPU.

The machine has 2 vCPU shared with other jobs: numbers vary by ±30 % run to run; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = ('{"id":"ch_3MmlLrLkdIwHu7ix","amount":1999,"currency":"eur","items":[' + '{"sku":"SKU-1","qty":1},' * 38)[:1023] + "}"


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    cur = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cur, peak


CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads, live and exited), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def settled(query: Any, timeout: float = 60.0) -> None:
    """Wait until the engine runs no merge (or timeout): its CPU then includes the merges the ingest caused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await query("SELECT count() AS n FROM system.merges")
        if not rows[0]["n"]:
            return
        await asyncio.sleep(0.2)


def template() -> dict[str, Any]:
    from seamline.event.columns import new_event

    return new_event(
        run_id="run-0", handoff="billing.charge", upstream="billing", method="POST", url="https://api.billing.example/v1/charges",
        status=200, duration_ms=41.5, ttfb_ms=30.1, outcome="ok", request_body=BODY, response_body=BODY,
        request_headers={"content-type": "application/json", "user-agent": "wf/1"},
        response_headers={"content-type": "application/json"},
        request_bytes=1024, response_bytes=1024, proxy_instance="bench", tenant="t1", source_app="app1",
    )  # fmt: skip


def events(n: int) -> list[dict[str, Any]]:
    t, now = template(), int(time.time() * 1e6)
    return [{**t, "event_id": str(uuid.uuid4()), "ts": now + i, "run_id": f"run-{i // 20}"} for i in range(n)]


async def run_recorder(
    url: str, db: str, n: int, batch: int, engine: str = "process", max_insert: int = 32 << 20, server_pid: int | None = None
) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from seamline.config.models import Storage
    from seamline.record.recorder import build_recorder

    spool = tempfile.mkdtemp(prefix="seamline-bench-spool-")
    # queue_size >= events: measure the pipeline's sustained rate, not the overflow detour through the spool
    # (a proxy cannot produce events as fast as this loop; overflow is exercised by the tests).
    queue = n + batch if os.environ.get("SEAMLINE_BENCH_OVERFLOW") is None else 50_000
    storage = Storage(
        clickhouse_url=url,
        database=db,
        batch_size=batch,
        queue_size=queue,
        spool_dir=spool,
        embedded_engine=engine,
        max_insert_bytes=max_insert,
    )
    rec = await build_recorder(storage, CollectorRegistry(), "bench", heartbeat_interval_s=0)
    evs = events(n)
    store: Any = rec.store
    if server_pid is not None:
        engine_cpu = functools.partial(proc_cpu_s, server_pid)
    elif engine == "process":
        await store.ping()
        engine_cpu = functools.partial(proc_cpu_s, store._process.pid)
    else:  # chdb's threads and the store's executor: everything but the event loop's thread (this one)

        def engine_cpu() -> float:
            return self_cpu_s() - time.thread_time()

    loop0 = time.thread_time()
    e0 = engine_cpu()
    t0 = time.perf_counter()
    submit_s = 0.0
    for i in range(0, n, 100):  # a request handler yields between events; give the loop a turn every 100
        s = time.perf_counter()
        for ev in evs[i : i + 100]:
            rec.submit(ev)
        submit_s += time.perf_counter() - s
        await asyncio.sleep(0)
    assert await rec.flush(600)
    spooled = rec.spool.records  # batches that overflowed the in-memory queue: replayed before the clock stops
    while not await rec.replay_now():
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    e1, loop_s = engine_cpu(), time.thread_time() - loop0
    rows = (await rec.store.query("SELECT count() AS n FROM handoffs"))[0]["n"]
    await settled(rec.store.query)
    e2 = engine_cpu()
    await rec.stop(60)
    inserts = rec.metrics.batches_written.labels("direct")._value.get()
    return {
        "events_s": n / elapsed,
        "engine_cpu_us_row": round((e1 - e0) / n * 1e6, 1),
        "engine_cpu_settled_us_row": round((e2 - e0) / n * 1e6, 1),
        "recorder_cpu_us_row": round(loop_s / n * 1e6, 1),
        "submit_us": submit_s / n * 1e6,
        "rows": rows,
        "inserts": int(inserts),
        "overflow_batches_replayed": spooled,
    }


def run_baseline(path: str, db: str, n: int, batch: int, fmt: str) -> dict[str, Any]:
    import clickhouse_connect

    from seamline.event.columns import COLUMN_NAMES
    from seamline.record.rows import INSERT_SETTINGS, encode_event, seal
    from seamline.record.schema import statements

    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    client.database = db
    for stmt in statements(db):
        client.command(stmt)
    evs = events(n)
    if fmt == "native":
        prepared: list[Any] = [[[e[c] for c in COLUMN_NAMES] for e in evs[i : i + batch]] for i in range(0, n, batch)]
    else:
        prepared = [
            seal([encode_event(e) for e in evs[i : i + batch]], [e["event_id"] for e in evs[i : i + batch]])
            for i in range(0, n, batch)
        ]
    c0 = self_cpu_s()
    t0 = time.perf_counter()
    for i, b in enumerate(prepared):
        if fmt == "native":
            client.insert("handoffs", b, column_names=list(COLUMN_NAMES), settings={"insert_deduplication_token": f"b{i}"})
        else:
            client.raw_insert(
                "handoffs",
                None,
                b.payload,
                fmt="JSONEachRow",
                settings={**INSERT_SETTINGS, "insert_deduplication_token": b.token},
            )
    elapsed = time.perf_counter() - t0
    c1 = self_cpu_s()
    rows = client.query("SELECT count() FROM handoffs").result_rows[0][0]
    asyncio.run(settled(lambda sql: asyncio.to_thread(lambda: list(client.query(sql).named_results()))))
    c2 = self_cpu_s()
    client.close()
    return {
        "events_s": n / elapsed,
        "engine_cpu_us_row": round((c1 - c0) / n * 1e6, 1),
        "engine_cpu_settled_us_row": round((c2 - c0) / n * 1e6, 1),
        "rows": rows,
        "note": "rows pre-built outside the timing",
    }


def run_spool(batch: int) -> dict[str, Any]:
    from seamline.record.rows import encode_event, seal
    from seamline.record.spool import Spool

    out: dict[str, Any] = {}
    for rows in (100, batch):
        evs = events(rows)
        b = seal([encode_event(e) for e in evs], [e["event_id"] for e in evs])
        for policy in ("always", "never"):
            d = tempfile.mkdtemp(prefix="seamline-bench-spool-", dir=os.environ.get("SEAMLINE_BENCH_SPOOL_DIR"))
            sp = Spool(d, 8 << 30, fsync=policy)  # type: ignore[arg-type]
            sp.open()
            times = []
            for _ in range(20):
                t = time.perf_counter()
                sp.append(b)
                times.append(time.perf_counter() - t)
            out[f"append_{rows}rows_{policy}_ms"] = round(statistics.median(times) * 1000, 2)
            out[f"batch_{rows}rows_mib"] = round(len(b.payload) / 2**20, 2)
    return out


def serve_http(path: str) -> None:
    """The ClickHouse-HTTP adapter over chdb at `path`, on a free port printed first; until stdin closes."""
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ["SEAMLINE_TEST_CHDB_PATH"] = path
    from support.chhttp import ClickHouseHttpAdapter

    async def run() -> None:
        ad = ClickHouseHttpAdapter()
        await ad.start()
        print(ad.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await ad.stop()

    asyncio.run(run())


def child(mode: str, path: str, n: int, batch: int, max_insert: int) -> dict[str, Any]:
    db = f"bench_ingest_{mode.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    if mode in ("recorder-chdb", "recorder-chdb-thread"):
        res = asyncio.run(
            run_recorder(f"chdb://{path}", db, n, batch, "thread" if mode.endswith("thread") else "process", max_insert)
        )
    elif mode == "recorder-http":
        # The "server": the adapter in a process of its own, so its CPU is read apart from the Recorder's.
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve-http", "--path", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=ROOT,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            res = asyncio.run(run_recorder(f"{url}/{db}", db, n, batch, max_insert=max_insert, server_pid=server.pid))
        finally:
            server.terminate()
            server.wait(30)
    elif mode == "baseline-native":
        res = run_baseline(path, db, n, batch, "native")
    elif mode == "baseline-json":
        res = run_baseline(path, db, n, batch, "json")
    elif mode == "spool":
        res = run_spool(batch)
    else:
        raise SystemExit(f"unknown mode {mode}")
    cur, peak = rss_mib()
    return {"mode": mode, **res, "rss_mib": round(cur), "peak_rss_mib": round(peak)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--max-insert-bytes", type=int, default=32 << 20, help="storage.max_insert_bytes (0: one insert per batch)")
    ap.add_argument("--modes", default="recorder-chdb,recorder-chdb-thread,recorder-http,baseline-native,baseline-json,spool")
    ap.add_argument("--path", default=os.environ.get("SEAMLINE_BENCH_CHDB", "/tmp/seamline-bench-ingest"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serve-http", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_http:
        serve_http(args.path)
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.path, args.events, args.batch, args.max_insert_bytes)), flush=True)
        return 0
    print(
        f"# {os.cpu_count()} vCPU shared with other jobs (load avg {os.getloadavg()[0]:.1f}); {args.events:,} events, "
        f"1 KiB request + 1 KiB response bodies, batch {args.batch}, max_insert_bytes {args.max_insert_bytes}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--child", mode, "--events", str(args.events), "--batch", str(args.batch),
               "--path", args.path, "--max-insert-bytes", str(args.max_insert_bytes)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(f"{mode}: FAILED\n{proc.stderr[-3000:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[mode] = res
        print(json.dumps(res), flush=True)
    base = results.get("baseline-native", {}).get("events_s")
    if base:
        print(
            "\n| mode | events/s | vs raw Native insert | engine CPU µs/row (merges settled) | recorder µs/row | "
            "submit µs/event | RSS MiB (peak) |\n|---|---|---|---|---|---|---|"
        )
        for mode, r in results.items():
            if "events_s" in r:
                print(
                    f"| {mode} | {r['events_s']:,.0f} | {r['events_s'] / base:.2f}x | {r['engine_cpu_us_row']:.0f} "
                    f"({r['engine_cpu_settled_us_row']:.0f}) | {r.get('recorder_cpu_us_row', float('nan')):.0f} | "
                    f"{r.get('submit_us', float('nan')):.1f} | {r['rss_mib']} ({r['peak_rss_mib']}) |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
