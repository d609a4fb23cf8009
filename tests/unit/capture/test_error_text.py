"""safe_error_text: every error text is short, printable and carries no secret the policy knows of."""

from __future__ import annotations

import pytest

from seamline.capture.error_text import MAX_ERROR_TEXT, safe_error_text
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Capture

POLICY = RedactionPolicy.from_config(Capture())
STRIPE = "sk_live_51Habc0123456789SECRET"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Invalid status line: 'HTTP/1.1 2OO api_key={STRIPE}'", STRIPE),
        ("Bad header 'Authorization: Bearer eyJhbGciOi.payload-part.sig'", "eyJhbGciOi.payload-part.sig"),
        ("Cannot connect to host api.example:443 ssl:default [token=abcdef123456]", "abcdef123456"),
        ("upstream host name did not resolve: x?password=hunter2hunter2", "hunter2hunter2"),
        ('{"client_secret": "s3cr3t-value-9", "ok": 1}', "s3cr3t-value-9"),
        ("TLS handshake failed near ghp_0123456789abcdefghijABCDEFGHIJ0123", "ghp_0123456789abcdefghijABCDEFGHIJ0123"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
        ("card 4111 1111 1111 1111 in a line", "4111 1111 1111 1111"),
        ("Basic dXNlcjpwYXNzd29yZA== was refused", "dXNlcjpwYXNzd29yZA=="),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    out = safe_error_text(text, POLICY)
    assert secret not in out and "[REDACTED]" in out


def test_long_text_is_capped_and_control_bytes_escaped() -> None:
    text = "\x15\x03\x01 junk api_key=" + STRIPE + " " + "z" * 70_000
    out = safe_error_text(text, POLICY)
    assert len(out) == MAX_ERROR_TEXT and out.endswith("…")
    assert out.startswith("\\x15\\x03\\x01 junk api_key=[REDACTED]")
    assert STRIPE not in out


def test_plain_texts_pass_unchanged() -> None:
    for text in ("cannot connect to the upstream: Connection refused", "upstream did not answer in time (read timeout)",
                 "prompt_tokens=12 max_tokens=100", ""):  # fmt: skip
        assert safe_error_text(text, POLICY) == text
