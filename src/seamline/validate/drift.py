"""Schema drift: which response fields a schema does not describe. Pure.

`unknown_fields` lists response keys that the schema's `properties`/`patternProperties` do not describe (recursing
into described objects, arrays as `items[]`; a level without `properties` or with a schema-valued
`additionalProperties` is open). `$ref`s into the same document are followed; depth is bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

MAX_DRIFT: Final = 50
MAX_DEPTH: Final = 16


@dataclass(slots=True)
class Shape:
    """The part of a schema drift detection needs: which keys are described at each level."""

    props: dict[str, Shape | None]
    open: bool
    patterns: tuple[re.Pattern[str], ...] = ()
    items: Shape | None = None

    def knows(self, key: str) -> bool:
        return self.open or key in self.props or any(p.search(key) for p in self.patterns)


def shape_of(schema: dict[str, Any] | None) -> Shape | None:
    return None if schema is None else _shape(schema, schema, 0)


def _deref(node: Any, root: dict[str, Any]) -> Any:
    """Follow local `$ref`s (`#/$defs/x`); sibling keywords win over the target's."""
    for _ in range(MAX_DEPTH):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node
        target: Any = root
        for part in (p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/") if p):
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return node
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _shape(node: Any, root: dict[str, Any], depth: int) -> Shape | None:
    node = _deref(node, root)
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return None
    parts = [node] + [_deref(s, root) for k in ("allOf", "anyOf", "oneOf") for s in node.get(k) or () if isinstance(s, dict)]
    props: dict[str, Shape | None] = {}
    patterns: list[re.Pattern[str] | None] = []
    described = opened = False
    items: Shape | None = None
    for p in parts:
        if isinstance(p.get("properties"), dict):
            described = True
            for k, sub in p["properties"].items():
                props[k] = props.get(k) or _shape(sub, root, depth + 1)
        if isinstance(p.get("required"), list) and described:
            for k in p["required"]:  # a required name is described even without a subschema
                props.setdefault(str(k), None)
        if isinstance(p.get("patternProperties"), dict):
            described = True
            patterns += [_compile_re(rx) for rx in p["patternProperties"]]
        if isinstance(p.get("additionalProperties"), dict) and p["additionalProperties"]:
            opened = True
        if isinstance(p.get("items"), dict):
            items = items or _shape(p["items"], root, depth + 1)
    if not described and items is None:
        return None
    return Shape(props, opened or not described, tuple(x for x in patterns if x is not None), items)


def _compile_re(rx: str) -> re.Pattern[str] | None:
    try:
        return re.compile(rx)
    except re.error:
        return None


def unknown_fields(body: Any, shape: Shape) -> list[str]:
    out: dict[str, None] = {}
    _walk_unknown(body, shape, "", out, 0)
    return list(out)


def _walk_unknown(value: Any, shape: Shape, path: str, out: dict[str, None], depth: int) -> None:
    if depth > MAX_DEPTH or len(out) >= MAX_DRIFT:
        return
    if type(value) is dict:
        props = shape.props
        for k, v in value.items():
            if k in props:
                child = props[k]
                if child is not None and type(v) in (dict, list):
                    _walk_unknown(v, child, f"{path}.{k}" if path else k, out, depth + 1)
            elif not shape.knows(k):
                out[f"{path}.{k}" if path else k] = None
    elif type(value) is list and shape.items is not None:
        items, sub = shape.items, f"{path}[]"
        for v in value:
            if type(v) in (dict, list):
                _walk_unknown(v, items, sub, out, depth + 1)


def shape_in(root: dict[str, Any], pointer: str, memo: dict[int, Shape | None]) -> Shape | None:
    """The shape of the schema at `pointer` (`#/a/b`) of `root`, one Shape per schema node shared through `memo`.

    For large documents whose schemas reach each other (a vendor's OpenAPI document): `shape_of` would rebuild a
    shared schema at every place it is used, exponentially in the depth; here each is built once, cycles included.
    """
    node: Any = root
    for part in (p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")[1:]):
        node = node.get(part) if isinstance(node, dict) else None
    return _shape_shared(node, root, memo)


def _shape_shared(node: Any, root: dict[str, Any], memo: dict[int, Shape | None]) -> Shape | None:
    node = _deref(node, root)
    if not isinstance(node, dict):
        return None
    key = id(node)
    if key in memo:
        return memo[key]
    shape = Shape({}, False)
    memo[key] = shape  # placed before recursing: a schema that reaches itself shares this object
    parts = [node] + [_deref(s, root) for k in ("allOf", "anyOf", "oneOf") for s in node.get(k) or () if isinstance(s, dict)]
    described = opened = False
    patterns: list[re.Pattern[str] | None] = []
    for p in parts:
        if isinstance(p.get("properties"), dict):
            described = True
            for k, sub in p["properties"].items():
                shape.props[k] = shape.props.get(k) or _shape_shared(sub, root, memo)
        if isinstance(p.get("required"), list) and described:
            for k in p["required"]:
                shape.props.setdefault(str(k), None)
        if isinstance(p.get("patternProperties"), dict):
            described = True
            patterns += [_compile_re(rx) for rx in p["patternProperties"]]
        if isinstance(p.get("additionalProperties"), dict) and p["additionalProperties"]:
            opened = True
        if isinstance(p.get("items"), dict):
            shape.items = shape.items or _shape_shared(p["items"], root, memo)
    if not described and shape.items is None:
        shape.open = True  # whoever reached it through a cycle holds this object: open, as "no shape" means
        memo[key] = None
        return None
    shape.open = opened or not described
    shape.patterns = tuple(x for x in patterns if x is not None)
    return shape
