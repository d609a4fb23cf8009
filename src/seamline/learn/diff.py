"""Schema drift: recorded traffic against a reference contract, per handoff. Pure (the references are compiled
contracts; reading the calls is `seamline.learn.source`'s).

For each call the upstream answered, the handoff's reference evaluates the recorded bodies again, as the sidecar
would today: fields seen that the schema does not declare (`unknown_field`), required fields that did not come
(`missing_field`), statuses the reference does not accept (`undocumented_status`). Each finding carries its count,
the share of the handoff's calls, first and last seen, and one example event ID (the most recent) to open with
`seamline trace`. A call whose body the record no longer holds (over the capture cap, or past `body_ttl_days`)
contributes the drift recorded when it was proxied.

The reference of a handoff is what `Validator(config).contracts` holds for it: its configured `contract` today, and
the operation of its upstream's OpenAPI document once `upstreams.<name>.openapi` derives contracts there (any
object with the same `evaluate()` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson

UNKNOWN_FIELD: Final = "unknown_field"
MISSING_FIELD: Final = "missing_field"
UNDOCUMENTED_STATUS: Final = "undocumented_status"
KINDS: Final = (UNKNOWN_FIELD, MISSING_FIELD, UNDOCUMENTED_STATUS)
_STATUS_PREFIX: Final = "status:"  # status:unexpected:<code> (contracts), status:undocumented:<code> (OpenAPI)


class Evaluated(Protocol):
    violations: list[str]
    unknown_fields: list[str]
    missing_fields: list[str]


class Reference(Protocol):
    """What a handoff's traffic is compared with (`CompiledContract`, an OpenAPI operation's contract)."""

    def evaluate(
        self,
        req: dict[str, Any],
        resp: dict[str, Any],
        *,
        response_truncated: bool = False,
        response_not_json: bool = False,
        request_truncated: bool = False,
    ) -> Any: ...


@dataclass
class Finding:
    kind: str
    item: str  # a dotted field path, or a status code
    count: int = 0
    example: str = ""  # event_id of the most recent call showing it…
    example_run: str = ""  # …and its run (`seamline trace RUN_ID`)
    first_seen: Any = None
    last_seen: Any = None

    def see(self, event_id: str, run_id: str, ts: Any) -> None:
        self.count += 1
        if self.last_seen is None or _key(ts) > _key(self.last_seen):
            self.last_seen, self.example, self.example_run = ts, event_id, run_id
        if self.first_seen is None or _key(ts) < _key(self.first_seen):
            self.first_seen = ts


def _key(ts: Any) -> str:
    return ts.isoformat() if isinstance(ts, datetime) else str(ts)


@dataclass
class HandoffDrift:
    name: str
    upstream: str
    reference: str  # contract | recorded | none
    calls: int = 0
    rechecked: int = 0  # calls evaluated again from their recorded bodies
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)

    def add(self, kind: str, item: str, row: dict[str, Any]) -> None:
        key = (kind, item)
        finding = self.findings.get(key)
        if finding is None:
            finding = self.findings[key] = Finding(kind, item)
        finding.see(str(row.get("event_id") or ""), str(row.get("run_id") or ""), row.get("ts"))

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings.values(), key=lambda f: (KINDS.index(f.kind), -f.count, f.item))


def _parsed(text: Any) -> tuple[Any, bool]:
    """(body, not_json) of a stored body ('' → None)."""
    if text in (None, ""):
        return None, False
    try:
        return orjson.loads(text), False
    except orjson.JSONDecodeError:
        return None, True


def _views(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The {request, response} an evaluation sees, rebuilt from a row, and whether the response body is not JSON."""
    parts = urlsplit(str(row.get("url") or ""))
    req_body, _ = _parsed(row.get("request_body"))
    resp_body, not_json = _parsed(row.get("response_body"))
    req = {
        "method": row.get("method") or "",
        "path": parts.path,
        # The content types pick an OpenAPI operation's schema; the other headers are not recorded for this.
        "headers": _content_type(row.get("request_content_type")),
        "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
        "raw_query": parts.query,
        "body": req_body,
    }
    resp = {"status": int(row.get("status") or 0), "headers": _content_type(row.get("response_content_type")), "body": resp_body}
    return req, resp, not_json


def _content_type(value: Any) -> dict[str, str]:
    return {"content-type": str(value)} if value else {}


def _body_gone(row: dict[str, Any]) -> bool:
    """The record no longer holds the whole response body: over the cap, or cleared by the body TTL."""
    return bool(row.get("response_truncated")) or (not row.get("response_body") and int(row.get("response_bytes") or 0) > 0)


class DriftReport:
    """Feed it recorded calls (`add`), read `handoffs`."""

    def __init__(self, references: Mapping[str, Reference]) -> None:
        self.references = references
        self.handoffs: dict[str, HandoffDrift] = {}

    def add(self, row: dict[str, Any]) -> None:
        name = str(row.get("handoff") or "")
        reference = self.references.get(name)
        drift = self.handoffs.get(name)
        if drift is None:
            kind = "contract" if reference is not None else "none"
            drift = self.handoffs[name] = HandoffDrift(name, str(row.get("upstream") or ""), kind)
        drift.calls += 1
        if reference is None or _body_gone(row):
            self._recorded(drift, row)
            return
        req, resp, not_json = _views(row)
        evaluation: Evaluated = reference.evaluate(
            req, resp, response_not_json=not_json, request_truncated=bool(row.get("request_truncated"))
        )
        drift.rechecked += 1
        for f in evaluation.unknown_fields:
            drift.add(UNKNOWN_FIELD, f, row)
        for f in evaluation.missing_fields:
            drift.add(MISSING_FIELD, f, row)
        for v in evaluation.violations:
            if v.startswith(_STATUS_PREFIX):
                drift.add(UNDOCUMENTED_STATUS, v.rsplit(":", 1)[1], row)

    def _recorded(self, drift: HandoffDrift, row: dict[str, Any]) -> None:
        """The drift the sidecar recorded with the call (against the contract it had then)."""
        for f in row.get("unknown_fields") or ():
            drift.add(UNKNOWN_FIELD, str(f), row)
        for f in row.get("missing_fields") or ():
            drift.add(MISSING_FIELD, str(f), row)
        for v in row.get("violations") or ():
            if str(v).startswith(_STATUS_PREFIX):
                drift.add(UNDOCUMENTED_STATUS, str(v).rsplit(":", 1)[1], row)

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def has_drift(self) -> bool:
        return any(d.findings for d in self.handoffs.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "handoffs": [
                {
                    "handoff": d.name,
                    "upstream": d.upstream,
                    "reference": d.reference,
                    "calls": d.calls,
                    "rechecked": d.rechecked,
                    "findings": [
                        {
                            "kind": f.kind,
                            "item": f.item,
                            "count": f.count,
                            "share": round(f.count / d.calls, 4) if d.calls else 0.0,
                            "example_event_id": f.example,
                            "example_run_id": f.example_run,
                            "first_seen": _key(f.first_seen),
                            "last_seen": _key(f.last_seen),
                        }
                        for f in d.sorted_findings()
                    ],
                }
                for d in sorted(self.handoffs.values(), key=lambda x: x.name)
            ]
        }
