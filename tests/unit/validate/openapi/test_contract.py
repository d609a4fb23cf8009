import pytest

from seamline.validate.openapi.contract import CompiledDocument, OperationContract, coerce, coerce_param, pick
from seamline.validate.openapi.document import Param, _build


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [("10", "integer", 10), ("-3", "integer", -3), ("ten", "integer", "ten"), ("1.5", "number", 1.5), ("2", "number", 2),
     ("nan", "number", "nan"), ("true", "boolean", True), ("false", "boolean", False), ("yes", "boolean", "yes"),
     ("10", "string", "10"), ("10", "", "10")],
)  # fmt: skip
def test_coerce_strings_to_the_declared_type(value, kind, expected):
    assert coerce(value, kind) == expected and type(coerce(value, kind)) is type(expected)


def test_arrays_from_repeated_keys_or_commas():
    q = Param("tags", "query", False, None, "array", "integer", explode=True)
    assert coerce_param(q, ["1", "2"]) == [1, 2]
    csv = Param("tags", "query", False, None, "array", "integer", explode=False)
    assert coerce_param(csv, ["1,2,x"]) == [1, 2, "x"]
    path = Param("ids", "path", True, None, "array", "string", explode=False)
    assert coerce_param(path, ["a,b"]) == ["a", "b"]


def test_content_type_lookup():
    content = {"application/json": "#/j", "text/*": None}
    assert pick(content, "application/json") == (True, "#/j")
    assert pick(content, "text/plain") == (True, None)
    assert pick(content, "application/xml") == (False, None)
    assert pick({"application/json": "#/j"}, "") == (True, "#/j")


def contract_of(op_doc):
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/items/{id}": op_doc}}
    built = _build(doc, "api.yaml", "up", set())
    return OperationContract("up.op", built.operations[0], CompiledDocument(built, "up"))


def test_parameters_are_coerced_then_validated_and_statuses_looked_up():
    c = contract_of(
        {"get": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "ok"}, "4XX": {"description": "client"}},
        }}
    )  # fmt: skip
    req = {"path": "/items/5", "raw_query": "limit=50&q=x", "headers": {}}
    assert c.check_request(req) == []
    bad = {"path": "/items/0", "raw_query": "limit=500", "headers": {}}
    assert c.check_request(bad) == ["request:path:id:minimum", "request:query:limit:maximum", "request:query:q:required"]
    assert [c.status_key(s) for s in (200, 404, 500)] == ["200", "4XX", None]
