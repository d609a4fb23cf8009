"""Schema inference: genson's shape, refined by counts (required share, formats, enums, IDs, maps, redaction)."""

from __future__ import annotations

import uuid

import jsonschema_rs

from seamline.learn.infer import infer_schema


def _charge(i: int) -> dict:
    body = {
        "id": f"ch_{uuid.uuid4().hex[:16]}",
        "status": "succeeded" if i % 2 else "pending",
        "amount": 100 + i,
        "email": f"user{i}@example.com",
        "created_at": f"2026-01-0{1 + i % 9}T10:00:0{i % 10}Z",
        "customer": {"id": str(uuid.uuid4()), "name": f"C{i}"},
        "lines": [{"sku": f"sku-{i}", "qty": 1}],
        "failure_code": None if i % 3 else "card_declined",
    }
    if i % 4 == 0:
        body["coupon"] = "WINTER"
    return body


def test_inferred_schema_accepts_every_body_it_was_learned_from_and_marks_what_a_reviewer_decides():
    bodies = [_charge(i) for i in range(40)]
    inferred = infer_schema(bodies)
    schema = inferred.schema
    validator = jsonschema_rs.Draft202012Validator(schema)
    assert all(validator.is_valid(b) for b in bodies)
    assert "coupon" not in schema["required"] and "id" in schema["required"]  # 25 % is not a rule
    assert inferred.required_share[("coupon",)] == 0.25
    props = schema["properties"]
    assert props["created_at"]["format"] == "date-time"
    assert props["email"]["format"] == "email"
    assert props["customer"]["properties"]["id"]["format"] == "uuid"
    assert set(props["failure_code"]["type"]) == {"null", "string"}
    assert inferred.enums[("status",)] == ["succeeded", "pending"] or inferred.enums[("status",)] == ["pending", "succeeded"]
    assert "enum" not in props["status"]  # a candidate only: the next value an upstream adds is not a violation
    assert ("email",) not in inferred.enums and ("id",) not in inferred.enums  # every value distinct
    assert inferred.ids[0] == ("id",) and ("customer", "id") in inferred.ids
    assert not any("[]" in p for p in inferred.ids)  # an ID inside an array is no single external ID
    assert not validator.is_valid({**bodies[0], "amount": "100"})


def test_a_field_missing_from_one_body_in_a_hundred_is_still_required_but_not_from_one_in_fifty():
    bodies = [{"id": f"x_{i}abcd", "note": "n"} for i in range(200)]
    bodies[0].pop("note")
    assert "note" in infer_schema(bodies).schema["required"]  # 199/200 ≥ 99 %
    bodies[1].pop("note")
    bodies[2].pop("note")
    assert "note" not in infer_schema(bodies).schema["required"]  # 197/200 < 99 %


def test_objects_keyed_by_ids_become_a_map_and_redacted_values_get_no_type():
    bodies = [
        {"users": {f"usr_{i}{j}abcd": {"role": "admin"} for j in range(5)}, "api_key": "[REDACTED]", "n": i} for i in range(3)
    ]
    schema = infer_schema(bodies).schema
    users = schema["properties"]["users"]
    assert "properties" not in users and users["additionalProperties"]["properties"]["role"]["type"] == "string"
    assert "type" not in schema["properties"]["api_key"]  # the contract will see the real key, whatever its type
    assert jsonschema_rs.Draft202012Validator(schema).is_valid({"users": {"usr_new1": {"role": "x"}}, "api_key": 12, "n": 1})


def test_no_bodies_no_schema():
    inferred = infer_schema([])
    assert inferred.samples == 0 and inferred.schema == {}
