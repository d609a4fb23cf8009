"""µs per recorded event spent building it (redaction included), for two source trees, interleaved.

    .venv/bin/python bench/redact_micro.py --before /path/to/old/checkout [--after .] [--rounds 5]

Each round runs, in a fresh interpreter per tree (PYTHONPATH=<tree>/src), `EventBuilder.build` on one
exchange: 1 KiB JSON request and response bodies (bench/contracts_micro.py's charge), realistic headers
(Authorization, Set-Cookie, traceparent, …), a URL with a query; plus the body alone (`render_body`). This is
the work the recorder's build stage (engine process / offload) does per event, and the part of it the
new redaction adds to. Prints the median over rounds of each tree's best-of-15, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time, timeit
sys.path.insert(0, sys.argv[1])
import orjson
from contracts_micro import REQ_HEADERS, RESP_HEADERS, make_body
from seamline.capture.bodies import render_body
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Config
from seamline.event.build import EventBuilder
from seamline.exchange import BodyTap, Exchange
from seamline.validate.validator import Validator

cfg = Config.model_validate({"upstreams": {"api": {"base_url": "https://api.billing.example"}}, "storage": {"enabled": False}})
builder = EventBuilder(cfg, "bench", Validator(cfg))
policy = RedactionPolicy.from_config(cfg.capture)
resp = orjson.dumps(make_body())
req = orjson.dumps({"amount": 1099, "currency": "eur", "customer": "cus_NffrFeUfNV2Hib", "description": "x" * 900})

def tap(data):
    t = BodyTap(65536)
    t.feed(data)
    return t

def event():
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="POST", upstream="api",
                  url="https://api.billing.example/v1/charges?expand=customer&limit=10",
                  request_headers=REQ_HEADERS, response_headers=RESP_HEADERS,
                  request_tap=tap(req), response_tap=tap(resp), status=200)
    return builder.build(ex)

def body():
    return render_body(resp, content_type="application/json", content_encoding=None, truncated=False,
                       total_bytes=len(resp), redactor=policy.redactor())

def best(fn):
    number, _ = timeit.Timer(fn).autorange()
    return min(timeit.Timer(fn).repeat(repeat=15, number=number)) / number * 1e6

print(json.dumps({"event": best(event), "body": best(body)}))
"""


def run(tree: Path) -> dict[str, float]:
    env = {"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(HERE)], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, type=Path)
    ap.add_argument("--after", default=HERE.parent, type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        results["before"].append(run(args.before.resolve()))
        results["after"].append(run(args.after.resolve()))
    print(f"{'µs per call (median of ' + str(args.rounds) + ' rounds)':42} {'before':>8} {'after':>8} {'ratio':>6}")
    for key, label in (("event", "EventBuilder.build, 1 KiB JSON bodies"), ("body", "render_body, 1 KiB JSON")):
        b = statistics.median(r[key] for r in results["before"])
        a = statistics.median(r[key] for r in results["after"])
        print(f"{label:42} {b:8.1f} {a:8.1f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
