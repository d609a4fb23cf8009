"""The validate stage on finished exchanges: Seamline's own answers are classified by their error class."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import proxy_config

from seamline import errors
from seamline.capture.bodies import RenderedBody
from seamline.exchange import Exchange
from seamline.validate.validator import Validator

EMPTY = RenderedBody("", empty=True)
CONTRACT = {"status": [201], "response_schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}


@pytest.fixture
def validator() -> Validator:
    handoffs = {
        "billing.charge": {"upstream": "billing", "match": "POST /v1/charges", "contract": CONTRACT},
        "billing.plain": {"upstream": "billing", "match": "GET /v1/plain"},
    }
    return Validator(proxy_config({"billing": "http://127.0.0.1:9"}, handoffs=handoffs))


def answered(err: errors.ProxyError, handoff: str = "billing.charge", **values: Any) -> Exchange:
    """An exchange Seamline answered itself, as the proxy leaves it (`_problem`): no upstream status."""
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="POST", handoff=handoff, **values)
    ex.error_class, ex.error_detail, ex.error_status = err.error_class, err.detail, err.status
    return ex


@pytest.mark.parametrize(
    ("err", "handoff", "cls"),
    [
        (errors.UnknownUpstream("nowhere"), "", "unknown_upstream"),
        (errors.Forbidden("127.0.0.1 is not public"), "billing.charge", "refused"),
        (errors.PayloadTooLarge("request body of 5000 bytes exceeds 1000"), "billing.charge", "too_large"),
        (errors.Unauthorized("send a configured token"), "", "unauthorized"),
        (errors.NotImplementedYet("Upgrade/WebSocket requests are not proxied yet"), "billing.charge", "not_implemented"),
        (errors.BadRequest("the request body ended before its Content-Length"), "billing.charge", "bad_request"),
    ],
)
def test_seamline_refusals_are_refused_and_never_judged_by_the_contract(
    validator: Validator, err: errors.ProxyError, handoff: str, cls: str
) -> None:
    evaluation, result, violations = validator.evaluate(answered(err, handoff), EMPTY, EMPTY)
    assert evaluation is None and violations == []
    assert result == ("refused", cls, -1.0)


def test_request_contract_rejection_stays_a_contract_violation(validator: Validator) -> None:
    err = errors.ContractRejected("the request breaks the contract", violations=["request:schema:/amount:type"])
    _, result, violations = validator.evaluate(answered(err, request_violations=["request:schema:/amount:type"]), EMPTY, EMPTY)
    assert result == ("contract_violation", "contract", -1.0)
    assert violations == ["request:schema:/amount:type"]


@pytest.mark.parametrize(
    ("err", "cls"),
    [
        (errors.UpstreamTimeout("upstream did not answer in time"), "timeout"),
        (errors.UpstreamError("cannot connect", "connect"), "connect"),
        (errors.UpstreamError("TLS handshake failed", "tls"), "tls"),
        (errors.UpstreamError("did not resolve", "dns"), "dns"),
    ],
)
def test_a_failed_upstream_answered_by_seamline_stays_a_transport_error(
    validator: Validator, err: errors.ProxyError, cls: str
) -> None:
    _, result, _ = validator.evaluate(answered(err), EMPTY, EMPTY)
    assert result == ("transport_error", cls, -1.0)


def test_a_client_gone_before_any_upstream_status_is_not_an_upstream_failure(validator: Validator) -> None:
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="GET", handoff="billing.plain", error_class="client_disconnected")
    assert validator.evaluate(ex, EMPTY, EMPTY)[1] == ("refused", "client_disconnected", -1.0)
    # Once the upstream answered, its status decides as usual.
    ex.status = 200
    assert validator.evaluate(ex, EMPTY, EMPTY)[1] == ("ok", "none", -1.0)
