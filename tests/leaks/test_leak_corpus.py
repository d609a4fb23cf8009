"""The leak corpus (corpus.py) recorded through the real event builder: leaked / probed must be 0.

Each probe is one exchange built into the row that would be stored (EventBuilder.build, as the recorder does),
with an upstream error text made safe as the proxy does (safe_error_text); the row is then searched for the
secret, plain and percent-encoded. Negatives must come through untouched.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from leaks.corpus import CARRIERS, KINDS, NEGATIVES, Kind, Probe, carry, probes
from seamline.capture.error_text import safe_error_text
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Capture, Config
from seamline.event.build import EventBuilder
from seamline.exchange import BodyTap, Exchange
from seamline.validate.validator import Validator

CONFIG = Config.model_validate({"upstreams": {"api": {"base_url": "https://api.example.com"}}, "storage": {"enabled": False}})
BUILDER = EventBuilder(CONFIG, "test", Validator(CONFIG))
POLICY = RedactionPolicy.from_config(CONFIG.capture)


def record(probe: Probe) -> dict[str, Any]:
    """The stored row for one probe (request side; the response echoes the body back, as many APIs do)."""
    headers = [("Host", "api.example.com"), ("Accept", "*/*"), *probe.request_headers]
    if probe.content_type:
        headers.append(("Content-Type", probe.content_type))
    tap = BodyTap(65536)
    tap.feed(probe.body)
    echo = BodyTap(65536)
    echo.feed(probe.body)
    ex = Exchange(
        ts_us=int(time.time() * 1e6),
        t0=time.perf_counter(),
        mode="reverse",
        method="POST",
        upstream="api",
        url=probe.url,
        request_headers=headers,
        response_headers=[("Content-Type", probe.content_type)] if probe.content_type else [],
        request_tap=tap if probe.body else None,
        response_tap=echo if probe.body else None,
        status=200,
        error_detail=safe_error_text(probe.error_text, POLICY),
    )
    return BUILDER.build(ex)


def leaks(probe: Probe, row: dict[str, Any]) -> bool:
    stored = json.dumps(row, default=str, ensure_ascii=False)
    secret = probe.secret
    forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], json.dumps(json.dumps(secret))[3:-3]}
    return any(f in stored for f in forms if f)


def test_leak_corpus_leaks_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    all_probes = probes()
    leaked = [f"{p.kind} × {p.carrier}" for p in all_probes if leaks(p, record(p))]
    with capsys.disabled():
        print(f"\nleak corpus: leaked {len(leaked)} / probed {len(all_probes)} ({len(KINDS)} kinds × {len(CARRIERS)} carriers)")
    assert not leaked, leaked


def test_corpus_covers_every_carrier_for_every_shape() -> None:
    all_probes = probes()
    assert {p.carrier for p in all_probes} == set(CARRIERS)
    assert len(all_probes) >= 250


@pytest.mark.parametrize("carrier", CARRIERS)
def test_negatives_are_not_redacted(carrier: str) -> None:
    """UUIDs, IDs, hashes, timestamps and words that sit where the probes sat come through unchanged."""
    for value in NEGATIVES:
        row = record(carry(Kind("negative", value), carrier))
        stored = json.dumps(row, default=str, ensure_ascii=False)
        forms = {value, quote(value, safe=""), json.dumps(json.dumps(value))[3:-3]}
        assert any(f in stored for f in forms), (carrier, value, stored[:400])
        assert "[REDACTED]" not in stored, (carrier, value, stored[:600])


def test_capture_defaults_cover_the_issue_names() -> None:
    cap = Capture()
    for part in ("auth", "token", "secret", "signature", "api-key", "x-amz-"):
        assert part in cap.redact_header_parts
    for q in ("x-amz-signature", "sig", "signature", "pwd"):
        assert q in cap.redact_query
    for key in ("pwd", "passwd", "pass", "client_secret", "refresh_token", "private_key"):
        assert key in [*cap.redact_keys, *cap.redact_keys_extra]
    assert "idempotency-key" in cap.allow_headers
