"""Loading the configuration: YAML file + environment, contract files resolved, and errors phrased for a person
(file, field path, what is allowed, the fix)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from seamline.config.models import Config, Contract, Handoff


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. YAML 1.1 (PyYAML's default) also reads on/off/yes/no as booleans, so
    the retry key `on` (`retry: {on: [connect, 503]}`) became `True` and the config was refused."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class ConfigError(Exception):
    """A configuration problem, already phrased for a person: file, field, fix."""


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Walk `loc` through the model tree and return the field names allowed at the parent."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                field = next((f for f in current.model_fields.values() if f.alias == part), None)
            if field is None:
                return None
            current = field.annotation
        else:
            # dict[str, Model] or Model | str | None: find the model inside
            args = getattr(current, "__args__", ())
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return None
            current = models[0]
            if str(part) in current.model_fields or any(f.alias == part for f in current.model_fields.values()):
                current = _field_annotation(current, part)
    args = getattr(current, "__args__", ())
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return None
        current = models[0]
    return [f.alias or n for n, f in current.model_fields.items()]


def _field_annotation(model: type[BaseModel], part: Any) -> Any:
    field = model.model_fields.get(str(part)) or next(f for f in model.model_fields.values() if f.alias == part)
    return field.annotation


_FIELD_FIRST = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_.-]+)+: ")
_UNION_TAGS = {"Contract", "str", "none", "int", "list[int]", "dict[str,any]"}


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid configuration ({err.error_count()} problem{'s' if err.error_count() != 1 else ''})"]
    for e in err.errors():
        if e["type"] == "string_type" and isinstance(e.get("input"), dict):
            continue  # the `str` branch of `Model | str`: the model branch reports the real problem
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p in _UNION_TAGS)))
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if not loc and _FIELD_FIRST.match(msg):
            lines.append(f"  {msg}")  # a cross-field check that names its own field (upstreams.x.base_url: …)
            continue
        if e["type"] == "extra_forbidden":
            allowed = _allowed_fields(Config, loc)
            hint = f"unknown key; allowed here: {', '.join(allowed)}" if allowed else "unknown key"
            lines.append(f"  {path}: {hint}")
        elif e["type"] == "missing":
            lines.append(f"  {path}: required field is missing")
        elif e["type"] == "literal_error":
            lines.append(f"  {path}: {msg} (got {e.get('input')!r})")
        else:
            lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


_TOP_KEYS = "upstreams, handoffs, server, capture, storage, telemetry"
_NONE = object()


def load_config_or_report(path: str | os.PathLike[str] | None, *, overrides: dict[str, Any] | None = None) -> Config | None:
    """For the command line: the config, or None once its error (file, field, fix) is printed to stderr."""
    try:
        return load_config(path, overrides=overrides)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return None


def load_config(path: str | os.PathLike[str] | None, *, overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge environment overrides, validate. Raises ConfigError with a readable message."""
    source = str(path) if path is not None else "(defaults)"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found; pass --config with the path to your seamline.yaml") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{source}: cannot read ({e})") from None
        try:
            loaded = yaml.load(text, Loader=YamlLoader)  # a SafeLoader (no arbitrary objects)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping with keys {_TOP_KEYS}")
        data = loaded
    odd = next((k for k in data if not isinstance(k, str)), _NONE)
    if odd is not _NONE:
        # YAML allows `? : x`, `1: x`, `[a]: x`; Config(**data) would raise a bare TypeError on them.
        raise ConfigError(f"{source}: top-level key {odd!r} is not a name; the keys are {_TOP_KEYS}")
    data = _merge(data, overrides or {})
    env_url = os.environ.get("SEAMLINE_CLICKHOUSE_URL")
    if env_url:
        data = _merge(data, {"storage": {"clickhouse_url": env_url}})
    data = _admin_token_from_env(data)
    try:
        cfg = Config(**data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, e)) from None
    base = Path(path).parent if path is not None else Path.cwd()
    cfg = _resolve_contract_files(cfg, base, source)
    return _derive_openapi_handoffs(cfg, base, source)


def _derive_openapi_handoffs(cfg: Config, base: Path, source: str) -> Config:
    """Every operation of an upstream's `openapi` document as a handoff (seamline.validate.openapi)."""
    if not any(up.openapi for up in cfg.upstreams.values()):
        return cfg
    from seamline.validate.openapi import OpenAPIError, derive_handoffs

    try:
        return derive_handoffs(cfg, base)
    except OpenAPIError as e:
        raise ConfigError(f"{source}: {e}") from None


def _admin_token_from_env(data: dict[str, Any]) -> dict[str, Any]:
    """SEAMLINE_ADMIN_TOKEN / SEAMLINE_ADMIN_TOKEN_FILE replace the file's admin token source (the environment wins)."""
    sources = (("SEAMLINE_ADMIN_TOKEN", "token", "token_file"), ("SEAMLINE_ADMIN_TOKEN_FILE", "token_file", "token"))
    for env, key, other in sources:
        value = os.environ.get(env)
        if value:
            admin = data.get("admin")
            admin = {k: v for k, v in admin.items() if k != other} if isinstance(admin, dict) else {}
            return {**data, "admin": {**admin, key: value}}
    return data


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _resolve_contract_files(cfg: Config, base: Path, source: str) -> Config:
    """Replace `contract: path/to/file.yaml` by the parsed Contract."""
    changed: dict[str, Handoff] = {}
    for name, h in cfg.handoffs.items():
        if isinstance(h.contract, str):
            cpath = (base / h.contract).resolve()
            where = f"{source}: handoffs.{name}.contract"
            try:
                raw = yaml.load(cpath.read_text(encoding="utf-8"), Loader=YamlLoader)  # a SafeLoader (no arbitrary objects)
            except FileNotFoundError:
                raise ConfigError(f"{where}: contract file {cpath} not found; give a path relative to the config file") from None
            except yaml.YAMLError as e:
                raise ConfigError(f"{where}: contract file {cpath} is not valid YAML/JSON: {e}") from None
            try:
                contract = Contract.model_validate(raw or {})
            except ValidationError as e:
                msg = format_validation_error(str(cpath), e)
                raise ConfigError(f"{where}: {msg}") from None
            changed[name] = h.model_copy(update={"contract": contract})
    if not changed:
        return cfg
    return cfg.model_copy(update={"handoffs": {**cfg.handoffs, **changed}})
