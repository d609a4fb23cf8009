"""Engine CPU per row and bytes on disk at realistic rates: the embedded engine's settings, measured one lever at a time.

Usage: python bench/engine_levers.py [--rates 200,1000,3000] [--seconds 15] [--rounds 2] [--levers base,flush1000,...]
       python bench/engine_levers.py --list           # the levers and what each changes

Each run is its own subprocess on a fresh chdb directory: a Recorder (storage.embedded_engine: process, the default)
is fed realistic events (20 handoffs over 5 upstreams, 5 % failures, 3 % guarded, distinct ~0.3-1.5 KiB JSON bodies,
runs of 20 calls) at a fixed rate by the event loop, as a proxy would submit them. After a warm-up, the engine
process's CPU (utime + stime from /proc/<pid>/stat: parsing, parts, MVs, merges, its idle threads) is read over a
fixed window and divided by the rows submitted in it; the window includes the merges that run in it, so it is the
steady state's cost. Then the engine flushes, `OPTIMIZE … FINAL` merges each table to one part per partition and the
bytes on disk of `handoffs` (and its columns) are read: the disk figure of a codec.

Rounds rotate the order of the levers (A/B/C, B/C/A, …) so a neighbour's load falls on each in turn. The machine has
2 vCPU shared with other jobs: read the min-max of a cell, not one number. On a loaded machine the engine gets less
of a core, its inserts take longer and group commit makes them larger: the Recorder's rows per insert (the
`inserts` field) are part of the result.

`--paired ROWS`: the levers side by side in one engine instead (the engine's own client and insert call, in this
process), one database per lever with the whole schema (MVs included), the same batches of ROWS distinct rows
inserted into each in turn, round after round (rotated); the CPU of each lever's inserts is read once its merges
have settled, then each table is merged to one part (`OPTIMIZE … FINAL`, its CPU read too) and its bytes on disk
and per column are read. Paired on identical data in one process, this is the steadier comparison of insert
settings, table settings and codecs; the per-rate runs above are the one for the flush policy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")

# name -> what changes: storage fields, extra insert settings, ALTERs run on the fresh tables, column codec overrides
# (the DDL as a migration would write it: `{col}` gets `CODEC(...)` instead of the shipped one).
_ROLLUPS = ("handoffs", "handoffs_1m", "guards_1m")
_IDS = (
    "event_id",
    "run_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "url",
    "idempotency_key",
    "retry_of",
    "replay_of",
    "error_detail",
)
_INTS = ("status", "attempt", "request_bytes", "response_bytes")
_FLOATS = ("duration_ms", "ttfb_ms", "retry_after_s", "guard_wait_ms")
_MAPS = ("external_ids", "attributes", "request_headers", "response_headers")
LEVERS: dict[str, dict[str, Any]] = {
    "base": {},
    "flush1000": {"storage": {"flush_interval_ms": 1000}},
    "flush2000": {"storage": {"flush_interval_ms": 2000, "max_unacked_ms": 2500}},
    "no_async_insert": {"insert": {"async_insert": 0}},
    "optimize_on_insert0": {"insert": {"optimize_on_insert": 0}},
    "insert_threads1": {"insert": {"max_insert_threads": 1, "input_format_parallel_parsing": 0}},
    "max_threads1": {"insert": {"max_threads": 1}},
    "no_mv_dedup": {"insert": {"deduplicate_blocks_in_dependent_materialized_views": 0}},
    # What the fixed cost of an insert is made of: planning with the old analyzer, no dedup log, no rollup views.
    "analyzer0": {"insert": {"enable_analyzer": 0}},
    "no_dedup": {"insert": {"insert_deduplicate": 0}},
    "no_views": {"alter": ["DROP VIEW {db}.handoffs_1m_mv", "DROP VIEW {db}.guards_1m_mv"]},
    "no_handoffs_1m_mv": {"alter": ["DROP VIEW {db}.handoffs_1m_mv"]},
    "parallel_views": {"insert": {"parallel_view_processing": 1}},
    "compress_block_64k": {"insert": {"max_compress_block_size": 65536, "min_compress_block_size": 4096}},
    "compact_parts": {"alter": ["ALTER TABLE {db}.handoffs MODIFY SETTING min_bytes_for_wide_part = 1073741824"]},
    "merge_base10": {"alter": [f"ALTER TABLE {{db}}.{t} MODIFY SETTING merge_selector_base = 10" for t in _ROLLUPS]},
    "old_parts_60": {"alter": [f"ALTER TABLE {{db}}.{t} MODIFY SETTING old_parts_lifetime = 60" for t in _ROLLUPS]},
    "marks_uncompressed": {"alter": ["ALTER TABLE {db}.handoffs MODIFY SETTING compress_marks = 0, compress_primary_key = 0"]},
    # The codecs before migration 4 (LZ4, ClickHouse's default, on what it re-declared): "base" is the current DDL.
    "codecs_before_v5": {"codecs": dict.fromkeys(("run_id", "trace_id", "span_id", "parent_span_id", "url", "idempotency_key",
                                                  "retry_of", "replay_of", "error_detail", "status", "attempt", "request_bytes",
                                                  "response_bytes", "duration_ms", "ttfb_ms", "retry_after_s", "guard_wait_ms",
                                                  "external_ids", "attributes"), "LZ4")},
    "bodies_zstd1": {"codecs": {"request_body": "ZSTD(1)", "response_body": "ZSTD(1)"}},
    "bodies_lz4": {"codecs": {"request_body": "LZ4", "response_body": "LZ4"}},
    "bodies_zstd6": {"codecs": {"request_body": "ZSTD(6)", "response_body": "ZSTD(6)"}},
    "ts_doubledelta": {"codecs": {"ts": "DoubleDelta, ZSTD(1)"}},
    "ints_t64": {"codecs": dict.fromkeys(_INTS, "T64, ZSTD(1)")},
    "ints_zstd1": {"codecs": dict.fromkeys(_INTS, "ZSTD(1)")},
    "floats_gorilla": {"codecs": dict.fromkeys(_FLOATS, "Gorilla, ZSTD(1)")},
    "floats_zstd1": {"codecs": dict.fromkeys(_FLOATS, "ZSTD(1)")},
    "ids_zstd1": {"codecs": dict.fromkeys(_IDS, "ZSTD(1)")},
    "ids_zstd3": {"codecs": dict.fromkeys(_IDS, "ZSTD(3)")},
    "maps_zstd1": {"codecs": dict.fromkeys(_MAPS, "ZSTD(1)")},
    "meta_zstd1": {"codecs": dict.fromkeys(_IDS + _INTS + _FLOATS + _MAPS, "ZSTD(1)")},
}  # fmt: skip

HANDOFFS = [
    (f"{u}.{op}", u) for u in ("billing", "crm", "search", "mail", "ledger") for op in ("create", "get", "list", "update")
]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def body(rng: random.Random, kind: str) -> str:
    """A JSON body of a typical API: ids, amounts, a list of 1-12 items, a timestamp; ~0.3-1.5 KiB, distinct values."""
    items = [
        {"sku": f"SKU-{rng.randint(1, 5000)}", "qty": rng.randint(1, 9), "price": rng.randint(100, 99_999), "name": rng.choice(
            ["Widget", "Gadget", "Adapter", "Cable", "Sensor", "Module"]) + f" {rng.randint(1, 99)}"}
        for _ in range(rng.randint(1, 12))
    ]  # fmt: skip
    doc = {
        "id": f"{kind}_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}",
        "object": kind,
        "amount": rng.randint(100, 500_000),
        "currency": rng.choice(["eur", "usd", "gbp"]),
        "customer": f"cus_{rng.getrandbits(64):016x}",
        "created": int(time.time()) - rng.randint(0, 86_400),
        "status": rng.choice(["succeeded", "pending", "succeeded", "succeeded"]),
        "metadata": {"order": str(rng.randint(10**6, 10**7)), "source": rng.choice(["web", "app", "batch"])},
        "items": items,
    }
    return json.dumps(doc, separators=(",", ":"))


def event_pool(n: int, seed: int = 15) -> list[dict[str, Any]]:
    """n distinct realistic events (the same for every lever: seeded)."""
    from seamline.event.columns import new_event
    from seamline.outcomes import GUARD_RATE_QUEUED, GUARD_RETRIED

    rng = random.Random(seed)
    out = []
    for i in range(n):
        handoff, upstream = HANDOFFS[rng.randrange(len(HANDOFFS))]
        r = rng.random()
        outcome, status, err = ("ok", 200, "none")
        if r < 0.03:
            outcome, status, err = ("contract_violation", 200, "contract")
        elif r < 0.05:
            outcome, status, err = ("upstream_error", 503, "upstream_5xx")
        guard = GUARD_RETRIED if rng.random() < 0.02 else (GUARD_RATE_QUEUED if rng.random() < 0.01 else "")
        method = "POST" if handoff.endswith(("create", "update")) else "GET"
        dur = rng.lognormvariate(3.3, 0.6)
        out.append(
            new_event(
                run_id=f"run-{uuid.UUID(int=rng.getrandbits(128))}" if i % 20 == 0 else "",  # filled per run below
                run_id_source="header", trace_id=f"{rng.getrandbits(128):032x}", span_id=f"{rng.getrandbits(64):016x}",
                parent_span_id=f"{rng.getrandbits(64):016x}", tenant=rng.choice(["t1", "t2", "t3"]),
                source_app=rng.choice(["checkout", "worker", "admin"]), handoff=handoff, upstream=upstream,
                step=rng.choice(["charge", "notify", "lookup", ""]), mode="reverse", safety="never_repeat" if method == "POST"
                else "safe_to_repeat", idempotency_key=f"{rng.getrandbits(96):024x}" if method == "POST" else "",
                method=method, url=f"https://api.{upstream}.example/v1/{handoff.split('.')[1]}/{rng.getrandbits(40):010x}",
                route=f"/v1/{handoff.split('.')[1]}/{{id}}", status=status, duration_ms=round(dur, 3),
                ttfb_ms=round(dur * 0.8, 3), outcome=outcome, error_class=err,
                error_detail="" if outcome == "ok" else f"{err}: status {status}",
                violations=["schema:/amount:type"] if outcome == "contract_violation" else [],
                external_ids={"charge_id": f"ch_{rng.getrandbits(64):016x}"} if upstream == "billing" else {},
                request_headers={"content-type": "application/json", "user-agent": "checkout/4.2",
                                 "x-request-id": str(uuid.UUID(int=rng.getrandbits(128))), "authorization": "[REDACTED]"},
                response_headers={"content-type": "application/json", "x-ratelimit-remaining": str(rng.randint(0, 999)),
                                  "date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())},
                request_body=body(rng, "req") if method == "POST" else "", response_body=body(rng, handoff.split(".")[1]),
                request_content_type="application/json" if method == "POST" else "",
                response_content_type="application/json", request_bytes=rng.randint(0, 1500),
                response_bytes=rng.randint(200, 1600),
                proxy_instance="bench-1", guard=guard, retry_of=str(uuid.UUID(int=rng.getrandbits(128))) if guard else "",
                guard_wait_ms=round(rng.random() * 5, 3) if guard == GUARD_RATE_QUEUED else 0.0,
            )
        )  # fmt: skip
    run = ""
    for ev in out:
        run = ev["run_id"] or run
        ev["run_id"] = run
    return out


def apply_codecs(codecs: dict[str, str]) -> None:
    """Make the schema's DDL use these codecs (the DDL a migration would write), before the Recorder migrates."""
    from seamline.record import schema

    shipped = schema._column_ddl

    def column_ddl(ctx: Any) -> list[str]:
        out = []
        for line in shipped(ctx):
            name = line.split("`")[1]
            if name in codecs:
                head = line.split(" CODEC(")[0]
                ttl = " TTL " + line.split(" TTL ", 1)[1] if " TTL " in line else ""
                line = f"{head} CODEC({codecs[name]}){ttl}"
            out.append(line)
        return out

    schema._column_ddl = column_ddl  # type: ignore[assignment]


async def run_one(lever: str, rate: int, seconds: float, warmup: float) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from seamline.config.models import Storage
    from seamline.record import rows
    from seamline.record.recorder import build_recorder

    spec = LEVERS[lever]
    if spec.get("codecs"):
        apply_codecs(spec["codecs"])
    rows.INSERT_SETTINGS.update(spec.get("insert", {}))  # the dict the Sink sends with every insert
    path = tempfile.mkdtemp(prefix="seamline-bench-levers-")
    db = "levers"
    storage = Storage(
        clickhouse_url=f"chdb://{path}/data", database=db, spool_dir=f"{path}/spool", **spec.get("storage", {})
    )  # the shipped defaults otherwise (batch_size 2000, flush_interval_ms 500, max_insert_bytes 32 MiB)
    pool = event_pool(min(60_000, int(rate * (warmup + seconds) * 1.1) + 100))  # distinct rows: no repeats to compress
    rec = await build_recorder(storage, CollectorRegistry(), "bench", heartbeat_interval_s=0)
    try:
        for stmt in spec.get("alter", []):
            await rec.store.command(stmt.format(db=f"`{db}`"))
        engine_pid = rec.store._process.pid  # type: ignore[attr-defined]
        assert engine_pid is not None
        loop = asyncio.get_running_loop()
        submitted = 0
        t_start = loop.time()
        marks: dict[str, tuple[float, float, int, float]] = {}
        tick = 0.005  # submit what is due every 5 ms (a proxy submits one by one; the batcher seals by age or size)
        while True:
            now = loop.time()
            elapsed = now - t_start
            if "from" not in marks and elapsed >= warmup:
                marks["from"] = (proc_cpu_s(engine_pid), time.process_time(), submitted, now)
            if elapsed >= warmup + seconds:
                marks["to"] = (proc_cpu_s(engine_pid), time.process_time(), submitted, now)
                break
            due = int(elapsed * rate) - submitted
            for _ in range(due):
                ev = pool[submitted % len(pool)]
                rec.submit({**ev, "event_id": str(uuid.uuid4()), "ts": int(time.time() * 1e6)})
                submitted += 1
            await asyncio.sleep(tick)
        assert await rec.flush(120)
        (e0, p0, n0, w0), (e1, p1, n1, w1) = marks["from"], marks["to"]
        n = n1 - n0
        total = (await rec.store.query("SELECT count() AS n FROM handoffs"))[0]["n"]
        parts = await rec.store.query(
            "SELECT table, count() AS parts, countIf(part_type = 'Wide') AS wide FROM system.parts "
            "WHERE database = {db:String} AND active GROUP BY table ORDER BY table",
            {"db": db},
        )
        # One wide part per partition: system.columns then has each column's compressed size (not kept for compact parts).
        await rec.store.command(f"ALTER TABLE `{db}`.handoffs MODIFY SETTING min_bytes_for_wide_part = 0")
        for t in ("handoffs", "handoffs_1m", "guards_1m"):
            await rec.store.command(f"OPTIMIZE TABLE `{db}`.`{t}` FINAL")
        disk = await rec.store.query(
            "SELECT sum(bytes_on_disk) AS bytes FROM system.parts WHERE database = {db:String} AND table = 'handoffs' AND active",
            {"db": db},
        )
        cols = await rec.store.query(
            "SELECT name, data_compressed_bytes AS c, data_uncompressed_bytes AS u FROM system.columns "
            "WHERE database = {db:String} AND table = 'handoffs'",
            {"db": db},
        )
        inserts = int(rec.metrics.batches_written.labels("direct")._value.get())
    finally:
        await rec.stop(60)
        shutil.rmtree(path, ignore_errors=True)
    groups = {"bodies": ("request_body", "response_body"), "headers": ("request_headers", "response_headers")}
    col_bytes = {g: sum(c["c"] for c in cols if c["name"] in names) for g, names in groups.items()}
    col_bytes["ts"] = sum(c["c"] for c in cols if c["name"] == "ts")
    col_bytes["other"] = sum(c["c"] for c in cols) - sum(col_bytes.values())
    return {
        "lever": lever,
        "rate": rate,
        "rows_in_window": n,
        "achieved_rate": round(n / (w1 - w0)),
        "engine_cpu_us_row": round((e1 - e0) / max(n, 1) * 1e6, 1),
        "engine_core_share": round((e1 - e0) / (w1 - w0), 3),
        "recorder_cpu_us_row": round((p1 - p0) / max(n, 1) * 1e6, 1),
        "rows_total": total,
        "inserts": inserts,
        "active_parts": {p["table"]: p["parts"] for p in parts},
        "wide_parts": sum(p["wide"] for p in parts),
        "disk_bytes_per_row": round(disk[0]["bytes"] / total, 1) if total else None,
        "col_bytes_per_row": {k: round(v / total, 1) for k, v in col_bytes.items()} if total else {},
    }


def run_paired(levers: list[str], rows: int, per: int, rounds: int) -> list[dict[str, Any]]:
    """Each lever its own database in one engine; the same batches inserted into each, rounds rotated (see module doc)."""
    import resource

    from seamline.record import schema
    from seamline.record.engine import Engine
    from seamline.record.rows import INSERT_SETTINGS, encode_event, seal

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    path = tempfile.mkdtemp(prefix="seamline-bench-paired-")
    eng = Engine(path, "default")
    eng.open()
    shipped = schema._column_ddl
    for lever in levers:
        spec = LEVERS[lever]
        schema._column_ddl = shipped  # type: ignore[assignment]
        if spec.get("codecs"):
            apply_codecs(spec["codecs"])
        for stmt in schema.statements(f"lv_{lever}"):
            eng.command(stmt, None, None)
        for stmt in spec.get("alter", []):
            eng.command(stmt.format(db=f"`lv_{lever}`"), None, None)
    schema._column_ddl = shipped  # type: ignore[assignment]

    def settle(db: str) -> None:
        for _ in range(300):
            if not eng.query("SELECT count() AS n FROM system.merges WHERE database = {d:String}", {"d": db})[0]["n"]:
                return
            time.sleep(0.1)

    insert_cpu: dict[str, list[float]] = {lv: [] for lv in levers}
    for rnd in range(rounds):
        pool = event_pool(rows * per, seed=1000 + rnd)  # distinct rows each round (no repeats for the codecs to find)
        batches = []
        for i in range(per):
            evs = [{**e, "event_id": str(uuid.uuid4()), "ts": int(time.time() * 1e6)} for e in pool[i * rows : (i + 1) * rows]]
            batches.append(seal([encode_event(e) for e in evs], [e["event_id"] for e in evs]))
        for lever in levers[rnd % len(levers) :] + levers[: rnd % len(levers)]:
            settings = {**INSERT_SETTINGS, **LEVERS[lever].get("insert", {})}
            c0 = cpu()
            for b in batches:
                eng.insert_json(f"lv_{lever}.handoffs", b.payload, {**settings, "insert_deduplication_token": b.token})
            settle(f"lv_{lever}")
            insert_cpu[lever].append((cpu() - c0) / (rows * per) * 1e6)
        print(f"# round {rnd + 1}/{rounds} done", file=sys.stderr, flush=True)
    out = []
    for lever in levers:
        db = f"lv_{lever}"
        c0 = cpu()
        for t in ("handoffs", "handoffs_1m", "guards_1m"):
            eng.command(f"OPTIMIZE TABLE `{db}`.`{t}` FINAL", None, None)
        merge_cpu = cpu() - c0
        [disk] = eng.query(
            "SELECT sum(bytes_on_disk) AS b, sum(rows) AS n FROM system.parts WHERE database = {d:String} "
            "AND table = 'handoffs' AND active",
            {"d": db},
        )
        eng.command(f"ALTER TABLE `{db}`.handoffs MODIFY SETTING min_bytes_for_wide_part = 0", None, None)
        eng.command(f"OPTIMIZE TABLE `{db}`.handoffs FINAL", None, None)  # wide: per-column sizes are kept
        cols = eng.query(
            "SELECT name, data_compressed_bytes AS c FROM system.columns WHERE database = {d:String} AND table = 'handoffs'",
            {"d": db},
        )
        n = disk["n"]
        out.append(
            {
                "lever": lever,
                "rows_per_insert": rows,
                "insert_cpu_us_row": [round(x, 1) for x in insert_cpu[lever]],
                "optimize_cpu_us_row": round(merge_cpu / n * 1e6, 1),
                "disk_bytes_per_row": round(disk["b"] / n, 1),
                "col_bytes_per_row": {c["name"]: round(c["c"] / n, 2) for c in cols},
            }
        )
    eng.close()
    shutil.rmtree(path, ignore_errors=True)
    return out


def report_paired(results: list[dict[str, Any]]) -> None:
    base = next((r for r in results if r["lever"] == "base"), results[0])
    b_cpu = statistics.median(base["insert_cpu_us_row"])
    changed = {lv: set(LEVERS[lv].get("codecs", {})) for lv in LEVERS}
    print(
        f"\n| lever ({base['rows_per_insert']} rows per insert) | insert CPU µs/row, median [min–max] | × base | "
        "OPTIMIZE FINAL µs/row | disk B/row (× base) | its columns B/row (base) |\n|---|---:|---:|---:|---:|---:|"
    )
    for r in results:
        xs = r["insert_cpu_us_row"]
        disk = f"{r['disk_bytes_per_row']:.0f} ({r['disk_bytes_per_row'] / base['disk_bytes_per_row']:.2f})"
        cols = changed.get(r["lever"], set())
        mine = sum(v for k, v in r["col_bytes_per_row"].items() if k in cols)
        theirs = sum(v for k, v in base["col_bytes_per_row"].items() if k in cols)
        print(
            f"| {r['lever']} | {statistics.median(xs):.0f} [{min(xs):.0f}–{max(xs):.0f}] | {statistics.median(xs) / b_cpu:.2f} | "
            f"{r['optimize_cpu_us_row']:.0f} | {disk} | " + (f"{mine:.1f} ({theirs:.1f}) |" if cols else "– |")
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="200,1000,3000")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--levers", default="base,flush1000,flush2000")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--out", default=None, help="JSON lines of every run (default bench/results/levers-<time>.jsonl)")
    ap.add_argument("--paired", type=int, default=0, metavar="ROWS", help="levers side by side in one engine, ROWS per insert")
    ap.add_argument("--inserts", type=int, default=6, help="inserts per lever per round (--paired)")
    ap.add_argument("--child", nargs=2, metavar=("LEVER", "RATE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.list:
        for name, spec in LEVERS.items():
            print(f"{name:22} {json.dumps(spec)}")
        return 0
    if args.child:
        res = asyncio.run(run_one(args.child[0], int(args.child[1]), args.seconds, args.warmup))
        print(json.dumps(res), flush=True)
        return 0
    levers = args.levers.split(",")
    unknown = [lv for lv in levers if lv not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown levers {unknown}; --list shows them")
    if args.paired:
        if any(LEVERS[lv].get("storage") for lv in levers):
            raise SystemExit("--paired compares engine settings and codecs; the flush policy needs the per-rate runs")
        paired = run_paired(levers, args.paired, args.inserts, args.rounds)
        out = Path(args.out or ROOT / "bench" / "results" / f"paired-{time.strftime('%Y%m%d-%H%M%S')}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(paired, indent=1))
        report_paired(paired)
        return 0
    rates = [int(r) for r in args.rates.split(",")]
    out = Path(args.out or ROOT / "bench" / "results" / f"levers-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {os.cpu_count()} vCPU, load avg {os.getloadavg()[0]:.1f}; {args.rounds} rounds × {args.seconds:g} s per run; "
          f"results in {out}", flush=True)  # fmt: skip
    results: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        order = levers[rnd % len(levers) :] + levers[: rnd % len(levers)]
        for rate in rates:
            for lever in order:
                cmd = [sys.executable, __file__, "--child", lever, str(rate), "--seconds", str(args.seconds),
                       "--warmup", str(args.warmup)]  # fmt: skip
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if proc.returncode != 0:
                    print(f"{lever} @ {rate}/s: FAILED\n{proc.stderr[-2000:]}", flush=True)
                    continue
                res = {"round": rnd, **json.loads(proc.stdout.strip().splitlines()[-1])}
                results.append(res)
                with out.open("a") as f:
                    f.write(json.dumps(res) + "\n")
                print(json.dumps(res), flush=True)
    report(results)
    return 0


def report(results: list[dict[str, Any]]) -> None:
    """Median (min-max) engine CPU µs per row per lever and rate, its ratio to base, and bytes on disk per row."""
    rates = sorted({r["rate"] for r in results})
    levers = list(dict.fromkeys(r["lever"] for r in results))

    def cell(lever: str, rate: int, key: str) -> list[float]:
        return [r[key] for r in results if r["lever"] == lever and r["rate"] == rate]

    head = " | ".join(f"{r}/s µs/row (× base)" for r in rates)
    print(f"\n| lever | {head} | disk B/row (× base) |\n|---|" + "---:|" * (len(rates) + 1))
    for lever in levers:
        cells = []
        for rate in rates:
            v, b = cell(lever, rate, "engine_cpu_us_row"), cell("base", rate, "engine_cpu_us_row")
            if not v:
                cells.append("–")
                continue
            ratio = f" ({statistics.median(v) / statistics.median(b):.2f})" if b else ""
            cells.append(f"{statistics.median(v):.0f} [{min(v):.0f}–{max(v):.0f}]{ratio}")
        d = [r["disk_bytes_per_row"] for r in results if r["lever"] == lever and r["rate"] == max(rates)]
        db = [r["disk_bytes_per_row"] for r in results if r["lever"] == "base" and r["rate"] == max(rates)]
        disk = (
            f"{statistics.median(d):.0f}" + (f" ({statistics.median(d) / statistics.median(db):.2f})" if db else "") if d else "–"
        )
        print(f"| {lever} | " + " | ".join(cells) + f" | {disk} |")


if __name__ == "__main__":
    sys.exit(main())
