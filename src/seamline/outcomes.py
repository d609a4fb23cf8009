"""The words Seamline records about a handoff: its outcome, its error class and its violation codes.

One vocabulary for everything that writes or reads them: classification (validate/classify.py,
validate/validator.py), the typed errors (errors.py), contracts (violation prefixes), the event's column docs
(event/columns.py), the generated dashboards and alert rules, `seamline runs`/`trace` and the run pages. The values
are stored in `handoffs` rows, so they never change; add new ones here and every reader sees them. Pure constants:
no imports from the rest of Seamline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, get_args

# -- outcomes (`handoffs.outcome`) ------------------------------------------------------------------------------------

OK: Final = "ok"
SILENT_FAILURE: Final = "silent_failure"  # 2xx (or an accepted status) whose contract failed
CONTRACT_VIOLATION: Final = "contract_violation"  # the request broke its contract
HTTP_ERROR: Final = "http_error"  # the upstream answered a status >= 400 its contract does not accept
TRANSPORT_ERROR: Final = "transport_error"  # no answer from the upstream: timeout, connect, TLS, DNS
UNVALIDATED: Final = "unvalidated"  # the contract could not run (body over the cap, validator crashed)
REFUSED: Final = "refused"  # Seamline answered itself; the upstream was not at fault (see SEAMLINE_REFUSAL_CLASSES)
# The duplicate guard answered with the response recorded for the same Idempotency-Key: the upstream was not called
# again. Neither a success nor a failure of its own (the first call's outcome is the one that counts).
REPLAYED: Final = "replayed"

Outcome = Literal[
    "ok", "silent_failure", "contract_violation", "http_error", "transport_error", "unvalidated", "refused", "replayed"
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)

# A call that was made and failed, in business terms (the "failed" of upstream health and business success).
FAILED_OUTCOMES: Final = (SILENT_FAILURE, CONTRACT_VIOLATION, HTTP_ERROR, TRANSPORT_ERROR)
# Failed at the HTTP or transport level (the numerator of an upstream's error rate).
ERROR_OUTCOMES: Final = (HTTP_ERROR, TRANSPORT_ERROR)
# A step of a run that did not succeed, whoever's fault it was: a refused call fails the run too.
RUN_FAILED_OUTCOMES: Final = (*FAILED_OUTCOMES, REFUSED)
# Calls whose business outcome is unknown: left out of every business rate (numerator and denominator).
NOT_JUDGED_OUTCOMES: Final = (UNVALIDATED, REFUSED, REPLAYED)

# -- error classes (`handoffs.error_class`) -----------------------------------------------------------------------------

NONE: Final = "none"
# The upstream did not answer.
TIMEOUT: Final = "timeout"
CONNECT: Final = "connect"
TLS: Final = "tls"
DNS: Final = "dns"
# The upstream answered an error status.
RATE_LIMITED: Final = "rate_limited"  # 429 (retry_after_s recorded)
AUTH: Final = "auth"  # 401 / 403
AUTH_EXPIRED: Final = "auth_expired"  # 401 / 403 saying the caller's token expired
CLIENT_ERROR: Final = "client_error"  # other 4xx
SERVER_ERROR: Final = "server_error"  # 5xx, or a malformed response
# The call broke its contract (request or response).
CONTRACT: Final = "contract"
# Seamline's own answers (its problem+json `error_class`, errors.py).
REFUSED_TARGET: Final = "refused"  # 403: not a configured upstream, or a private address not allowed
UNKNOWN_UPSTREAM: Final = "unknown_upstream"  # 404: no upstream by that name
BAD_REQUEST: Final = "bad_request"  # 400: malformed request
TOO_LARGE: Final = "too_large"  # 413: request body over server.max_request_body_bytes
UNAUTHORIZED: Final = "unauthorized"  # 401: missing or unknown Seamline client token
NOT_IMPLEMENTED: Final = "not_implemented"  # 501 (Upgrade/WebSocket was one; they are proxied now)
INTERNAL: Final = "internal"  # 500: Seamline itself failed (the base ProxyError)
CLIENT_TIMEOUT: Final = "client_timeout"  # the client sent its request body too slowly
CLIENT_DISCONNECTED: Final = "client_disconnected"  # the client went away before the exchange finished
LOOP_DETECTED: Final = "loop_detected"  # 508: the request already passed through this Seamline (its Via)
# The guards' refusals (seamline.guards): Seamline stopped the call before it reached the upstream.
DUPLICATE: Final = "duplicate"  # 409/422: same Idempotency-Key in flight, reused with another request, or not replayable
OUTCOME_UNKNOWN: Final = "outcome_unknown"  # 409: the first call's outcome is unknown (timeout after send): pause
GUARD_UNAVAILABLE: Final = "guard_unavailable"  # 503: the guard's shared store (Redis) is down and the policy is fail_closed
CIRCUIT_OPEN: Final = "circuit_open"  # 503: the upstream's circuit breaker is open
RATE_LIMITED_LOCALLY: Final = "rate_limited_locally"  # 429: the upstream's local rate limit had no token in max_wait
LOOP_SUSPECTED: Final = "loop_suspected"  # 429: the run called this handoff more often than loops.max_calls_per_run
OVERLOADED: Final = "overloaded"  # 503: a listener limit of Seamline's own (server.max_inflight_body_bytes)

ErrorClass = Literal[
    "none",
    "timeout",
    "connect",
    "tls",
    "dns",
    "rate_limited",
    "auth",
    "auth_expired",
    "client_error",
    "server_error",
    "contract",
    "refused",
    "unknown_upstream",
    "bad_request",
    "too_large",
    "unauthorized",
    "not_implemented",
    "internal",
    "client_timeout",
    "client_disconnected",
    "loop_detected",
    "duplicate",
    "outcome_unknown",
    "guard_unavailable",
    "circuit_open",
    "rate_limited_locally",
    "loop_suspected",
    "overloaded",
]
ERROR_CLASSES: Final[tuple[ErrorClass, ...]] = get_args(ErrorClass)

TRANSPORT_CLASSES: Final = frozenset({TIMEOUT, CONNECT, TLS, DNS})
HTTP_CLASSES: Final = frozenset({RATE_LIMITED, AUTH, AUTH_EXPIRED, CLIENT_ERROR, SERVER_ERROR})
AUTH_CLASSES: Final = frozenset({AUTH, AUTH_EXPIRED})
# The one decision rule for outcome `refused`: a handoff without an upstream status whose error class is one of
# these was Seamline's doing (or the client's), never the upstream's. The 422 of `enforce: request` is not here
# (it stays contract_violation), nor are the transport classes of a 502/504 Seamline sends for a failed upstream.
SEAMLINE_REFUSAL_CLASSES: Final = frozenset(
    {REFUSED_TARGET, UNKNOWN_UPSTREAM, BAD_REQUEST, TOO_LARGE, UNAUTHORIZED, NOT_IMPLEMENTED, INTERNAL,
     CLIENT_TIMEOUT, CLIENT_DISCONNECTED, LOOP_DETECTED, DUPLICATE, OUTCOME_UNKNOWN, GUARD_UNAVAILABLE, CIRCUIT_OPEN,
     RATE_LIMITED_LOCALLY, LOOP_SUSPECTED, OVERLOADED}
)  # fmt: skip
UPSTREAM_CLASSES: Final = TRANSPORT_CLASSES | HTTP_CLASSES

GUARD_CLASSES: Final = frozenset(
    {DUPLICATE, OUTCOME_UNKNOWN, GUARD_UNAVAILABLE, CIRCUIT_OPEN, RATE_LIMITED_LOCALLY, LOOP_SUSPECTED}
)

# -- guard decisions (`handoffs.guard`): what a guard did to this call ('' = no guard acted) ---------------------------

GUARD_REPLAYED: Final = "replayed"  # duplicate of a finished call: its recorded response returned, upstream not called
GUARD_BLOCKED_IN_FLIGHT: Final = "blocked_in_flight"  # 409 idempotency-in-flight
GUARD_BLOCKED_UNKNOWN: Final = "blocked_unknown"  # 409 outcome-unknown (the first call's outcome is unknown)
GUARD_KEY_REUSED: Final = "key_reused"  # 422 idempotency-key-reused (same key, another request)
GUARD_OUTCOME_KNOWN: Final = "outcome_known"  # 409 outcome-known (finished, but its response was too large to keep)
GUARD_KEY_MISSING: Final = "key_missing"  # 400: dedup.require_key and no key
GUARD_STORE_DOWN_OPEN: Final = "store_down_forwarded"  # the guard store was down; fail_open forwarded the call
GUARD_STORE_DOWN_CLOSED: Final = "store_down_refused"  # the guard store was down; fail_closed answered 503
GUARD_CIRCUIT_OPEN: Final = "circuit_open"  # 503 circuit-open
GUARD_CIRCUIT_PROBE: Final = "circuit_probe"  # let through as a half-open probe
GUARD_RATE_LIMITED: Final = "rate_limited"  # 429 rate-limited-locally
GUARD_RATE_QUEUED: Final = "rate_queued"  # waited for a token (guard_wait_ms) and was forwarded
GUARD_LOOP_BLOCKED: Final = "loop_blocked"  # 429 loop-suspected (loops.block)
GUARD_RETRIED: Final = "retried"  # this attempt failed and the sidecar sent another one

GuardDecision = Literal[
    "",
    "replayed",
    "blocked_in_flight",
    "blocked_unknown",
    "key_reused",
    "outcome_known",
    "key_missing",
    "store_down_forwarded",
    "store_down_refused",
    "circuit_open",
    "circuit_probe",
    "rate_limited",
    "rate_queued",
    "loop_blocked",
    "retried",
]
GUARD_DECISIONS: Final[tuple[GuardDecision, ...]] = get_args(GuardDecision)
# Duplicates the guard kept from reaching the upstream (the "duplicates prevented" recovery metric).
DUPLICATES_PREVENTED: Final = (
    GUARD_REPLAYED,
    GUARD_BLOCKED_IN_FLIGHT,
    GUARD_BLOCKED_UNKNOWN,
    GUARD_KEY_REUSED,
    GUARD_OUTCOME_KNOWN,
)

# -- violation codes (`handoffs.violations`, see validate/contracts.py for their full form) ---------------------------

STATUS_UNEXPECTED: Final = "status:unexpected:"  # status:unexpected:<code>
STATUS_UNDOCUMENTED: Final = "status:undocumented:"  # status:undocumented:<code> (not in the handoff's OpenAPI operation)
SCHEMA: Final = "schema:"  # schema:<pointer>:<keyword>
REQUEST: Final = "request:"  # every request-side code starts so
REQUEST_SCHEMA: Final = "request:schema:"
REQUEST_BODY: Final = "request:body:"  # request:body:not_json | request:body:empty
REQUEST_VALIDATOR_ERROR: Final = "request:validator_error:"
# OpenAPI operations: request:path|query|header:<name>:<keyword> (a required one absent: …:required)
REQUEST_PATH: Final = "request:path:"
REQUEST_QUERY: Final = "request:query:"
REQUEST_HEADER: Final = "request:header:"
REQUEST_CONTENT_TYPE: Final = "request:content_type:"  # a request body type the operation does not list
BODY_CONTENT_TYPE: Final = "body:content_type:"  # a response body type the documented status does not list
BODY: Final = "body:"  # body:not_json | body:empty
ASSERT: Final = "assert:"
ASSERT_ERROR: Final = "assert_error:"
ECHO_MISSING: Final = "echo:missing:"
ECHO_MISMATCH: Final = "echo:mismatch:"
VALIDATOR_ERROR: Final = "validator_error:"  # the validator itself failed: says nothing about the call


def sql_list(values: Iterable[str]) -> str:
    """`('a', 'b')` for an SQL `IN`: only for the constants above (they hold no quotes)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def doc_list(values: Iterable[str]) -> str:
    """`a | b | c`: how column docs list the values."""
    return " | ".join(values)
