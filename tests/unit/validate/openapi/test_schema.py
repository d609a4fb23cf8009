import jsonschema_rs
import pytest

from seamline.validate.openapi.schema import Mirror

COMPONENTS = {
    "components": {
        "schemas": {
            "Pet": {
                "type": "object",
                "required": ["id", "name", "secret"],
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "name": {"type": "string", "description": "dropped", "example": "Rex"},
                    "secret": {"$ref": "#/components/schemas/Secret"},
                },
            },
            "Secret": {"type": "string", "writeOnly": True},
            "Cat": {
                "allOf": [{"$ref": "#/components/schemas/Base"}, {"type": "object", "properties": {"meow": {"type": "boolean"}}}]
            },
            "Dog": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"type": "object", "required": ["bark"]}]},
            "Base": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}},
        }
    }
}


def compiled(schema, version="3.0.3", direction="response"):
    doc = {**COMPONENTS, "x": schema}
    m = Mirror(lambda ref: _resolve(doc, ref), version, direction)
    m.add("#/x", schema)
    reg = jsonschema_rs.Registry([("urn:t", m.root)], draft=jsonschema_rs.Draft202012)
    return jsonschema_rs.Draft202012Validator({"$ref": "urn:t#/x"}, registry=reg), m.root["x"]


def _resolve(doc, ref):
    node = doc
    for p in ref[2:].split("/"):
        node = node[p]
    return node


@pytest.mark.parametrize(
    ("schema", "ok", "bad"),
    [
        ({"type": "string", "nullable": True}, [None, "a"], [1]),
        ({"type": "string", "enum": ["a"], "nullable": True}, [None, "a"], ["b"]),
        ({"allOf": [{"type": "object"}], "nullable": True}, [None, {}], [1]),
        ({"$ref": "#/components/schemas/Base", "nullable": True}, [None, {"kind": "x"}], [{}]),
        ({"type": "integer", "minimum": 1, "exclusiveMinimum": True}, [2], [1]),
        ({"type": "string"}, ["a"], [None]),  # not nullable: null is refused
    ],
)
def test_openapi_30_nullable_and_exclusive_bounds(schema, ok, bad):
    v, _ = compiled(schema)
    assert all(v.is_valid(x) for x in ok) and not any(v.is_valid(x) for x in bad)


def test_read_only_is_not_required_in_requests_and_write_only_not_in_responses():
    req, _ = compiled({"$ref": "#/components/schemas/Pet"}, direction="request")
    resp, _ = compiled({"$ref": "#/components/schemas/Pet"}, direction="response")
    assert req.is_valid({"name": "Rex", "secret": "s"}) and not req.is_valid({"id": 1, "secret": "s"})
    assert resp.is_valid({"id": 1, "name": "Rex"}) and not resp.is_valid({"name": "Rex"})


def test_annotations_are_dropped():
    _, converted = compiled({"type": "string", "description": "d", "example": "e", "x-vendor": 1, "title": "t"})
    assert converted == {"type": "string"}


def test_all_of_composes():
    v, _ = compiled({"$ref": "#/components/schemas/Dog"})
    assert v.is_valid({"kind": "dog", "bark": True})
    assert not v.is_valid({"kind": "dog"}) and not v.is_valid({"bark": True})


def test_discriminator_selects_the_schema_by_its_property():
    schema = {
        "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
        "discriminator": {"propertyName": "kind", "mapping": {"dog": "#/components/schemas/Dog"}},
    }
    v, _ = compiled(schema)
    assert v.is_valid({"kind": "Cat", "meow": True})  # implicit mapping: the schema's name
    assert v.is_valid({"kind": "dog", "bark": True, "meow": True})  # matches Cat and Dog: a plain oneOf refuses it
    assert v.is_valid({"kind": "dog", "bark": True})
    assert not v.is_valid({"kind": "dog"})  # Dog requires bark
    assert not v.is_valid({"kind": "cow"})  # not a mapped value
    assert not v.is_valid({"meow": True})  # the property is required


def test_openapi_31_schemas_are_json_schema_2020_12():
    v, _ = compiled({"type": ["string", "null"], "examples": ["a"], "$ref": "#/components/schemas/Secret"}, version="3.1.0")
    assert v.is_valid("a") and not v.is_valid(None)  # 3.1: $ref and its siblings both apply
