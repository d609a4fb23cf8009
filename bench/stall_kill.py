"""The engine frozen under load, then the sidecar SIGKILLed: answered / stored / lost / duplicates, and the window.

    .venv/bin/python bench/stall_kill.py [--frozen 15] [--rate 40] [--warm 2] [--src /path/to/checkout/src]
                                         [--storage '{"max_unacked_ms": 1000}']

`seamline serve` (embedded chdb in its engine process) takes `--rate` POSTs/s; after `--warm` s its engine process
is frozen (SIGSTOP) while the load goes on for `--frozen` s; then the sidecar and its engine are SIGKILLed. A second
sidecar replays the spool, and the rows are counted per request. The guarantee (README "Delivery guarantee"): only
requests answered in the last max_unacked_ms + flush_interval_ms before the kill may be lost; never a duplicate.
`--src` runs another checkout's sources (e.g. main's, for a before/after). The scenario itself lives in
tests/support/stall_kill.py; the short variant runs in the default suite (tests/integration/test_record_stall_kill.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from support.stall_kill import stall_then_kill  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--frozen", type=float, default=15.0, help="seconds the engine stays frozen under load before the kill")
    ap.add_argument("--rate", type=float, default=40.0, help="requests per second")
    ap.add_argument("--warm", type=float, default=2.0, help="seconds of load before the freeze")
    ap.add_argument("--src", type=Path, default=HERE.parent / "src", help="the seamline sources to run")
    ap.add_argument("--storage", default="{}", help="extra storage config (JSON)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamline-stall-") as tmp:
        fig = asyncio.run(
            stall_then_kill(
                Path(tmp), rate=args.rate, warm_s=args.warm, frozen_s=args.frozen, storage=json.loads(args.storage),
                src=args.src.resolve(),
            )
        )  # fmt: skip
    print(f"src={args.src} rate={args.rate}/s warm={args.warm}s frozen={args.frozen}s storage={args.storage}")
    print(fig.line())


if __name__ == "__main__":
    main()
