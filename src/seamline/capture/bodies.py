"""Bodies for the record: decode and redact the capped prefix the relay kept. Pure.

The prefix itself is kept while streaming by `seamline.exchange.BodyTap` (O(1) per chunk once the cap is
reached, never buffers the whole body). `render_body()` runs once per body when the event is built: it decodes
gzip/deflate/br/zstd for the record only (output bounded by `limit`, a truncated or corrupt stream
decodes as far as it can and never raises), parses JSON (the unredacted value is returned for
contracts), redacts (see `seamline.capture.redact`) and returns the text to store.

Stored forms: JSON → compact re-serialisation of the redacted value; form-urlencoded → fields
redacted by name; multipart → parts with a secret field name replaced; other text → as is, with
secret-named values redacted: JSON whatever the Content-Type says (structurally, stored re-serialised
only when something was redacted), XML elements/attributes (`application/xml`, `+xml`, or text/plain
starting with `<`), `a=b&c=d` form bodies sent as text/plain or without a Content-Type, and
`name: value` / `"name": value` pairs in any other text; binary or undecodable →
`[binary 1234 bytes image/png]`. Every text is then scrubbed of detected credential shapes, the
exchange's secret values and card numbers.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import zlib
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import brotli
import orjson
import zstandard

from seamline.capture.formats import looks_like_form, looks_like_xml, multipart_boundary, redact_multipart, redact_xml
from seamline.capture.redact import Redactor, has_card, may_have_card

DEFAULT_CAP: Final = 64 * 1024
_MAX_ERROR_CHARS: Final = 200

_BINARY_MAIN_TYPES: Final = frozenset({"image", "audio", "video", "font", "model"})
_BINARY_TYPES: Final = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
        "application/msgpack",
        "application/x-msgpack",
        "application/cbor",
        "application/wasm",
    }
)
_FORM: Final = "application/x-www-form-urlencoded"


class RenderedBody(NamedTuple):
    """A body as stored, plus what contracts need from it.

    A NamedTuple, not a frozen dataclass: two to four are made per event, and a frozen dataclass's `__init__` sets each
    of its eight fields through `object.__setattr__` (about 3× the cost).
    """

    text: str
    is_json: bool = False
    parsed_json: Any = None  # the unredacted parsed value when is_json (contracts need real values)
    json_error: str | None = None  # set when the content type says JSON but the body does not parse
    binary: bool = False  # text is a `[binary …]` marker
    truncated: bool = False  # text/parsed value cover only a prefix (capture cap, decode cap or cut stream)
    empty: bool = False  # no body bytes at all
    withheld: bool = False  # parsed for the contract only (no redactor): `text` is "", though the body has text

    @property
    def not_json(self) -> bool:
        """A complete, non-empty body that is not JSON (what `evaluate(response_not_json=…)` wants)."""
        return not (self.is_json or self.empty or self.truncated or not (self.text or self.withheld))


class Decoded(NamedTuple):
    """Result of undoing Content-Encoding for the record."""

    data: bytes
    cut: bool  # output stopped at the limit or the compressed stream ended early
    error: str | None  # decoder error (data holds what decoded before it)


def parse_content_type(content_type: str | None) -> tuple[str, str | None]:
    """`'Application/JSON; charset=UTF-8'` → `('application/json', 'utf-8')`."""
    if not content_type:
        return "", None
    return _parse_content_type(content_type)


@functools.lru_cache(maxsize=1024)  # a few distinct values per deployment, parsed twice per event: once each
def _parse_content_type(content_type: str) -> tuple[str, str | None]:
    mime, _, params = content_type.partition(";")
    charset = None
    for p in params.split(";"):
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip('"').lower() or None
    return mime.strip().lower(), charset


def is_json_type(mime: str) -> bool:
    """application/json, text/json and any `+json` type."""
    return mime in ("application/json", "text/json") or mime.endswith("+json")


def is_xml_type(mime: str) -> bool:
    """application/xml, text/xml and any `+xml` type (SOAP, Atom, …)."""
    return mime in ("application/xml", "text/xml") or mime.endswith("+xml")


def is_binary_type(mime: str) -> bool:
    """Types whose bodies are stored as a marker without trying to decode them."""
    return mime in _BINARY_TYPES or mime.partition("/")[0] in _BINARY_MAIN_TYPES


def decode_content(raw: bytes, content_encoding: str | None, limit: int) -> Decoded:
    """Undo a (possibly stacked) Content-Encoding, producing at most `limit` bytes; never raises."""
    if not content_encoding:
        return Decoded(raw[:limit], len(raw) > limit, None)
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    data, cut = raw, False
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            return Decoded(b"", False, f"unsupported content-encoding {coding}")
        step = decoder(data, limit)
        cut = cut or step.cut
        if step.error is not None and not step.data:
            return Decoded(b"", cut, step.error)
        data = step.data
    return Decoded(data, cut, None)


def _zlib(data: bytes, limit: int, wbits: int) -> Decoded:
    if limit <= 0:
        return Decoded(b"", bool(data), None)
    out: list[bytes] = []
    n = 0
    d = zlib.decompressobj(wbits)
    buf = data
    try:
        while buf and n < limit:
            chunk = d.decompress(buf, limit - n)
            out.append(chunk)
            n += len(chunk)
            if d.eof:
                buf = d.unused_data
                if not buf:
                    return Decoded(b"".join(out), False, None)
                d = zlib.decompressobj(wbits)  # concatenated gzip members
                continue
            buf = d.unconsumed_tail
    except zlib.error as e:
        return Decoded(b"".join(out), True, f"{_short(e)}")
    return Decoded(b"".join(out), True, None)


def _gzip(data: bytes, limit: int) -> Decoded:
    return _zlib(data, limit, 32 + zlib.MAX_WBITS)  # gzip or zlib header, auto-detected


def _deflate(data: bytes, limit: int) -> Decoded:
    first = _zlib(data, limit, zlib.MAX_WBITS)
    if first.error is not None and not first.data:
        return _zlib(data, limit, -zlib.MAX_WBITS)  # servers that send raw deflate
    return first


def _brotli(data: bytes, limit: int) -> Decoded:
    if limit <= 0:
        return Decoded(b"", bool(data), None)
    d = brotli.Decompressor()
    try:
        out = d.process(data, output_buffer_limit=limit)
    except brotli.error as e:
        return Decoded(b"", True, _short(e))
    if len(out) >= limit:
        return Decoded(out[:limit], len(out) > limit or not d.is_finished(), None)
    return Decoded(out, not d.is_finished(), None)


def _zstd(data: bytes, limit: int) -> Decoded:
    if limit <= 0:
        return Decoded(b"", bool(data), None)
    out: list[bytes] = []
    n = 0
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    try:
        while n < limit:
            chunk = reader.read(min(65536, limit - n))
            if not chunk:
                return Decoded(b"".join(out), not _zstd_complete(data), None)
            out.append(chunk)
            n += len(chunk)
        more = bool(reader.read(1))
    except zstandard.ZstdError as e:
        return Decoded(b"".join(out), True, _short(e))
    return Decoded(b"".join(out), more, None)


def _zstd_complete(data: bytes) -> bool:
    """Do the frames in `data` all end? (Only called once the output is known to be under the limit.)"""
    while data:
        d = zstandard.ZstdDecompressor().decompressobj()
        d.decompress(data)
        if not d.eof:
            return False
        data = d.unused_data
    return True


_DECODERS: Final[dict[str, Callable[[bytes, int], Decoded]]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def _short(e: BaseException) -> str:
    return str(e)[:_MAX_ERROR_CHARS] or type(e).__name__


def binary_marker(total_bytes: int, mime: str, note: str | None = None) -> str:
    """`[binary 1234 bytes image/png]` (with an optional note such as an unsupported encoding)."""
    kind = mime or "unknown type"
    return f"[binary {total_bytes} bytes {kind}{', ' + note if note else ''}]"


def _decode_text(data: bytes, charset: str | None, cut: bool) -> str | None:
    name = "utf-8"
    if charset and charset not in ("utf-8", "utf8"):
        with contextlib.suppress(LookupError):
            name = codecs.lookup(charset).name
    try:
        text = data.decode(name)
    except UnicodeDecodeError as e:
        # A prefix cut inside a multi-byte character is still text.
        if not (cut and e.start >= len(data) - 3):
            return None
        try:
            text = data[: e.start].decode(name)
        except UnicodeDecodeError:
            return None
    return None if "\x00" in text else text


def render_body(
    raw: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    truncated: bool,
    total_bytes: int,
    redactor: Redactor | None,
    limit: int = DEFAULT_CAP,
) -> RenderedBody:
    """Decode, parse and redact a captured body for the record; never raises.

    With `redactor=None` the body is only decoded and parsed, for the contract (`capture.keep_bodies`: the record
    will not keep it): no redaction, no re-serialisation, `text` stays "" and `withheld` says there was text.
    """
    if not raw:
        return RenderedBody("", truncated=truncated, empty=total_bytes == 0)
    mime, charset = parse_content_type(content_type)
    if is_binary_type(mime):
        return RenderedBody(binary_marker(total_bytes, mime), binary=True, truncated=truncated)
    decoded = decode_content(raw, content_encoding, max(limit, 0))
    if decoded.error is not None and not decoded.data:
        note = decoded.error if decoded.error.startswith("unsupported") else f"undecodable {content_encoding}"
        return RenderedBody(binary_marker(total_bytes, mime, note), binary=True, truncated=truncated)
    cut = truncated or decoded.cut
    text = _decode_text(decoded.data, charset, cut)
    if text is None:
        return RenderedBody(binary_marker(total_bytes, mime), binary=True, truncated=cut)
    first = text.lstrip()[:1]
    looks_json = is_json_type(mime) or (not mime and first in ("{", "["))
    if looks_json:
        return _render_json(decoded.data, text, cut, is_json_type(mime), redactor)
    if redactor is None:
        return RenderedBody("", truncated=cut, withheld=bool(text))
    if mime == _FORM:
        return RenderedBody(redactor.scrub(redactor.redact_form(text)), truncated=cut)
    if mime.startswith("multipart/"):
        boundary = multipart_boundary(content_type)
        if boundary:
            text = redact_multipart(text, boundary, redactor)
        return RenderedBody(redactor.scrub(text), truncated=cut)
    if first in ("{", "["):
        # JSON whatever the Content-Type says (text/plain, text/html, none): redacted structurally.
        sniffed = _sniff_json(decoded.data, text, redactor)
        if sniffed is not None:
            return RenderedBody(redactor.scrub(sniffed), truncated=cut)
    plain = mime in ("", "text/plain")
    if is_xml_type(mime) or (plain and looks_like_xml(text)):
        text = redact_xml(text, redactor)
    elif plain and looks_like_form(text):
        text = redactor.redact_form(text)
    return RenderedBody(redactor.scrub(_redact_text(text, redactor)), truncated=cut)


def _sniff_json(data: bytes, text: str, redactor: Redactor) -> str | None:
    """The stored text of a body that parses as JSON though not declared so (as sent when nothing is secret)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    value = redactor.redact_json(parsed)
    return text if value is parsed else _dumps(value)


def _redact_text(text: str, redactor: Redactor) -> str:
    """Secret-named pairs in free text (`password: …`, `"token": "…"`, `secret=…`): JSON fragments, log lines."""
    if not redactor.policy.body_key.may_match(text):
        return text
    return redactor.redact_text_pairs(redactor.redact_json_text(text))


def _render_json(data: bytes, text: str, cut: bool, declared: bool, redactor: Redactor | None) -> RenderedBody:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        error = f"body truncated at the capture cap ({_short(e)})" if cut else _short(e)
        if redactor is None:
            return RenderedBody("", json_error=error if declared else None, truncated=cut, withheld=bool(text))
        stored = redactor.scrub(redactor.redact_json_text(text))
        return RenderedBody(stored, json_error=error if declared else None, truncated=cut)
    if redactor is None:
        return RenderedBody("", is_json=True, parsed_json=parsed, truncated=cut, withheld=True)
    return _stored_json(parsed, cut, redactor, may_have_card(data))


def redact_parsed(body: RenderedBody, redactor: Redactor) -> RenderedBody | None:
    """The stored form of a JSON body that `render_body(redactor=None)` parsed for the contract only, from its
    parsed value: not decoded and parsed a second time once the outcome says the row keeps it. None when `body` is
    not such a value (not JSON, or not withheld): render it again."""
    if not (body.withheld and body.is_json):
        return None
    return _stored_json(body.parsed_json, body.truncated, redactor, True)  # has_card() checks the digits itself


def _stored_json(parsed: Any, cut: bool, redactor: Redactor, maybe_card: bool) -> RenderedBody:
    # Walking the parsed value with cached key verdicts costs about what one substring pre-scan
    # of the text for every key word does (~8 µs per KiB), so there is no pre-scan here.
    value = redactor.redact_json(parsed)
    out = _dumps(value)
    if redactor.policy.cards and maybe_card and has_card(out):
        out = _dumps(redactor.redact_json(value, cards=True))
    return RenderedBody(redactor.scrub_secrets(out), is_json=True, parsed_json=parsed, truncated=cut)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
