"""Body capture for the record: capped streaming, decoding, parsing and rendering."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import brotli
import pytest
import zstandard

from seamline.capture.bodies import RenderedBody, decode_content, parse_content_type, render_body
from seamline.capture.redact import REDACTED, RedactionPolicy
from seamline.config.models import Capture

BODY = json.dumps({"items": [{"id": i, "name": f"item-{i}", "password": "hunter2-secret"} for i in range(400)]}).encode()


def render(
    raw: bytes, ct: str | None = "application/json", enc: str | None = None, *, truncated: bool = False, limit: int = 1 << 20
) -> RenderedBody:
    r = RedactionPolicy.from_config(Capture()).redactor()
    return render_body(
        raw, content_type=ct, content_encoding=enc, truncated=truncated, total_bytes=len(raw), redactor=r, limit=limit
    )


def compress(enc: str, data: bytes) -> bytes:
    if enc == "gzip":
        return gzip.compress(data)
    if enc == "deflate":
        return zlib.compress(data)
    if enc == "br":
        return brotli.compress(data)
    return zstandard.ZstdCompressor().compress(data)


# -- decoding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", ["gzip", "deflate", "br", "zstd"])
def test_compressed_bodies_are_decoded_for_the_record(enc: str) -> None:
    out = render(compress(enc, BODY), enc=enc)
    assert out.is_json and out.parsed_json == json.loads(BODY) and not out.truncated


@pytest.mark.parametrize("enc", ["gzip", "deflate", "br", "zstd"])
def test_truncated_compressed_stream_decodes_as_far_as_possible(enc: str) -> None:
    data = os.urandom(200_000).hex().encode()  # incompressible enough to span several blocks
    packed = compress(enc, data)
    decoded = decode_content(packed[: len(packed) // 2], enc, 1 << 20)
    assert decoded.error is None and decoded.cut
    assert 0 < len(decoded.data) < len(data) and data.startswith(decoded.data)


@pytest.mark.parametrize("enc", ["gzip", "deflate", "br", "zstd"])
def test_decompression_bomb_output_is_bounded_by_the_limit(enc: str) -> None:
    bomb = compress(enc, b"\0" * (50 << 20))
    decoded = decode_content(bomb, enc, 65536)
    assert len(decoded.data) == 65536 and decoded.cut


def test_raw_deflate_without_zlib_header_is_decoded() -> None:
    c = zlib.compressobj(wbits=-15)
    raw = c.compress(b"hello raw deflate") + c.flush()
    assert decode_content(raw, "deflate", 1000).data == b"hello raw deflate"


def test_stacked_encodings_are_undone_in_reverse_order() -> None:
    assert decode_content(brotli.compress(gzip.compress(b"inner")), "gzip, br", 100).data == b"inner"


def test_concatenated_gzip_members_are_all_decoded() -> None:
    assert decode_content(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 100).data == b"abcd"


def test_corrupt_compressed_body_becomes_a_marker_without_raising() -> None:
    out = render(b"definitely not gzip", ct="application/json", enc="gzip")
    assert out.binary and out.text.startswith("[binary 19 bytes application/json")


def test_unsupported_encoding_becomes_a_marker() -> None:
    out = render(b"xyz", ct="text/plain", enc="compress")
    assert out.text == "[binary 3 bytes text/plain, unsupported content-encoding compress]"


def test_identity_encoding_is_ignored() -> None:
    assert render(b"plain", ct="text/plain", enc="identity").text == "plain"


# -- rendering --------------------------------------------------------------------------------------


def test_json_is_reserialised_compactly_and_redacted() -> None:
    out = render(b'{ "a" : 1,\n  "password": "hunter2-secret" }')
    assert out.text == f'{{"a":1,"password":"{REDACTED}"}}'


def test_parsed_json_keeps_real_values_for_contracts() -> None:
    out = render(b'{"password": "hunter2-secret"}')
    assert out.parsed_json == {"password": "hunter2-secret"}


def test_binary_content_type_is_stored_as_a_marker() -> None:
    out = render(b"\x89PNG\r\n\x1a\n", ct="image/png")
    assert (out.text, out.binary) == ("[binary 8 bytes image/png]", True)


def test_non_utf8_body_is_stored_as_a_marker() -> None:
    out = render(b"\xff\xfe\xfa bad", ct="text/plain")
    assert out.text == "[binary 7 bytes text/plain]"


def test_nul_bytes_mean_binary() -> None:
    assert render(b"ab\x00cd", ct=None).binary


def test_utf8_cut_inside_a_character_at_the_cap_is_still_text() -> None:
    raw = "héllo wörld".encode()[:-2] + "ö".encode()[:1]
    assert render(raw, ct="text/plain", truncated=True).text.startswith("héllo w")


def test_declared_charset_is_used() -> None:
    assert render("café".encode("latin-1"), ct="text/plain; charset=ISO-8859-1").text == "café"


def test_invalid_json_with_json_content_type_is_text_with_an_error() -> None:
    out = render(b'<html>oops "password": "hunter2-secret"</html>')
    assert not out.is_json and out.json_error and out.parsed_json is None
    assert "hunter2-secret" not in out.text and "<html>oops" in out.text


def test_truncated_json_is_redacted_as_text_and_flagged() -> None:
    out = render(BODY[:500], truncated=True)
    assert out.truncated and not out.is_json and "truncated" in (out.json_error or "")
    assert "hunter2-secret" not in out.text


def test_truncated_json_with_unterminated_secret_string_is_redacted() -> None:
    out = render(b'{"a": 1, "password": "hunter2-sec', truncated=True)
    assert "hunter2" not in out.text


def test_decoded_output_over_the_limit_is_flagged_truncated() -> None:
    out = render(gzip.compress(BODY), enc="gzip", limit=1000)
    assert out.truncated and not out.is_json


def test_empty_body_renders_empty() -> None:
    out = render(b"")
    assert (out.text, out.empty, out.is_json, out.json_error) == ("", True, False, None)


def test_json_without_content_type_is_sniffed() -> None:
    out = render(b'{"ok": true}', ct=None)
    assert out.is_json and out.parsed_json == {"ok": True} and out.json_error is None


def test_vendor_json_type_is_json() -> None:
    assert render(b"[1]", ct="application/problem+json").is_json


def test_form_body_fields_are_redacted_by_name() -> None:
    out = render(b"grant_type=client_credentials&client_secret=abcdef123", ct="application/x-www-form-urlencoded")
    assert out.text == f"grant_type=client_credentials&client_secret={REDACTED}"


def test_plain_text_card_numbers_are_redacted() -> None:
    assert render(b"card 4242 4242 4242 4242 declined", ct="text/plain").text == f"card {REDACTED} declined"


def test_parse_content_type_lowercases_and_reads_charset() -> None:
    assert parse_content_type('Application/JSON; Charset="UTF-8"') == ("application/json", "utf-8")


def test_not_json_is_set_only_for_a_complete_non_json_body() -> None:
    assert render(b"<html/>", ct="application/json").not_json
    assert render(b"<html/>", ct="text/html").not_json
    assert not render(b"", ct="application/json").not_json
    assert not render(b'{"a": 1', truncated=True).not_json
    assert not render(b'{"a": 1}').not_json


# -- parse only (capture.keep_bodies: the record may not keep the body) ------------------------------------------


def parse_only(raw: bytes, ct: str | None = "application/json", *, truncated: bool = False) -> RenderedBody:
    return render_body(raw, content_type=ct, content_encoding=None, truncated=truncated, total_bytes=len(raw), redactor=None)


def test_parse_only_gives_the_contract_its_value_and_renders_nothing() -> None:
    out = parse_only(b'{"amount": 5, "password": "hunter2-secret"}')
    assert out.is_json and out.parsed_json == {"amount": 5, "password": "hunter2-secret"}  # contracts see real values
    assert out.text == "" and out.withheld


def test_parse_only_judges_json_and_text_as_the_full_render_does() -> None:
    for raw, ct, truncated in [
        (b"<html/>", "application/json", False),
        (b"<html/>", "text/html", False),
        (b"", "application/json", False),
        (b'{"a": 1', "application/json", True),
        (b'{"a": 1}', "application/json", False),
        (b"\x89PNG", "image/png", False),
    ]:
        full, parsed = render(raw, ct, truncated=truncated), parse_only(raw, ct, truncated=truncated)
        assert (parsed.not_json, parsed.is_json, parsed.json_error, parsed.empty, parsed.truncated) == (
            full.not_json, full.is_json, full.json_error, full.empty, full.truncated,
        ), raw  # fmt: skip


def test_parse_only_of_broken_json_keeps_the_error_for_the_record() -> None:
    out = parse_only(b'{"a": ', ct="application/json")
    assert out.json_error and not out.is_json and out.text == "" and out.withheld


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"event": "created", "payload": "{\"password\": \"hunter2-Correct\"}"}',
        rb'{"event": "created", "payload": "\u007b\"password\": \"hunter2-Correct\"}"}',  # `{` escaped
        rb'{"batch": ["[{\"client_secret\": \"hunter2-Correct\"}]"]}',
        rb'{"outer": "{\"inner\": \"{\\\"token\\\": \\\"hunter2-Correct\\\"}\"}"}',  # two deep
    ],
)
def test_json_inside_a_string_is_found_however_it_is_written(raw: bytes) -> None:
    for ctype in ("application/json", "text/plain"):
        text = render(raw, ctype).text
        assert "hunter2-Correct" not in text and REDACTED in text, (ctype, text)
