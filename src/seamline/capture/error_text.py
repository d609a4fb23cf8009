"""Error texts made safe to show, store, log and put on a span: short, printable, secrets redacted. Pure.

An error text often carries what the upstream sent (a malformed status line, a header, a TLS or DNS message)
and so whatever secrets it held: `api_key=sk_live_…` in 64 KB of non-HTTP text became a 65 KB problem+json
detail and a stored `error_detail`. Every error text goes through `safe_error_text` before it leaves the
exchange: the client's problem+json `detail`, `handoffs.error_detail`, log lines and span status.
"""

from __future__ import annotations

import re
from typing import Final

from seamline.capture.redact import REDACTED, RedactionPolicy, redact_cards

MAX_ERROR_TEXT: Final = 512
# Bound the regex work on a huge text: only what can survive the cap (plus room for what redaction shortens).
_SCAN_MAX: Final = 8 * MAX_ERROR_TEXT
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_AUTH_CRED_RE = re.compile(r"(?i)\b(bearer|basic|token|digest|apikey)(\s+)([A-Za-z0-9._~+/=:-]{6,})")
# name=value, name: value, "name": "value", 'name'='value' (query strings, headers, JSON and form fragments).
# A value stops at '?' and '=' (but keeps base64 padding) so `host: x?password=…` still finds the inner pair.
_PAIR_RE = re.compile(r"([A-Za-z0-9_.-]{1,64})([\"']?\s*[=:]\s*[\"']?)([^\s&\"',;<>?=]+=*)")
# Shapes of well-known credentials, whatever key (if any) they sit under.
_TOKEN_RE = re.compile(
    r"\b(?:(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{8,}"  # Stripe
    r"|gh[pousr]_[0-9A-Za-z]{20,}"  # GitHub
    r"|xox[abposr]-[0-9A-Za-z-]{10,}"  # Slack
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key IDs
    r"|eyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*)"  # JWTs
)
_SCHEMES: Final = frozenset({"bearer", "basic", "token", "digest", "apikey"})


def safe_error_text(text: str, policy: RedactionPolicy) -> str:
    """`text` redacted by `policy` (secret-named pairs, credentials, cards, token shapes), printable, ≤ 512 chars."""
    if not text:
        return text
    cut = len(text) > _SCAN_MAX
    out = text[:_SCAN_MAX]
    out = _CONTROL_RE.sub(_escape, out)
    out = _AUTH_CRED_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    out = _PAIR_RE.sub(lambda m: _pair(m, policy), out)
    out = _TOKEN_RE.sub(REDACTED, out)
    if policy.cards:
        out = redact_cards(out)
    if cut or len(out) > MAX_ERROR_TEXT:
        out = out[: MAX_ERROR_TEXT - 1] + "…"
    return out


def _escape(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group(0)):02x}"


def _pair(m: re.Match[str], policy: RedactionPolicy) -> str:
    name, sep, value = m.group(1), m.group(2), m.group(3)
    # Names by the query list or the body-key rule (segments: `access_token`, not `prompt_tokens`).
    secret = name.lower() in policy.query_names or policy.body_key(name)
    if value == REDACTED or value.lower() in _SCHEMES or not secret:
        return m.group(0)
    return f"{name}{sep}{REDACTED}"
