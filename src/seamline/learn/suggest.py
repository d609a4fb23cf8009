"""Contracts suggested from recorded calls: group the calls by handoff, learn each one's schemas. Pure.

A call teaches its handoff only when it went well and its bodies are whole: outcome `ok` (so it passed the
contract configured when it was recorded, if any), a JSON body that was not truncated by the capture cap. Calls
recorded as `<upstream>.other` (no handoff matched) are grouped by method and templated path (`seamline.learn.paths`)
into handoffs to add.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from seamline import outcomes as o
from seamline.config.models import Config, Handoff
from seamline.learn.infer import Inferred, SchemaLearner
from seamline.learn.paths import operation_slug, relative_path, template_path

OTHER: Final = "other"
# Default step safety from the method (as the OpenAPI loader derives it): a POST/PATCH sent with an
# Idempotency-Key is safe once.
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def default_safety(method: str, idempotency_key_seen: bool) -> str:
    if method in _SAFE_METHODS:
        return "safe_to_repeat"
    return "safe_once" if idempotency_key_seen else "never_repeat"


@dataclass
class HandoffTraffic:
    """Everything learned about one handoff from its calls."""

    name: str
    upstream: str
    method: str
    template: str
    configured: Handoff | None = None
    calls: int = 0
    learned_from: int = 0  # ok calls with a whole JSON response body
    skipped: Counter[str] = field(default_factory=Counter)  # why a call taught nothing: truncated, not_json, ...
    statuses: Counter[int] = field(default_factory=Counter)  # of the ok calls
    idempotency_keys: int = 0
    response: SchemaLearner = field(default_factory=SchemaLearner)  # every ok status together (the contract's)
    by_status: dict[int, SchemaLearner] = field(default_factory=dict)  # one per status (the OpenAPI document's)
    request: SchemaLearner = field(default_factory=SchemaLearner)
    request_type: Counter[str] = field(default_factory=Counter)
    response_type: Counter[str] = field(default_factory=Counter)

    @property
    def safety(self) -> str:
        if self.configured is not None:
            return self.configured.safety
        return default_safety(self.method, self.idempotency_keys > 0)

    def response_schema(self) -> Inferred | None:
        return self.response.result() if self.response.samples else None

    def request_schema(self) -> Inferred | None:
        """Only when every call it learned from sent a JSON body: a schema would flag the others `request:body:empty`."""
        return self.request.result() if self.request.samples and self.request.samples == self.learned_from else None


def _json_body(text: Any, truncated: bool) -> tuple[Any, str | None]:
    """(parsed body, why not) of a stored body."""
    if truncated:
        return None, "truncated"
    if text in (None, ""):
        return None, "empty"
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError:
        return None, "not_json"


def _mime(value: Any) -> str:
    return str(value or "").split(";", 1)[0].strip().lower()


class TrafficGrouper:
    """Feed it recorded calls (`add`), read `handoffs`."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config
        self.handoffs: dict[str, HandoffTraffic] = {}

    def _base_path(self, upstream: str) -> str:
        up = self.config.upstreams.get(upstream) if self.config else None
        return up.url.path if up is not None else ""

    def _traffic(self, row: dict[str, Any]) -> HandoffTraffic:
        name, upstream, method = str(row["handoff"]), str(row["upstream"]), str(row["method"])
        if name == f"{upstream}.{OTHER}" or not name:
            template = template_path(relative_path(str(row.get("url") or ""), self._base_path(upstream)))
            name = f"{upstream}.{operation_slug(method, template)}"
            known = self.handoffs.get(name)
            if known is not None:
                return known
            traffic = HandoffTraffic(name, upstream, method, template)
        else:
            known = self.handoffs.get(name)
            if known is not None:
                return known
            configured = self.config.handoffs.get(name) if self.config else None
            if configured is not None:
                method = method if configured.method == "*" else configured.method
                template = configured.path_template
            else:
                template = str(row.get("route") or "") or template_path(
                    relative_path(str(row.get("url") or ""), self._base_path(upstream))
                )
            traffic = HandoffTraffic(name, upstream, method, template, configured)
        self.handoffs[name] = traffic
        return traffic

    def add(self, row: dict[str, Any]) -> None:
        traffic = self._traffic(row)
        traffic.calls += 1
        if row.get("outcome") != o.OK:
            traffic.skipped[str(row.get("outcome") or "unknown")] += 1
            return
        body, why = _json_body(row.get("response_body"), bool(row.get("response_truncated")))
        if why is not None:
            traffic.skipped[f"response {why}"] += 1
            return
        status = int(row["status"])
        traffic.learned_from += 1
        traffic.statuses[status] += 1
        traffic.response.add(body)
        traffic.by_status.setdefault(status, SchemaLearner()).add(body)
        traffic.response_type[_mime(row.get("response_content_type")) or "application/json"] += 1
        if row.get("idempotency_key"):
            traffic.idempotency_keys += 1
        request, why = _json_body(row.get("request_body"), bool(row.get("request_truncated")))
        if why is None:
            traffic.request.add(request)
            traffic.request_type[_mime(row.get("request_content_type")) or "application/json"] += 1

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.add(row)
