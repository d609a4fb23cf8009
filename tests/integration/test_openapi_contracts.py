"""Handoffs derived from real OpenAPI documents, through a real Sidecar into the real engine.

Documents: the OpenAPI Initiative's petstore-expanded (3.0, allOf, an operationId with spaces) and USPTO (hyphenated
operationIds, no `default` response) examples, and an excerpt of Stripe's own document (3.0, nullable, anyOf).
A real upstream app on 127.0.0.1 answers valid and invalid responses; each test reads the stored row back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from support.chdb_path import chdb_url, unique_database

from seamline.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
PETSTORE = ROOT / "examples" / "openapi" / "petstore-expanded.yaml"
USPTO = ROOT / "tests" / "data" / "openapi" / "v3.0-uspto.yaml"
STRIPE = ROOT / "tests" / "data" / "openapi" / "stripe-excerpt.json"


@pytest.fixture
async def spec_sidecar(upstream, make_sidecar, tmp_path):
    """A recording sidecar whose upstreams `pets`, `uspto` and `stripe` (all on `upstream`) name their documents."""

    async def make(handoffs: str = "{}") -> Any:
        cfg_file = tmp_path / "seamline.yaml"
        cfg_file.write_text(
            f"""
upstreams:
  pets: {{base_url: "{upstream.url}", allow_private: true, openapi: "{PETSTORE}"}}
  uspto: {{base_url: "{upstream.url}/ds-api", allow_private: true, openapi: "{USPTO}"}}
  stripe: {{base_url: "{upstream.url}/stripe", allow_private: true, openapi: "{STRIPE}"}}
handoffs: {handoffs}
server: {{port: 0, admin_port: 0}}
storage:
  clickhouse_url: "{chdb_url()}"
  database: {unique_database("openapi")}
  spool_dir: "{tmp_path / "spool"}"
  flush_interval_ms: 20
"""
        )
        return await make_sidecar(load_config(cfg_file))

    return make


def reply(status: int, body: Any = None, ctype: str = "application/json"):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(body) if body is not None else b"", headers={"Content-Type": ctype})

    return handler


async def call(sc, method: str, path: str, run_id: str, json_body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        kw: dict[str, Any] = {} if json_body is None else {"json": json_body}
        async with s.request(method, sc.proxy_url + path, headers={"X-Run-ID": run_id}, **kw) as r:
            data = await r.read()
            return r.status, orjson.loads(data) if data and r.content_type.endswith("json") else data


async def row_of(sc, run_id: str) -> dict[str, Any]:
    assert await sc.recorder.flush(30)
    (row,) = await sc.store.query("SELECT * FROM handoffs WHERE run_id = {r:String}", {"r": run_id})
    return dict(row)


async def test_valid_response_of_a_derived_handoff_is_ok(spec_sidecar, upstream):
    upstream.routes["/pets/7"] = reply(200, {"id": 7, "name": "Rex", "tag": "dog"})
    sc = await spec_sidecar()
    status, _ = await call(sc, "GET", "/pets/pets/7", "run-ok")
    assert status == 200
    row = await row_of(sc, "run-ok")
    # operationId "find pet by id" (spaces) slugged; GET is safe to repeat
    assert (row["handoff"], row["outcome"], row["violations"], row["safety"]) == (
        "pets.find_pet_by_id",
        "ok",
        [],
        "safe_to_repeat",
    )


async def test_missing_required_field_is_a_silent_failure_with_a_schema_violation(spec_sidecar, upstream):
    upstream.routes["/pets/7"] = reply(200, {"id": 7, "tag": "dog"})  # Pet = allOf[NewPet (name required), {id}]
    sc = await spec_sidecar()
    await call(sc, "GET", "/pets/pets/7", "run-missing")
    row = await row_of(sc, "run-missing")
    assert (row["outcome"], row["error_class"]) == ("silent_failure", "contract")
    assert "schema:/name:required" in row["violations"]
    assert row["missing_fields"] == ["name"]


async def test_documented_error_status_is_an_http_error_without_violation(spec_sidecar, upstream):
    upstream.routes["/pets/7"] = reply(404, {"code": 404, "message": "no such pet"})  # the `default` response
    sc = await spec_sidecar()
    await call(sc, "GET", "/pets/pets/7", "run-404")
    row = await row_of(sc, "run-404")
    assert (row["outcome"], row["error_class"], row["violations"]) == ("http_error", "client_error", [])


async def test_undocumented_status_is_a_violation(spec_sidecar, upstream):
    upstream.routes["/ds-api/"] = reply(201, {"total": 1, "apis": []})  # list-data-sets documents 200 only
    upstream.routes["/ds-api/oa_citations/v1/fields"] = reply(500, {"error": "boom"})  # documents 200 and 404
    sc = await spec_sidecar()
    await call(sc, "GET", "/uspto/", "run-201")
    await call(sc, "GET", "/uspto/oa_citations/v1/fields", "run-500")
    row = await row_of(sc, "run-201")
    assert (row["handoff"], row["outcome"], row["violations"]) == (
        "uspto.list_data_sets",
        "silent_failure",
        ["status:undocumented:201"],
    )
    row = await row_of(sc, "run-500")
    assert (row["outcome"], row["error_class"]) == ("http_error", "server_error")
    assert row["violations"] == ["status:undocumented:500"]


async def test_stripe_customer_valid_then_missing_a_required_field(spec_sidecar, upstream):
    customer = {"id": "cus_1", "object": "customer", "created": int(time.time()), "livemode": False, "email": None}
    upstream.routes["/stripe/v1/customers/cus_1"] = reply(200, customer)
    sc = await spec_sidecar()
    await call(sc, "GET", "/stripe/v1/customers/cus_1", "run-cus")
    row = await row_of(sc, "run-cus")
    assert (row["handoff"], row["outcome"], row["violations"]) == ("stripe.GetCustomersCustomer", "ok", [])
    upstream.routes["/stripe/v1/customers/cus_1"] = reply(200, {k: v for k, v in customer.items() if k != "livemode"})
    await call(sc, "GET", "/stripe/v1/customers/cus_1", "run-cus-bad")
    row = await row_of(sc, "run-cus-bad")
    assert row["outcome"] == "silent_failure"
    assert any(v.startswith("schema:") for v in row["violations"])


async def test_enforce_request_rejects_a_body_breaking_the_document_with_422(spec_sidecar, upstream):
    upstream.routes["/pets"] = reply(200, {"id": 1, "name": "Rex"})
    sc = await spec_sidecar('{"pets.add": {upstream: pets, match: "POST /pets", contract: {enforce: request}}}')
    status, body = await call(sc, "POST", "/pets/pets", "run-422", {"tag": "dog"})  # NewPet requires name
    assert status == 422
    assert "request:schema:/name:required" in body["violations"]
    assert upstream.received == []
    row = await row_of(sc, "run-422")
    assert (row["handoff"], row["outcome"], row["status"], row["safety"]) == (
        "pets.add",
        "contract_violation",
        422,
        "never_repeat",
    )
    status, _ = await call(sc, "POST", "/pets/pets", "run-201", {"name": "Rex"})
    assert status == 200 and len(upstream.received) == 1
    assert (await row_of(sc, "run-201"))["outcome"] == "ok"


async def test_enforce_request_checks_coerced_query_parameters_without_a_body(spec_sidecar, upstream):
    upstream.routes["/pets"] = reply(200, [{"id": 1, "name": "Rex"}])
    sc = await spec_sidecar('{"pets.find": {upstream: pets, match: "GET /pets", contract: {enforce: request}}}')
    status, body = await call(sc, "GET", "/pets/pets?limit=ten", "run-q422")
    assert status == 422 and body["violations"] == ["request:query:limit:type"]
    assert upstream.received == []
    status, _ = await call(sc, "GET", "/pets/pets?limit=10&tags=a&tags=b", "run-qok")  # "10" is the integer 10
    assert status == 200 and len(upstream.received) == 1
    assert (await row_of(sc, "run-qok"))["outcome"] == "ok"
