"""Suggestions written out: handoffs with contracts in the config's YAML, or an OpenAPI 3.1 document. Pure.

Both carry the reviewer's notes as YAML comments: enum candidates (`# enum: [...]`, uncomment to enforce),
fields that are not always present, extract candidates, and what each suggestion was learned from.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, Final

from seamline.learn.infer import ITEMS, REQUIRED_SHARE, Inferred, Path
from seamline.learn.paths import path_parameters, singular
from seamline.learn.suggest import HandoffTraffic
from seamline.learn.yamlout import Comment, flow

_IDENT: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _annotated(inferred: Inferred) -> dict[Any, Any]:
    """The schema with comments: enum candidates and presence shares of optional fields."""
    schema: dict[Any, Any] = copy.deepcopy(inferred.schema)
    _annotate(schema, (), inferred)
    return schema


def _annotate(node: dict[Any, Any], path: Path, inferred: Inferred) -> None:
    for sub in node.get("anyOf") or ():
        _annotate(sub, path, inferred)
    props = node.get("properties")
    if isinstance(props, dict):
        out: dict[Any, Any] = {}
        for key, sub in props.items():
            child = (*path, key)
            share = inferred.required_share.get(child, 1.0)
            if share < REQUIRED_SHARE:
                out[Comment(f"{key}: in {share:.0%} of the bodies, so not required")] = None
            _annotate(sub, child, inferred)
            out[key] = sub
        node["properties"] = out
    if isinstance(node.get("items"), dict):
        _annotate(node["items"], (*path, ITEMS), inferred)
    values = inferred.enums.get(path)
    if values:
        node[Comment(f"enum: {flow(values)}  # candidate: the only values seen; uncomment to hold the upstream to them")] = None


def _jmespath(path: Path) -> str:
    return ".".join(p if _IDENT.match(p) else '"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in path)


def _extract_name(path: Path, template: str) -> str:
    if path == ("id",):
        statics = [s for s in template.split("/") if s and not s.startswith("{") and not re.fullmatch(r"v\d+", s)]
        return f"{singular(statics[-1]) if statics else 'object'}_id"
    name = "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_").lower() for p in path)
    return name if name.endswith("id") else f"{name}_id"


def extract_candidates(traffic: HandoffTraffic, inferred: Inferred | None) -> dict[str, str]:
    """ID-like response fields as `extract` entries (name → JMESPath), primary ID first."""
    out: dict[str, str] = {}
    for path in inferred.ids if inferred else ():
        name = _extract_name(path, traffic.template)
        out.setdefault(name, f"response.body.{_jmespath(path)}")
    return out


def contract_for(traffic: HandoffTraffic) -> dict[Any, Any]:
    """The `contract` of one handoff: learned status and schemas; the configured assert, echo, enforce kept."""
    configured = traffic.configured.contract if traffic.configured is not None else None
    kept = configured if configured is not None and not isinstance(configured, str) else None
    contract: dict[Any, Any] = {}
    if isinstance(configured, str):
        contract[Comment(f"the configured contract is the file {configured}: merge what follows into it")] = None
    if traffic.statuses:
        contract["status"] = sorted(traffic.statuses)
    request = traffic.request_schema()
    if request is not None:
        contract["request_schema"] = _annotated(request)
    elif kept is not None and kept.request_schema is not None:
        contract["request_schema"] = kept.request_schema
    response = traffic.response_schema()
    if response is not None:
        contract["response_schema"] = _annotated(response)
    if kept is not None:
        if kept.assert_:
            contract["assert"] = dict(kept.assert_)
        if kept.echo:
            contract["echo"] = list(kept.echo)
    extract: dict[Any, Any] = dict(kept.extract) if kept is not None else {}
    candidates = extract_candidates(traffic, response)
    for n, (name, expr) in enumerate(candidates.items()):
        if name in extract or expr in extract.values():
            continue
        if n == 0 and not extract:
            extract[name] = expr  # the object's own ID: recorded with every call, so runs can be found by it
        else:
            extract[Comment(f"{name}: {expr}")] = None
    if extract:
        contract["extract"] = extract
    contract["enforce"] = kept.enforce if kept is not None else "record"
    return contract


def _learned_note(traffic: HandoffTraffic) -> str:
    skipped = ", ".join(f"{n} {why}" for why, n in traffic.skipped.most_common())
    note = f"learned from {traffic.learned_from} of {traffic.calls} calls"
    return note + (f" (not from: {skipped})" if skipped else "")


def handoffs_document(traffic: list[HandoffTraffic], *, not_called: Sequence[str] = ()) -> dict[Any, Any]:
    """`{handoffs: {...}}` for the config, one entry per handoff; new ones (from `<upstream>.other`) say so, and
    configured handoffs without a recorded call (`not_called`) are named in a comment."""
    handoffs: dict[Any, Any] = {}
    for name in not_called:
        handoffs[Comment(f"{name}: no call recorded, nothing to learn from")] = None
    for t in traffic:
        if not t.learned_from:
            handoffs[Comment(f"{t.name}: no contract suggested, {_learned_note(t)}")] = None
            continue
        entry: dict[Any, Any] = {Comment(_learned_note(t)): None}
        if t.configured is None:
            entry[Comment("a new handoff: these calls matched none configured")] = None
        entry["upstream"] = t.upstream
        entry["match"] = t.configured.match if t.configured is not None else f"{t.method} {t.template}"
        entry["safety"] = t.safety
        if t.configured is not None and t.configured.step:
            entry["step"] = t.configured.step
        entry["contract"] = contract_for(t)
        handoffs[t.name] = entry
    return {"handoffs": handoffs}


# -- OpenAPI 3.1 ---------------------------------------------------------------------------------------------------


def _media(counter: Any) -> str:
    return str(counter.most_common(1)[0][0]) if counter else "application/json"


def _operation(t: HandoffTraffic, suffix: str = "") -> dict[Any, Any]:
    op: dict[Any, Any] = {
        Comment(_learned_note(t)): None,
        "operationId": (t.name.split(".", 1)[1] if "." in t.name else t.name) + suffix,
        "summary": t.name,
        "x-seamline-safety": t.safety,
    }
    params = path_parameters(t.template)
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    request = t.request_schema()
    if request is not None:
        op["requestBody"] = {"required": True, "content": {_media(t.request_type): {"schema": _annotated(request)}}}
    responses: dict[Any, Any] = {}
    for status in sorted(t.by_status):
        learner = t.by_status[status]
        inferred = learner.result()
        responses[str(status)] = {
            "description": f"observed {learner.samples} times",
            "content": {_media(t.response_type): {"schema": _annotated(inferred)}},
        }
    if not responses:
        responses["default"] = {"description": "no successful call observed"}
    op["responses"] = responses
    return op


def openapi_document(upstream: str, traffic: list[HandoffTraffic], *, base_url: str | None, since: str) -> dict[Any, Any]:
    """An OpenAPI 3.1 document of what `upstream` was seen answering."""
    paths: dict[str, dict[Any, Any]] = {}
    for t in sorted(traffic, key=lambda x: (x.template, x.method)):
        methods = ["get", "put", "post", "delete", "patch"] if t.method == "*" else [t.method.lower()]
        item = paths.setdefault(t.template if t.template.startswith("/") else "/" + t.template, {})
        for m in methods:
            item.setdefault(m, _operation(t, f"_{m}" if t.method == "*" else ""))
    doc: dict[Any, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{upstream} (as observed by Seamline)",
            "version": "observed",
            "description": f"Learned by `seamline contracts suggest` from calls recorded since {since}; review before use.",
        },
    }
    if base_url:
        doc["servers"] = [{"url": base_url}]
    doc["paths"] = paths
    return doc
