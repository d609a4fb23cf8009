"""Handoff contracts: compile-time checks and per-exchange evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from seamline.config.models import Contract
from seamline.validate.contracts import CompiledContract, ContractError, Evaluation, compile_contract

CHARGE: dict[str, Any] = {
    "status": [200, 201],
    "request_schema": {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {"amount": {"type": "integer"}, "currency": {}},
    },
    "response_schema": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": {"enum": ["succeeded", "declined"]}, "amount": {}, "currency": {}},
    },
    "assert": {"payment_succeeded": "response.body.status == 'succeeded'"},
    "echo": ["amount", "currency"],
    "extract": {"charge_id": "response.body.id"},
}
CRM: dict[str, Any] = {
    "status": [200],
    "response_schema": {
        "type": "object",
        "required": ["id", "email"],
        "properties": {"id": {}, "email": {}, "name": {}, "customer": {"type": "object", "properties": {"plan": {}}}},
    },
    "echo": ["email", "name"],
}


def contract(spec: dict[str, Any], name: str = "billing.charge") -> CompiledContract:
    return compile_contract(name, Contract.model_validate(spec), "seamline.yaml")


def req(body: Any = None, **kw: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/v1/charges", "headers": {}, "query": {}, "body": body, **kw}


def resp(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"status": status, "headers": headers or {}, "body": body}


CHARGE_REQ = req({"amount": 100, "currency": "eur"})
GOOD_CHARGE = {"id": "ch_1", "status": "succeeded", "amount": 100, "currency": "eur"}


def bad(spec: dict[str, Any]) -> ContractError:
    with pytest.raises(ContractError) as info:
        contract(spec)
    return info.value


# -- compile ----------------------------------------------------------------------------------------


def test_invalid_schema_names_file_handoff_and_field() -> None:
    err = bad({"response_schema": {"type": "object", "properties": {"amount": {"type": "money"}}}})
    assert (err.source, err.handoff, err.field) == ("seamline.yaml", "billing.charge", "response_schema.properties.amount.type")
    assert str(err).startswith("seamline.yaml: handoffs.billing.charge.contract.response_schema.properties.amount.type:")


def test_invalid_regex_in_schema_is_a_contract_error() -> None:
    assert bad({"request_schema": {"properties": {"a": {"pattern": "(?<=x"}}}}).field == "request_schema.properties.a.pattern"


def test_unresolvable_ref_is_a_contract_error() -> None:
    assert bad({"response_schema": {"$ref": "#/$defs/missing"}}).field == "response_schema"


def test_unparsable_jmespath_assertion_is_a_contract_error() -> None:
    err = bad({"assert": {"paid": "response.body.status == "}})
    assert err.field == "assert.paid" and "does not parse" in err.problem


def test_bare_number_literal_gets_a_backtick_hint() -> None:
    assert "`201`" in bad({"assert": {"created": "response.status == 201"}}).problem


def test_unparsable_extract_is_a_contract_error() -> None:
    assert bad({"extract": {"charge_id": "response.body.["}}).field == "extract.charge_id"


def test_extract_path_to_a_field_the_schema_does_not_declare_is_a_contract_error() -> None:
    err = bad({**CHARGE, "extract": {"charge_id": "response.body.charge"}})
    assert err.field == "extract.charge_id" and "'charge'" in err.problem and "known: amount, currency, id, status" in err.problem


def test_extract_path_outside_request_and_response_is_a_contract_error() -> None:
    assert "expressions see only" in bad({"extract": {"cid": "body.id"}}).problem


def test_extract_path_to_a_missing_response_part_is_a_contract_error() -> None:
    assert "response.json does not exist" in bad({"extract": {"cid": "response.json.id"}}).problem


def test_assert_typo_in_a_body_field_is_a_contract_error() -> None:
    assert bad({**CHARGE, "assert": {"ok": "response.body.stauts == 'succeeded'"}}).field == "assert.ok"


def test_paths_inside_functions_and_projections_are_checked() -> None:
    assert bad({**CHARGE, "assert": {"ok": "length(response.body.itemz[*].id) > `0`"}}).field == "assert.ok"


def test_extract_path_is_not_checked_against_an_open_schema() -> None:
    contract({"response_schema": {"type": "object"}, "extract": {"cid": "response.body.anything"}})


def test_echo_entry_that_is_not_a_field_path_is_a_contract_error() -> None:
    assert bad({"echo": ["length(email)"]}).field == "echo.length(email)"


def test_echo_field_missing_from_schema_properties_is_a_contract_error() -> None:
    assert "not in response_schema" in bad({**CRM, "echo": ["phone"]}).problem


def test_valid_contract_compiles() -> None:
    assert contract(CHARGE).name == "billing.charge"


# -- request ----------------------------------------------------------------------------------------


def test_request_missing_a_required_field_is_a_violation() -> None:
    assert contract(CHARGE).check_request(req({"amount": 100})) == ["request:schema:/currency:required"]


def test_request_type_error_names_pointer_and_keyword() -> None:
    assert contract(CHARGE).check_request(req({"amount": "100", "currency": "eur"})) == ["request:schema:/amount:type"]


def test_request_without_body_is_request_body_empty() -> None:
    assert contract(CHARGE).check_request(req(None)) == ["request:body:empty"]


def test_request_body_not_json_is_flagged() -> None:
    assert contract(CHARGE).check_request(req(None), not_json=True) == ["request:body:not_json"]


def test_truncated_request_is_not_checked() -> None:
    assert contract(CHARGE).check_request(req({"amount": 1}), truncated=True) == []


def test_enforce_request_rejects_a_request_that_breaks_its_contract() -> None:
    c = contract({**CHARGE, "enforce": "request"})
    assert c.rejects(c.check_request(req({"amount": 100})))


def test_enforce_record_never_rejects() -> None:
    c = contract(CHARGE)
    assert not c.rejects(c.check_request(req({"amount": 100})))


def test_validator_crash_never_rejects() -> None:
    assert not contract({**CHARGE, "enforce": "request"}).rejects(["request:validator_error:RuntimeError"])


# -- response ---------------------------------------------------------------------------------------


def test_good_payment_passes_and_extracts_the_charge_id() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(201, GOOD_CHARGE))
    assert ev == Evaluation([], {"charge_id": "ch_1"}, [], [], None, True) and ev.passed


def test_payment_200_declined_fails_its_assertion() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(200, {**GOOD_CHARGE, "status": "declined"}))
    assert ev.violations == ["assert:payment_succeeded"] and ev.external_ids == {"charge_id": "ch_1"}


def test_unexpected_status_is_a_violation_and_skips_body_checks() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(404, {"error": "nope"}))
    assert ev.violations == ["status:unexpected:404"] and not ev.status_expected


def test_without_a_status_list_any_2xx_is_expected() -> None:
    c = contract({"assert": {"ok": "response.status == `204`"}})
    assert c.evaluate(req(), resp(204)).passed and not c.evaluate(req(), resp(302)).status_expected


def test_schema_enum_violation_has_pointer_and_keyword() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(200, {**GOOD_CHARGE, "status": "weird"}))
    assert "schema:/status:enum" in ev.violations


def test_schema_violation_at_the_root_has_an_empty_pointer() -> None:
    assert "schema::type" in contract(CHARGE).evaluate(CHARGE_REQ, resp(200, [1])).violations


def test_array_indices_become_stars_in_pointers() -> None:
    c = contract({"response_schema": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}})
    ev = c.evaluate(req(), resp(200, [{"n": "a"}, {"n": "b"}]))
    assert ev.violations == ["schema:/*/n:type"]


def test_crm_dropping_email_is_echo_missing_and_a_missing_field() -> None:
    ev = contract(CRM, "crm.create_contact").evaluate(
        req({"email": "a@b.c", "name": "Ann"}), resp(200, {"id": "c1", "name": "Ann"})
    )
    assert ev.violations == ["schema:/email:required", "echo:missing:email"]
    assert ev.missing_fields == ["email"]


def test_echo_mismatch_is_a_violation() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(200, {**GOOD_CHARGE, "amount": 99}))
    assert ev.violations == ["echo:mismatch:amount"]


def test_echo_of_a_field_not_sent_is_not_checked() -> None:
    assert contract(CHARGE).evaluate(req({"amount": 100}), resp(200, {"id": "x", "status": "succeeded", "amount": 100})).passed


def test_echo_treats_true_and_1_as_different() -> None:
    c = contract({"echo": ["flag"]})
    assert c.evaluate(req({"flag": True}), resp(200, {"flag": 1})).violations == ["echo:mismatch:flag"]


def test_unknown_fields_are_reported_with_nested_and_array_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {},
            "customer": {"type": "object", "properties": {"name": {}}},
            "items": {"type": "array", "items": {"properties": {"sku": {}}}},
        },
    }
    body = {
        "id": 1,
        "customer": {"name": "a", "tier": "gold"},
        "items": [{"sku": 1, "qty": 2}, {"sku": 2, "qty": 1}],
        "risk": 0.1,
    }
    ev = contract({"response_schema": schema}).evaluate(req(), resp(200, body))
    assert ev.unknown_fields == ["customer.tier", "items[].qty", "risk"] and ev.passed


def test_drift_follows_refs_and_all_of() -> None:
    schema = {
        "$defs": {"cust": {"type": "object", "properties": {"name": {}}}},
        "allOf": [{"properties": {"id": {}}}, {"properties": {"customer": {"$ref": "#/$defs/cust"}}}],
    }
    ev = contract({"response_schema": schema}).evaluate(req(), resp(200, {"id": 1, "customer": {"name": "a", "vip": True}}))
    assert ev.unknown_fields == ["customer.vip"]


def test_open_objects_and_pattern_properties_report_no_drift() -> None:
    schema = {
        "properties": {"meta": {"type": "object"}, "tags": {"additionalProperties": {"type": "string"}}},
        "patternProperties": {"^x-": {}},
    }
    ev = contract({"response_schema": schema}).evaluate(req(), resp(200, {"meta": {"a": 1}, "tags": {"b": "c"}, "x-trace": 1}))
    assert ev.unknown_fields == []


def test_nested_missing_required_field_is_a_dotted_path() -> None:
    schema = {"properties": {"items": {"type": "array", "items": {"required": ["sku"]}}}}
    ev = contract({"response_schema": schema}).evaluate(req(), resp(200, {"items": [{}]}))
    assert ev.missing_fields == ["items[].sku"] and ev.violations == ["schema:/items/*/sku:required"]


def test_application_json_that_is_not_json_is_body_not_json() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(200, None), response_not_json=True)
    assert ev.violations == ["body:not_json"] and ev.unvalidated_reason == "body_not_json"


def test_empty_body_is_body_empty() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(200, None))
    assert ev.violations == ["body:empty"]


def test_empty_body_is_fine_when_the_contract_does_not_read_it() -> None:
    assert contract({"status": [204]}).evaluate(req(), resp(204)).passed


def test_body_over_the_cap_is_unvalidated_not_a_violation() -> None:
    ev = contract(CHARGE).evaluate(CHARGE_REQ, resp(200, None), response_truncated=True)
    assert ev.violations == [] and ev.unvalidated_reason == "body_truncated"


def test_status_assertions_still_run_on_a_truncated_body() -> None:
    c = contract({"assert": {"created": "response.status == `201`", "paid": "response.body.paid"}})
    ev = c.evaluate(req(), resp(200, None), response_truncated=True)
    assert ev.violations == ["assert:created"] and ev.unvalidated_reason == "body_truncated"


def test_truncated_request_body_skips_echo_and_is_unvalidated() -> None:
    ev = contract(CHARGE).evaluate(req(None), resp(200, GOOD_CHARGE), request_truncated=True)
    assert ev.unvalidated_reason == "request_body_truncated" and ev.violations == []


@pytest.mark.parametrize("value", [False, None, "", [], {}])
def test_jmespath_false_like_values_fail_an_assertion(value: Any) -> None:
    c = contract({"assert": {"ok": "response.body.v"}})
    assert c.evaluate(req(), resp(200, {"v": value})).violations == ["assert:ok"]


@pytest.mark.parametrize("value", [0, "no", [0], {"a": None}, True])
def test_other_values_pass_an_assertion(value: Any) -> None:
    assert contract({"assert": {"ok": "response.body.v"}}).evaluate(req(), resp(200, {"v": value})).passed


def test_json_literals_compare_numbers_and_raw_strings_compare_strings() -> None:
    c = contract(
        {"assert": {"n": "response.body.n == `5`", "s": "response.body.s == 'x'", "eq": "response.body.n == request.body.n"}}
    )
    assert c.evaluate(req({"n": 5}), resp(200, {"n": 5, "s": "x"})).passed


def test_assertions_read_headers_by_lower_case_name() -> None:
    c = contract({"assert": {"traced": 'response.headers."x-request-id" != `null`'}})
    assert c.evaluate(req(), resp(200, {}, {"x-request-id": "r1"})).passed


def test_bare_null_is_rejected_with_a_literal_hint() -> None:
    assert "`null` in backticks" in bad({"assert": {"ok": "response.body.id != null"}}).problem


def test_assertion_that_raises_is_assert_error() -> None:
    c = contract({"assert": {"len": "length(response.body.n) > `1`"}})
    assert c.evaluate(req(), resp(200, {"n": 5})).violations == ["assert_error:len"]


def test_assertion_whose_evaluator_raises_is_isolated() -> None:
    c = contract(CHARGE)

    def boom(_: Any) -> Any:
        raise RuntimeError("boom")

    c._asserts = (dataclasses.replace(c._asserts[0], fast=boom),)
    assert c.evaluate(CHARGE_REQ, resp(200, GOOD_CHARGE)).violations == ["assert_error:payment_succeeded"]


def test_validator_that_raises_is_isolated_and_recorded() -> None:
    c = contract(CHARGE)

    class Broken:
        def is_valid(self, _: Any) -> bool:
            raise RuntimeError("boom")

    c._resp_validator = Broken()
    ev = c.evaluate(CHARGE_REQ, resp(200, GOOD_CHARGE))
    assert ev.violations == ["validator_error:RuntimeError"] and ev.unvalidated_reason == "validator_error"


def test_request_validator_that_raises_is_recorded_not_raised() -> None:
    c = contract(CHARGE)

    class Broken:
        def is_valid(self, _: Any) -> bool:
            raise ValueError("boom")

    c._req_validator = Broken()
    assert c.check_request(CHARGE_REQ) == ["request:validator_error:ValueError"]


def test_external_ids_are_stringified_and_none_skipped() -> None:
    c = contract({"extract": {"n": "response.body.n", "b": "response.body.b", "o": "response.body.o", "gone": "response.body.x"}})
    ev = c.evaluate(req(), resp(200, {"n": 42, "b": True, "o": {"k": [1]}}))
    assert ev.external_ids == {"n": "42", "b": "true", "o": '{"k":[1]}'}


def test_external_ids_are_extracted_even_from_an_error_response() -> None:
    assert contract(CHARGE).evaluate(CHARGE_REQ, resp(402, {"id": "ch_9"})).external_ids == {"charge_id": "ch_9"}


def test_violations_are_deduplicated() -> None:
    c = contract({"response_schema": {"type": "array", "items": {"type": "integer"}}})
    assert c.evaluate(req(), resp(200, ["a", "b", "c"])).violations == ["schema:/*:type"]


def test_required_names_count_as_declared_fields() -> None:
    c = contract({"response_schema": {"required": ["id"], "properties": {"status": {}}}, "extract": {"cid": "response.body.id"}})
    assert c.evaluate(req(), resp(200, {"id": "x", "status": "ok"})).unknown_fields == []
