"""A varied corpus of finished exchanges and the rows `EventBuilder.build` + `encode_event` make of them.

What the event's build may never change by being made faster: for the same exchange and config, the stored row is
the same bytes. tests/data/build_golden.json holds a digest (BLAKE2b-128) of each row as built by the code before the
build was optimised (session 6; the rows themselves are 1.2 MB); tests/unit/event/test_build.py compares. To see one
row, for a diff between two trees: `--show <case>`. Regenerate the digests only for an intended change of stored rows,
from the tree whose rows are right:

    PYTHONPATH=src:tests .venv/bin/python -m support.build_corpus --write tests/data/build_golden.json

Cases: every probe of the leak corpus (tests/leaks/corpus.py: secret shapes × carriers, and its negatives), and
hand-made exchanges (JSON, text, form, multipart, XML, binary, non-UTF-8, gzip/deflate/br/zstd, truncated, invalid
JSON, cards, URL secrets, cookies, repeated headers, transport errors and refusals, tunnels, guards, contracts with
schemas, assert, echo and extract, an OpenAPI operation) under four configs: keep_bodies all, failures, sample, and
one with non-default redaction settings. `ts` (the clock) is masked; every other column is compared.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import brotli
import zstandard
from leaks.corpus import CARRIERS, NEGATIVES, Kind, Probe, carry, probes

from seamline.capture.error_text import safe_error_text
from seamline.capture.redact import RedactionPolicy
from seamline.config.loader import load_config
from seamline.config.models import Config
from seamline.event.build import EventBuilder
from seamline.exchange import BodyTap, Exchange
from seamline.proxy.routing import Router
from seamline.proxy.tracecontext import TraceContext
from seamline.record.rows import encode_event
from seamline.validate.validator import Validator

TS_MASK = '"ts":"<ts>"'

CHARGE_CONTRACT: dict[str, Any] = {
    "status": [200, 201],
    "request_schema": {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}, "customer": {"type": "string"}},
    },
    "response_schema": {
        "type": "object",
        "required": ["id", "status", "amount"],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": ["succeeded", "pending"]},
            "amount": {"type": "integer"},
            "currency": {"type": "string"},
            "customer": {"type": "string"},
            "card": {"type": "object", "properties": {"last4": {"type": "string"}}},
        },
    },
    "assert": {"paid": "response.body.status == 'succeeded'", "fast": "response.status == `200`"},
    "echo": ["amount", "currency"],
    "extract": {"charge_id": "response.body.id", "customer": "response.body.customer"},
}
ITEM_CONTRACT: dict[str, Any] = {
    "response_schema": {"type": "object", "properties": {"id": {"type": "string"}, "tags": {"type": "array"}}},
    "extract": {"item": "response.body.id", "req": 'request.headers."x-request-id"'},
}
OPENAPI_DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "orders", "version": "1"},
    "paths": {
        "/orders/{id}": {
            "get": {
                "operationId": "getOrder",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
                    {"name": "expand", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {"id": {"type": "integer"}, "state": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "404": {"description": "not found"},
                },
            }
        }
    },
}

# Config name → (capture settings, extra upstream settings of `api`).
CONFIGS: dict[str, dict[str, Any]] = {
    "all": {},
    "failures": {"keep_bodies": "failures"},
    "sample": {"keep_bodies": "sample", "ok_sample_rate": 0.5},
    "custom": {
        "redact_cards": False,
        "scrub_min_length": 4,
        "allow_headers": ["x-api-key-id"],
        "redact_headers": ["x-tenant-secret-ish"],
        "redact_keys_extra": ["pin", "otp"],
        "redact_patterns": [r"ORD-SECRET-(\d{6})"],
        "max_body_bytes": 200,
    },
}


def _config(tmp: Path, name: str) -> Config:
    (tmp / "orders.json").write_text(json.dumps(OPENAPI_DOC))
    raw = {
        "upstreams": {
            "api": {"base_url": "https://api.example.com", "redact_headers": {"deny": ["x-internal"], "allow": ["x-auth-mode"]}},
            "orders": {"base_url": "https://orders.example.com", "openapi": "orders.json"},
        },
        "handoffs": {
            "charge": {"upstream": "api", "match": "POST /v1/charges", "contract": CHARGE_CONTRACT},
            "item": {"upstream": "api", "match": "GET /v1/items/{id}", "step": "lookup", "contract": ITEM_CONTRACT},
            "strict": {
                "upstream": "api",
                "match": "PUT /v1/strict",
                "contract": {**CHARGE_CONTRACT, "enforce": "request"},
            },
        },
        "capture": CONFIGS[name],
        "storage": {"enabled": False},
    }
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(raw))
    return load_config(path)


def _tap(data: bytes, cap: int = 65536) -> BodyTap:
    tap = BodyTap(cap)
    for i in range(0, len(data), 700):  # in chunks, as the relay feeds it
        tap.feed(data[i : i + 700])
    return tap


CHARGE_REQ = json.dumps({"amount": 1099, "currency": "eur", "customer": "cus_NffrFeUfNV2Hib", "description": "x" * 600})
CHARGE_RESP = json.dumps(
    {
        "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "status": "succeeded",
        "amount": 1099,
        "currency": "eur",
        "customer": "cus_NffrFeUfNV2Hib",
        "card": {"last4": "4242"},
        "metadata": {"order": "o-1", "note": "y" * 500},
    }
)
JSON_H = ("Content-Type", "application/json")
BEARER = ("Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc")


def _base_headers(extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [
        ("Host", "api.example.com"),
        BEARER,
        ("Accept", "application/json"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("X-Run-ID", "run-1"),
        ("X-Forwarded-For", "127.0.0.1"),
        *(extra or []),
    ]


Case = Callable[[Router], Exchange]


def _ex(
    router: Router,
    *,
    handoff_path: tuple[str, str, str, str] | None = ("api", "POST", "/v1/charges", ""),
    req: bytes | None = None,
    resp: bytes | None = None,
    req_headers: list[tuple[str, str]] | None = None,
    resp_headers: list[tuple[str, str]] | None = None,
    status: int = 200,
    cap: int = 65536,
    run_id: str = "run-1",
    **fields: Any,
) -> Exchange:
    ex = Exchange(ts_us=time.time_ns() // 1000, t0=0.0, mode="reverse", method="POST")
    if handoff_path is not None:
        up, method, path, query = handoff_path
        ex.method = method
        ex.target = router.target(up, method, path, query)
        ex.upstream = up
        ex.handoff = ex.target.handoff.name
        ex.url = str(ex.target.url)
    ex.run_id, ex.run_id_source = run_id, "header"
    ex.trace = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, None, False)
    ex.span_id = "b7ad6b7169203331"
    ex.request_headers = req_headers if req_headers is not None else _base_headers([JSON_H])
    ex.response_headers = resp_headers if resp_headers is not None else [JSON_H, ("X-Request-Id", "req_8f1a2b3c4d")]
    ex.request_tap = _tap(req, cap) if req is not None else None
    ex.response_tap = _tap(resp, cap) if resp is not None else None
    ex.status, ex.duration_s, ex.ttfb_s = status, 0.0123, 0.0045
    for k, v in fields.items():
        setattr(ex, k, v)
    return ex


def _cases() -> dict[str, Case]:
    q = CHARGE_REQ.encode()
    r = CHARGE_RESP.encode()
    item = ("api", "GET", "/v1/items/42", "expand=tags&api_key=k3y-Value-123456&limit=10")
    text_h = _base_headers([("Content-Type", "text/plain; charset=utf-8")])
    c: dict[str, Case] = {
        "json_ok": lambda rt: _ex(rt, req=q, resp=r),
        "json_ok_other_run": lambda rt: _ex(rt, req=q, resp=r, run_id="run-2"),
        "json_ok_third_run": lambda rt: _ex(rt, req=q, resp=r, run_id="0193a6b2-7c1e-7d2a-9f3b-000000000007"),
        "json_schema_violation": lambda rt: _ex(
            rt, req=q, resp=json.dumps({"id": 7, "status": "failed", "extra": {"a": 1}}).encode()
        ),
        "json_echo_mismatch": lambda rt: _ex(rt, req=q, resp=r.replace(b'"eur"', b'"usd"')),
        "json_request_not_json": lambda rt: _ex(rt, req=b"amount=5", resp=r),
        "json_request_violation": lambda rt: _ex(rt, req=b'{"amount": "5"}', resp=r),
        "json_empty_response": lambda rt: _ex(rt, req=q, resp=None),
        "json_500": lambda rt: _ex(rt, req=q, resp=b'{"error": {"message": "boom", "code": "internal"}}', status=500),
        "json_401_expired": lambda rt: _ex(
            rt,
            req=q,
            resp=b'{"error": "invalid_token"}',
            status=401,
            resp_headers=[JSON_H, ("WWW-Authenticate", 'Bearer error="invalid_token"')],
        ),
        "json_429_retry_after": lambda rt: _ex(
            rt, req=q, resp=b'{"error": "slow down"}', status=429, resp_headers=[JSON_H, ("Retry-After", "120")]
        ),
        "json_secrets": lambda rt: _ex(
            rt,
            req=json.dumps(
                {
                    "amount": 5,
                    "currency": "eur",
                    "password": "hunter2-secret",
                    "nested": {"apiKey": "abcd1234efgh", "items": [{"client_secret": {"deep": "value-9876543"}}, "plain"]},
                }
            ).encode(),
            resp=json.dumps(
                {
                    "id": "ch_1",
                    "status": "succeeded",
                    "amount": 5,
                    "echo": "hunter2-secret",
                    "token": "tok_abcdef123456",
                    "prompt_tokens": 12,
                }
            ).encode(),
        ),
        "json_in_string": lambda rt: _ex(
            rt,
            req=q,
            resp=json.dumps(
                {
                    "id": "ch_1",
                    "status": "succeeded",
                    "amount": 1,
                    "payload": json.dumps({"password": "inner-secret-1", "a": [1, 2]}),
                }
            ).encode(),
        ),
        "json_cards": lambda rt: _ex(
            rt,
            req=json.dumps(
                {"amount": 1, "currency": "eur", "pan": "4111 1111 1111 1111", "n": 4242424242424242, "ts": 1234567890123}
            ).encode(),
            resp=json.dumps({"id": "ch_1", "status": "succeeded", "amount": 1, "text": "card 5555-5555-5555-4444 ok"}).encode(),
        ),
        "json_unicode": lambda rt: _ex(
            rt,
            req='{"amount": 1, "currency": "\\u0065ur", "customer": "Zoë ☃ \\ud83d\\ude00"}'.encode(),
            resp=json.dumps({"id": "ch_1", "status": "succeeded", "amount": 1, "name": "Ŝtraße"}, ensure_ascii=False).encode(),
        ),
        "json_with_spaces": lambda rt: _ex(rt, req=b'{ "amount" : 1 ,\n "currency" : "eur" }', resp=r),
        "json_truncated": lambda rt: _ex(rt, req=q, resp=r, cap=300),
        "json_invalid": lambda rt: _ex(rt, req=q, resp=b'{"id": "ch_1", "password": "oops-leak", }'),
        "json_untyped": lambda rt: _ex(rt, req=q, resp=r, resp_headers=[("X-Request-Id", "r1")]),
        "json_as_text": lambda rt: _ex(rt, req=b'{"password": "text-json-secret", "a": 1}', resp=r, req_headers=text_h),
        "json_array_untyped": lambda rt: _ex(rt, req=None, resp=b'[{"token": "abcdef-123456"}, 1, "x"]', resp_headers=[]),
        "gzip_response": lambda rt: _ex(rt, req=q, resp=gzip.compress(r), resp_headers=[JSON_H, ("Content-Encoding", "gzip")]),
        "deflate_response": lambda rt: _ex(
            rt, req=q, resp=zlib.compress(r), resp_headers=[JSON_H, ("Content-Encoding", "deflate")]
        ),
        "br_response": lambda rt: _ex(rt, req=q, resp=brotli.compress(r), resp_headers=[JSON_H, ("Content-Encoding", "br")]),
        "zstd_response": lambda rt: _ex(
            rt, req=q, resp=zstandard.ZstdCompressor().compress(r), resp_headers=[JSON_H, ("Content-Encoding", "zstd")]
        ),
        "gzip_corrupt": lambda rt: _ex(
            rt, req=q, resp=b"\x1f\x8b\x08\x00garbage", resp_headers=[JSON_H, ("Content-Encoding", "gzip")]
        ),
        "encoding_unsupported": lambda rt: _ex(rt, req=q, resp=b"xyz", resp_headers=[JSON_H, ("Content-Encoding", "compress")]),
        "text_plain": lambda rt: _ex(
            rt, req=b"hello password: hunter22 and Bearer abcdefgh12345678 token=zzzzzz99", resp=r, req_headers=text_h
        ),
        "text_log_line": lambda rt: _ex(
            rt, req=b"GET /x?password=qwerty123 host: a?secret=s3cr3tval 200", resp=r, req_headers=_base_headers()
        ),
        "text_plain_no_secrets": lambda rt: _ex(rt, req=("just words " * 80).encode(), resp=r, req_headers=text_h),
        "form": lambda rt: _ex(
            rt,
            req=b"amount=5&currency=eur&password=p%40ss+word1&card=4111111111111111&note=Bearer%20abcdefgh1234",
            resp=r,
            req_headers=_base_headers([("Content-Type", "application/x-www-form-urlencoded")]),
        ),
        "form_untyped": lambda rt: _ex(rt, req=b"user=ann&pwd=letmein99&x=1", resp=r, req_headers=_base_headers()),
        "multipart": lambda rt: _ex(
            rt,
            req=(
                b'--XyZ\r\nContent-Disposition: form-data; name="password"\r\n\r\nmp-secret-1\r\n'
                b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nplain\r\n--XyZ--\r\n'
            ),
            resp=r,
            req_headers=_base_headers([("Content-Type", "multipart/form-data; boundary=XyZ")]),
        ),
        "xml": lambda rt: _ex(
            rt,
            req=b'<a><password>xml-secret-1</password><b token="attr-secret-2">x</b></a>',
            resp=r,
            req_headers=_base_headers([("Content-Type", "application/xml")]),
        ),
        "xml_as_text": lambda rt: _ex(rt, req=b"<r><secret>xs-secret-99</secret></r>", resp=r, req_headers=text_h),
        "binary_png": lambda rt: _ex(
            rt, req=q, resp=b"\x89PNG\r\n\x1a\n" + bytes(range(256)), resp_headers=[("Content-Type", "image/png")]
        ),
        "binary_octet": lambda rt: _ex(
            rt, req=bytes(range(256)), resp=r, req_headers=_base_headers([("Content-Type", "application/octet-stream")])
        ),
        "binary_sniffed": lambda rt: _ex(rt, req=b"\x00\x01\x02abc\xff", resp=r, req_headers=_base_headers()),
        "latin1_declared": lambda rt: _ex(
            rt,
            req="café password=mañana-123".encode("latin-1"),
            resp=r,
            req_headers=_base_headers([("Content-Type", "text/plain; charset=ISO-8859-1")]),
        ),
        "latin1_undeclared": lambda rt: _ex(rt, req="café crème brûlée".encode("latin-1"), resp=r, req_headers=text_h),
        "utf8_cut_mid_char": lambda rt: _ex(rt, req=("é" * 200).encode(), resp=r, req_headers=text_h, cap=201),
        "url_secrets": lambda rt: _ex(
            rt,
            handoff_path=item,
            req=None,
            resp=b'{"id": "42", "tags": ["a"], "unknown": 1}',
            req_headers=_base_headers([("X-Request-Id", "rq-77")]),
        ),
        "url_userinfo": lambda rt: _ex(
            rt,
            handoff_path=None,
            req=None,
            resp=r,
            url="https://bob:pa55w0rd-x@api.example.com/x?sig=abcdef&card=4111111111111111",
            upstream="api",
            handoff="api.other",
        ),
        "cookies_and_repeats": lambda rt: _ex(
            rt,
            req=q,
            resp=r,
            req_headers=_base_headers(
                [
                    JSON_H,
                    ("Cookie", "sid=abc123456789; theme=dark-mode-x"),
                    ("X-Multi", "a"),
                    ("x-multi", "b"),
                    ("Content-Type", "application/json; charset=utf-8"),
                    ("X-Internal", "internal-value-1"),
                    ("X-Auth-Mode", "strict-mode"),
                    ("X-Api-Key-Id", "key-id-1234"),
                    ("X-Note", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
                    ("Proxy-Authorization", "Basic dXNlcjpwYXNzd29yZDEyMw=="),
                    ("X-Echo", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
                ]
            ),
            resp_headers=[
                JSON_H,
                ("Set-Cookie", "sid=zzz987654321; Path=/; HttpOnly"),
                ("Set-Cookie", "b=cookieval2; Secure"),
                ("X-Api-Token", "resp-token-123456"),
                ("X-Echo", "sid zzz987654321 inside"),
            ],
        ),
        "header_detector_only": lambda rt: _ex(
            rt,
            req=q,
            resp=r,
            req_headers=[("Host", "api.example.com"), JSON_H, ("X-Trace", "ghp_abcdefghijklmnopqrstuvwxyz0123456789")],
        ),
        "no_headers_at_all": lambda rt: _ex(rt, req=None, resp=None, req_headers=[], resp_headers=[], status=204),
        "transport_timeout": lambda rt: _ex(
            rt,
            req=q,
            resp=None,
            status=0,
            error_class="timeout",
            error_detail="read timed out after 5s; Authorization: Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            resp_headers=[],
        ),
        "refused_unknown_upstream": lambda rt: _ex(
            rt,
            handoff_path=None,
            req=None,
            resp=None,
            status=0,
            error_status=404,
            error_class="unknown_upstream",
            url="",
            resp_headers=[],
            error_detail="no upstream named nope",
        ),
        "enforced_422": lambda rt: _ex(
            rt,
            handoff_path=("api", "PUT", "/v1/strict", ""),
            req=b'{"amount": "x"}',
            resp=None,
            status=0,
            error_status=422,
            error_class="contract",
            request_violations=["request:schema:/amount:type"],
            resp_headers=[],
        ),
        "strict_ok": lambda rt: _ex(rt, handoff_path=("api", "PUT", "/v1/strict", ""), req=q, resp=r),
        "tunnel": lambda rt: _ex(
            rt,
            handoff_path=None,
            req=None,
            resp=None,
            mode="connect",
            method="CONNECT",
            url="api.example.com:443",
            upstream="api",
            handoff="api.other",
            extra={"tunnel": (1234, 5678)},
            attributes={"tunnel": "tls"},
            resp_headers=[],
        ),
        "guards": lambda rt: _ex(
            rt,
            req=q,
            resp=r,
            guard="replayed",
            retry_of="0193a6b2-0000-7000-8000-000000000001",
            replay_of="0193a6b2-0000-7000-8000-000000000002",
            attempt=3,
            loop_suspected=True,
            guard_wait_s=0.25,
            idempotency_key="idem-sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            attributes={"run_id_invalid": "1"},
        ),
        "extracted_secret": lambda rt: _ex(
            rt,
            req=q,
            resp=json.dumps(
                {
                    "id": "ch_1",
                    "status": "succeeded",
                    "amount": 1099,
                    "currency": "eur",
                    "customer": "cus_secretish_1",
                    "client_secret": "cus_secretish_1",
                }
            ).encode(),
        ),
        "openapi_ok": lambda rt: _ex(
            rt,
            handoff_path=("orders", "GET", "/orders/5", "expand=lines"),
            req=None,
            resp=b'{"id": 5, "state": "open", "more": true}',
        ),
        "openapi_bad": lambda rt: _ex(
            rt, handoff_path=("orders", "GET", "/orders/0", ""), req=None, resp=b'{"id": "five"}', status=200
        ),
        "openapi_404": lambda rt: _ex(
            rt,
            handoff_path=("orders", "GET", "/orders/9", ""),
            req=None,
            resp=b"nope",
            status=404,
            resp_headers=[("Content-Type", "text/plain")],
        ),
        "custom_pattern": lambda rt: _ex(
            rt,
            req=json.dumps(
                {"amount": 1, "currency": "eur", "note": "ref ORD-SECRET-123456", "pin": "1234", "otp": "99"}
            ).encode(),
            resp=r,
            req_headers=_base_headers([JSON_H, ("X-Tenant-Secret-Ish", "tenant-1")]),
        ),
    }
    return c


def _leak_exchange(probe: Probe, policy: RedactionPolicy, status: int = 200) -> Exchange:
    """tests/leaks/test_leak_corpus.py's exchange of one probe (request side; the response echoes the body)."""
    headers = [("Host", "api.example.com"), ("Accept", "*/*"), *probe.request_headers]
    if probe.content_type:
        headers.append(("Content-Type", probe.content_type))
    return Exchange(
        ts_us=time.time_ns() // 1000,
        t0=0.0,
        mode="reverse",
        method="POST",
        upstream="api",
        url=probe.url,
        request_headers=headers,
        response_headers=[("Content-Type", probe.content_type)] if probe.content_type else [],
        request_tap=_tap(probe.body) if probe.body else None,
        response_tap=_tap(probe.body) if probe.body else None,
        status=status,
        error_detail=safe_error_text(probe.error_text, policy),
    )


def mask(row: bytes, ts: int) -> str:
    """The row as text with its clock column masked."""
    text = row.decode()
    stamped = f'"ts":"{ts}"'
    assert text.count(stamped) == 1, text[:200]
    return text.replace(stamped, TS_MASK)


def corpus_rows() -> dict[str, str]:
    """Case name → the stored row (encode_event of build), `ts` masked."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="seamline-corpus-") as tmp:
        for cname in CONFIGS:
            config = _config(Path(tmp), cname)
            builder = EventBuilder(config, "corpus", Validator(config))
            router = Router(config)
            for i, (name, make) in enumerate(_cases().items()):
                ex = make(router)
                ex.event_id = f"0193a6b2-7c1e-7d2a-9f3b-{i:012x}"
                out[f"{cname}/{name}"] = mask(encode_event(builder.build(ex)), ex.ts_us)
        leak_probes = [*probes(), *(carry(Kind("negative", v), c) for v in NEGATIVES for c in CARRIERS)]
        # Under `all`, and under `failures` answered 502: a kept failure's bodies are redacted from the value parsed
        # for the contract (`redact_parsed`), not rendered a second time; the rows must not change by that either.
        for prefix, cname, status in (("leak", "all", 200), ("leak-failed", "failures", 502)):
            config = _config(Path(tmp), cname)
            builder = EventBuilder(config, "corpus", Validator(config))
            policy = RedactionPolicy.from_config(config.capture)
            for i, probe in enumerate(leak_probes):
                ex = _leak_exchange(probe, policy, status)
                ex.event_id = f"0193a6b2-7c1e-7d2a-9f3b-{0x10000 + i:012x}"
                out[f"{prefix}/{i:03d}/{probe.kind}/{probe.carrier}"] = mask(encode_event(builder.build(ex)), ex.ts_us)
    return out


def digest(row: str) -> str:
    return hashlib.blake2b(row.encode(), digest_size=16).hexdigest()


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("--write", "--show"):
        raise SystemExit("usage: python -m support.build_corpus --write tests/data/build_golden.json | --show <case>")
    rows = corpus_rows()
    if sys.argv[1] == "--show":
        print(rows[sys.argv[2]])
        return
    Path(sys.argv[2]).write_text(json.dumps({k: digest(v) for k, v in rows.items()}, indent=0) + "\n")
    print(f"{len(rows)} rows → {sys.argv[2]}")


if __name__ == "__main__":
    main()
