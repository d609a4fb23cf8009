"""OpenAPI Schema Objects → JSON Schema 2020-12, so jsonschema-rs validates them. Pure: no I/O.

OpenAPI 3.0's dialect differs from JSON Schema; 3.1's is 2020-12 already, and the same walk only drops annotations:
- `nullable: true` adds "null" to `type` (and to `enum`), or allows null beside a type-less schema (anyOf);
  a `$ref` with a `nullable` sibling (ignored by the 3.0 spec, written by real documents) is honoured the same way;
- `readOnly` properties are not required in requests, `writeOnly` ones not in responses (one schema per direction);
- `discriminator` over a `oneOf`/`anyOf` of `$ref`s becomes "the property must be one of the mapping's values, and
  each value selects its schema" (if/then), which is what the discriminator means and what makes overlapping
  subschemas work (a plain `oneOf` fails when an object matches two of them); without `oneOf`/`anyOf` it is dropped;
- boolean `exclusiveMinimum`/`exclusiveMaximum` (3.0) become the 2020-12 numbers;
- `allOf` is JSON Schema's own; `description`, `example(s)`, `title`, `xml`, `externalDocs` and `x-*` are dropped
  (annotations: they cost memory in every compiled validator and change no verdict).

Converted schemas keep their `$ref`s as in-document pointers (`#/components/schemas/Pet`): `Mirror` places every
converted schema and every schema a `$ref` reaches at its own pointer in a sparse copy of the document, which is
registered once under one URI, so a `$ref` means what it meant in the document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

Direction = Literal["request", "response"]

_DROP: Final = frozenset({"description", "example", "examples", "title", "xml", "externalDocs", "deprecated", "$comment"})
_SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_LISTS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE: Final = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "unevaluatedProperties",
     "unevaluatedItems", "additionalItems", "contentSchema"}
)  # fmt: skip
_HANDLED: Final = frozenset({"nullable", "discriminator", "readOnly", "writeOnly", "required"})


def escape(token: str) -> str:
    """One RFC 6901 reference token."""
    return token.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_of(parts: list[str] | tuple[str, ...]) -> str:
    return "#" + "".join("/" + escape(p) for p in parts)


def split_pointer(ref: str) -> list[str]:
    """`#/a/b~1c` → ['a', 'b/c'] (local references only)."""
    return [unescape(p) for p in ref[1:].split("/")[1:]] if ref not in ("#", "") else []


class Mirror:
    """Converted schemas of one document and one direction, each at its own pointer (see the module docstring)."""

    def __init__(self, resolve: Callable[[str], Any], version: str, direction: Direction) -> None:
        self.root: dict[str, Any] = {}
        self._resolve = resolve  # in-document `$ref` → the raw node (raises OpenAPIError for one that leads nowhere)
        self._v30 = version.startswith("3.0")
        self._direction = direction
        self._done: set[str] = set()
        self._todo: list[str] = []

    def add(self, pointer: str, node: Any) -> None:
        """Convert `node` (found at `pointer`) and every schema its `$ref`s reach."""
        self._place(pointer, node)
        while self._todo:
            ref = self._todo.pop()
            self._place(ref, self._resolve(ref))

    def _place(self, pointer: str, node: Any) -> None:
        if pointer in self._done:
            return
        self._done.add(pointer)
        parts = split_pointer(pointer)
        where: dict[str, Any] = self.root
        for p in parts[:-1]:
            nxt = where.setdefault(p, {})
            if not isinstance(nxt, dict):
                return  # inside a schema converted already (a `$ref` into a composition): resolved there
            where = nxt
        if parts and parts[-1] not in where:
            where[parts[-1]] = self.convert(node)

    def _ref(self, ref: Any) -> str:
        if not isinstance(ref, str) or not ref.startswith("#"):
            # document.py refuses non-local references at load; keep the converter total anyway
            raise ValueError(f"$ref {ref!r}: only references inside the document are supported")
        if ref not in self._done:
            self._todo.append(ref)
        return ref

    def convert(self, node: Any) -> Any:
        """One Schema Object as JSON Schema 2020-12 (its `$ref` targets queued for `add`)."""
        if not isinstance(node, dict):
            return node  # true / false / garbage the spec validator let through
        if "$ref" in node:
            ref = {"$ref": self._ref(node["$ref"])}
            if self._v30:
                # 3.0: siblings of $ref are ignored, except the `nullable` real documents put there.
                return {"anyOf": [ref, {"type": "null"}]} if node.get("nullable") is True else ref
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in _DROP or k.startswith("x-") or k in _HANDLED:
                continue
            if k == "$ref":
                out[k] = self._ref(v)
            elif k in _SCHEMA_MAPS and isinstance(v, dict):
                out[k] = {n: self.convert(s) for n, s in v.items()}
            elif k in _SCHEMA_LISTS and isinstance(v, list):
                out[k] = [self.convert(s) for s in v]
            elif k in _SCHEMA_ONE:
                out[k] = [self.convert(s) for s in v] if isinstance(v, list) else self.convert(v)
            elif k in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(v, bool):
                bound = "minimum" if k == "exclusiveMinimum" else "maximum"
                if v and bound in node:
                    out[k] = node[bound]
            else:
                out[k] = v
        for bound, excl in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if node.get(excl) is True and bound in out:
                del out[bound]
        required = node.get("required")
        if isinstance(required, list):
            kept = [r for r in required if not self._hidden(node, r)]
            if kept:
                out["required"] = kept
        self._discriminate(node, out)
        if self._v30 and node.get("nullable") is True:
            return _nullable(out)
        return out

    def _hidden(self, node: dict[str, Any], name: Any) -> bool:
        """Is property `name` readOnly (in a request) or writeOnly (in a response), so not required there?"""
        flag = "readOnly" if self._direction == "request" else "writeOnly"
        prop = (node.get("properties") or {}).get(name) if isinstance(node.get("properties"), dict) else None
        for _ in range(8):  # follow a few `$ref` hops; the flag may sit on the target
            if not isinstance(prop, dict):
                return False
            if prop.get(flag) is True:
                return True
            ref = prop.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return False
            try:
                prop = self._resolve(ref)
            except Exception:  # noqa: BLE001 - a dangling reference is reported where it is compiled
                return False
        return False

    def _discriminate(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        disc = node.get("discriminator")
        if not isinstance(disc, dict) or not isinstance(disc.get("propertyName"), str):
            return
        key = "oneOf" if isinstance(node.get("oneOf"), list) else "anyOf" if isinstance(node.get("anyOf"), list) else None
        if key is None:
            return
        branches = node[key]
        refs = [r for b in branches if isinstance(b, dict) and isinstance(r := b.get("$ref"), str) and r.startswith("#")]
        if len(refs) != len(branches):
            return  # inline branches: the plain oneOf/anyOf stays
        prop = disc["propertyName"]
        mapping: dict[str, str] = {}
        for value, target in (disc.get("mapping") or {}).items():
            if isinstance(target, str):
                mapping[str(value)] = target if target.startswith("#") else f"#/components/schemas/{target}"
        for r in refs:
            if r not in mapping.values():
                mapping.setdefault(unescape(r.rsplit("/", 1)[-1]), r)  # implicit: the schema's name is the value
        selectors: list[Any] = [{"required": [prop], "properties": {prop: {"enum": list(mapping)}}}]
        selectors += [
            {"if": {"properties": {prop: {"const": v}}, "required": [prop]}, "then": {"$ref": self._ref(r)}}
            for v, r in mapping.items()
        ]
        del out[key]
        out["allOf"] = [*out.get("allOf", []), *selectors]


def _nullable(out: dict[str, Any]) -> dict[str, Any]:
    t = out.get("type")
    if isinstance(t, str):
        out["type"] = [t, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if isinstance(t, list):
        if "null" not in t:
            out["type"] = [*t, "null"]
        return out
    return {"anyOf": [out, {"type": "null"}]} if out else out
