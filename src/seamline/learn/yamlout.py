"""YAML for people to review: block style, keys in the order given, and comments (PyYAML writes none). Pure.

A `Comment` used as a mapping key becomes a `# …` line at that place; its value is ignored. Scalars and flat lists
are written by PyYAML itself (flow style), so quoting is always right: `yaml.safe_load(dump(x))` is `x` without
its comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Comment:
    """A `# text` line where this key stands."""

    text: str


def flow(value: Any) -> str:
    """One scalar or flat list as PyYAML writes it inline."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _inline(value: Any) -> bool:
    if isinstance(value, dict):
        return not value
    if isinstance(value, list):
        return all(not isinstance(v, (dict, list)) or not v for v in value)
    return True


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, v in value.items():
            if isinstance(key, Comment):
                out.extend(f"{pad}# {line}".rstrip() for line in key.text.splitlines() or [""])
            elif _inline(_plain(v)):
                out.append(f"{pad}{flow(key)}: {flow(_plain(v))}")
                if isinstance(v, dict):  # a mapping of comments only: `{}`, then its comments
                    out.extend(_lines(v, indent + 2))
            else:
                out.append(f"{pad}{flow(key)}:")
                out.extend(_lines(v, indent + 2))
    elif isinstance(value, list):
        for item in value:
            if _inline(_plain(item)):
                out.append(f"{pad}- {flow(_plain(item))}")
                continue
            inner = _lines(item, indent + 2)
            first = next(i for i, line in enumerate(inner) if not line.lstrip().startswith("#"))
            inner[first] = f"{pad}- {inner[first][indent + 2 :]}"
            out.extend(inner)
    else:
        out.append(pad + flow(value))
    return out


def _plain(value: Any) -> Any:
    """The value without its comments (what a YAML parser will read)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not isinstance(k, Comment)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def strip_comments(value: Any) -> Any:
    return _plain(value)


def dump(value: Any, *, header: str = "") -> str:
    """The YAML text of `value`, optionally opened by a comment block."""
    head = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return head + "\n".join(_lines(value, 0)) + "\n"
