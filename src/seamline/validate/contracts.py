"""Handoff contracts: compiled once from config, evaluated per exchange. Pure: no I/O.

Expressions are in `seamline.validate.expressions`, drift detection in `seamline.validate.drift`.

Data seen by expressions: `{"request": {method, path, headers, query, body},
"response": {status, headers, body}}`; header names are lower-case, bodies are parsed JSON or None.

JMESPath literals (the `jmespath` package's rules):
    response.body.status == 'succeeded'         raw string literal in single quotes
    response.status == `201`                    numbers, true/false/null need a JSON literal in backticks
    response.body.paid == `true`
    response.body.amount == request.body.amount field against field
    length(response.body.items) > `0`           functions
    response.headers."x-request-id" != `null`   quoted identifiers for names with dashes
    response.body.id != null                    WRONG: bare null is a field name (rejected at compile)
Truthiness: an assertion passes unless its value is false, null, '', [] or {} (0 is truthy).

Violation codes (stable, deduplicated, at most 50 per event):
    status:unexpected:<code>              status not in `status` (no list: any 2xx is expected)
    status:undocumented:<code>            an OpenAPI handoff: the operation documents no such status (nor default)
    schema:<pointer>:<keyword>            response body breaks response_schema, e.g. schema:/status:enum
    request:schema:<pointer>:<keyword>    request body breaks request_schema, e.g. request:schema:/amount:required
    body:not_json | body:empty            the contract needs the response body and it is not JSON / absent
    request:body:not_json | request:body:empty
    assert:<name> | assert_error:<name>   assertion falsy / raised
    echo:missing:<field> | echo:mismatch:<field>
    request:path|query|header:<name>:<keyword>, request:content_type:<type>, body:content_type:<type>
                                          an OpenAPI handoff's parameters and content types (validate/openapi)
    validator_error:<ExceptionName>       the validator itself failed (isolated; evaluate() never raises)
    request:validator_error:<ExceptionName>
<pointer> is the RFC 6901 pointer of the instance location ('' for the root) with array indices as
`*` (violations is a LowCardinality column); for `required` and `additionalProperties` it names the
offending property (schema:/email:required). Parse a code with `rsplit(':', 1)`.

Body checks (schema, echo, assertions that read a body, drift) run only when the status is expected:
a 404's error body is not held to the success schema. A response body over the capture cap cannot
be checked: `unvalidated_reason='body_truncated'`. Drift: `unknown_fields` lists response keys that the
schema's `properties`/`patternProperties` do not describe (recursing into described objects, arrays as
`items[]`; a level without `properties` or with a schema-valued `additionalProperties` is open);
`missing_fields` lists absent `required` fields as dotted paths.

Compile-time checks name file, handoff and field: invalid schema (draft 2020-12), an expression that
does not parse, and a path to nowhere: every path read from the root must start with
request.{method,path,headers,query,body} or response.{status,headers,body}, and a path into
response.body / request.body must start with a property the matching schema declares (when that
schema declares `properties` at its top level and is not open). Echo entries are plain dotted paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import jsonschema_rs
from jmespath.visitor import TreeInterpreter

from seamline import outcomes as o
from seamline.config.models import Contract
from seamline.validate.drift import MAX_DRIFT, shape_of, unknown_fields
from seamline.validate.expressions import (
    ContractError,
    fast_path,
    get_path,
    json_equal,
    parse_expression,
    plain_chain,
    root_chains,
    stringify,
    truthy,
)

if TYPE_CHECKING:
    # A parsed JMESPath expression as the stubs type it (a plain dict at run time: type, value, children).
    from jmespath.visitor import _TreeNode as _Node

MAX_VIOLATIONS: Final = 50
_SIDES: Final = {"request": ("method", "path", "headers", "query", "body"), "response": ("status", "headers", "body")}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a contract says about one exchange's response."""

    violations: list[str] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)
    unknown_fields: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)
    unvalidated_reason: str | None = None
    status_expected: bool = True  # the status is one the contract accepts

    @property
    def passed(self) -> bool:
        """No violation and everything could be checked."""
        return not self.violations and self.unvalidated_reason is None


@dataclass(frozen=True, slots=True)
class _Expr:
    name: str
    ast: _Node
    reads_body: bool
    fast: Callable[[Any], Any] | None = None  # same result as the interpreter, for simple shapes


class IsolatedEvaluation:
    """`evaluate` for a contract: its `_evaluate`, isolated so a validator that crashes is recorded, never raised."""

    def evaluate(
        self,
        req: dict[str, Any],
        resp: dict[str, Any],
        *,
        response_truncated: bool = False,
        response_not_json: bool = False,
        request_truncated: bool = False,
    ) -> Evaluation:
        """Status, schema, assertions, echo, extraction and drift for one response; never raises."""
        try:
            return self._evaluate(req, resp, response_truncated, response_not_json, request_truncated)
        except Exception as e:  # noqa: BLE001 - isolate the validator from traffic
            return Evaluation([o.VALIDATOR_ERROR + type(e).__name__], unvalidated_reason="validator_error")

    def _evaluate(
        self, req: dict[str, Any], resp: dict[str, Any], truncated: bool, not_json: bool, req_truncated: bool
    ) -> Evaluation:
        raise NotImplementedError


class CompiledContract(IsolatedEvaluation):
    """A handoff's contract, ready to check requests and evaluate responses."""

    def __init__(self, name: str, contract: Contract, source: str) -> None:
        self.name = name
        self.enforce = contract.enforce
        self.status = frozenset(contract.status) if contract.status is not None else None
        self._req_validator = _compile_schema(contract.request_schema, "request_schema", source, name)
        self._resp_validator = _compile_schema(contract.response_schema, "response_schema", source, name)
        self._req_shape = shape_of(contract.request_schema)
        self._resp_shape = shape_of(contract.response_schema)
        self._asserts = tuple(self._compile_expr(n, e, f"assert.{n}", source) for n, e in contract.assert_.items())
        self._extract = tuple(self._compile_expr(n, e, f"extract.{n}", source) for n, e in contract.extract.items())
        self._echo = tuple(self._compile_echo(f, source) for f in contract.echo)
        # Every `extract` is a plain field path into the response body (`response.body.id`): the IDs depend on the
        # response body's bytes alone, so the duplicate guard can compute them from a stored response when asked.
        self.extracts_response_body_only = all(
            (chain := plain_chain(x.ast)) is not None and chain[:2] == ["response", "body"] for x in self._extract
        )
        self._needs_body = self._resp_validator is not None or bool(self._echo) or any(a.reads_body for a in self._asserts)
        self._interp = TreeInterpreter()

    @property
    def has_request_schema(self) -> bool:
        return self._req_validator is not None

    @property
    def has_response_schema(self) -> bool:
        return self._resp_validator is not None

    # -- compile ---------------------------------------------------------------------------------

    def _compile_expr(self, label: str, expr: str, where: str, source: str) -> _Expr:
        ast = parse_expression(expr, where, source, self.name)
        reads_body = False
        for chain in root_chains(ast):
            problem = self._check_chain(chain)
            if problem:
                raise ContractError(source, self.name, where, f"{expr!r}: {problem}")
            reads_body = reads_body or chain[:2] in (["response", "body"], ["response"])
        return _Expr(label, ast, reads_body, fast_path(ast))

    def _check_chain(self, chain: list[str]) -> str | None:
        side = chain[0]
        if side in ("null", "true", "false"):
            return f"bare {side} is a field name in JMESPath; write the JSON literal `{side}` in backticks"
        if side not in _SIDES:
            return f"path starts at {side!r}; expressions see only `request` and `response`"
        if len(chain) > 1 and chain[1] not in _SIDES[side]:
            return f"{side}.{chain[1]} does not exist (use one of {', '.join(_SIDES[side])})"
        if len(chain) > 2 and chain[1] == "body":
            shape = self._req_shape if side == "request" else self._resp_shape
            if shape is not None and not shape.knows(chain[2]):
                known = ", ".join(sorted(shape.props)) or "none"
                return f"field {chain[2]!r} is not in {side}_schema properties (known: {known}); path to nowhere"
        return None

    def _search(self, x: _Expr, data: Any) -> Any:
        return x.fast(data) if x.fast is not None else self._interp.visit(x.ast, data)

    def _compile_echo(self, path: str, source: str) -> tuple[str, tuple[str, ...]]:
        where = f"echo.{path}"
        ast = parse_expression(path, where, source, self.name)
        chain = plain_chain(ast)
        if chain is None:
            raise ContractError(
                source, self.name, where, "an echo entry is a dotted field path such as `email` or `customer.email`"
            )
        for side, shape in (("request", self._req_shape), ("response", self._resp_shape)):
            if shape is not None and not shape.knows(chain[0]):
                raise ContractError(
                    source, self.name, where, f"field {chain[0]!r} is not in {side}_schema properties; path to nowhere"
                )
        return path, tuple(chain)

    # -- evaluate ---------------------------------------------------------------------------------

    def rejects(self, request_violations: list[str]) -> bool:
        """Should the proxy answer 422 instead of forwarding (enforce: request; validator crashes never reject)?"""
        return self.enforce == "request" and any(not v.startswith(o.REQUEST_VALIDATOR_ERROR) for v in request_violations)

    def check_request(self, req: dict[str, Any], *, not_json: bool = False, truncated: bool = False) -> list[str]:
        """Request-schema violations (a truncated body cannot be checked: [])."""
        if self._req_validator is None or truncated:
            return []
        if not_json:
            return [o.REQUEST_BODY + "not_json"]
        body = req.get("body")
        if body is None:
            return [o.REQUEST_BODY + "empty"]
        try:
            return _schema_violations(self._req_validator, body, o.REQUEST_SCHEMA)[0]
        except Exception as e:  # noqa: BLE001 - a validator crash is recorded, never raised into traffic
            return [o.REQUEST_VALIDATOR_ERROR + type(e).__name__]

    def _evaluate(
        self, req: dict[str, Any], resp: dict[str, Any], truncated: bool, not_json: bool, req_truncated: bool
    ) -> Evaluation:
        data = {"request": req, "response": resp}
        ids = self._external_ids(data)
        status = resp.get("status")
        expected = status in self.status if self.status is not None else isinstance(status, int) and 200 <= status < 300
        if not expected:
            return Evaluation([f"{o.STATUS_UNEXPECTED}{status}"], ids, status_expected=False)
        body = resp.get("body")
        state = "truncated" if truncated else "not_json" if not_json else "empty" if body is None else "json"
        violations: list[str] = []
        unknown: list[str] = []
        missing: list[str] = []
        reason: str | None = None
        if state == "json":
            if self._resp_validator is not None:
                violations, missing = _schema_violations(self._resp_validator, body, o.SCHEMA)
            if self._resp_shape is not None:
                unknown = unknown_fields(body, self._resp_shape)
            if req_truncated and self._echo:
                reason = "request_body_truncated"
            else:
                violations += self._echo_violations(req.get("body"), body)
        elif self._needs_body:
            reason = f"body_{state}"
            if state != "truncated":
                violations.append(o.BODY + state)
        for a in self._asserts:
            if a.reads_body and state != "json":
                continue
            try:
                if not truthy(self._search(a, data)):
                    violations.append(o.ASSERT + a.name)
            except Exception:  # noqa: BLE001 - e.g. a JMESPath type error on unexpected data
                violations.append(o.ASSERT_ERROR + a.name)
        return Evaluation(_dedupe(violations, MAX_VIOLATIONS), ids, unknown, missing, reason)

    def _external_ids(self, data: dict[str, Any]) -> dict[str, str]:
        return self.external_ids(data)

    def external_ids(self, data: dict[str, Any]) -> dict[str, str]:
        """The `extract` expressions over {request, response} (best effort: a failing one is left out)."""
        ids: dict[str, str] = {}
        for x in self._extract:
            try:
                v = self._search(x, data)
            except Exception:  # noqa: BLE001 - extraction is best effort
                continue
            if v is not None:
                ids[x.name] = stringify(v)
        return ids

    def _echo_violations(self, sent_body: Any, got_body: Any) -> list[str]:
        out: list[str] = []
        if not isinstance(sent_body, (dict, list)):
            return out
        for path, chain in self._echo:
            sent = get_path(sent_body, chain)
            if sent is None:
                continue  # not sent, nothing to come back
            got = get_path(got_body, chain)
            if got is None:
                out.append(o.ECHO_MISSING + path)
            elif not json_equal(sent, got):
                out.append(o.ECHO_MISMATCH + path)
        return out


def compile_contract(name: str, contract: Contract, source: str) -> CompiledContract:
    """Compile a handoff's contract; raises ContractError naming file, handoff and field."""
    return CompiledContract(name, contract, source)


# -- schema ---------------------------------------------------------------------------------------


def _compile_schema(schema: dict[str, Any] | None, where: str, source: str, handoff: str) -> Any:
    if schema is None:
        return None
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.Draft202012Validator(schema)
    except jsonschema_rs.ValidationError as e:
        loc = "".join(f"/{p}" for p in e.instance_path)
        raise ContractError(
            source, handoff, f"{where}{loc.replace('/', '.')}", f"invalid JSON Schema (2020-12): {e.message}"
        ) from None
    except Exception as e:  # noqa: BLE001 - referencing errors and the like
        raise ContractError(source, handoff, where, f"invalid JSON Schema (2020-12): {e}") from None


def _pointer(path: Any) -> str:
    return "".join("/*" if isinstance(p, int) else "/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _dotted(path: Any, leaf: str) -> str:
    out = ""
    for p in path:
        out += "[]" if isinstance(p, int) else f".{p}" if out else str(p)
    return f"{out}.{leaf}" if out else leaf


def _schema_violations(validator: Any, body: Any, prefix: str) -> tuple[list[str], list[str]]:
    """Violation codes and missing required fields (dotted)."""
    if validator.is_valid(body):
        return [], []
    codes: list[str] = []
    missing: list[str] = []
    for err in validator.iter_errors(body):
        kind = err.kind
        keyword = kind.name
        base = _pointer(err.instance_path)
        if keyword == "required":
            prop = str(kind.property)
            codes.append(f"{prefix}{base}{_pointer([prop])}:required")
            missing.append(_dotted(err.instance_path, prop))
        elif keyword == "additionalProperties":
            codes.extend(f"{prefix}{base}{_pointer([str(p)])}:additionalProperties" for p in kind.unexpected)
        else:
            codes.append(f"{prefix}{base}:{keyword}")
        if len(codes) >= MAX_VIOLATIONS:
            break
    return _dedupe(codes, MAX_VIOLATIONS), _dedupe(missing, MAX_DRIFT)


# -- drift ----------------------------------------------------------------------------------------


# -- JMESPath -------------------------------------------------------------------------------------


def _dedupe(items: list[str], limit: int) -> list[str]:
    if len(items) < 2:  # most evaluations: nothing to deduplicate (a fresh list all the same)
        return items[:limit]
    return list(dict.fromkeys(items))[:limit]
