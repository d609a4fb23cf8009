"""Error texts made safe to show, store, log and put on a span: short, printable, secrets redacted. Pure.

An error text often carries what the upstream sent (a malformed status line, a header, a TLS or DNS message)
and so whatever secrets it held: `api_key=sk_live_…` in 64 KB of non-HTTP text became a 65 KB problem+json
detail and a stored `error_detail`. Every error text goes through `safe_error_text` before it leaves the
exchange: the client's problem+json `detail`, `handoffs.error_detail`, log lines and span status.
"""

from __future__ import annotations

import re
from typing import Final

from seamline.capture.redact import RedactionPolicy, redact_cards

MAX_ERROR_TEXT: Final = 512
# Bound the regex work on a huge text: only what can survive the cap (plus room for what redaction shortens).
_SCAN_MAX: Final = 8 * MAX_ERROR_TEXT
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_error_text(text: str, policy: RedactionPolicy) -> str:
    """`text` redacted by `policy` (credential shapes, secret-named pairs, schemes, cards), printable, ≤ 512 chars."""
    if not text:
        return text
    cut = len(text) > _SCAN_MAX
    out = text[:_SCAN_MAX]
    out = _CONTROL_RE.sub(_escape, out)
    redactor = policy.redactor()
    out = redactor.detect(out)  # credential shapes (detect-secrets' patterns, `Bearer …`), whatever key they sit under
    out = redactor.redact_text_pairs(out)
    if policy.cards:
        out = redact_cards(out)
    if cut or len(out) > MAX_ERROR_TEXT:
        out = out[: MAX_ERROR_TEXT - 1] + "…"
    return out


def _escape(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group(0)):02x}"
