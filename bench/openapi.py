"""Contracts from a large OpenAPI document: load time and memory, and proxy throughput against a hand-written contract.

    .venv/bin/python bench/openapi.py --spec PATH/TO/stripe/openapi/spec3.json [--duration 5] [--rounds 3]
                                      [--concurrency 16] [--compile-all]

1. Load: `load_config` (read, openapi-spec-validator, conversion, handoffs) and `Validator` (registry; validators
   compiled at load only for documents of at most EAGER_OPERATIONS operations) in a fresh process each, with its peak
   RSS; `--compile-all` also compiles every validator of the document (what eager compilation would cost).
2. Throughput: Seamline (recording on, embedded engine) in front of an aiohttp upstream answering a valid Stripe
   customer to `GET /v1/customers/cus_1`, with either a hand-written contract for that handoff or the whole document
   (`upstreams.stripe.openapi`), variants interleaved per round, median of the rounds (wrk, one connection count).
   Without --spec, the excerpt the tests use (tests/data/openapi/stripe-excerpt.json). `--rounds 0` skips it.
3. Evaluation alone, in-process: µs per `evaluate()` + `check_request()` of the same exchange, hand-written contract
   vs the document's operation, interleaved (the CPU cost the throughput difference would come from; steady on a
   loaded machine, where wrk's numbers are not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proxy import PY, free_port, pinned, wait_port, wrk  # noqa: E402 - bench/ is not a package

EXCERPT = HERE.parent / "tests" / "data" / "openapi" / "stripe-excerpt.json"
CUSTOMER = {"id": "cus_1", "object": "customer", "created": 0, "livemode": False, "email": "jenny@example.com", "name": "Jenny"}
CONTRACT = {
    "status": [200],
    "response_schema": {
        "type": "object",
        "required": ["id", "object", "created", "livemode"],
        "properties": {
            "id": {"type": "string", "maxLength": 5000},
            "object": {"enum": ["customer"]},
            "created": {"type": "integer"},
            "livemode": {"type": "boolean"},
            "email": {"type": ["string", "null"]},
            "name": {"type": ["string", "null"]},
        },
    },
}

LOAD = """
import json, resource, sys, time
t0 = time.perf_counter()
from seamline.config.loader import load_config
from seamline.validate.validator import Validator
t1 = time.perf_counter()
cfg = load_config(sys.argv[1])
t2 = time.perf_counter()
v = Validator(cfg)
t3 = time.perf_counter()
out = {"import_s": t1 - t0, "load_config_s": t2 - t1, "validator_s": t3 - t2, "handoffs": len(cfg.handoffs)}
if sys.argv[2] == "micro":
    import timeit
    c = v.contracts["stripe.GetCustomersCustomer"]
    req = {"method": "GET", "path": "/v1/customers/cus_1", "headers": {}, "query": {}, "raw_query": "", "body": None}
    resp = {"status": 200, "headers": {"content-type": "application/json"}, "body": json.loads(sys.argv[3])}
    assert c.evaluate(req, resp).passed and c.check_request(req) == [], c.evaluate(req, resp)
    n = 20000
    out["evaluate_us"] = min(timeit.repeat(lambda: (c.check_request(req), c.evaluate(req, resp)), number=n, repeat=5)) / n * 1e6
elif sys.argv[2] == "all":
    for d in v.documents.values():
        d.compile_all()
    out["compile_all_s"] = time.perf_counter() - t3
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def config(tmp: Path, variant: str, upstream_port: int, spec: Path) -> Path:
    up: dict = {"base_url": f"http://127.0.0.1:{upstream_port}", "allow_private": True, "max_connections": 256}
    handoffs: dict = {}
    if variant == "openapi":
        up["openapi"] = str(spec)
    else:
        handoffs["stripe.GetCustomersCustomer"] = {
            "upstream": "stripe",
            "match": "GET /v1/customers/{customer}",
            "contract": CONTRACT,
        }
    data = tmp / f"data-{variant}"
    cfg = {
        "upstreams": {"stripe": up},
        "handoffs": handoffs,
        # the embedded engine on the load generator's CPU, off the proxy's (as bench/proxy.py's recording variants)
        "storage": {"enabled": True, "clickhouse_url": f"chdb://{data}", "spool_dir": f"{data}-spool", "embedded_cpus": [0]},
    }
    path = tmp / f"seamline-{variant}.json"
    path.write_text(json.dumps(cfg))
    return path


def measure_load(cfg: Path, mode: str, body: str = "") -> dict:
    out = subprocess.run([PY, "-c", LOAD, str(cfg), mode, body], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", type=Path, default=EXCERPT)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--compile-all", action="store_true")
    args = ap.parse_args()
    size_mb = args.spec.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        body = tmp / "customer.json"
        body.write_text(json.dumps({**CUSTOMER, "created": int(time.time())}))
        up_port = free_port()
        upstream = subprocess.Popen(pinned([PY, str(HERE / "_upstream.py"), str(up_port), str(body)], "0"))
        wait_port(up_port)
        try:
            print(f"document: {args.spec} ({size_mb:.1f} MB)")
            for variant in ("contract", "openapi"):
                r = measure_load(
                    config(tmp, variant, up_port, args.spec), "all" if args.compile_all and variant == "openapi" else "-"
                )
                print(
                    f"load [{variant}]: "
                    + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items())
                )
            micro: dict[str, list[float]] = {"contract": [], "openapi": []}
            for _ in range(3):
                for variant in micro:
                    cfg = config(tmp, variant, up_port, args.spec)
                    micro[variant].append(measure_load(cfg, "micro", body.read_text())["evaluate_us"])
            print(
                "evaluate + check_request, µs per call (best of 3 processes): "
                + ", ".join(f"{k} {min(v):.1f}" for k, v in micro.items())
                + f"; openapi / contract {min(micro['openapi']) / min(micro['contract']):.2f}"
            )
            results: dict[str, list[float]] = {"contract": [], "openapi": []}
            if args.rounds == 0:
                return 0
            for _ in range(args.rounds):
                for variant in results:
                    port = free_port()
                    cmd = [PY, "-m", "seamline", "serve", "--config", str(config(tmp, variant, up_port, args.spec)),
                           "--port", str(port), "--admin-port", str(free_port()), "--log-level", "WARNING"]  # fmt: skip
                    proxy = subprocess.Popen(pinned(cmd, "1"), stderr=subprocess.DEVNULL)
                    try:
                        wait_port(port, timeout=120)
                        url = f"http://127.0.0.1:{port}/stripe/v1/customers/cus_1"
                        wrk(url, args.concurrency, 1, "GET", "0", tmp)  # warm-up: the first call compiles its validator
                        r = wrk(url, args.concurrency, args.duration, "GET", "0", tmp)
                        assert r["non2xx"] == 0, r
                        results[variant].append(r["rps"])
                    finally:
                        proxy.terminate()
                        proxy.wait(30)
            med = {k: statistics.median(v) for k, v in results.items()}
            print(f"\n| variant | req/s (median of {args.rounds}) | rounds |\n|---|---|---|")
            for k, v in results.items():
                print(f"| {k} | {med[k]:.0f} | {', '.join(f'{x:.0f}' for x in v)} |")
            print(f"\nopenapi / contract: {med['openapi'] / med['contract']:.3f}")
        finally:
            upstream.terminate()
            upstream.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
