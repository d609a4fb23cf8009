"""JMESPath expressions of contracts: parsing with errors that name file, handoff and field, the paths an
expression reads from the root, a fast path for simple shapes, and JMESPath's truthiness and equality. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import jmespath
import orjson
from jmespath.exceptions import JMESPathError

if TYPE_CHECKING:
    # A parsed JMESPath expression as the stubs type it (a plain dict at run time: type, value, children).
    from jmespath.visitor import _TreeNode as _Node

_WRAPPERS: Final = frozenset({"index_expression", "projection", "filter_projection", "flatten", "pipe"})
_BRANCHES: Final = frozenset(
    {"comparator", "and_expression", "or_expression", "not_expression", "function_expression",
     "multi_select_list", "multi_select_hash", "key_val_pair"}
)  # fmt: skip


class ContractError(ValueError):
    """A contract that cannot be compiled, phrased with file, handoff and field."""

    def __init__(self, source: str, handoff: str, field: str, problem: str) -> None:
        self.source, self.handoff, self.field, self.problem = source, handoff, field, problem
        super().__init__(f"{source}: handoffs.{handoff}.contract.{field}: {problem}")


def parse_expression(expr: str, where: str, source: str, handoff: str) -> _Node:
    try:
        return jmespath.compile(expr).parsed
    except (JMESPathError, ValueError, TypeError) as e:
        msg = " ".join(str(e).split())
        if "(NUMBER)" in msg:
            msg += "; numbers are JSON literals in backticks, e.g. response.status == `201`"
        raise ContractError(source, handoff, where, f"JMESPath expression {expr!r} does not parse: {msg}") from None


def root_chains(node: _Node) -> Iterator[list[str]]:
    """Field paths read from the root document (e.g. ['response', 'body', 'id'])."""
    t = node.get("type")
    kids = node.get("children") or []
    if t == "field":
        yield [node["value"]]
    elif t == "subexpression":
        chain: list[str] = []
        for k in kids:
            if k["type"] == "field":
                chain.append(k["value"])
                continue
            wrapped = k.get("children") if k["type"] in _WRAPPERS else None
            head = wrapped[0] if wrapped else None
            if isinstance(head, dict) and head.get("type") == "field":
                chain.append(head["value"])
            break
        if chain:
            yield chain
        elif kids:
            yield from root_chains(kids[0])
    elif t in _WRAPPERS and kids:
        yield from root_chains(kids[0])  # the rest is evaluated against the left side's result
    elif t in _BRANCHES:
        for k in kids:
            yield from root_chains(k)


def plain_chain(ast: _Node) -> list[str] | None:
    if ast.get("type") == "field":
        return [ast["value"]]
    if ast.get("type") == "subexpression" and all(k.get("type") == "field" for k in ast["children"]):
        return [k["value"] for k in ast["children"]]
    return None


def get_path(value: Any, chain: tuple[str, ...]) -> Any:
    """JMESPath `a.b.c` semantics: None as soon as a step is not an object."""
    for key in chain:
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


def fast_path(ast: _Node) -> Callable[[Any], Any] | None:
    """A direct evaluator for `a.b.c` and `a.b == <a.b | literal>` (!=, too); None for anything else."""
    chain = plain_chain(ast)
    if chain is not None:
        path = tuple(chain)
        return lambda d: get_path(d, path)
    if ast.get("type") != "comparator" or ast.get("value") not in ("eq", "ne"):
        return None
    left, right = (_fast_operand(k) for k in ast["children"])
    if left is None or right is None:
        return None
    if ast["value"] == "eq":
        return lambda d: json_equal(left(d), right(d))
    return lambda d: not json_equal(left(d), right(d))


def _fast_operand(node: _Node) -> Callable[[Any], Any] | None:
    if node.get("type") == "literal":
        value = node["value"]
        return lambda _d: value
    return fast_path(node) if plain_chain(node) is not None else None


def json_equal(a: Any, b: Any) -> bool:
    """JMESPath equality: like ==, but true/false never equal 1/0."""
    if (type(a) is bool) != (type(b) is bool):
        return False
    return bool(a == b)


def truthy(v: Any) -> bool:
    """JMESPath truthiness: false, null, '', [] and {} are false; 0 is true."""
    return not (v is None or v is False or (type(v) in (str, list, dict) and not v))


def stringify(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return orjson.dumps(v).decode()
