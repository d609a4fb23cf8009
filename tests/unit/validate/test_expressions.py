"""Contract expressions: the fast path for simple shapes gives the JMESPath interpreter's result."""

from __future__ import annotations

from typing import Any

import pytest

from seamline.validate.expressions import fast_path


@pytest.mark.parametrize(
    "expr",
    [
        "response.body.a",
        "response.body.a.b",
        "response.body.a == `1`",
        "response.body.a != `1`",
        "response.body.a == 'x'",
        "response.body.a == request.body.a",
        "response.body.a == `true`",
        "response.body.a == `null`",
    ],
)
@pytest.mark.parametrize("a", [1, 0, True, False, "x", None, [1], {"b": 2}, 1.0])
def test_fast_path_agrees_with_the_jmespath_interpreter(expr: str, a: Any) -> None:
    import jmespath

    data = {"request": {"body": {"a": 1}}, "response": {"body": {"a": a}}}
    fast = fast_path(jmespath.compile(expr).parsed)
    assert fast is not None and fast(data) == jmespath.search(expr, data)
