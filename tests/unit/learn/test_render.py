"""Suggestions written out: a config the loader takes and the validator compiles, and a valid OpenAPI 3.1 document."""

from __future__ import annotations

import uuid

import yaml
from openapi_spec_validator import validate

from seamline.config.models import Config
from seamline.learn import render, yamlout
from seamline.learn.suggest import TrafficGrouper
from seamline.validate.validator import Validator

from .test_suggest import call

BASE = "http://127.0.0.1:9/billing"


def _charges(n: int = 12) -> list[dict]:
    rows = []
    for i in range(n):
        cid = f"ch_{uuid.uuid4().hex[:12]}"
        body = {"id": cid, "status": "succeeded", "amount": 5 + i, "customer_id": f"cus_{i}abcd", "lines": [{"q": 1}]}
        rows.append(call("billing.charge", f"{BASE}/v1/charges", body, status=200, request_body='{"amount": 5}'))
        rows.append(call("billing.other", f"{BASE}/v1/charges/{cid}", body, method="GET", status=200))
        rows.append(call("billing.other", f"{BASE}/v1/customers/cus_{i}abcd/charges/{i + 100}", body, method="GET", status=200))
    return rows


def _config(handoffs: dict | None = None) -> Config:
    return Config(upstreams={"billing": {"base_url": BASE}}, handoffs=handoffs or {})


def test_suggested_handoffs_load_as_config_and_compile_keeping_the_configured_rules():
    configured = {
        "billing.charge": {
            "upstream": "billing",
            "match": "POST /v1/charges",
            "safety": "never_repeat",
            "step": "charge",
            "contract": {
                "assert": {"succeeded": "response.body.status == 'succeeded'"},
                "extract": {"charge": "response.body.id"},
            },
        }
    }
    g = TrafficGrouper(_config(configured))
    g.extend(_charges())
    text = yamlout.dump(render.handoffs_document(sorted(g.handoffs.values(), key=lambda t: t.name)))
    suggested = yaml.safe_load(text)["handoffs"]
    cfg = _config(suggested)
    contracts = Validator(cfg).contracts
    assert set(contracts) == {"billing.charge", "billing.get_v1_charges_id", "billing.get_v1_customers_customer_id_charges_id"}
    charge = suggested["billing.charge"]
    assert (charge["safety"], charge["step"]) == ("never_repeat", "charge")  # the configured handoff's own keys stay
    assert charge["contract"]["assert"] == {"succeeded": "response.body.status == 'succeeded'"}
    assert charge["contract"]["extract"] == {"charge": "response.body.id"}  # configured extraction, no duplicate
    assert charge["contract"]["status"] == [200] and "id" in charge["contract"]["response_schema"]["required"]
    new = suggested["billing.get_v1_charges_id"]
    assert new["match"] == "GET /v1/charges/{id}" and new["safety"] == "safe_to_repeat"
    assert new["contract"]["extract"] == {"charge_id": "response.body.id"}
    assert "# customer_id_id: response.body.customer_id" not in text and "# customer_id: response.body.customer_id" in text
    assert "# enum: [succeeded]" in text


def test_openapi_document_is_valid_3_1_with_templated_paths():
    g = TrafficGrouper(_config())
    g.extend(_charges())
    doc = yaml.safe_load(yamlout.dump(render.openapi_document("billing", list(g.handoffs.values()), base_url=BASE, since="7d")))
    validate(doc)  # raises on any OpenAPI 3.1 error
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": BASE}]
    assert set(doc["paths"]) == {"/v1/charges", "/v1/charges/{id}", "/v1/customers/{customer_id}/charges/{id}"}
    get = doc["paths"]["/v1/customers/{customer_id}/charges/{id}"]["get"]
    assert [p["name"] for p in get["parameters"]] == ["customer_id", "id"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["id"]["type"] == "string"
    post = doc["paths"]["/v1/charges"]["post"]
    assert post["operationId"] == "charge" and post["summary"] == "billing.charge"  # the recorded handoff names it
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == ["amount"]
