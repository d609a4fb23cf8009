"""Validate stage: the handoff's contract → outcome, error class, violations, external IDs, drift.

Works on the captured (capped) bodies after the response was relayed, unless the handoff sets
`enforce: request`, in which case `check_request()` runs before forwarding (422 on violation).
A validator that raises is isolated by `CompiledContract.evaluate()` and recorded as such.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from seamline.capture.bodies import RenderedBody, decode_content, is_json_type, parse_content_type
from seamline.config.loader import ConfigError
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.outcomes import GUARD_REPLAYED, NONE, REPLAYED, SEAMLINE_REFUSAL_CLASSES
from seamline.validate.classify import Classification, classify, classify_own_answer
from seamline.validate.contracts import CompiledContract, Evaluation, compile_contract
from seamline.validate.expressions import ContractError
from seamline.validate.openapi.contract import EAGER_OPERATIONS, CompiledDocument, OperationContract
from seamline.validate.openapi.derive import openapi_specs


def _lower(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        kl = k.lower()
        out[kl] = f"{out[kl]}, {v}" if kl in out else v
    return out


class Validator:
    """Compiled contracts by handoff name; built once at start-up (errors name file, handoff, field)."""

    def __init__(self, config: Config, source: str = "seamline.yaml") -> None:
        self.config = config
        self.contracts: dict[str, CompiledContract | OperationContract] = {}
        for name, h in config.handoffs.items():
            if h.contract is None or isinstance(h.contract, str):
                continue
            try:
                self.contracts[name] = compile_contract(name, h.contract, source)
            except ContractError as e:
                raise ConfigError(str(e)) from None
        self._openapi_contracts(config, source)
        self._enforced = {n for n, c in self.contracts.items() if c.enforce == "request"}

    def _openapi_contracts(self, config: Config, source: str) -> None:
        """Handoffs bound to an OpenAPI operation: the operation's contract, the config's own composed in."""
        specs = openapi_specs(config)
        self.documents = {up: CompiledDocument(doc, up) for up, doc in specs.documents.items()}
        for up, compiled in self.documents.items():
            if len(compiled.doc.operations) <= EAGER_OPERATIONS:
                try:
                    compiled.compile_all()
                except Exception as e:  # noqa: BLE001 - jsonschema-rs refuses a schema: a config error naming it
                    where = f"{source}: upstreams.{up}.openapi: {compiled.doc.file}"
                    raise ConfigError(f"{where}: a schema does not compile: {e}") from None
        for name in specs.bindings:
            op = specs.operation(name)
            assert op is not None
            inner = self.contracts.get(name)
            assert inner is None or isinstance(inner, CompiledContract)
            self.contracts[name] = OperationContract(name, op, self.documents[specs.bindings[name][0]], inner)

    def enforces_request(self, handoff: str) -> bool:
        return handoff in self._enforced

    def enforces_parameters(self, handoff: str) -> bool:
        """Is a request without a body checked before forwarding too (an OpenAPI operation's parameters)?"""
        return handoff in self._enforced and isinstance(self.contracts[handoff], OperationContract)

    def rejects(self, handoff: str, request_violations: list[str]) -> bool:
        """The live path's 422 decision: the contract's own (`CompiledContract.rejects`), never a validator crash."""
        contract = self.contracts.get(handoff)
        return contract is not None and contract.rejects(request_violations)

    def request_view(self, ex: Exchange, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        target = ex.target
        return {
            "method": ex.method,
            "path": target.path if target else "",
            "headers": _lower(ex.request_headers) if headers is None else headers,
            "query": dict(parse_qsl(target.query, keep_blank_values=True)) if target and target.query else {},
            "raw_query": target.query if target else "",  # OpenAPI array parameters repeat keys; not seen by expressions
            "body": body,
        }

    def extracts_response_body_only(self, handoff: str) -> bool:
        """Do the handoff's external IDs depend on its response body alone (or is there nothing to extract)?"""
        contract = self.contracts.get(handoff)
        return contract is None or contract.extracts_response_body_only

    def external_ids(self, ex: Exchange, request_body: Any, response_body: Any) -> dict[str, str]:
        """The handoff's external IDs from parsed bodies (the duplicate guard names them in its 409s)."""
        contract = self.contracts.get(ex.handoff)
        if contract is None:
            return {}
        response = {"status": ex.status, "headers": _lower(ex.response_headers), "body": response_body}
        return contract.external_ids({"request": self.request_view(ex, request_body), "response": response})

    def check_request(self, ex: Exchange, request: Any = None) -> list[str]:
        """Request-schema violations of the (fully captured) request body, for `enforce: request`."""
        contract = self.contracts.get(ex.handoff)
        tap = ex.request_tap
        if contract is None or tap is None:
            return []
        headers = _lower(ex.request_headers)
        decoded = decode_content(tap.data, headers.get("content-encoding"), max(tap.cap, 1) * 4)
        body, not_json = None, False
        if decoded.data:
            try:
                body = orjson.loads(decoded.data)
            except orjson.JSONDecodeError:
                not_json = True
        return contract.check_request(self.request_view(ex, body, headers), not_json=not_json, truncated=tap.truncated)

    def evaluate(
        self,
        ex: Exchange,
        req_body: RenderedBody,
        resp_body: RenderedBody,
        *,
        req_headers: dict[str, str] | None = None,
        resp_headers: dict[str, str] | None = None,
    ) -> tuple[Evaluation | None, Classification, list[str]]:
        """(evaluation, classification, request violations) for a finished exchange.

        `req_headers`/`resp_headers`: the exchange's headers lower-cased as `_lower` makes them, when the caller has
        them already (the event build reads each header list once); they are only read.
        """
        contract = self.contracts.get(ex.handoff)
        if resp_headers is None:
            resp_headers = _lower(ex.response_headers)
        transport = ex.error_class if (ex.status == 0 and ex.error_class != NONE) else None
        evaluation: Evaluation | None = None
        req_violations = list(ex.request_violations)
        enforce = contract.enforce if contract is not None else "record"
        if contract is not None and ex.status:
            if req_headers is None:
                req_headers = _lower(ex.request_headers)
            req = self.request_view(ex, req_body.parsed_json if req_body.is_json else None, req_headers)
            if not req_violations:
                req_violations = contract.check_request(
                    req, not_json=_not_json(req_body, req_headers), truncated=req_body.truncated
                )
            resp = {
                "status": ex.status,
                "headers": resp_headers,
                "body": resp_body.parsed_json if resp_body.is_json else None,
            }
            evaluation = contract.evaluate(
                req,
                resp,
                response_truncated=resp_body.truncated,
                response_not_json=_not_json(resp_body, resp_headers),
                request_truncated=req_body.truncated,
            )
        if ex.guard == GUARD_REPLAYED:
            # The duplicate guard answered with the first call's response: that call's outcome is the one that counts.
            return evaluation, Classification(REPLAYED, NONE, -1.0), req_violations
        if not ex.status and (ex.error_status or ex.error_class in SEAMLINE_REFUSAL_CLASSES):
            # Seamline answered itself (refused, unknown upstream, 422, a 504 for a silent upstream…), or gave up on
            # the client before any upstream status: the error class decides, not the status.
            return None, classify_own_answer(ex.error_class, ex.error_status), req_violations
        body = resp_body.parsed_json if resp_body.is_json else None
        result = classify(ex.status or None, resp_headers, transport, evaluation, req_violations, enforce, body=body)
        return evaluation, result, req_violations


def _not_json(body: RenderedBody, headers: dict[str, str]) -> bool:
    """Did a body that should be JSON fail to be (headers lower-cased)?"""
    if body.empty or body.is_json:
        return False
    mime, _ = parse_content_type(headers.get("content-type"))
    return body.json_error is not None or is_json_type(mime) or (not body.binary and (bool(body.text) or body.withheld))
