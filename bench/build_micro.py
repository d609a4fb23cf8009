"""CPU per recorded event on the proxy's loop, by `capture.keep_bodies`: build (redaction, rendering, contract) + encode.

    PYTHONPATH=src .venv/bin/python bench/build_micro.py [--n 20000]

On one core Seamline builds every event in the proxy's process (`record.offload.offload_pays`), so this is CPU the
proxy's core spends per request on top of forwarding. The exchange is bench/compare.py's POST: 1 KiB JSON each way,
the contract with request and response schemas, an assertion, echo and an extraction, a bearer token to redact.
Thread CPU time (`time.thread_time`), best of several repeats: steady even on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from compare import seamline_config
from proxy import BODY, RESPONSE

from seamline.config.loader import load_config
from seamline.event.build import EventBuilder
from seamline.exchange import BodyTap, Exchange
from seamline.proxy.routing import Router
from seamline.record.rows import encode_event
from seamline.validate.validator import Validator

REQ_HEADERS = [
    ("Host", "127.0.0.1:8081"),
    ("Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
    ("Idempotency-Key", "3f2a9c1e-k17"),
    ("X-Run-ID", "3f2a9c1e-1"),
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("X-Forwarded-For", "127.0.0.1"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Host", "127.0.0.1:8080"),
]
RESP_HEADERS = [
    ("Server", "nginx/1.22.1"),
    ("Date", "Tue, 01 Dec 2026 12:00:00 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(RESPONSE))),
    ("Connection", "keep-alive"),
]


def exchange(router: Router, i: int, status: int = 200) -> Exchange:
    ex = Exchange(ts_us=time.time_ns() // 1000, t0=0.0, mode="reverse", method="POST")
    ex.run_id, ex.run_id_source = f"3f2a9c1e-{i // 10}", "header"
    ex.target = router.target("bench", "POST", "/item", "")
    ex.handoff, ex.upstream, ex.url = ex.target.handoff.name, "bench", "http://127.0.0.1:8081/item"
    ex.request_headers, ex.response_headers = REQ_HEADERS, RESP_HEADERS
    ex.request_tap, ex.response_tap = BodyTap(65536), BodyTap(65536)
    ex.request_tap.feed(BODY.encode())
    ex.response_tap.feed(RESPONSE.encode())
    ex.status, ex.duration_s, ex.ttfb_s = status, 0.0004, 0.0003
    return ex


def measure(builder: EventBuilder, router: Router, n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        exs = [exchange(router, i) for i in range(n)]  # built outside the timed part
        t0 = time.thread_time()
        for ex in exs:
            encode_event(builder.build(ex))
        best = min(best, (time.thread_time() - t0) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="seamline-build-"))
    print(f"µs of CPU per event (build + encode), best of 5 × {args.n}, variants interleaved {args.rounds} times:")
    setups = []
    for name in ("seamline", "seamline+failures", "seamline+sample"):
        raw = json.loads(seamline_config(tmp, name, 8081).read_text())
        path = tmp / "c.json"
        path.write_text(json.dumps(raw))
        config = load_config(path)
        router = Router(config)
        builder = EventBuilder(config, "bench", Validator(config))
        cap = config.capture
        keep = cap.keep_bodies + (f" {cap.ok_sample_rate}" if cap.keep_bodies == "sample" else "")
        setups.append((keep, builder, router))
    got: dict[str, list[float]] = {k: [] for k, _, _ in setups}
    for _ in range(args.rounds):
        for keep, builder, router in setups:
            got[keep].append(measure(builder, router, args.n))
    for keep, vals in got.items():
        med = statistics.median(vals)
        print(f"  keep_bodies {keep:<12} min {min(vals):6.1f}  median {med:6.1f}  {[round(v, 1) for v in vals]}")


if __name__ == "__main__":
    main()
