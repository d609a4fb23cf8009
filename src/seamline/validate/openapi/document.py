"""Loading a vendor's OpenAPI document (3.0 or 3.1, YAML or JSON, one local file) into its operations.

Reads and checks the file once at config load: `.json` with a JSON parser that accepts the raw control characters
real documents carry inside strings (`json.loads(strict=False)`; YAML would choke on them, or read them otherwise),
anything else as YAML; every `$ref` must point inside the document (a bundled document: `redocly bundle` makes one);
then the document is validated by openapi-spec-validator. Its full check (the OpenAPI schema, then every Schema
Object and the rules between them) costs ~5 s for Stripe's 4.2 MB document (25 s on a busy machine): an OpenAPI 3.0
document over FULL_CHECK_BYTES is checked against the same OpenAPI 3.0 JSON Schema (shipped with
openapi-spec-validator) by jsonschema-rs instead, in ~0.06 s: the structure, not those rules.
Errors name the file, the JSON pointer and the fix (`OpenAPIError`, phrased into the config's error by the loader).

The result (`OpenAPIDocument`) is plain data, picklable (the engine process gets it with the config): the operations
with their parameters and the pointers of their schemas, and the converted schemas (`schema.Mirror`) per direction.
Compiling them into validators is `contract.py`'s business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from seamline.validate.openapi.names import handoff_name, route_template
from seamline.validate.openapi.schema import Mirror, escape, pointer_of, split_pointer

METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
FULL_CHECK_BYTES: Final = 1 << 20
_MAX_ERRORS: Final = 5
_MAX_TEXT: Final = 200

Safety = Literal["safe_to_repeat", "safe_once", "never_repeat"]


class OpenAPIError(Exception):
    """A document that cannot be used, phrased for a person: file, JSON pointer, fix."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an operation (path, query or header)."""

    name: str
    location: str  # path | query | header | cookie
    required: bool
    schema: str | None  # pointer of its converted schema in the request mirror
    kind: str  # the declared type values are coerced to: integer | number | boolean | array | object | string | ''
    item_kind: str = ""  # for arrays: the items' type
    explode: bool = True


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the document, as the handoff it becomes."""

    handoff: str  # <upstream>.<slug>
    method: str  # upper case
    path: str  # the document's path template, e.g. /pets/{petId}
    match: str  # `METHOD /template` for the config (route parameter names made identifiers)
    route_params: dict[str, str]  # route parameter name → the document's
    operation_id: str | None
    safety: Safety
    params: tuple[Param, ...]
    body_required: bool
    body: dict[str, str | None]  # request content type → pointer of its schema (request mirror), None: no schema
    responses: dict[str, dict[str, str | None]]  # '200' | '2XX' | 'default' → content type → pointer (response mirror)

    @property
    def statuses(self) -> list[str]:
        return list(self.responses)


@dataclass(frozen=True, slots=True)
class OpenAPIDocument:
    """An upstream's document: where it came from, its operations, its schemas as JSON Schema."""

    file: str
    version: str  # openapi: 3.0.x | 3.1.x
    title: str
    servers: tuple[str, ...]
    operations: tuple[Operation, ...]
    request_schemas: dict[str, Any]  # schema.Mirror roots: converted schemas at their document pointers
    response_schemas: dict[str, Any]
    skipped: tuple[str, ...] = field(default=())  # operations that cannot become a handoff, and why


def load_document(path: Path, upstream: str, taken: set[str] | None = None) -> OpenAPIDocument:
    """Read, check and convert the document at `path` for upstream `upstream` (names joining `taken`)."""
    raw = read_document(path)
    file = str(path)
    check_refs(raw, file)
    if raw["openapi"].startswith("3.0") and path.stat().st_size > FULL_CHECK_BYTES:
        check_structure(raw, file)
    else:
        validate_document(raw, file)
    return _build(raw, file, upstream, taken if taken is not None else set())


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OpenAPIError(f"{path}: file not found; give a path relative to the config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise OpenAPIError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, strict=False)  # strict=False: raw control characters inside strings
        else:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except json.JSONDecodeError as e:
        raise OpenAPIError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except yaml.YAMLError as e:
        raise OpenAPIError(f"{path}: not valid YAML: {_cut(str(e))}") from None
    if not isinstance(data, dict) or not isinstance(data.get("openapi"), str):
        raise OpenAPIError(
            f"{path}: not an OpenAPI 3 document (no top-level `openapi: 3.x.y`); Swagger 2.0 documents can be converted "
            "with swagger2openapi or the Swagger Editor"
        )
    if not data["openapi"].startswith(("3.0", "3.1")):
        raise OpenAPIError(f"{path}: #/openapi: version {data['openapi']!r} is not supported; use an OpenAPI 3.0 or 3.1 document")
    return data


def check_refs(doc: dict[str, Any], file: str) -> None:
    """Every `$ref` points at something inside the document (the spec validator's own message would quote it all)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(doc, ())]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and where[-1:] != ("properties",):
                if not ref.startswith("#"):
                    raise OpenAPIError(
                        f"{file}: {pointer_of(where)}/$ref: {ref!r} points outside the document; Seamline reads one file: "
                        "bundle the document first (e.g. `redocly bundle`)"
                    )
                try:
                    resolve(doc, ref)
                except OpenAPIError:
                    raise OpenAPIError(
                        f"{file}: {pointer_of(where)}/$ref: {ref!r} points to nothing in the document; fix the reference "
                        "or add the missing component"
                    ) from None
            stack.extend((v, (*where, str(k))) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*where, str(i))) for i, v in enumerate(node))


def validate_document(doc: dict[str, Any], file: str) -> None:
    """openapi-spec-validator's verdict, its first errors each with their JSON pointer."""
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

    cls = OpenAPIV31SpecValidator if doc["openapi"].startswith("3.1") else OpenAPIV30SpecValidator
    problems: list[str] = []
    try:
        for err in cls(doc).iter_errors():
            where = pointer_of([str(p) for p in getattr(err, "absolute_path", ())])
            problems.append(f"  {where}: {_cut(getattr(err, 'message', str(err)))}")
            if len(problems) >= _MAX_ERRORS:
                break
    except Exception as e:  # noqa: BLE001 - the validator itself failed on this document: say so, not a traceback
        problems.append(f"  (the validator failed: {type(e).__name__}: {_cut(str(e))})")
    if problems:
        raise OpenAPIError(
            f"{file}: not a valid OpenAPI {doc['openapi']} document (first {len(problems)} problem(s); fix them in the "
            "document, or check it with `openapi-spec-validator FILE`):\n" + "\n".join(problems)
        )


def check_structure(doc: dict[str, Any], file: str) -> None:
    """The document against the OpenAPI 3.0 JSON Schema (openapi-spec-validator's copy), by jsonschema-rs."""
    from importlib.resources import files

    import jsonschema_rs

    schema = json.loads(files("openapi_spec_validator").joinpath("resources/schemas/v3.0/schema.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    if validator.is_valid(doc):
        return
    problems = []
    for err in validator.iter_errors(doc):
        problems.append(f"  {pointer_of([str(p) for p in err.instance_path])}: {_cut(err.message)}")
        if len(problems) >= _MAX_ERRORS:
            break
    raise OpenAPIError(
        f"{file}: not a valid OpenAPI {doc['openapi']} document (first {len(problems)} problem(s); fix them in the "
        "document, or check it with `openapi-spec-validator FILE`):\n" + "\n".join(problems)
    )


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in split_pointer(ref):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise OpenAPIError(f"$ref {ref!r} points to nothing")
    return node


def _follow(doc: dict[str, Any], node: Any, where: str) -> tuple[Any, str]:
    """A Reference Object followed to what it names (parameters, request bodies, responses…), with its pointer."""
    for _ in range(16):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node, where
        where = node["$ref"]
        node = resolve(doc, where)
    raise OpenAPIError(f"{where}: a chain of $refs loops; fix the reference")


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


# -- operations -------------------------------------------------------------------------------------------------------


def default_safety(method: str, params: tuple[Param, ...]) -> Safety:
    """GET/HEAD/PUT/DELETE/OPTIONS repeat safely; POST/PATCH never, unless an Idempotency-Key header is declared."""
    if method in _SAFE_METHODS:
        return "safe_to_repeat"
    if any(p.location == "header" and p.name.lower() == "idempotency-key" for p in params):
        return "safe_once"
    return "never_repeat"


def _kind(schema: Any, doc: dict[str, Any]) -> tuple[str, str]:
    schema, _ = _follow(doc, schema, "")
    if not isinstance(schema, dict):
        return "", ""
    t = schema.get("type")
    if isinstance(t, list):  # 3.1: ["integer", "null"]
        t = next((x for x in t if x != "null"), "")
    if not isinstance(t, str):
        for key in ("allOf", "anyOf", "oneOf"):  # a type-less wrapper around one typed schema
            for sub in schema.get(key) or ():
                k = _kind(sub, doc)
                if k[0]:
                    return k
        return "", ""
    item = _kind(schema.get("items"), doc)[0] if t == "array" else ""
    return t, item


class _Builder:
    def __init__(self, doc: dict[str, Any], file: str, upstream: str, taken: set[str]) -> None:
        self.doc, self.file, self.upstream, self.taken = doc, file, upstream, taken
        version = doc["openapi"]
        self.req = Mirror(self._resolve, version, "request")
        self.resp = Mirror(self._resolve, version, "response")
        self.skipped: list[str] = []

    def _resolve(self, ref: str) -> Any:
        try:
            return resolve(self.doc, ref)
        except OpenAPIError:
            raise OpenAPIError(f"{self.file}: $ref {ref!r} points to nothing in the document") from None

    def operations(self) -> list[Operation]:
        ops: list[Operation] = []
        for path, item in (self.doc.get("paths") or {}).items():
            item, item_ptr = _follow(self.doc, item, pointer_of(["paths", path]))
            if not isinstance(item, dict):
                continue
            for method in METHODS:
                op = item.get(method)
                if isinstance(op, dict):
                    built = self._operation(path, method, op, item, f"{item_ptr}/{method}")
                    if built is not None:
                        ops.append(built)
        return ops

    def _operation(self, path: str, method: str, op: dict[str, Any], item: dict[str, Any], ptr: str) -> Operation | None:
        if any(c.isspace() for c in path) or not path.startswith("/"):
            self.skipped.append(f"{method.upper()} {path}: a path with spaces or without a leading '/' cannot be routed")
            return None
        params = self._params(item.get("parameters"), f"{ptr.rsplit('/', 1)[0]}/parameters")
        params.update(self._params(op.get("parameters"), f"{ptr}/parameters"))  # the operation's own win
        plist = tuple(params.values())
        body_required, body = self._body(op.get("requestBody"), f"{ptr}/requestBody")
        responses = self._responses(op.get("responses") or {}, f"{ptr}/responses")
        op_id = op.get("operationId") if isinstance(op.get("operationId"), str) else None
        template, route_params = route_template(path)
        return Operation(
            handoff=handoff_name(self.upstream, op_id, method, path, self.taken),
            method=method.upper(),
            path=path,
            match=f"{method.upper()} {template}",
            route_params=route_params,
            operation_id=op_id,
            safety=default_safety(method.upper(), plist),
            params=plist,
            body_required=body_required,
            body=body,
            responses=responses,
        )

    def _params(self, raw: Any, ptr: str) -> dict[tuple[str, str], Param]:
        out: dict[tuple[str, str], Param] = {}
        for i, p in enumerate(raw or ()):
            p, where = _follow(self.doc, p, f"{ptr}/{i}")
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                continue
            loc = str(p.get("in", ""))
            schema, schema_ptr = p.get("schema"), f"{where}/schema"
            if schema is None and isinstance(p.get("content"), dict) and p["content"]:
                mime = next(iter(p["content"]))  # `content` instead of `schema`: one media type, by the spec
                schema, schema_ptr = p["content"][mime].get("schema"), f"{where}/content/{escape(mime)}/schema"
            pointer = None
            if schema is not None:
                self.req.add(schema_ptr, schema)
                pointer = schema_ptr
            kind, item_kind = _kind(schema, self.doc)
            style = p.get("style") or ("simple" if loc in ("path", "header") else "form")
            explode = p.get("explode", style == "form")
            name = p["name"].lower() if loc == "header" else p["name"]
            out[(loc, name)] = Param(name, loc, bool(p.get("required")) or loc == "path", pointer, kind, item_kind, bool(explode))
        return out

    def _content(self, content: Any, where: str, mirror: Mirror) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for mime, media in (content or {}).items() if isinstance(content, dict) else ():
            schema = media.get("schema") if isinstance(media, dict) else None
            ptr = f"{where}/content/{escape(mime)}/schema"
            if schema is not None:
                mirror.add(ptr, schema)
            out[mime.partition(";")[0].strip().lower()] = ptr if schema is not None else None
        return out

    def _body(self, raw: Any, ptr: str) -> tuple[bool, dict[str, str | None]]:
        if raw is None:
            return False, {}
        body, where = _follow(self.doc, raw, ptr)
        if not isinstance(body, dict):
            return False, {}
        return bool(body.get("required")), self._content(body.get("content"), where, self.req)

    def _responses(self, raw: dict[str, Any], ptr: str) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for status, resp in raw.items():
            resp, where = _follow(self.doc, resp, f"{ptr}/{escape(str(status))}")
            if isinstance(resp, dict):
                out[str(status).upper() if str(status) != "default" else "default"] = self._content(
                    resp.get("content"), where, self.resp
                )
        return out


def _build(doc: dict[str, Any], file: str, upstream: str, taken: set[str]) -> OpenAPIDocument:
    b = _Builder(doc, file, upstream, taken)
    ops = b.operations()
    info = doc["info"] if isinstance(doc.get("info"), dict) else {}
    servers = tuple(str(s.get("url")) for s in doc.get("servers") or () if isinstance(s, dict) and s.get("url"))
    return OpenAPIDocument(
        file=file,
        version=doc["openapi"],
        title=str(info.get("title", "")),
        servers=servers,
        operations=tuple(ops),
        request_schemas=b.req.root,
        response_schemas=b.resp.root,
        skipped=tuple(b.skipped),
    )
