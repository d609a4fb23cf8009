import json
from pathlib import Path

import pytest

from seamline.validate.openapi.document import OpenAPIError, default_safety, load_document

DATA = Path(__file__).resolve().parents[4] / "tests" / "data" / "openapi"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "openapi"
REAL = sorted(DATA.glob("*.yaml")) + sorted(EXAMPLES.glob("petstore*.yaml")) + [DATA / "stripe-excerpt.json"]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_documents_load(path):
    doc = load_document(path, "up")
    assert doc.version.startswith(("3.0", "3.1"))
    for op in doc.operations:
        assert op.handoff.startswith("up.") and op.statuses


def test_stripe_excerpt_operations():
    doc = load_document(DATA / "stripe-excerpt.json", "stripe")
    ops = {o.handoff: o for o in doc.operations}
    get = ops["stripe.GetCustomersCustomer"]
    assert (get.match, get.safety, get.statuses) == ("GET /v1/customers/{customer}", "safe_to_repeat", ["200", "default"])
    post = ops["stripe.PostCustomers"]
    assert post.safety == "never_repeat" and "application/x-www-form-urlencoded" in post.body


def write(tmp_path, doc, name="api.json", raw=None):
    p = tmp_path / name
    p.write_text(raw if raw is not None else json.dumps(doc))
    return p


def small(**paths):
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}


def test_raw_control_characters_inside_json_strings_load(tmp_path):
    # raw tab, SOH and newline inside a JSON string, as real documents carry them
    text = json.dumps(small()).replace('"title": "t"', '"title": "tab\there\x01 and\nnewline"')
    assert "\t" in text and "\x01" in text and "\n" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # strict JSON refuses them
    doc = load_document(write(tmp_path, None, raw=text), "up")
    assert doc.title == "tab\there\x01 and\nnewline"


def test_parameters_by_ref_and_idempotency_key_make_safe_once(tmp_path):
    d = small(
        **{
            "/charges/{id}": {
                "post": {
                    "parameters": [{"$ref": "#/components/parameters/Key"}, {"$ref": "#/components/parameters/Id"}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        }
    )
    d["components"] = {
        "parameters": {
            "Key": {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
            "Id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
        }
    }
    (op,) = load_document(write(tmp_path, d), "up").operations
    assert op.safety == "safe_once"
    assert {(p.name, p.location, p.kind) for p in op.params} == {
        ("idempotency-key", "header", "string"),
        ("id", "path", "integer"),
    }


def test_default_safety_by_method():
    assert [default_safety(m, ()) for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST", "PATCH")] == [
        "safe_to_repeat", "safe_to_repeat", "safe_to_repeat", "safe_to_repeat", "safe_to_repeat", "never_repeat", "never_repeat"
    ]  # fmt: skip


def test_a_reference_outside_the_document_names_the_pointer_and_the_fix(tmp_path):
    d = small(**{"/a": {"get": {"responses": {"200": {"$ref": "other.yaml#/R"}}}}})
    with pytest.raises(OpenAPIError) as e:
        load_document(write(tmp_path, d), "up")
    assert "#/paths/~1a/get/responses/200/$ref" in str(e.value) and "bundle" in str(e.value)


def test_a_dangling_reference_names_the_pointer(tmp_path):
    d = small(
        **{
            "/a": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "x",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}},
                        }
                    }
                }
            }
        }
    )
    with pytest.raises(OpenAPIError) as e:
        load_document(write(tmp_path, d), "up")
    msg = str(e.value)
    assert str(tmp_path / "api.json") in msg and "#/components/schemas/Nope" in msg and "points to nothing" in msg


def test_an_invalid_document_names_file_pointer_and_problem(tmp_path):
    d = small(**{"/a": {"get": {"parameters": [{"name": "q", "in": "querry"}], "responses": {"200": {"description": "x"}}}}})
    with pytest.raises(OpenAPIError) as e:
        load_document(write(tmp_path, d, "api.yaml"), "up")
    msg = str(e.value)
    assert "api.yaml: not a valid OpenAPI 3.0.3 document" in msg and "#/paths/~1a/get/parameters/0" in msg


def test_swagger_2_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(OpenAPIError, match="swagger2openapi"):
        load_document(write(tmp_path, {"swagger": "2.0"}), "up")


def test_a_large_30_document_is_checked_for_structure_naming_the_pointer(tmp_path, monkeypatch):
    from seamline.validate.openapi import document

    monkeypatch.setattr(document, "FULL_CHECK_BYTES", 10)  # as if the file were several MB
    d = small(
        **{
            "/a": {
                "get": {
                    "parameters": [{"name": "q", "in": "querry", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "x"}},
                }
            }
        }
    )
    with pytest.raises(OpenAPIError) as e:
        load_document(write(tmp_path, d, "api.yaml"), "up")
    assert "not a valid OpenAPI 3.0.3 document" in str(e.value) and "#/paths/~1a/get/parameters/0" in str(e.value)
    d["paths"]["/a"]["get"]["parameters"][0]["in"] = "query"
    assert len(load_document(write(tmp_path, d, "api.yaml"), "up").operations) == 1
