"""A JSON Schema inferred from observed bodies (genson), refined by what was counted while reading them. Pure.

genson gives the types (unions when a field varied, `null` included) and the shape; on top of it:
- `required`: the fields present in at least `REQUIRED_SHARE` of the objects at their level (genson would require
  only those present in every one, so one odd body would free a field that is really always there — or the
  reverse: a field missing from one body in a thousand would not be a rule);
- `format`: date-time, date, uuid or email when every string seen at that place has it;
- enum candidates: strings with few distinct values, reported for a human to confirm (never put in the schema:
  the next value an upstream adds would be a violation);
- ID-like fields (`id`, `*_id`, or values shaped like IDs), candidates for `extract`;
- a field the record holds redacted (`[REDACTED]`) gets no type: contracts see the real value;
- objects keyed by IDs (`{"usr_1": {...}, "usr_2": {...}}`) become `additionalProperties`, not a property per ID.

Paths are tuples of keys, `[]` standing for "any item of this array".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from genson import SchemaBuilder  # type: ignore[import-untyped]  # no stubs or py.typed published

from seamline.capture.redact import REDACTED
from seamline.learn.paths import is_id_segment

REQUIRED_SHARE: Final = 0.99
ENUM_MAX_VALUES: Final = 10  # at most this many distinct values…
ENUM_MIN_SEEN: Final = 5  # …seen at least this often in all, and each value on average twice
ID_SHARE: Final = 0.9  # an ID-like field: this share of its values look like IDs
MAP_MIN_KEYS: Final = 4  # an object with at least this many keys, most of them IDs, is a map
MAX_DISTINCT: Final = ENUM_MAX_VALUES + 1
ITEMS: Final = "[]"
Path = tuple[str, ...]

_FORMATS: Final = (
    ("date-time", re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:?\d\d)$")),
    ("date", re.compile(r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$")),
    ("uuid", re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    ("email", re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")),
)
_ID_NAME: Final = re.compile(r"(?:^id$|_id$|[a-z]Id$|^uuid$)")


@dataclass
class _Place:
    """What was seen at one path."""

    objects: int = 0  # objects at this path (the parent count of their keys)
    present: int = 0  # times this key was present in its parent object
    strings: int = 0
    values: Counter[str] = field(default_factory=Counter)  # distinct strings, up to MAX_DISTINCT
    overflow: bool = False  # more distinct strings than MAX_DISTINCT
    formats: Counter[str] = field(default_factory=Counter)
    ids: int = 0  # strings that look like IDs
    redacted: int = 0  # values the record holds as [REDACTED]: their real type is unknown
    scalars: int = 0  # strings and integers (what an ID can be)


@dataclass(frozen=True)
class Inferred:
    """A schema and the candidates a reviewer decides on."""

    schema: dict[str, Any]
    samples: int
    enums: dict[Path, list[str]]  # path -> its few distinct values, most frequent first
    ids: list[Path]  # ID-like fields outside arrays, shallowest first
    required_share: dict[Path, float]  # every field's presence share at its level


class SchemaLearner:
    """Feed it bodies one by one (`add`), then `result()`."""

    def __init__(self) -> None:
        self._builder = SchemaBuilder(schema_uri=None)
        self._places: dict[Path, _Place] = {}
        self.samples = 0

    def add(self, body: Any) -> None:
        self._builder.add_object(body)
        self._walk(body, ())
        self.samples += 1

    def _place(self, path: Path) -> _Place:
        place = self._places.get(path)
        if place is None:
            place = self._places[path] = _Place()
        return place

    def _walk(self, value: Any, path: Path) -> None:
        if isinstance(value, dict):
            self._place(path).objects += 1
            for k, v in value.items():
                child = (*path, str(k))
                self._place(child).present += 1
                self._walk(v, child)
        elif isinstance(value, list):
            for v in value:
                self._walk(v, (*path, ITEMS))
        elif value == REDACTED:
            self._place(path).redacted += 1
        elif isinstance(value, str):
            place = self._place(path)
            place.strings += 1
            place.scalars += 1
            if value in place.values or len(place.values) < MAX_DISTINCT:
                place.values[value] += 1
            else:
                place.overflow = True
            for name, rx in _FORMATS:
                if rx.match(value):
                    place.formats[name] += 1
                    break
            if is_id_segment(value):
                place.ids += 1
        elif isinstance(value, int) and not isinstance(value, bool):
            self._place(path).scalars += 1

    def result(self) -> Inferred:
        schema = self._builder.to_schema() if self.samples else {}
        enums: dict[Path, list[str]] = {}
        ids: list[Path] = []
        shares: dict[Path, float] = {}
        self._refine(schema, (), enums, ids, shares)
        ids.sort(key=lambda p: (len(p), p != ("id",), p))
        return Inferred(schema, self.samples, enums, ids, shares)

    def _refine(
        self, node: dict[str, Any], path: Path, enums: dict[Path, list[str]], ids: list[Path], shares: dict[Path, float]
    ) -> None:
        for sub in node.get("anyOf") or ():
            self._refine(sub, path, enums, ids, shares)
        props = node.get("properties")
        if isinstance(props, dict):
            if self._is_map(props, path):
                node.pop("properties")
                node.pop("required", None)
                node["additionalProperties"] = _merged(props.values())
                return
            seen = max(self._places.get(path, _Place()).objects, 1)
            required = []
            for key, sub in props.items():
                child = (*path, key)
                share = self._places.get(child, _Place()).present / seen
                shares[child] = share
                if share >= REQUIRED_SHARE:
                    required.append(key)
                self._refine(sub, child, enums, ids, shares)
            if required:
                node["required"] = required
            else:
                node.pop("required", None)
        items = node.get("items")
        if isinstance(items, dict):
            self._refine(items, (*path, ITEMS), enums, ids, shares)
        place = self._places.get(path)
        if place is None or not path:
            return
        if place.redacted:
            # The contract sees the real value, the record only the mask: say nothing about its type.
            node.clear()
            node["description"] = "redacted in the record: type not inferred"
            return
        if _has_type(node, "string") and place.strings:
            for name, count in place.formats.items():
                if count == place.strings:
                    node["format"] = name
            distinct = len(place.values)
            if (
                not place.overflow
                and "format" not in node
                and distinct <= ENUM_MAX_VALUES
                and place.strings >= max(ENUM_MIN_SEEN, 2 * distinct)
                and place.ids < place.strings
            ):
                enums[path] = [v for v, _ in place.values.most_common()]
        if (
            ITEMS not in path
            and place.scalars
            and (_ID_NAME.search(path[-1]) or (place.strings and place.ids >= ID_SHARE * place.strings))
        ):
            ids.append(path)

    def _is_map(self, props: dict[str, Any], path: Path) -> bool:
        keys = list(props)
        return len(keys) >= MAP_MIN_KEYS and sum(1 for k in keys if is_id_segment(k)) >= ID_SHARE * len(keys)


def _has_type(node: dict[str, Any], name: str) -> bool:
    t = node.get("type")
    return t == name or (isinstance(t, list) and name in t)


def _merged(schemas: Iterable[dict[str, Any]]) -> dict[str, Any]:
    builder = SchemaBuilder(schema_uri=None)
    for s in schemas:
        builder.add_schema(s)
    return dict(builder.to_schema())


def infer_schema(bodies: Iterable[Any]) -> Inferred:
    """The schema of these bodies and its candidates (see the module doc)."""
    learner = SchemaLearner()
    for body in bodies:
        learner.add(body)
    return learner.result()


def dotted(path: Path) -> str:
    """('lines', '[]', 'amount') → `lines[].amount` (the drift columns' notation)."""
    out = ""
    for part in path:
        out += part if part == ITEMS else f".{part}" if out else part
    return out
