"""The handoff event: one row of the `handoffs` table, built once per proxied call.

An event is a plain dict keyed by column name whose values are JSON-serialisable
primitives (so the spool can write it without a custom encoder):

- `event_id`: UUID string; `ts`: start time as integer microseconds since the Unix epoch (UTC);
- maps are `dict[str, str]`, arrays `list[str]`, flags `bool`, numbers `int`/`float`.

`COLUMNS` is the single source of truth for names, ClickHouse types and defaults; the
DDL in `seamline.record.schema` is generated from it.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from seamline.outcomes import ERROR_CLASSES, GUARD_DECISIONS, NONE, OUTCOMES, doc_list


class Column(NamedTuple):
    name: str
    ch_type: str
    default: Any
    doc: str
    body: bool = False  # governed by the (shorter) body TTL
    since: int = 1  # the schema migration that added it (seamline.record.schema adds it to older tables)


COLUMNS: Final[tuple[Column, ...]] = (
    Column("event_id", "UUID", "", "Unique event ID (UUIDv7)."),
    Column("ts", "DateTime64(6, 'UTC')", 0, "Start of the call (µs since epoch when built)."),
    Column("run_id", "String", "", "Workflow run ID (X-Run-ID), kept across hops."),
    Column("run_id_source", "LowCardinality(String)", "", "header | correlation | baggage | generated | replaced"),
    Column("trace_id", "String", "", "W3C trace-id (32 hex)."),
    Column("span_id", "String", "", "Span ID of Seamline's CLIENT span (sent upstream as parent-id)."),
    Column("parent_span_id", "String", "", "Span ID of the caller (from its traceparent), '' if none."),
    Column("tenant", "LowCardinality(String)", "", "Tenant (X-Seamline-Tenant)."),
    Column("source_app", "LowCardinality(String)", "", "Calling app (X-Seamline-App or client token)."),
    Column("handoff", "LowCardinality(String)", "", "Handoff name, or <upstream>.other."),
    Column("upstream", "LowCardinality(String)", "", "Upstream name."),
    Column("step", "LowCardinality(String)", "", "Workflow step label."),
    Column("mode", "LowCardinality(String)", "", "reverse | forward | connect | websocket"),
    Column("attempt", "UInt16", 1, "Attempt number (X-Seamline-Attempt or Idempotency-Key repeats)."),
    Column("idempotency_key", "String", "", "Idempotency-Key header if sent."),
    Column("safety", "LowCardinality(String)", "", "safe_to_repeat | safe_once | never_repeat"),
    Column("method", "LowCardinality(String)", "", "HTTP method."),
    Column("url", "String", "", "Upstream URL, query secrets redacted."),
    Column("route", "LowCardinality(String)", "", "Matched path template, e.g. /contacts/{id}."),
    Column("status", "UInt16", 0, "Upstream HTTP status (0: no response)."),
    Column("duration_ms", "Float64", 0.0, "Total time until the response body was relayed."),
    Column("ttfb_ms", "Float64", 0.0, "Time to the upstream's response headers."),
    Column("outcome", "LowCardinality(String)", "", doc_list(OUTCOMES)),
    Column("error_class", "LowCardinality(String)", NONE, doc_list(ERROR_CLASSES)),
    Column("error_detail", "String", "", "Short human-readable error text (redacted)."),
    Column("violations", "Array(LowCardinality(String))", [], "Stable violation codes, e.g. schema:/amount:type."),
    Column("unknown_fields", "Array(String)", [], "Response fields the contract schema does not know (drift)."),
    Column("missing_fields", "Array(String)", [], "Required response fields that were missing (drift)."),
    Column("external_ids", "Map(LowCardinality(String), String)", {}, "Extracted external IDs, e.g. charge_id."),
    Column("retry_after_s", "Float64", -1.0, "Retry-After in seconds (-1: none)."),
    Column("request_headers", "Map(LowCardinality(String), String)", {}, "Request headers as sent upstream, redacted.", True),
    Column("response_headers", "Map(LowCardinality(String), String)", {}, "Response headers, redacted.", True),
    Column("request_body", "String", "", "Captured request body (capped, redacted, decoded).", True),
    Column("response_body", "String", "", "Captured response body (capped, redacted, decoded).", True),
    Column("request_content_type", "LowCardinality(String)", "", "Request Content-Type."),
    Column("response_content_type", "LowCardinality(String)", "", "Response Content-Type."),
    Column("request_bytes", "UInt64", 0, "True request body size on the wire."),
    Column("response_bytes", "UInt64", 0, "True response body size on the wire."),
    Column("request_truncated", "Bool", False, "Request body larger than the capture cap."),
    Column("response_truncated", "Bool", False, "Response body larger than the capture cap."),
    Column("proxy_instance", "LowCardinality(String)", "", "Seamline instance that handled the call."),
    Column("attributes", "Map(LowCardinality(String), String)", {}, "Free-form extras (e.g. run_id_invalid, tunnel bytes)."),
    # The guards (schema version 2).
    Column("guard", "LowCardinality(String)", "", "What a guard did: " + doc_list(g for g in GUARD_DECISIONS if g), since=2),
    Column("loop_suspected", "Bool", False, "The run called this handoff more than loops.max_calls_per_run.", since=2),
    Column("retry_of", "String", "", "event_id of the first attempt this one retries ('' for a first attempt).", since=2),
    Column("replay_of", "String", "", "event_id of the event `seamline replay` re-sent ('' otherwise).", since=2),
    Column("guard_wait_ms", "Float64", 0.0, "Time the call waited in a guard (the local rate limit's queue).", since=2),
)

COLUMN_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in COLUMNS)


_DEFAULTS: Final[dict[str, Any]] = {c.name: c.default for c in COLUMNS}
_NAMES: Final[frozenset[str]] = frozenset(COLUMN_NAMES)
_CONTAINERS: Final[tuple[str, ...]] = tuple(c.name for c in COLUMNS if isinstance(c.default, (list, dict)))


def new_event(**values: Any) -> dict[str, Any]:
    """An event dict with every column present (defaults filled, fresh containers)."""
    if not _NAMES.issuperset(values):
        raise KeyError(f"unknown event columns: {sorted(set(values) - _NAMES)}")
    ev = _DEFAULTS.copy()
    for name in _CONTAINERS:
        if name not in values:
            ev[name] = ev[name].copy()
    ev.update(values)
    return ev
