"""Run-lookup and one-hour aggregation latency for candidate `handoffs` layouts at 1M and 10M rows (chdb).

Usage: python bench/queries.py [--sizes 1000000,10000000] [--layouts A,C,G,K,I] [--rounds 3] [--path DIR]
       python bench/queries.py --overview [--sizes 1000000,10000000] [--rounds 3] [--path DIR] [--json FILE]
`--overview` measures the shipped schema instead (migrations, MVs filling handoffs_1m / guards_1m as inserts run),
in database bench_overview, kept and grown to each size: the run lookup of `seamline runs <id>`, the handoff-overview
query of /handoffs and `seamline top` (seamline.read.sql, the same text the Grafana overview runs) over 15m, 1h,
24h and 7d windows — the raw-table text and the rollup text, interleaved — and every dashboard panel over 24h and
7d. A later run with another tree on PYTHONPATH reuses the rows (same `now`), so trees compare on one data set.
Rows are generated inside ClickHouse (INSERT … SELECT FROM numbers()), ~2.2 KB each (two ~1 KB JSON bodies),
200-row runs spread over 10 minutes, 20 handoffs, 6 days of data. Each query: 1 warm-up, then the median of 7
different runs / hours, in interleaved rounds across layouts (the median of the rounds is reported), after background
merges settle. Prints one line per (layout, size) and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from seamline.read.macros import expand
from seamline.record.schema import (
    HANDOFFS_INDEXES,
    HANDOFFS_ORDER_BY,
    HANDOFFS_PROJECTIONS,
    HANDOFFS_SETTINGS,
    Ctx,
    handoffs_ddl,
)
from seamline.record.store import open_store

DB = "bench_queries"
RUN_ROWS = 200
DAY_US = 86_400 * 1_000_000
SPAN_US = 6 * DAY_US  # data covers the last 6 days (inside the 7-day body TTL)


@dataclass(frozen=True)
class Layout:
    key: str
    doc: str
    order_by: str
    indexes: tuple[str, ...] = ()
    projections: tuple[str, ...] = ()
    settings: str = "index_granularity = 8192"


RUN_BLOOM = "INDEX idx_run_id run_id TYPE bloom_filter(0.001) GRANULARITY 1"
LAYOUTS = {
    "A": Layout("A", "ORDER BY (handoff, ts)", "(handoff, ts)"),
    "B": Layout("B", "A + bloom_filter(run_id)", "(handoff, ts)", (RUN_BLOOM,)),
    "C": Layout(
        "C",
        "A + bloom_filter(run_id) + index_granularity_bytes 1 MiB",
        "(handoff, ts)",
        (RUN_BLOOM,),
        settings="index_granularity = 8192, index_granularity_bytes = 1048576",
    ),
    "D": Layout(
        "D",
        "A + projection (SELECT _part_offset ORDER BY run_id)",
        "(handoff, ts)",
        projections=("PROJECTION by_run (SELECT _part_offset ORDER BY run_id)",),
    ),
    "E": Layout(
        "E",
        "A + projection _part_offset by run + granularity_bytes 1 MiB",
        "(handoff, ts)",
        projections=("PROJECTION by_run (SELECT _part_offset ORDER BY run_id)",),
        settings="index_granularity = 8192, index_granularity_bytes = 1048576",
    ),
    "F": Layout(
        "F",
        "ORDER BY (toStartOfHour(ts), run_id, ts) + granularity_bytes 1 MiB",
        "(toStartOfHour(ts), run_id, ts)",
        settings="index_granularity = 8192, index_granularity_bytes = 1048576",
    ),
    "G": Layout("G", "ORDER BY (toStartOfHour(ts), run_id, ts), default granularity", "(toStartOfHour(ts), run_id, ts)"),
    "H": Layout(
        "H",
        "A + bloom_filter(run_id) + index_granularity_bytes 256 KiB",
        "(handoff, ts)",
        (RUN_BLOOM,),
        settings="index_granularity = 8192, index_granularity_bytes = 262144",
    ),
    "I": Layout("I", "ORDER BY (run_id, ts) (daily partitions)", "(run_id, ts)"),
    "K": Layout("K", "G + bloom_filter(run_id)", "(toStartOfHour(ts), run_id, ts)", (RUN_BLOOM,)),
    "S": Layout(
        "S",
        "shipped schema (seamline.record.schema)",
        HANDOFFS_ORDER_BY,
        HANDOFFS_INDEXES,
        HANDOFFS_PROJECTIONS,
        HANDOFFS_SETTINGS,
    ),
}


def gen_sql(table: str, start: int, count: int, now_us: int) -> str:
    """INSERT … SELECT generating rows [start, start+count) of the synthetic data set."""
    runs_total = 50_000  # run starts spread over the span; rows of one run 3 s apart
    return f"""
INSERT INTO {table} (event_id, ts, run_id, run_id_source, trace_id, span_id, tenant, source_app, handoff, upstream, step,
    mode, attempt, method, url, route, status, duration_ms, ttfb_ms, outcome, error_class, external_ids,
    request_headers, response_headers, request_body, response_body, request_content_type, response_content_type,
    request_bytes, response_bytes, proxy_instance, guard)
SELECT
    generateUUIDv7() AS event_id,
    fromUnixTimestamp64Micro(toInt64({now_us - SPAN_US} + (intDiv(number, {RUN_ROWS}) % {runs_total}) * {SPAN_US // runs_total}
        + (number % {RUN_ROWS}) * 3000000 + (cityHash64(number) % 1000000)), 'UTC') AS ts,
    lower(hex(MD5(toString(intDiv(number, {RUN_ROWS}))))) AS run_id,
    'header', lower(hex(MD5(concat('t', toString(intDiv(number, {RUN_ROWS})))))),
    substring(lower(hex(MD5(toString(number)))), 1, 16),
    concat('tenant', toString(cityHash64(intDiv(number, {RUN_ROWS})) % 5)),
    concat('app', toString(cityHash64(intDiv(number, {RUN_ROWS}), 1) % 5)),
    concat('handoff_', toString(cityHash64(number, 2) % 20)) AS handoff,
    concat('upstream_', toString((cityHash64(number, 2) % 20) % 6)),
    handoff, 'reverse', 1, 'POST',
    concat('https://api.example.com/v1/things/', toString(number)), '/v1/things/{{id}}',
    multiIf(cityHash64(number, 3) % 100 < 95, 200, cityHash64(number, 3) % 100 < 98, 422, 503) AS status,
    10 + (cityHash64(number, 4) % 5000) / 10.0, 5 + (cityHash64(number, 5) % 2000) / 10.0,
    if(status = 200, 'ok', 'http_error'), if(status = 200, 'none', 'server_error'),
    map('charge_id', concat('ch_', toString(number))),
    map('content-type', 'application/json', 'user-agent', 'workflow/1.0', 'x-request-id', toString(number)),
    map('content-type', 'application/json', 'x-trace', hex(number)),
    concat('{{"id":"', hex(cityHash64(number)), '","customer":{{"name":"Customer ', toString(number % 10000),
        '","email":"user', toString(number % 50000), '@example.com"}},"items":[',
        repeat('{{"sku":"SKU-12345","qty":1,"price":19.99}},', 18), '],"note":"', randomPrintableASCII(64), '"}}'),
    concat('{{"ok":true,"id":"', hex(cityHash64(number, 9)), '","status":"created","lines":[',
        repeat('{{"line":1,"amount":"19.99","currency":"EUR"}},', 18), '],"ref":"', randomPrintableASCII(64), '"}}'),
    'application/json', 'application/json', 1100, 1100, 'bench-1',
    if(cityHash64(number, 6) % 100 = 0, 'replayed', '')
FROM numbers({start}, {count})
SETTINGS max_insert_threads = 2
"""


async def settle(store, table: str, limit_s: float = 180.0) -> float:
    """Wait (bounded) until background merges of `table` stop, so queries are measured on settled parts."""
    t = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t < limit_s and quiet < 3:
        rows = await store.query(
            "SELECT count() AS n FROM system.merges WHERE database = {d:String} AND table = {t:String}", {"d": DB, "t": table}
        )
        quiet = quiet + 1 if rows[0]["n"] == 0 else 0
        await asyncio.sleep(1.0)
    return time.perf_counter() - t


async def settle_db(store, database: str, limit_s: float = 300.0) -> None:
    """Wait (bounded) until no merge of `database` runs."""
    t, quiet = time.perf_counter(), 0
    while time.perf_counter() - t < limit_s and quiet < 3:
        rows = await store.query("SELECT count() AS n FROM system.merges WHERE database = {d:String}", {"d": database})
        quiet = quiet + 1 if rows[0]["n"] == 0 else 0
        await asyncio.sleep(1.0)


async def timed(store, sql: str, params: dict) -> tuple[float, int]:
    t = time.perf_counter()
    rows = await store.query(sql, params)
    return (time.perf_counter() - t) * 1000, len(rows)


async def measure(store, table: str, total_rows: int, now_us: int) -> dict[str, float]:
    """Median run lookup (all columns incl. bodies) and one-hour per-handoff aggregation latency, in ms."""
    runs = max(1, total_rows // RUN_ROWS)
    run_sql = f"SELECT * FROM {table} WHERE run_id = {{r:String}} ORDER BY ts"
    agg_sql = (
        f"SELECT handoff, count() AS calls, quantile(0.5)(duration_ms) AS p50, quantile(0.95)(duration_ms) AS p95, "
        f"countIf(outcome = 'ok') / count() AS success_rate FROM {table} "
        f"WHERE ts >= {{a:DateTime64(6)}} AND ts < {{a:DateTime64(6)}} + INTERVAL 1 HOUR GROUP BY handoff ORDER BY handoff"
    )
    import hashlib

    picks = [hashlib.md5(str((i * 7919) % runs).encode()).hexdigest() for i in range(1, 9)]
    await timed(store, run_sql, {"r": picks[0]})
    run_ms, counts = [], []
    for r in picks[1:]:
        ms, n = await timed(store, run_sql, {"r": r})
        run_ms.append(ms)
        counts.append(n)
    hours = [(now_us - SPAN_US) / 1e6 + 3600 * (5 + 17 * i) for i in range(8)]
    await timed(store, agg_sql, {"a": hours[0]})
    agg_ms = []
    for h in hours[1:]:
        ms, _ = await timed(store, agg_sql, {"a": h})
        agg_ms.append(ms)
    size = await store.query(
        "SELECT sum(bytes_on_disk) AS b, count() AS parts FROM system.parts "
        "WHERE database = {d:String} AND table = {t:String} AND active",
        {"d": DB, "t": table},
    )
    return {
        "run_ms": statistics.median(run_ms),
        "run_rows": statistics.median(counts),
        "agg_ms": statistics.median(agg_ms),
        "mib": size[0]["b"] / 2**20,
        "parts": size[0]["parts"],
    }


OVERVIEW_WINDOWS = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 604800}
OVERVIEW_DB = "bench_overview"
VARIABLES = ("tenant", "source_app", "upstream", "handoff", "instance")  # every dashboard variable, set to All


async def _median_ms(store, text: str, repeats: int) -> float:
    await timed(store, text, {})  # warm-up
    return statistics.median([(await timed(store, text, {}))[0] for _ in range(repeats)])


def _overview_queries() -> dict[str, str]:
    """The handoff-overview SQL variants this tree has: `raw` (the raw-table text) and, when present, `rollup`."""
    import seamline.read.sql as shared

    out = {"raw": shared.handoff_health_sql()}
    if hasattr(shared, "handoff_health_rollup_sql"):
        out["rollup"] = shared.handoff_health_rollup_sql()
    return out


def _dashboard_panels() -> list[tuple[str, str, str, str, int]]:
    """(dashboard uid, panel title, refId, rawSql, the dashboard's default range in s) of every panel reading
    `handoffs` or a rollup (run-view panels are one run's rows: measured as the run lookup)."""
    from seamline.dashboards.generate import DASHBOARDS, dashboard_json

    out = []
    for build in DASHBOARDS.values():
        d = dashboard_json(build)
        default_s = int(d["time"]["from"].removeprefix("now-")[:-1]) * {"h": 3600, "d": 86400}[d["time"]["from"][-1]]
        for p in d["panels"]:
            for t in p.get("targets", []):
                sql = t["rawSql"]
                if "$run_id" in sql or "${run_id" in sql or not any(x in sql for x in ("handoffs", "guards_1m")):
                    continue
                out.append((d["uid"], p["title"], t["refId"], sql, default_s))
    return out


async def overview_bench(
    store, size: int, now_us: int, rounds: int, panels_of: str, repeats: int = 5
) -> list[tuple[str, str, float]]:
    """(query, window, median ms) for: the run lookup (`seamline runs <id>`'s query), the handoff overview (raw-table
    text vs the rollup text, interleaved per round), and every dashboard panel over 24h and 7d (variables All)."""
    import hashlib

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "dashboards"))
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from dashboards_engine import ALL, render

    from seamline.read.queries import get_run

    runs = max(1, size // RUN_ROWS)
    picks = [hashlib.md5(str((i * 7919) % runs).encode()).hexdigest() for i in range(1, 9)]
    await get_run(store, picks[0])
    to = datetime.fromtimestamp(now_us // 1_000_000 + 1, UTC)
    per: dict[tuple[str, str], list[float]] = {}
    variants = _overview_queries()
    panels = [p for p in _dashboard_panels() if panels_of == "all" or p[0] in panels_of.split(",")]
    for _ in range(rounds):
        ms = []
        for r in picks[1:]:
            t = time.perf_counter()
            assert len(await get_run(store, r)) > 0
            ms.append((time.perf_counter() - t) * 1000)
        per.setdefault(("run lookup (get_run, all columns)", "-"), []).append(statistics.median(ms))
        for window, seconds in OVERVIEW_WINDOWS.items():
            for name, sql in variants.items():
                text = expand(sql, frm=to - timedelta(seconds=seconds), to=to)
                per.setdefault((f"overview ({name})", window), []).append(ms := await _median_ms(store, text, repeats))
                print(f"  overview ({name}) {window}: {ms:.1f} ms (load avg {os.getloadavg()[0]:.1f})", flush=True)
        for uid, title, ref, sql, default_s in panels:
            for window, seconds in (("default", default_s), ("7d", OVERVIEW_WINDOWS["7d"])):
                frm, interval_s = to - timedelta(seconds=seconds), max(60, seconds // 200)
                text = render(sql, frm=frm, to=to, interval_s=interval_s, variables=dict.fromkeys(VARIABLES, ALL))
                label = f"{window} ({seconds // 3600}h)" if window == "default" else window
                per.setdefault((f"{uid}: {title} [{ref}]", label), []).append(await _median_ms(store, text, 2))
    return [(q, w, statistics.median(v)) for (q, w), v in per.items()]


async def load_overview_db(store, size: int, now_us: int) -> int:
    """The real schema (migrations, MVs feeding the rollups) in OVERVIEW_DB, filled up to `size` rows; rows before."""
    from seamline.record.schema import migrate

    t = time.perf_counter()
    version = await migrate(store, OVERVIEW_DB)
    print(f"schema {version} in place ({time.perf_counter() - t:.1f}s, the migrations it applied included)", flush=True)
    have = (await store.query(f"SELECT count() AS n FROM {OVERVIEW_DB}.handoffs"))[0]["n"]
    if have == 0:  # the data's "now": a later run reuses the rows and must end its windows where they end
        meta = f"{OVERVIEW_DB}.bench_meta"
        await store.command(f"CREATE OR REPLACE TABLE {meta} (now_us Int64) ENGINE = MergeTree ORDER BY tuple()")
        await store.command(f"INSERT INTO {OVERVIEW_DB}.bench_meta VALUES ({now_us})")
    done = int(have)
    while done < size:
        n = min(1_000_000, size - done)
        await store.command(gen_sql(f"{OVERVIEW_DB}.handoffs", done, n, now_us))
        done += n
    return int(have)


async def data_now_us(store) -> int:
    return int((await store.query(f"SELECT max(now_us) AS t FROM {OVERVIEW_DB}.bench_meta"))[0]["t"])


async def load(store, key: str, start: int, target: int, now_us: int) -> float:
    """Create (when start == 0) and fill layout `key` up to `target` rows; seconds spent."""
    lay, table = LAYOUTS[key], f"h_{key}"
    t = time.perf_counter()
    if start == 0:
        await store.command(f"DROP TABLE IF EXISTS {DB}.{table}")
        for stmt in handoffs_ddl(
            Ctx(DB), table=table, order_by=lay.order_by, indexes=lay.indexes, projections=lay.projections, settings=lay.settings
        ):
            await store.command(stmt)
    done = start
    while done < target:
        n = min(1_000_000, target - done)
        await store.command(gen_sql(f"{DB}.{table}", done, n, now_us))
        done += n
    return time.perf_counter() - t


async def overview_main(args: argparse.Namespace) -> int:
    import json

    import seamline

    store = await open_store(f"chdb://{args.path}", OVERVIEW_DB)
    tree = os.path.dirname(os.path.dirname(os.path.abspath(seamline.__file__)))
    for size in (int(x) for x in args.sizes.split(",")):
        t = time.perf_counter()
        before = await load_overview_db(store, size, int(time.time() * 1e6))
        if before < size:
            print(f"loaded {before:,} -> {size:,} rows in {time.perf_counter() - t:.0f}s", flush=True)
            await settle_db(store, OVERVIEW_DB)
        count = (await store.query("SELECT count() AS n FROM handoffs"))[0]["n"]
        if count != size:
            print(f"skip {size:,}: the database holds {count:,} rows (it only grows; use a fresh --path)", flush=True)
            continue
        rollup = (await store.query("SELECT count() AS n FROM handoffs_1m"))[0]["n"]
        load = os.getloadavg()[0]
        results = await overview_bench(store, size, await data_now_us(store), args.rounds, args.panels)
        print(f"\n# {size:,} rows (handoffs_1m {rollup:,} rows), sources {tree}, load avg {load:.1f} -> {os.getloadavg()[0]:.1f}")
        print("| query | window | median ms |\n|---|---|---|")
        for q, w, ms in results:
            print(f"| {q} | {w} | {ms:.1f} |", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({"rows": size, "query": q, "window": w, "ms": ms, "tree": tree, "load": load}) + "\n")
    await store.close()
    return 0


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="measure at each of these row counts")
    ap.add_argument("--layouts", default="A,C,G,K,I")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measuring rounds per size")
    ap.add_argument("--path", default=os.environ.get("SEAMLINE_BENCH_CHDB", "/tmp/seamline-bench-queries"))
    ap.add_argument("--keep", action="store_true", help="keep the tables after measuring")
    ap.add_argument(
        "--overview",
        action="store_true",
        help="instead of the layouts: the shipped schema with its rollups in database bench_overview (kept, grown to each "
        "size, reused by later runs): run lookup, the handoff overview per window, every dashboard panel over 24h/7d",
    )
    ap.add_argument("--json", help="with --overview: append one JSON line per measurement to this file")
    ap.add_argument(
        "--panels", default="all", help="with --overview: dashboards whose panels are timed (uids, comma-separated; all; none)"
    )
    args = ap.parse_args()
    if args.overview:
        return await overview_main(args)
    store = await open_store(f"chdb://{args.path}", DB)
    now_us = int(time.time() * 1e6)
    keys = args.layouts.split(",")
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    print(f"# {os.cpu_count()} vCPU (shared with other jobs), chdb, sizes={sizes}, layouts measured interleaved", flush=True)
    done = 0
    for size in sizes:
        for key in keys:
            s = await load(store, key, done, size, now_us)
            print(f"loaded {key} to {size:,} rows in {s:.0f}s (load avg {os.getloadavg()[0]:.1f})", flush=True)
        for key in keys:
            await settle(store, f"h_{key}")
        per: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
        for _ in range(args.rounds):  # interleaved, so a noisy neighbour hurts every layout alike
            for key in keys:
                per[key].append(await measure(store, f"h_{key}", size, now_us))
        for key in keys:
            ms = per[key]
            m = {
                "run_ms": statistics.median(x["run_ms"] for x in ms),
                "agg_ms": statistics.median(x["agg_ms"] for x in ms),
                "run_rows": ms[0]["run_rows"],
                "mib": ms[-1]["mib"],
                "parts": ms[-1]["parts"],
            }
            results.append((LAYOUTS[key], size, m))
            print(
                f"{key} rows={size:>10,} run_lookup={m['run_ms']:7.1f} ms ({m['run_rows']:.0f} rows) "
                f"agg_1h={m['agg_ms']:6.1f} ms disk={m['mib']:8.1f} MiB parts={m['parts']} "
                f"load_avg={os.getloadavg()[0]:.1f}  [{LAYOUTS[key].doc}]",
                flush=True,
            )
        done = size
    if not args.keep:
        for key in keys:
            await store.command(f"DROP TABLE IF EXISTS {DB}.h_{key}")
    print("\n| layout | rows | run lookup ms | 1h agg ms | disk MiB |\n|---|---|---|---|---|")
    for lay, n, m in results:
        print(f"| {lay.key}: {lay.doc} | {n:,} | {m['run_ms']:.1f} | {m['agg_ms']:.1f} | {m['mib']:.0f} |")
    await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
