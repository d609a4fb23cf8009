"""Handoff names and route templates for OpenAPI operations. Pure.

A derived handoff is named `<upstream>.<slug>`:
- the slug of the operationId: every run of characters other than letters, digits and `_` (spaces, hyphens, dots,
  slashes…) becomes one `_`, leading and trailing `_` are dropped (`"List pets-v2"` → `List_pets_v2`);
- with no operationId, the slug of the method and path: `GET /pets/{petId}` → `get_pets_petId`;
- a slug longer than 60 characters, or than the handoff name allows (63 with the upstream and the dot), is cut and
  ends in `_` + the first 6 hex digits of the SHA-1 of what it was made from, so two long ids that share their
  start stay apart;
- a slug already taken (by an earlier operation in the document, or by a handoff of the config on another route)
  gets the same 6-hex suffix of its method and path: names are stable for one document, and collision-free.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

MAX_SLUG: Final = 60
MAX_NAME: Final = 63  # config.models._NAME_RE
_NOT_WORD = re.compile(r"[^A-Za-z0-9_]+")
_PARAM = re.compile(r"\{([^{}]*)\}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _hex6(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def slug(text: str) -> str:
    return _NOT_WORD.sub("_", text).strip("_")


def handoff_name(upstream: str, operation_id: str | None, method: str, path: str, taken: set[str]) -> str:
    """`<upstream>.<slug>`, unique among `taken` (which it joins)."""
    source = operation_id if operation_id and slug(operation_id) else f"{method.lower()} {path}"
    base = slug(source) or method.lower()
    limit = min(MAX_SLUG, MAX_NAME - len(upstream) - 1)
    if len(base) > limit:
        base = base[: limit - 7].rstrip("_") + "_" + _hex6(source)
    name = f"{upstream}.{base}"
    if name in taken:
        suffix = "_" + _hex6(f"{method.upper()} {path}")
        name = f"{upstream}.{base[: limit - 7].rstrip('_')}{suffix}"
        n = 2
        while name in taken:  # the same method and path twice cannot happen; a hash clash can, in theory
            name = f"{upstream}.{base[: limit - 10].rstrip('_')}{suffix}{n}"
            n += 1
    taken.add(name)
    return name


def route_template(path: str) -> tuple[str, dict[str, str]]:
    """The OpenAPI path as a `match` template the router takes, and route name → parameter name.

    The router's parameters are identifiers; OpenAPI's may hold hyphens or dots (`{customer-id}`): those are renamed
    (`{customer_id}`), twice-used names numbered.
    """
    names: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        original = m.group(1)
        s = slug(original) or "p"
        ident = original if _IDENT.match(original) else s if s[0].isalpha() else "p_" + s
        base, n = ident, 2
        while ident in names:
            ident = f"{base}_{n}"
            n += 1
        names[ident] = original
        return "{" + ident + "}"

    return _PARAM.sub(sub, path), names


def same_route(a: str, b: str) -> bool:
    """Do two path templates describe the same route, whatever their parameters are called?"""
    return _PARAM.sub("{}", a).rstrip("/") == _PARAM.sub("{}", b).rstrip("/")
