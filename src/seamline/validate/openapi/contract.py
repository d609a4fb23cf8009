"""An OpenAPI operation as a handoff's contract: parameters, request body, documented statuses, response bodies.

Same interface as `CompiledContract` (`enforce`, `rejects`, `check_request`, `evaluate`; never raises into traffic),
and the config's own contract for the handoff, if any, composed in: its `assert`, `echo` and `extract` add to the
document's checks; its `status`, `request_schema` and `response_schema`, where given, replace the document's.

Request (codes under `request:`): path, query and header parameters, coerced from their string form to the declared
type first (`?limit=10` is the integer 10; arrays from repeated keys or commas; booleans from true/false) and checked
against their schemas (`request:query:limit:maximum`, `request:path:petId:type`, a required one absent:
`request:query:q:required`); the body against the schema of its content type (`request:schema:<pointer>:<keyword>`,
`request:body:empty` when the document requires one, `request:content_type:<type>` for a type it does not list).
Only JSON bodies are validated; form and multipart bodies are taken as they come.

Response: its status looked up as documented (`201`, then `2XX`, then `default`); none → `status:undocumented:<code>`
and the status counts as not expected (a 2xx then is a silent failure, an error status an http_error). A documented
status below 400 is expected. The body is validated against that status's schema for its content type, error
statuses included (`schema:…` codes; the outcome of a 404 stays http_error), a type the status does not list →
`body:content_type:<type>`; drift (`unknown_fields`, `missing_fields`) as for hand-written contracts.

Validators are compiled once per schema (`CompiledDocument.validator`), at load for a small document and on first
use for a large one: jsonschema-rs inlines every `$ref` target into each validator, and a large vendor document's
schemas reach each other (all of Stripe's 834 response schemas compiled: 25 s and 4.5 GB, one: ~50 ms and ~5 MB;
bench/openapi.py), so a workflow pays for the operations it calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote

import jsonschema_rs

from seamline import outcomes as o
from seamline.capture.bodies import is_json_type, parse_content_type
from seamline.validate.contracts import MAX_VIOLATIONS, CompiledContract, Evaluation, IsolatedEvaluation, _schema_violations
from seamline.validate.drift import MAX_DRIFT, Shape, shape_in, unknown_fields
from seamline.validate.openapi.document import OpenAPIDocument, Operation, Param

EAGER_OPERATIONS: Final = 100  # documents with at most this many operations compile every validator at load
_INT = re.compile(r"[+-]?\d+")
_PREFIX: Final = {"path": o.REQUEST_PATH, "query": o.REQUEST_QUERY, "header": o.REQUEST_HEADER}
_PARAM = re.compile(r"\{([^{}]*)\}")


class CompiledDocument:
    """One document's converted schemas registered once; validators and drift shapes made once per schema."""

    def __init__(self, doc: OpenAPIDocument, key: str) -> None:
        self.doc = doc
        self._uris = {"request": f"urn:seamline:openapi:{key}:request", "response": f"urn:seamline:openapi:{key}:response"}
        self._registry = jsonschema_rs.Registry(
            [(self._uris["request"], doc.request_schemas), (self._uris["response"], doc.response_schemas)],
            draft=jsonschema_rs.Draft202012,
        )
        self._validators: dict[tuple[str, str], Any] = {}
        self._shapes: dict[str, Shape | None] = {}
        self._shape_memo: dict[int, Shape | None] = {}

    def validator(self, direction: str, pointer: str) -> Any:
        key = (direction, pointer)
        v = self._validators.get(key)
        if v is None:
            ref = self._uris[direction] + "#" + quote(pointer[1:], safe="/~")
            v = self._validators[key] = jsonschema_rs.Draft202012Validator({"$ref": ref}, registry=self._registry)
        return v

    def shape(self, pointer: str) -> Shape | None:
        if pointer not in self._shapes:
            self._shapes[pointer] = shape_in(self.doc.response_schemas, pointer, self._shape_memo)
        return self._shapes[pointer]

    def compile_all(self) -> None:
        """Every validator now (a small document: its errors surface at load, its first calls pay nothing)."""
        for op in self.doc.operations:
            for p in op.params:
                if p.schema is not None:
                    self.validator("request", p.schema)
            for ptr in op.body.values():
                if ptr is not None:
                    self.validator("request", ptr)
            for content in op.responses.values():
                for ptr in content.values():
                    if ptr is not None:
                        self.validator("response", ptr)
                        self.shape(ptr)


def coerce(value: str, kind: str) -> Any:
    """A parameter's string as the declared type; left a string when it is not one (the schema then says so)."""
    if kind == "integer" and _INT.fullmatch(value):
        return int(value)
    if kind == "number":
        if _INT.fullmatch(value):
            return int(value)
        try:
            f = float(value)
        except ValueError:
            return value
        return f if math.isfinite(f) else value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def coerce_param(p: Param, values: list[str]) -> Any:
    if p.kind == "array":
        # form+explode (the query's default) repeats the key: ?tag=a&tag=b; the other styles join with commas
        items = values if p.location == "query" and p.explode else values[-1].split(",") if values[-1] else []
        return [coerce(x, p.item_kind) for x in items]
    return coerce(values[-1], p.kind)


def pick(content: dict[str, str | None], mime: str) -> tuple[bool, str | None]:
    """(is the content type documented, the pointer of its schema): exact type, then `type/*`, then `*/*`."""
    if not content:
        return False, None
    for key in (mime, mime.partition("/")[0] + "/*", "*/*"):
        if key in content:
            return True, content[key]
    if not mime and len(content) == 1:
        return True, next(iter(content.values()))
    return False, None


def _path_regex(template: str) -> tuple[re.Pattern[str], list[str]]:
    names: list[str] = []
    out, pos = [], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<p{len(names)}>[^/]+)")
        names.append(m.group(1))
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "/?$"), names


class OperationContract(IsolatedEvaluation):
    """A handoff's contract from its OpenAPI operation (plus the config's own, see the module docstring)."""

    def __init__(self, name: str, op: Operation, doc: CompiledDocument, inner: CompiledContract | None = None) -> None:
        self.name = name
        self.op = op
        self.doc = doc
        self.inner = inner
        self.enforce = inner.enforce if inner is not None else "record"
        self.status = inner.status if inner is not None else None
        self.extracts_response_body_only = inner is None or inner.extracts_response_body_only
        self._own_request_schema = inner is not None and inner.has_request_schema
        self._own_response_schema = inner is not None and inner.has_response_schema
        self._path_rx, self._path_names = _path_regex(op.path)
        self._reads = {loc: any(p.location == loc for p in op.params) for loc in ("query", "header")}

    def external_ids(self, data: dict[str, Any]) -> dict[str, str]:
        """The config's own `extract` expressions (an OpenAPI document declares no external IDs)."""
        return self.inner.external_ids(data) if self.inner is not None else {}

    def rejects(self, request_violations: list[str]) -> bool:
        return self.enforce == "request" and any(not v.startswith(o.REQUEST_VALIDATOR_ERROR) for v in request_violations)

    # -- request ----------------------------------------------------------------------------------------------------

    def check_request(self, req: dict[str, Any], *, not_json: bool = False, truncated: bool = False) -> list[str]:
        try:
            out = self._params(req)
            if self._own_request_schema:
                assert self.inner is not None
                out += self.inner.check_request(req, not_json=not_json, truncated=truncated)
            elif not truncated:
                out += self._body(req, not_json)
            return _dedupe(out, MAX_VIOLATIONS)
        except Exception as e:  # noqa: BLE001 - a validator crash is recorded, never raised into traffic
            return [o.REQUEST_VALIDATOR_ERROR + type(e).__name__]

    def _values(self, req: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
        # Per call on the proxy's path: only what the operation declares is read.
        found: dict[str, dict[str, list[str]]] = {"path": {}, "query": {}, "header": {}}
        if self._path_names:
            m = self._path_rx.match(str(req.get("path") or ""))
            if m is not None:
                for i, name in enumerate(self._path_names):
                    raw = m.group(f"p{i}")
                    found["path"][name] = [unquote(raw) if "%" in raw else raw]
        raw_query = req.get("raw_query")
        if raw_query and self._reads["query"]:
            for k, v in parse_qsl(str(raw_query), keep_blank_values=True):
                found["query"].setdefault(k, []).append(v)
        if self._reads["header"]:
            for k, v in (req.get("headers") or {}).items():
                found["header"][k] = [v]
        return found

    def _params(self, req: dict[str, Any]) -> list[str]:
        if not self.op.params:
            return []
        found = self._values(req)
        out: list[str] = []
        for p in self.op.params:
            prefix = _PREFIX.get(p.location)
            if prefix is None:
                continue  # cookies: not read
            values = found[p.location].get(p.name)
            if not values:
                if p.required:
                    out.append(f"{prefix}{p.name}:required")
                continue
            if p.schema is None or p.kind == "object":
                continue  # deepObject and friends: taken as they come
            value = coerce_param(p, values)
            v = self.doc.validator("request", p.schema)
            if not v.is_valid(value):
                err = next(iter(v.iter_errors(value)))
                out.append(f"{prefix}{p.name}:{err.kind.name}")
        return out

    def _body(self, req: dict[str, Any], not_json: bool) -> list[str]:
        body = req.get("body")
        headers = req.get("headers") or {}
        if body is None and not not_json:
            return [o.REQUEST_BODY + "empty"] if self.op.body_required and self.op.body else []
        if not self.op.body:
            return []
        mime, _ = parse_content_type(headers.get("content-type"))
        documented, ptr = pick(self.op.body, mime)
        if not documented:
            return [o.REQUEST_CONTENT_TYPE + (mime or "none")]
        if ptr is None or not (is_json_type(mime) or (not mime and not not_json)):
            return []
        if not_json:
            return [o.REQUEST_BODY + "not_json"]
        return _schema_violations(self.doc.validator("request", ptr), body, o.REQUEST_SCHEMA)[0]

    # -- response ---------------------------------------------------------------------------------------------------

    def status_key(self, status: Any) -> str | None:
        """The documented response a status falls under: '201', '2XX' or 'default'; None: undocumented."""
        responses = self.op.responses
        for key in (str(status), f"{str(status)[:1]}XX", "default"):
            if key in responses:
                return key
        return None

    def _evaluate(
        self, req: dict[str, Any], resp: dict[str, Any], truncated: bool, not_json: bool, req_truncated: bool
    ) -> Evaluation:
        status = resp.get("status")
        violations: list[str] = []
        unknown: list[str] = []
        missing: list[str] = []
        reason: str | None = None
        key = self.status_key(status)
        if self.status is not None:
            expected = status in self.status  # the config's own list decides
        elif key is None:
            violations.append(f"{o.STATUS_UNDOCUMENTED}{status}")
            expected = False
        else:
            expected = isinstance(status, int) and status < 400
        if key is not None and not self._own_response_schema:
            v, unknown, missing, reason = self._response_body(resp, self.op.responses[key], truncated, not_json, expected)
            violations += v
        ids: dict[str, str] = {}
        if self.inner is not None:
            ev = self.inner.evaluate(
                req, resp, response_truncated=truncated, response_not_json=not_json, request_truncated=req_truncated
            )
            own_status = self.status is not None
            violations += [v for v in ev.violations if own_status or not v.startswith(o.STATUS_UNEXPECTED)]
            ids = ev.external_ids
            if self._own_response_schema:
                unknown, missing = ev.unknown_fields, ev.missing_fields
            reason = reason or ev.unvalidated_reason
            if own_status:
                expected = ev.status_expected
        return Evaluation(_dedupe(violations, MAX_VIOLATIONS), ids, unknown, missing, reason, status_expected=expected)

    def _response_body(
        self, resp: dict[str, Any], content: dict[str, str | None], truncated: bool, not_json: bool, expected: bool
    ) -> tuple[list[str], list[str], list[str], str | None]:
        if not content:
            return [], [], [], None  # documented without a body (204, or a status the document says nothing about)
        body = resp.get("body")
        mime, _ = parse_content_type((resp.get("headers") or {}).get("content-type"))
        empty = body is None and not not_json
        if empty:
            return ([o.BODY + "empty"] if expected and not truncated else []), [], [], "body_truncated" if truncated else None
        documented, ptr = pick(content, mime)
        if not documented:
            return [o.BODY_CONTENT_TYPE + (mime or "none")], [], [], None
        if ptr is None or not (is_json_type(mime) or not mime):
            return [], [], [], None
        if truncated:
            return [], [], [], "body_truncated"
        if not_json:
            return [o.BODY + "not_json"], [], [], None
        violations, missing = _schema_violations(self.doc.validator("response", ptr), body, o.SCHEMA)
        shape = self.doc.shape(ptr)
        unknown = unknown_fields(body, shape) if shape is not None else []
        return violations, unknown, missing[:MAX_DRIFT], None


def _dedupe(items: Iterable[str], limit: int) -> list[str]:
    return list(dict.fromkeys(items))[:limit]
