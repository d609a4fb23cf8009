"""The configuration reference, generated from the pydantic models in `seamline.config.models`.

`python -m seamline.config.reference` rewrites the section between the markers in README.md (`--check`: exit 1 when stale).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from seamline.config.models import Config

BEGIN = "<!-- BEGIN CONFIG REFERENCE -->"
END = "<!-- END CONFIG REFERENCE -->"
DEFAULT_TARGETS = ("README.md",)

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", SecretStr: "secret string"}
_PLURALS = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "booleans"}


class MarkersMissing(ValueError):
    """The file has no BEGIN/END CONFIG REFERENCE markers to replace between."""


def config_reference_markdown(heading_level: int = 3) -> str:
    """The reference as Markdown: one table per section (key, type, default, description), plus env overrides."""
    h = "#" * heading_level
    out = [
        "<!-- Generated from src/seamline/config/models.py by `python -m seamline.config.reference`; "
        "edit the models, not this text. -->",
        "",
        "One YAML file, given to `serve --config` and validated by `check-config`; unknown keys are errors. "
        "Top-level keys: " + ", ".join(f"`{_key(n, f)}`" for n, f in Config.model_fields.items()) + ".",
        "",
        "**Environment overrides** (the environment beats the file):",
        "",
        "- `SEAMLINE_CLICKHOUSE_URL` sets `storage.clickhouse_url`.",
        "- `SEAMLINE_ADMIN_TOKEN` sets `admin.token`, `SEAMLINE_ADMIN_TOKEN_FILE` sets `admin.token_file` (either "
        "replaces the file's token source); `seamline trace` and `seamline runs` read the same.",
        "- `SEAMLINE_<SECTION>__<FIELD>` sets one field, e.g. `SEAMLINE_SERVER__PORT=8081`, "
        "`SEAMLINE_STORAGE__ENABLED=false`, `SEAMLINE_UPSTREAMS__CRM__BASE_URL=https://crm.example`; "
        'lists and mappings are given as JSON (`SEAMLINE_CAPTURE__REDACT_KEYS=\'["password","pin"]\'`). '
        "Names are case-insensitive, so upstream names set this way are lower-case.",
    ]
    for title, model, intro, env in _sections():
        out += ["", f"{h} `{title}`", ""]
        if intro:
            out += [intro, ""]
        if env:
            out += [f"Environment: `{env}<KEY>`.", ""]
        out += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
        for key, field, type_text in _rows(model, title):
            out.append(f"| `{key}` | {_cell(type_text)} | {_cell(_default(field))} | {_cell(field.description or '')} |")
    return "\n".join(out) + "\n"


def _sections() -> Iterator[tuple[str, type[BaseModel], str, str | None]]:
    """(title, model, intro, env prefix) for every section, in Config's field order; unions holding a model get their own."""
    for name, field in Config.model_fields.items():
        key = _key(name, field)
        model, is_map = _model_of(field.annotation)
        if model is None:
            continue
        title = f"{key}.<name>" if is_map else key
        env = None if is_map else f"SEAMLINE_{key.upper()}__"
        yield title, model, _intro(field, model), env
        yield from _nested_sections(model, title)


def _nested_sections(model: type[BaseModel], parent: str) -> Iterator[tuple[str, type[BaseModel], str, str | None]]:
    for name, field in model.model_fields.items():
        inner = _union_model(field.annotation)
        if inner is not None:
            title = f"{parent}.{_key(name, field)}"
            yield title, inner, _intro(field, inner), None
            yield from _nested_sections(inner, title)


def _rows(model: type[BaseModel], section: str, prefix: str = "") -> Iterator[tuple[str, FieldInfo, str]]:
    """(dotted key, field, type text); a nested model field is flattened into dotted keys."""
    for name, field in model.model_fields.items():
        key = prefix + _key(name, field)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _rows(ann, section, key + ".")
            continue
        inner = _union_model(ann)
        if inner is not None:
            others = [a for a in typing.get_args(ann) if a is not inner and a is not type(None)]
            alt = " or ".join(_type(a) for a in others)
            text = f"mapping (see `{section}.{key}`)" + (f" or {alt} (path to a YAML/JSON file of it)" if alt else "")
            yield key, field, text + (" or null" if type(None) in typing.get_args(ann) else "")
            continue
        yield key, field, _type(ann) + _constraints(field)


def _key(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _intro(field: FieldInfo, model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__")
    parts = [inspect.cleandoc(doc) if doc else "", field.description or ""]
    return " ".join(p for p in parts if p)


def _model_of(ann: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model, is a name → model mapping) for a Config field's annotation."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, False
    if typing.get_origin(ann) is dict:
        value = typing.get_args(ann)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value, True
    return None, False


def _union_model(ann: Any) -> type[BaseModel] | None:
    if typing.get_origin(ann) not in (typing.Union, types.UnionType):
        return None
    models = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if models else None


def _type(ann: Any) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann in _SCALARS:
        return _SCALARS[ann]
    if ann is Any:
        return "any"
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        inner = _type(args[0]) if args else "any"
        return f"list of {_PLURALS.get(inner, inner)}"
    if origin is dict:
        k, v = (_type(a) for a in args) if args else ("string", "any")
        return "mapping" if v == "any" else f"mapping of {k} to {v}"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    return getattr(ann, "__name__", str(ann))


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
)


def _constraints(field: FieldInfo) -> str:
    bounds = [f"{sym} {getattr(m, attr)}" for m in field.metadata for cls, attr, sym in _BOUNDS if isinstance(m, cls)]
    return f" ({', '.join(bounds)})" if bounds else ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "*required*"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "—"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def replace_between_markers(text: str, block: str) -> str:
    """`text` with everything between the markers replaced by `block`; raises MarkersMissing."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise MarkersMissing(f"no {BEGIN} … {END} section")
    return text[: start + len(BEGIN)] + "\n" + block + text[end:]


def section_of(text: str) -> str:
    """What is between the markers now (without the newline after BEGIN)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise MarkersMissing(f"no {BEGIN} … {END} section")
    return text[start + len(BEGIN) : end].removeprefix("\n")


def update_readme(path: str | Path) -> bool:
    """Rewrite the config reference between the markers in `path`; True when the file changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        new = replace_between_markers(text, config_reference_markdown())
    except MarkersMissing as e:
        raise MarkersMissing(f"{p}: {e}") from None
    if new == text:
        return False
    p.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seamline.config.reference", description="Regenerate the config reference.")
    parser.add_argument(
        "paths", nargs="*", default=list(DEFAULT_TARGETS), help="Markdown files with the markers (default README.md)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = False
    for path in args.paths:
        try:
            if args.check:
                changed = section_of(Path(path).read_text(encoding="utf-8")) != config_reference_markdown()
            else:
                changed = update_readme(path)
        except (OSError, MarkersMissing) as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        stale |= changed
        print(f"{path}: {'stale' if args.check and changed else 'updated' if changed else 'up to date'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
