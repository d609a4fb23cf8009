"""Path templates from observed URLs: the segments that are IDs become `{id}` parameters. Pure.

An ID segment is a number, a UUID, a long hex string (object IDs, hashes) or a prefixed ID (`ch_3MtwBw…`,
`cus-9f2a…`, `acct_1042`). The last ID of a path is `{id}`; an earlier one is named after the collection it follows
(`/customers/cus_1/invoices/in_2` → `/customers/{customer_id}/invoices/{id}`), so every name in a path is unique
as OpenAPI requires.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit

_NUMERIC: Final = re.compile(r"^\d+$")
_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEX: Final = re.compile(r"^(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}$")  # a digit: `deadbeefcafe` words are not IDs
# A short lower-case prefix, `_` or `-`, then a body of 4+ with at least one digit (Stripe, HubSpot, Twilio style);
# `page-2` is not one.
_PREFIXED: Final = re.compile(r"^[a-z][a-z0-9]{0,11}[_-](?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{4,}$")
_PARAM: Final = re.compile(r"^\{[^{}]+\}$")


def is_id_segment(segment: str) -> bool:
    """Does this path segment (or string value) look like an identifier rather than a name?"""
    return bool(_NUMERIC.match(segment) or _UUID.match(segment) or _HEX.match(segment) or _PREFIXED.match(segment))


def singular(word: str) -> str:
    """`invoices` → `invoice`, `companies` → `company` (good enough for parameter names)."""
    word = re.sub(r"[^A-Za-z0-9_]", "_", word).strip("_").lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes")) and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        return word[:-1]
    return word or "parent"


def relative_path(url: str, base_path: str = "") -> str:
    """The path of a recorded URL under an upstream's base path (`/v1/charges` of `https://api.x/base/v1/charges`)."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    base = base_path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :]
    return path or "/"


def template_path(path: str) -> str:
    """`/v1/customers/cus_9/invoices/42` → `/v1/customers/{customer_id}/invoices/{id}`; static paths unchanged."""
    segments = path.split("/")
    ids = [i for i, seg in enumerate(segments) if seg and is_id_segment(unquote(seg))]
    out = list(segments)
    used: set[str] = set()
    for n, i in enumerate(ids):
        if n == len(ids) - 1:
            name = "id"
        else:
            prev = next((segments[j] for j in range(i - 1, -1, -1) if segments[j] and j not in ids), "")
            name = f"{singular(prev)}_id" if prev else f"id{n + 1}"
        while name in used:
            name += "_"
        used.add(name)
        out[i] = "{" + name + "}"
    return "/".join(out)


def path_parameters(template: str) -> list[str]:
    """The parameter names of a template, in order."""
    return [seg[1:-1] for seg in template.split("/") if _PARAM.match(seg)]


def operation_slug(method: str, template: str) -> str:
    """`GET /v1/contacts/{id}` → `get_v1_contacts_id`: a handoff name part (letters, digits, `_`)."""
    words = [re.sub(r"[^A-Za-z0-9]+", "_", seg.strip("{}")).strip("_").lower() for seg in template.split("/")]
    slug = "_".join([method.lower(), *(w for w in words if w)])
    return slug[:60].rstrip("_")
