"""What one `handoffs` insert costs the embedded engine: the fixed cost per insert and the cost per row, split into
the table itself and each materialized view it feeds.

Usage: PYTHONPATH=src .venv/bin/python bench/insert_cost.py [--rows 1,500] [--inserts 12] [--rounds 4]

One chdb engine in this process; one database per variant, each with the whole shipped schema (migrations as
`schema.statements` writes them), then the variant's views dropped: `shipped` (the table + `handoffs_1m_mv` +
`guards_1m_mv`), `table_only` (no view), `with_handoffs_1m`, `with_guards_1m`. The same realistic rows
(bench/engine_levers.py's event pool: 20 handoffs, 5 % failures, 3 % guarded, ~0.3-1.5 KiB bodies) are inserted
into each in turn as a Recorder would (JSONEachRow with INSERT_SETTINGS and a dedup token per batch), variants
rotated per round. CPU is the process's (every engine thread: parsing, part writing, the views), per insert,
read around the inserts only; merges are waited out between variants so one's merges do not land on the next.

From two batch sizes, a line: fixed ms per insert + µs per row. It says where the engine's share of a recorded
request goes at a given rate: at R requests/s and one insert per flush_interval_ms, CPU/s = inserts/s × fixed +
R × per-row.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_levers import event_pool

from seamline.record import schema
from seamline.record.rows import INSERT_SETTINGS, encode_event, seal

VIEWS = ("handoffs_1m_mv", "guards_1m_mv")
VARIANTS: dict[str, tuple[str, ...]] = {  # variant -> the views it drops
    "shipped": (),
    "table_only": VIEWS,
    "with_handoffs_1m": ("guards_1m_mv",),
    "with_guards_1m": ("handoffs_1m_mv",),
}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def settings_clause(token: str) -> str:
    values = {**INSERT_SETTINGS, "insert_deduplication_token": token}
    return ", ".join(f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}" for k, v in values.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1,500", help="two batch sizes (rows per insert)")
    ap.add_argument("--inserts", type=int, default=12, help="inserts per variant per round and batch size")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    import chdb

    conn = chdb.connect(tempfile.mkdtemp(prefix="seamline-insert-cost-"))
    for name, dropped in VARIANTS.items():
        for stmt in schema.statements(name):
            conn.query(stmt)
        for view in dropped:
            conn.query(f"DROP VIEW `{name}`.`{view}`")

    def settle() -> None:
        for _ in range(600):
            if conn.query("SELECT count() FROM system.merges", "CSV").bytes().strip() in (b"0", b""):
                return
            time.sleep(0.05)

    pool = event_pool(4000, seed=15)
    drawn = 0

    def batch(rows: int) -> bytes:
        nonlocal drawn
        events = []
        for _ in range(rows):
            events.append({**pool[drawn % len(pool)], "event_id": str(uuid.uuid4()), "ts": int(time.time() * 1e6)})
            drawn += 1
        b = seal([encode_event(e) for e in events], [e["event_id"] for e in events])
        return f"INSERT INTO {{db}}.handoffs SETTINGS {settings_clause(b.token)} FORMAT JSONEachRow ".encode() + b.payload

    ms: dict[tuple[str, int], list[float]] = {(v, n): [] for v in VARIANTS for n in sizes}
    names = list(VARIANTS)
    for rnd in range(args.rounds):
        for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
            for rows in sizes:
                queries = [batch(rows).replace(b"{db}", name.encode(), 1) for _ in range(args.inserts)]
                settle()
                c0 = cpu_s()
                for q in queries:
                    conn.query(q, "TabSeparated")
                ms[(name, rows)].append((cpu_s() - c0) / args.inserts * 1e3)
        print(f"# round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
    for name in names:  # every row landed once
        got = conn.query(f"SELECT count(), uniqExact(event_id) FROM `{name}`.handoffs", "CSV").bytes().decode().strip()
        expected = args.rounds * args.inserts * sum(sizes)
        assert got == f"{expected},{expected}", (name, got, expected)

    lo, hi = sizes
    print(f"\n| variant | CPU ms per insert of {lo} row(s) | of {hi} rows | fixed ms per insert | µs per row |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        a, b = ms[(name, lo)], ms[(name, hi)]
        ma, mb = statistics.median(a), statistics.median(b)
        per_row = (mb - ma) / (hi - lo) * 1e3
        fixed = ma - per_row * lo / 1e3
        spread = f"{ma:.1f} [{min(a):.1f}–{max(a):.1f}] | {mb:.1f} [{min(b):.1f}–{max(b):.1f}]"
        print(f"| {name} | {spread} | {fixed:.1f} | {per_row:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
