"""Columnar (Arrow) inserts vs today's JSONEachRow: CPU per row to prepare a batch, and engine CPU per row (#15 lever).

    PYTHONPATH=src .venv/bin/python bench/columnar.py [--events 40000] [--batch 2000,8000]

Each format runs in its own process on a fresh chdb directory with the shipped schema (materialized view included),
with events as bench/compare.py's POST builds them (1 KiB bodies each way, redacted headers, contract results).

- prepare: Python CPU per row to turn event dicts into the insert payload — orjson lines sealed into a JSON array
  (what `Recorder.submit` + `seal` do on the proxy's loop), or a pyarrow Table built column by column;
- engine: CPU of the process (chdb's threads included, `os.times`) per row, from the first insert until the
  background merges settle — what the engine process costs the core it shares with the proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def events(n: int) -> list[dict[str, Any]]:
    from build_micro import exchange
    from compare import seamline_config

    from seamline.config.loader import load_config
    from seamline.event.build import EventBuilder
    from seamline.proxy.routing import Router
    from seamline.validate.validator import Validator

    config = load_config(seamline_config(Path(tempfile.mkdtemp()), "seamline", 8081))
    router = Router(config)
    builder = EventBuilder(config, "bench", Validator(config))
    template = builder.build(exchange(router, 0))
    now = int(time.time() * 1e6)
    return [{**template, "event_id": str(uuid.uuid4()), "ts": now + i, "run_id": f"run-{i // 10}"} for i in range(n)]


def arrow_schema() -> Any:
    import pyarrow as pa

    from seamline.event.columns import COLUMNS

    def kind(t: str) -> Any:
        t = t.removeprefix("LowCardinality(").removesuffix(")") if t.startswith("LowCardinality(") else t
        if t.startswith("DateTime64"):
            return pa.timestamp("us", tz="UTC")
        if t.startswith("Map("):
            return pa.map_(pa.string(), pa.string())
        if t.startswith("Array("):
            return pa.list_(pa.string())
        return {"UInt16": pa.uint16(), "UInt64": pa.uint64(), "Float64": pa.float64(), "Bool": pa.bool_()}.get(t, pa.string())

    return pa.schema([(c.name, kind(c.ch_type)) for c in COLUMNS])


def to_arrow(evs: list[dict[str, Any]], schema: Any) -> Any:
    import pyarrow as pa

    cols = []
    for f in schema:
        vals = [e[f.name] for e in evs]
        if pa.types.is_map(f.type):
            vals = [list(v.items()) for v in vals]
        cols.append(pa.array(vals, type=f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def settle(client: Any) -> None:
    """Wait until no merge is running (the parts a batch leaves behind are the engine's cost too)."""
    deadline = time.monotonic() + 60
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        busy = client.command("SELECT count() FROM system.merges")
        quiet = quiet + 1 if not busy else 0
        time.sleep(0.2)


def child(fmt: str, n: int, batch: int) -> dict[str, Any]:
    import clickhouse_connect

    from seamline.record.rows import INSERT_SETTINGS, encode_event, seal
    from seamline.record.schema import statements

    path = tempfile.mkdtemp(prefix="seamline-columnar-")
    try:
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
        client.command("CREATE DATABASE IF NOT EXISTS bench")
        client.database = "bench"
        for stmt in statements("bench"):
            client.command(stmt)
        evs = events(n)
        schema = arrow_schema()
        t0 = time.thread_time()
        if fmt == "json":
            payloads: list[Any] = [
                seal([encode_event(e) for e in evs[i : i + batch]], [e["event_id"] for e in evs[i : i + batch]]).payload
                for i in range(0, n, batch)
            ]
        else:
            payloads = [to_arrow(evs[i : i + batch], schema) for i in range(0, n, batch)]
        prepare_us = (time.thread_time() - t0) / n * 1e6
        settle(client)
        c0, w0 = os.times(), time.perf_counter()
        for i, p in enumerate(payloads):
            settings = {**INSERT_SETTINGS, "insert_deduplication_token": f"{fmt}-{i}"}
            if fmt == "json":
                client.raw_insert("handoffs", None, p, settings=settings, fmt="JSONEachRow")
            else:
                client.insert_arrow("handoffs", p, settings=settings)
        insert_s = time.perf_counter() - w0
        settle(client)
        c1 = os.times()
        rows = client.command("SELECT count() FROM handoffs")
        return {
            "format": fmt,
            "batch": batch,
            "rows": rows,
            "prepare_us_per_row": round(prepare_us, 1),
            "engine_cpu_us_per_row": round(((c1.user - c0.user) + (c1.system - c0.system)) / n * 1e6, 1),
            "insert_rows_per_s": round(n / insert_s),
        }
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--batch", default="2000,8000")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return 0
    print(f"{args.events:,} events per run; load average {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        for batch in args.batch.split(","):
            for fmt in ("json", "arrow"):
                cmd = [sys.executable, __file__, "--events", str(args.events), "--child", fmt, str(args.events), batch]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                print(out.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
