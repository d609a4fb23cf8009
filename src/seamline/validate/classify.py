"""Outcome and error class of one handoff. Pure: no I/O (the clock can be injected).

Precedence, first match wins:
1. request broke its contract and `enforce: request` (never forwarded) → contract_violation / contract
2. transport error (or no status) → transport_error / timeout | tls | dns | connect
3. request broke its contract, `enforce: record` → contract_violation / the HTTP class if the
   upstream also failed (so an expired token is not hidden), else contract
4. status >= 400 not accepted by the contract → http_error / rate_limited (429) | auth_expired |
   auth (401, 403) | client_error (4xx) | server_error (5xx)
5. contract violations (status < 400 or a status the contract lists) → silent_failure / contract
6. the contract could not run (body over the cap, validator crashed) → unvalidated / none
7. → ok / none

A handoff Seamline answered itself (no upstream status) is classified by `classify_own_answer()` instead:
refused / its own class when the class is in `SEAMLINE_REFUSAL_CLASSES` (unknown upstream, refused target, too
large, unauthorized, not implemented, bad request…), so upstream health never counts a call that was not made;
the 422 of `enforce: request` → contract_violation; a 502/504 for a failed upstream → transport_error.
The vocabulary (outcomes, classes, violation prefixes) lives in seamline.outcomes.

auth_expired: a 401/403 whose `WWW-Authenticate` carries `error="invalid_token"` (RFC 6750: expired,
revoked or malformed — the client must get a new token either way) or an `error_description`
mentioning expiry, or whose JSON body's error fields (error, error_description, message, code,
detail, title, reason, type; top level, under `error`, or in `errors[0]`) say `invalid_token`, or say
"expired" together with token/jwt/session/credential.

retry_after_s: `Retry-After` on any response, as delay-seconds or an HTTP-date (seconds from `now`,
floored at 0); -1 when absent or unparsable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final, NamedTuple

from seamline import outcomes as o
from seamline.validate.contracts import Evaluation

TRANSPORT_CLASSES: Final = o.TRANSPORT_CLASSES
_DELAY_RE = re.compile(r"\d+(?:\.\d+)?")
_EXPIRED_RE = re.compile(r"expired", re.I)
_CREDENTIAL_RE = re.compile(r"token|jwt|session|credential", re.I)
_INVALID_TOKEN_RE = re.compile(r"invalid[_ -]?token", re.I)
_ERROR_KEYS: Final = ("error", "error_description", "message", "code", "detail", "title", "reason", "type")
_DNS_HINTS: Final = ("gaierror", "dns", "name resolution", "name or service not known", "nodename nor servname", "getaddrinfo")
_TLS_HINTS: Final = ("ssl", "certificate", "tls")
_TIMEOUT_HINTS: Final = ("timeout", "timed out")


class Classification(NamedTuple):
    """What the event records: outcome, error class and Retry-After seconds (-1: none)."""

    outcome: str
    error_class: str
    retry_after_s: float


def classify(
    status: int | None,
    headers: Mapping[str, str],
    transport_error: str | BaseException | None,
    evaluation: Evaluation | None,
    request_violations: list[str],
    enforce: str,
    *,
    body: Any = None,
    now: float | None = None,
) -> Classification:
    """Outcome, error class and Retry-After of one exchange (`headers` with lower-case names)."""
    # A request validator that crashed says nothing about the request (and never rejects it).
    request_violations = [v for v in request_violations if not v.startswith(o.REQUEST_VALIDATOR_ERROR)]
    if request_violations and enforce == "request":
        return Classification(o.CONTRACT_VIOLATION, o.CONTRACT, -1.0)
    if transport_error is not None or status is None:
        cls = transport_error_class(transport_error) if transport_error is not None else o.CONNECT
        return Classification(o.TRANSPORT_ERROR, cls, -1.0)
    retry = parse_retry_after(headers.get("retry-after"), time.time() if now is None else now)
    accepted = evaluation is not None and evaluation.status_expected
    http_class = http_error_class(status, headers, body) if status >= 400 and not accepted else None
    if request_violations:
        return Classification(o.CONTRACT_VIOLATION, http_class or o.CONTRACT, retry)
    if http_class is not None:
        return Classification(o.HTTP_ERROR, http_class, retry)
    if evaluation is None:
        return Classification(o.OK, o.NONE, retry)
    if any(not v.startswith(o.VALIDATOR_ERROR) for v in evaluation.violations):
        return Classification(o.SILENT_FAILURE, o.CONTRACT, retry)
    if evaluation.violations or evaluation.unvalidated_reason is not None:
        return Classification(o.UNVALIDATED, o.NONE, retry)
    return Classification(o.OK, o.NONE, retry)


def classify_own_answer(error_class: str, error_status: int) -> Classification:
    """Outcome of a handoff Seamline answered itself (its problem+json `error_class` and status, no upstream status).

    The decision is the error class, never the status number: a 404 can be an unknown upstream (refused) and
    a 502 can be an upstream that did not answer (transport_error).
    """
    if error_class in o.SEAMLINE_REFUSAL_CLASSES:
        return Classification(o.REFUSED, error_class, -1.0)
    if error_class == o.CONTRACT:
        return Classification(o.CONTRACT_VIOLATION, o.CONTRACT, -1.0)
    if error_class in o.TRANSPORT_CLASSES or error_status in (502, 504):
        # The upstream failed and Seamline said so (502/504): timeout, connect, tls or dns.
        return Classification(o.TRANSPORT_ERROR, transport_error_class(error_class), -1.0)
    # A class this vocabulary does not know yet: keep it visible as an error rather than guess it away.
    return Classification(o.HTTP_ERROR if error_status < 500 else o.TRANSPORT_ERROR, error_class, -1.0)


def http_error_class(status: int, headers: Mapping[str, str], body: Any = None) -> str:
    """rate_limited | auth_expired | auth | client_error | server_error for a status >= 400."""
    if status == 429:
        return o.RATE_LIMITED
    if status in (401, 403):
        return o.AUTH_EXPIRED if token_expired(headers, body) else o.AUTH
    return o.SERVER_ERROR if status >= 500 else o.CLIENT_ERROR


def token_expired(headers: Mapping[str, str], body: Any = None) -> bool:
    """Does the upstream say the caller's token expired (header or JSON error body)?"""
    challenge = headers.get("www-authenticate", "")
    if challenge and (_INVALID_TOKEN_RE.search(challenge) or _says_expired(challenge)):
        return True
    return any(_INVALID_TOKEN_RE.search(t) or _says_expired(t) for t in _error_texts(body))


def _says_expired(text: str) -> bool:
    return bool(_EXPIRED_RE.search(text) and _CREDENTIAL_RE.search(text))


def _error_texts(body: Any) -> list[str]:
    nodes: list[Any] = [body]
    if isinstance(body, dict):
        nodes.append(body.get("error"))
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            nodes.append(errors[0])
    return [v for n in nodes if isinstance(n, dict) for k in _ERROR_KEYS if isinstance(v := n.get(k), str)]


def parse_retry_after(value: str | None, now: float) -> float:
    """Retry-After as seconds from `now` (delay-seconds or HTTP-date); -1 when absent or invalid."""
    if not value:
        return -1.0
    v = value.strip()
    if _DELAY_RE.fullmatch(v):
        return float(v)
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError, OverflowError):  # an unparsable date raises (it no longer returns None)
        return -1.0
    return max(0.0, when.timestamp() - now)


def transport_error_class(error: str | BaseException) -> str:
    """timeout | tls | dns | connect from an exception (its class names and causes) or a message."""
    if isinstance(error, str):
        if error in TRANSPORT_CLASSES:
            return error
        return _class_from_text(error.lower())
    seen: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and len(seen) < 8 and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    names = " ".join(c.__name__.lower() for x in seen for c in type(x).__mro__)
    if "dns" in names or "gaierror" in names:
        return o.DNS
    if "ssl" in names or "certificate" in names:
        return o.TLS
    if "timeout" in names:
        return o.TIMEOUT
    return _class_from_text(" ".join(str(x).lower() for x in seen))


def _class_from_text(text: str) -> str:
    if any(h in text for h in _DNS_HINTS):
        return o.DNS
    # aiohttp prints "ssl:default" in every connect error, so "ssl" alone is not a TLS hint here.
    if any(h in text.replace("ssl:default", "") for h in _TLS_HINTS):
        return o.TLS
    if any(h in text for h in _TIMEOUT_HINTS):
        return o.TIMEOUT
    return o.CONNECT
