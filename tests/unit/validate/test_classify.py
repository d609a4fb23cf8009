"""Outcome, error class and Retry-After of one handoff."""

from __future__ import annotations

import socket
import ssl
import time
from email.utils import formatdate
from typing import Any

import pytest

from seamline import errors
from seamline.config.models import Contract
from seamline.validate.classify import (
    Classification,
    classify,
    classify_own_answer,
    parse_retry_after,
    token_expired,
    transport_error_class,
)
from seamline.validate.contracts import Evaluation, compile_contract

NOW = float(int(time.time()))  # whole seconds: an HTTP date has no finer resolution
PASSED = Evaluation()


def run(
    status: int | None,
    headers: dict[str, str] | None = None,
    *,
    transport: str | BaseException | None = None,
    ev: Evaluation | None = None,
    req_violations: list[str] | None = None,
    enforce: str = "record",
    body: object = None,
) -> Classification:
    return classify(status, headers or {}, transport, ev, req_violations or [], enforce, body=body, now=NOW)


def test_2xx_without_contract_is_ok() -> None:
    assert run(200) == ("ok", "none", -1.0)


def test_2xx_with_a_passing_contract_is_ok() -> None:
    assert run(201, ev=PASSED) == ("ok", "none", -1.0)


def test_2xx_whose_contract_fails_is_a_silent_failure() -> None:
    assert run(200, ev=Evaluation(["assert:payment_succeeded"])) == ("silent_failure", "contract", -1.0)


def test_unexpected_2xx_status_is_a_silent_failure() -> None:
    assert run(200, ev=Evaluation(["status:unexpected:200"], status_expected=False)).outcome == "silent_failure"


def test_2xx_whose_contract_could_not_run_is_unvalidated() -> None:
    assert run(200, ev=Evaluation(unvalidated_reason="body_truncated")) == ("unvalidated", "none", -1.0)


def test_validator_crash_alone_is_unvalidated_not_a_failure() -> None:
    ev = Evaluation(["validator_error:RuntimeError"], unvalidated_reason="validator_error")
    assert run(200, ev=ev).outcome == "unvalidated"


@pytest.mark.parametrize(
    ("status", "cls"), [(400, "client_error"), (404, "client_error"), (500, "server_error"), (503, "server_error")]
)
def test_http_errors_are_classed_by_status(status: int, cls: str) -> None:
    assert run(status) == ("http_error", cls, -1.0)


def test_http_error_wins_over_the_contracts_status_violation() -> None:
    assert run(500, ev=Evaluation(["status:unexpected:500"], status_expected=False)) == ("http_error", "server_error", -1.0)


def test_error_status_the_contract_lists_follows_the_contract() -> None:
    assert run(404, ev=PASSED) == ("ok", "none", -1.0)


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth(status: int) -> None:
    assert run(status, {"www-authenticate": 'Bearer realm="api"'}) == ("http_error", "auth", -1.0)


def test_401_with_invalid_token_challenge_is_auth_expired() -> None:
    h = {"www-authenticate": 'Bearer realm="api", error="invalid_token", error_description="The access token expired"'}
    assert run(401, h) == ("http_error", "auth_expired", -1.0)


def test_401_with_expired_description_only_is_auth_expired() -> None:
    assert run(401, {"www-authenticate": 'Bearer error_description="token expired"'}).error_class == "auth_expired"


@pytest.mark.parametrize(
    "body",
    [
        {"error": "invalid_token"},
        {"error": {"code": "TOKEN_EXPIRED", "message": "x"}},
        {"errors": [{"detail": "JWT expired at 2024-01-01"}]},  # date-ok: message text, never parsed as a time
        {"message": "Your session has expired"},
    ],
)
def test_401_with_a_json_body_saying_token_expired_is_auth_expired(body: object) -> None:
    assert run(401, body=body).error_class == "auth_expired"


def test_401_with_an_unrelated_expiry_message_is_plain_auth() -> None:
    assert run(401, body={"message": "subscription expired"}).error_class == "auth"


def test_token_expired_is_false_without_evidence() -> None:
    assert not token_expired({}, None)


def test_429_is_rate_limited_with_retry_after_seconds() -> None:
    assert run(429, {"retry-after": "7"}) == ("http_error", "rate_limited", 7.0)


def test_429_with_an_http_date_retry_after_is_converted_to_seconds() -> None:
    assert run(429, {"retry-after": formatdate(NOW + 120, usegmt=True)}) == ("http_error", "rate_limited", 120.0)


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after(formatdate(NOW - 60, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "Fri, 99 Foo 2024"])  # date-ok: not a date at all
def test_missing_or_invalid_retry_after_is_minus_one(value: str | None) -> None:
    assert parse_retry_after(value, NOW) == -1.0


def test_retry_after_is_recorded_on_a_503_too() -> None:
    assert run(503, {"retry-after": "30"}) == ("http_error", "server_error", 30.0)


@pytest.mark.parametrize("cls", ["timeout", "connect", "tls", "dns"])
def test_transport_error_class_names_pass_through(cls: str) -> None:
    assert run(None, transport=cls) == ("transport_error", cls, -1.0)


def test_no_status_and_no_error_is_a_connect_transport_error() -> None:
    assert run(None) == ("transport_error", "connect", -1.0)


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (TimeoutError(), "timeout"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls"),
        (socket.gaierror(-2, "Name or service not known"), "dns"),
        (ConnectionRefusedError(111, "Connection refused"), "connect"),
    ],
)
def test_transport_exceptions_are_classed(exc: BaseException, cls: str) -> None:
    assert transport_error_class(exc) == cls


def test_wrapped_dns_error_is_classed_by_its_cause() -> None:
    class ClientConnectorError(OSError):
        pass

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as inner:
            raise ClientConnectorError("Cannot connect to host x:443 ssl:default") from inner
    except ClientConnectorError as outer:
        assert transport_error_class(outer) == "dns"


def test_aiohttp_style_message_with_ssl_default_is_not_tls() -> None:
    assert transport_error_class("Cannot connect to host api.x:443 ssl:default [Connection refused]") == "connect"


def test_request_contract_violation_with_enforce_request_is_contract_violation() -> None:
    v = ["request:schema:/currency:required"]
    assert run(None, req_violations=v, enforce="request") == ("contract_violation", "contract", -1.0)


def test_request_contract_violation_with_enforce_record_is_contract_violation() -> None:
    v = ["request:schema:/currency:required"]
    assert run(200, ev=PASSED, req_violations=v) == ("contract_violation", "contract", -1.0)


def test_recorded_request_violation_keeps_the_upstreams_http_class() -> None:
    v = ["request:schema:/currency:required"]
    assert run(400, req_violations=v) == ("contract_violation", "client_error", -1.0)


def test_transport_error_wins_over_a_recorded_request_violation() -> None:
    assert run(None, transport="timeout", req_violations=["request:body:empty"]).outcome == "transport_error"


# -- scenarios: contract evaluation + classification together --------------------------------------

CHARGE = Contract.model_validate(
    {
        "status": [200, 201],
        "request_schema": {"type": "object", "required": ["amount", "currency"]},
        "response_schema": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {"id": {}, "status": {}, "amount": {}, "currency": {}},
        },
        "assert": {"payment_succeeded": "response.body.status == 'succeeded'"},
        "echo": ["amount", "currency"],
        "extract": {"charge_id": "response.body.id"},
    }
)
CHARGE_REQ = {"method": "POST", "path": "/v1/charges", "headers": {}, "query": {}, "body": {"amount": 100, "currency": "eur"}}


def scenario(
    status: int, body: object, *, req: dict[str, Any] = CHARGE_REQ, enforce: str = "record", **flags: bool
) -> tuple[Classification, Evaluation]:
    c = compile_contract("billing.charge", CHARGE.model_copy(update={"enforce": enforce}), "seamline.yaml")
    req_violations = c.check_request(req)
    ev = c.evaluate(req, {"status": status, "headers": {}, "body": body}, **flags)
    return classify(status, {}, None, ev, req_violations, enforce, body=body, now=NOW), ev


def test_payment_200_declined_is_a_silent_failure() -> None:
    result, ev = scenario(200, {"id": "ch_1", "status": "declined", "amount": 100, "currency": "eur"})
    assert result == ("silent_failure", "contract", -1.0)
    assert ev.violations == ["assert:payment_succeeded"] and ev.external_ids == {"charge_id": "ch_1"}


def test_application_json_that_is_not_json_is_a_silent_failure() -> None:
    result, ev = scenario(200, None, response_not_json=True)
    assert result.outcome == "silent_failure" and ev.violations == ["body:not_json"]


def test_empty_body_is_a_silent_failure() -> None:
    result, ev = scenario(200, None)
    assert result.outcome == "silent_failure" and ev.violations == ["body:empty"]


def test_body_over_the_cap_is_unvalidated() -> None:
    result, ev = scenario(200, None, response_truncated=True)
    assert result == ("unvalidated", "none", -1.0) and ev.unvalidated_reason == "body_truncated"


def test_request_missing_a_field_with_enforce_record_is_forwarded_and_a_contract_violation() -> None:
    req = {**CHARGE_REQ, "body": {"amount": 100}}
    result, _ = scenario(200, {"id": "ch_1", "status": "succeeded", "amount": 100}, req=req)
    assert result == ("contract_violation", "contract", -1.0)


def test_request_missing_a_field_with_enforce_request_is_rejected() -> None:
    req = {**CHARGE_REQ, "body": {"amount": 100}}
    c = compile_contract("billing.charge", CHARGE.model_copy(update={"enforce": "request"}), "seamline.yaml")
    violations = c.check_request(req)
    assert violations == ["request:schema:/currency:required"] and c.rejects(violations)
    assert classify(None, {}, None, None, violations, "request") == ("contract_violation", "contract", -1.0)


def test_request_validator_crash_is_not_a_contract_violation() -> None:
    assert run(200, req_violations=["request:validator_error:RuntimeError"], enforce="request") == ("ok", "none", -1.0)


# -- Seamline's own answers -------------------------------------------------------------------------------------------

REFUSALS = [
    (errors.UnknownUpstream("nowhere"), "unknown_upstream"),
    (errors.Forbidden("evil.example:443 is not a configured upstream"), "refused"),
    (errors.PayloadTooLarge("request body exceeds 1000 bytes"), "too_large"),
    (errors.Unauthorized("send a configured token"), "unauthorized"),
    (errors.NotImplementedYet("Upgrade/WebSocket requests are not proxied yet"), "not_implemented"),
    (errors.BadRequest("CONNECT target must be host:port"), "bad_request"),
]


@pytest.mark.parametrize(("err", "cls"), REFUSALS, ids=[c for _, c in REFUSALS])
def test_each_seamline_refusal_is_refused_with_its_own_class(err: errors.ProxyError, cls: str) -> None:
    assert err.error_class == cls
    assert classify_own_answer(err.error_class, err.status) == ("refused", cls, -1.0)


@pytest.mark.parametrize("cls", ["client_timeout", "client_disconnected", "internal"])
def test_the_clients_failures_and_seamlines_own_are_refused_not_upstream_errors(cls: str) -> None:
    assert classify_own_answer(cls, 408 if cls == "client_timeout" else 500).outcome == "refused"


def test_refusal_is_decided_by_class_not_status() -> None:
    # The same statuses from a refusal and from a failed upstream end differently.
    assert classify_own_answer("unknown_upstream", 404).outcome == "refused"
    assert classify_own_answer("too_large", 502).outcome == "refused"
    assert run(404) == ("http_error", "client_error", -1.0)  # the upstream's own 404


def test_request_contract_rejection_422_stays_a_contract_violation() -> None:
    err = errors.ContractRejected("the request breaks the contract", violations=["request:schema:/amount:type"])
    assert classify_own_answer(err.error_class, err.status) == ("contract_violation", "contract", -1.0)


@pytest.mark.parametrize(
    ("err", "cls"),
    [
        (errors.UpstreamTimeout("upstream did not answer in time"), "timeout"),
        (errors.UpstreamError("cannot connect", "connect"), "connect"),
        (errors.UpstreamError("TLS handshake failed", "tls"), "tls"),
        (errors.UpstreamError("did not resolve", "dns"), "dns"),
    ],
)
def test_502_and_504_for_a_failed_upstream_stay_transport_errors(err: errors.ProxyError, cls: str) -> None:
    assert classify_own_answer(err.error_class, err.status) == ("transport_error", cls, -1.0)


def test_an_unknown_own_class_stays_visible_as_an_error() -> None:
    assert classify_own_answer("something_new", 409) == ("http_error", "something_new", -1.0)
    assert classify_own_answer("something_new", 503) == ("transport_error", "something_new", -1.0)
