"""Micro-benchmark: µs per call of capture+redaction and contract validation on a 1 KiB JSON body.

Run: .venv/bin/python bench/contracts_micro.py [--jsonschema-path DIR]
Baseline: orjson.loads + orjson.dumps of the same body (the least any JSON-aware recorder pays).
`--jsonschema-path` adds the pure-Python `jsonschema` 4.x validator for comparison, if installed there.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import orjson

from seamline.capture.bodies import render_body
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Capture, Contract
from seamline.exchange import BodyTap
from seamline.validate.classify import classify
from seamline.validate.contracts import compile_contract


def make_body(size: int = 1024) -> dict[str, Any]:
    """A charge-like response of about `size` bytes with no secret keys."""
    body: dict[str, Any] = {
        "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "object": "charge",
        "status": "succeeded",
        "amount": 1099,
        "currency": "eur",
        "customer": {"id": "cus_NffrFeUfNV2Hib", "email": "jenny.rosen@example.com", "name": "Jenny Rosen"},
        "metadata": {},
        "items": [],
    }
    i = 0
    while len(orjson.dumps(body)) < size - 60:
        body["items"].append({"sku": f"sku_{i:04d}", "qty": i % 3 + 1, "price": 100 + i})
        i += 1
    return body


CONTRACT: dict[str, Any] = {
    "status": [200, 201],
    "request_schema": {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
    },
    "response_schema": {
        "type": "object",
        "required": ["id", "status", "amount", "currency"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "charge"},
            "status": {"enum": ["succeeded", "pending", "failed"]},
            "amount": {"type": "integer", "minimum": 0},
            "currency": {"type": "string", "minLength": 3, "maxLength": 3},
            "customer": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "email": {"type": "string"}, "name": {"type": "string"}},
            },
            "metadata": {"type": "object"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}, "price": {"type": "integer"}},
                },
            },
        },
    },
    "assert": {
        "payment_succeeded": "response.body.status == 'succeeded'",
        "amount_matches": "response.body.amount == request.body.amount",
    },
    "echo": ["amount", "currency"],
    "extract": {"charge_id": "response.body.id", "customer_id": "response.body.customer.id"},
}
REQ_HEADERS = [
    ("Host", "api.billing.example"),
    ("User-Agent", "workflow-app/1.0"),
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
    ("Authorization", "Bearer sk_live_51MmlLrLkdIwHu7ix0snN0B15"),
    ("Idempotency-Key", "run-42-step-3"),
    ("X-Run-ID", "run-42"),
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
]
RESP_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", "1024"),
    ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ("Request-Id", "req_abc123"),
    ("Set-Cookie", "sid=8f14e45fceea167a5a36dedd4bea2543; Path=/; HttpOnly"),
]


def measure(fn: Callable[[], object], repeat: int = 15) -> float:
    """Best-of-`repeat` µs per call (the minimum is the least noisy estimate on a shared machine)."""
    number, _ = timeit.Timer(fn).autorange()
    runs = timeit.Timer(fn).repeat(repeat=repeat, number=number)
    return min(runs) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jsonschema-path", help="directory holding the pure-Python jsonschema package, for comparison")
    args = ap.parse_args()

    body = make_body()
    raw = orjson.dumps(body)
    req_body = {"amount": 1099, "currency": "eur"}
    req_raw = orjson.dumps(req_body)
    policy = RedactionPolicy.from_config(Capture.model_validate({}))
    contract = compile_contract("billing.charge", Contract.model_validate(CONTRACT), "bench")
    req = {"method": "POST", "path": "/v1/charges", "headers": {}, "query": {}, "body": req_body}
    resp: dict[str, Any] = {"status": 200, "headers": {"content-type": "application/json"}, "body": body}
    secret_raw = orjson.dumps({**body, "customer": {**body["customer"], "password": "hunter2-secret"}})

    def baseline() -> object:
        return orjson.dumps(orjson.loads(raw))

    def render_only() -> object:
        r = policy.redactor()
        return render_body(
            raw, content_type="application/json", content_encoding=None, truncated=False, total_bytes=len(raw), redactor=r
        )

    def render_with_secret_key() -> object:
        r = policy.redactor()
        return render_body(
            secret_raw,
            content_type="application/json",
            content_encoding=None,
            truncated=False,
            total_bytes=len(secret_raw),
            redactor=r,
        )

    def render_text_small() -> object:
        r = policy.redactor()
        return render_body(b"OK", content_type="text/plain", content_encoding=None, truncated=False, total_bytes=2, redactor=r)

    def exchange() -> object:
        r = policy.redactor()
        cap = BodyTap(65536)
        cap.feed(raw)
        rh = r.redact_headers(REQ_HEADERS)
        sh = r.redact_headers(RESP_HEADERS)
        url = r.redact_url("https://api.billing.example/v1/charges?expand=customer")
        a = render_body(
            req_raw, content_type="application/json", content_encoding=None, truncated=False, total_bytes=len(req_raw), redactor=r
        )
        b = render_body(
            cap.data,
            content_type="application/json",
            content_encoding=None,
            truncated=cap.truncated,
            total_bytes=cap.total,
            redactor=r,
        )
        return rh, sh, url, a, b

    def validate() -> object:
        v = contract.check_request(req)
        ev = contract.evaluate(req, resp)
        return classify(200, resp["headers"], None, ev, v, "record", now=0.0)

    rs_validator = jsonschema_rs.Draft202012Validator(CONTRACT["response_schema"])

    rows: list[tuple[str, float]] = [
        ("baseline orjson.loads+dumps (1 KiB)", measure(baseline)),
        ("render_body 1 KiB JSON, no secret keys", measure(render_only)),
        ("render_body 1 KiB JSON, one secret key", measure(render_with_secret_key)),
        ("render_body 2 B text/plain (fast path)", measure(render_text_small)),
        ("capture+redaction, whole exchange", measure(exchange)),
        ("contract check_request+evaluate+classify", measure(validate)),
        ("  of which jsonschema-rs is_valid (response)", measure(lambda: rs_validator.is_valid(body))),
    ]
    if args.jsonschema_path:
        sys.path.insert(0, args.jsonschema_path)
        try:
            import jsonschema
        except ImportError:
            print(f"jsonschema not importable from {args.jsonschema_path}", file=sys.stderr)
        else:
            py_validator = jsonschema.Draft202012Validator(CONTRACT["response_schema"])
            from importlib.metadata import version

            rows.append(
                (f"  jsonschema {version('jsonschema')} is_valid (response)", measure(lambda: py_validator.is_valid(body)))
            )

    base = rows[0][1]
    print(f"body: {len(raw)} bytes; python {sys.version.split()[0]}")
    print(f"{'case':48} {'µs/call':>9} {'× baseline':>11}")
    for name, us in rows:
        print(f"{name:48} {us:9.2f} {us / base:11.1f}")


if __name__ == "__main__":
    main()
