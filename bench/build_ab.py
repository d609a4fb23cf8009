"""Event build + encode per body kind, two source trees side by side: CPU µs (interleaved rounds) and instructions.

    PYTHONPATH=src .venv/bin/python bench/build_ab.py --before /path/to/main [--after .] [--rounds 4] [--n 2000]
    PYTHONPATH=src .venv/bin/python bench/build_ab.py --before /path/to/main --callgrind [--n 300]

Each tree runs in its own interpreter (PYTHONPATH=<tree>/src), `EventBuilder.build` + `encode_event` on the exchanges
of bench/build_micro.py (bench/compare.py's POST: 1 KiB JSON each way, its contract, a bearer token) and variants of
it by body kind. Timing: thread CPU time, best of 5 × n per kind, trees alternated A/B/A/B for `--rounds`; prints the
median and the min–max of each. `--callgrind`: instructions per event under valgrind (PYTHONHASHSEED=0; counted
between two client requests of a tiny C helper built with gcc, so start-up is not counted): the steady figure on a
shared machine, where µs swing ±20 %.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# "failed": the POST answered 502 (not ok: its bodies are kept under every keep_bodies), "-failures" under that config.
KINDS = ("json", "json-failures", "json-sample", "failed", "failed-failures", "get", "text", "form", "binary", "gzip", "secrets")

CHILD = r"""
import ctypes, gzip, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from build_micro import REQ_HEADERS, RESP_HEADERS, exchange
from compare import seamline_config
from seamline.config.loader import load_config
from seamline.event.build import EventBuilder
from seamline.exchange import BodyTap
from seamline.proxy.routing import Router
from seamline.record.rows import encode_event
from seamline.validate.validator import Validator

mode, n, kinds = sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
setups = {}
with tempfile.TemporaryDirectory(prefix="seamline-build-ab-") as tmp:
    for name in ("seamline", "seamline+failures", "seamline+sample"):
        config = load_config(seamline_config(Path(tmp), name, 8081))
        setups[name] = (EventBuilder(config, "bench", Validator(config)), Router(config))

def tap(data):
    t = BodyTap(65536)
    t.feed(data)
    return t

def with_type(headers, ctype, extra=()):
    return [(k, ctype if k == "Content-Type" else v) for k, v in headers] + list(extra)

TEXT = (b"level=info worker=7 job=sync status=done items=12 note=" + b"lorem ipsum dolor " * 56)[:1024]
FORM = b"&".join(b"field%d=value-%d-%s" % (i, i, b"v" * 20) for i in range(30))[:1024]
SECRET_BODY = json.dumps({"amount": 1000, "currency": "eur", "password": "hunter2-hunter2",
                          "card": {"number": "4111111111111111"}, "note": "token=abcdef123456 " + "p" * 850}).encode()

def make(kind, router, i):
    if kind == "get":
        ex = exchange(router, i)
        ex.method = "GET"
        ex.target = router.target("bench", "GET", "/item", "")
        ex.handoff = ex.target.handoff.name
        ex.request_tap = None
        ex.request_headers = [h for h in REQ_HEADERS if h[0] not in ("Content-Type", "Content-Length", "Idempotency-Key")]
        return ex
    ex = exchange(router, i, 502 if kind == "failed" else 200)
    if kind == "text":
        ex.request_headers = with_type(REQ_HEADERS, "text/plain; charset=utf-8")
        ex.request_tap = tap(TEXT)
    elif kind == "form":
        ex.request_headers = with_type(REQ_HEADERS, "application/x-www-form-urlencoded")
        ex.request_tap = tap(FORM)
    elif kind == "binary":
        ex.response_headers = with_type(RESP_HEADERS, "image/png")
        ex.response_tap = tap(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif kind == "gzip":
        ex.response_headers = with_type(RESP_HEADERS, "application/json", [("Content-Encoding", "gzip")])
        ex.response_tap = tap(gzip.compress(ex.response_tap.data, mtime=0))
    elif kind == "secrets":
        ex.request_headers = REQ_HEADERS + [("Cookie", "sid=abcdef123456; theme=dark")]
        ex.request_tap = tap(SECRET_BODY)
    return ex

def setup_of(kind):
    keep = kind.partition("-")[2]
    return setups["seamline+failures" if keep == "failures" else "seamline+sample" if keep == "sample" else "seamline"]

def run(kind, count):
    builder, router = setup_of(kind)
    exs = [make(kind.partition("-")[0], router, i) for i in range(count)]
    t0 = time.thread_time()
    for ex in exs:
        encode_event(builder.build(ex))
    return (time.thread_time() - t0) / max(count, 1) * 1e6

for kind in kinds:
    run(kind, 200)  # warm: caches, first-call paths
if mode == "time":
    print(json.dumps({k: min(run(k, n) for _ in range(5)) for k in kinds}))
else:
    cg = ctypes.CDLL(sys.argv[5])
    prepared = {k: [make(k.partition("-")[0], setup_of(k)[1], i) for i in range(n)] for k in kinds}
    cg.cg_start()
    for k in kinds:
        builder = setup_of(k)[0]
        for ex in prepared[k]:
            encode_event(builder.build(ex))
        cg.cg_dump()
    cg.cg_stop()
"""

CG_C = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void cg_dump(void) { CALLGRIND_DUMP_STATS; }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def child_env(tree: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{tree / 'src'}:{HERE}", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"}


def timed(tree: Path, n: int, kinds: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-c", CHILD, str(HERE), "time", str(n), ",".join(kinds)]
    out = subprocess.run(cmd, env=child_env(tree), capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def instructions(tree: Path, n: int, kinds: list[str], lib: Path, work: Path) -> dict[str, float]:
    """Instructions per event per kind: one dump per kind (each dump zeroes the counters)."""
    out = work / f"cg-{len(list(work.iterdir()))}"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p", sys.executable, "-c", CHILD]
    args = [str(HERE), "callgrind", str(n), ",".join(kinds), str(lib)]
    subprocess.run([*cmd, *args], env=child_env(tree), check=True, capture_output=True)
    parts = sorted(work.glob(f"{out.name}.*.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    counts = [int(re.search(r"^summary: (\d+)", p.read_text(), re.M).group(1)) for p in parts]  # type: ignore[union-attr]
    for p in work.glob(f"{out.name}.*"):
        p.unlink()
    return {k: c / n for k, c in zip(kinds, counts, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", default=HERE.parent, type=Path)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--callgrind", action="store_true")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    if args.callgrind:
        work = Path(tempfile.mkdtemp(prefix="seamline-cg-"))
        (work / "cg.c").write_text(CG_C)
        lib = work / "cg.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(work / "cg.c")], check=True)
        try:
            got = {t: instructions(path, args.n, kinds, lib, work) for t, path in trees.items()}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"instructions per event (callgrind, {args.n} events per kind)")
        print(f"{'kind':14} {'before':>10} {'after':>10} {'ratio':>6}")
        for k in kinds:
            b, a = got["before"][k], got["after"][k]
            print(f"{k:14} {b:10,.0f} {a:10,.0f} {a / b:6.2f}")
        return
    results: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
    for _ in range(args.rounds):
        for t, path in trees.items():
            results[t].append(timed(path, args.n, kinds))
    print(f"µs CPU per event (thread time, best of 5 × {args.n}; median [min–max] of {args.rounds} interleaved rounds)")
    print(f"{'kind':14} {'before':>22} {'after':>22} {'ratio':>6}")
    for k in kinds:
        cells = []
        for t in trees:
            vals = [r[k] for r in results[t]]
            cells.append((statistics.median(vals), min(vals), max(vals)))
        (b, bl, bh), (a, al, ah) = cells
        print(f"{k:14} {b:7.1f} [{bl:5.1f}–{bh:5.1f}] {a:7.1f} [{al:5.1f}–{ah:5.1f}] {a / b:6.2f}")


if __name__ == "__main__":
    main()
