"""Property tests of redaction: generated secrets (the detectors' shapes) inside random JSON and text never
survive; random input never crashes it nor hangs it (hypothesis' deadline); secret-free JSON comes out equal."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import given
from hypothesis import strategies as st

from seamline.capture.bodies import render_body
from seamline.capture.error_text import MAX_ERROR_TEXT, safe_error_text
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Capture

POLICY = RedactionPolicy.from_config(Capture())
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _rx(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True)


def _pem(kind: str) -> st.SearchStrategy[str]:
    lines = st.lists(st.text(B64, min_size=16, max_size=64), min_size=1, max_size=4)
    return lines.map(lambda ls: f"-----BEGIN {kind}-----\n" + "\n".join(ls) + f"\n-----END {kind}-----")


# (secret as sent, part that must not survive): one strategy per detected shape.
SECRETS: st.SearchStrategy[tuple[str, str]] = st.one_of(
    *(
        _rx(p).map(lambda s: (s, s))
        for p in (
            r"eyJ[A-Za-z0-9_-]{10,40}\.eyJ[A-Za-z0-9_-]{10,40}\.[A-Za-z0-9_-]{10,43}",
            r"(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
            r"gh[pousr]_[A-Za-z0-9]{36}",
            r"github_pat_[A-Za-z0-9_]{82}",
            r"gl(pat|dt|rt)-[A-Za-z0-9_-]{20,40}",
            r"xox[bpa]-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24}",
            r"[sr]k_live_[0-9A-Za-z]{24,99}",
            r"sk_test_[0-9A-Za-z]{24,40}",
            r"AIza[0-9A-Za-z_-]{35}",
            r"ya29\.[0-9A-Za-z_-]{20,60}",
            r"GOCSPX-[0-9A-Za-z_-]{28}",
            r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
            r"sq0csp-[0-9A-Za-z_-]{43}",
            r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{70,90}",
        )
    ),
    _pem("RSA PRIVATE KEY").map(lambda s: (s, s)),
    _pem("OPENSSH PRIVATE KEY").map(lambda s: (s, s)),
    _rx(r"[A-Za-z0-9]{8,40}[0-9]").map(lambda c: (f"Bearer {c}", c)),
    _rx(r"[A-Za-z0-9+/]{12,40}={0,2}")
    .filter(lambda c: any(ch.isdigit() or ch in "+/=" for ch in c))
    .map(lambda c: (f"Basic {c}", c)),
)
# Safe surroundings: words and punctuation that end before the secret starts (a token char right before a
# `Bearer` would make it another word, as in `xBearer`).
words = st.text("abcdefghij klmnopqrstuvwxyz ,.:;!-()0123456789", max_size=40)
safe_keys = st.sampled_from(["id", "name", "amount", "items", "sku", "status", "note", "data", "meta", "description"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**9), 10**9), words)
safe_json = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(safe_keys, kids, max_size=4), max_leaves=20
)


def _plant(doc: Any, value: str, path: list[int]) -> Any:
    """`doc` with `value` put somewhere inside it (path picks the spot), always reachable."""
    if isinstance(doc, dict) and doc and path:
        k = sorted(doc)[path[0] % len(doc)]
        return {**doc, k: _plant(doc[k], value, path[1:])}
    if isinstance(doc, list) and doc and path:
        i = path[0] % len(doc)
        return [*doc[:i], _plant(doc[i], value, path[1:]), *doc[i + 1 :]]
    return {"wrapped": doc, "note": value}


def _render(body: bytes, ctype: str | None) -> str:
    r = POLICY.redactor()
    return render_body(body, content_type=ctype, content_encoding=None, truncated=False, total_bytes=len(body), redactor=r).text


def _survives(secret: str, out: str) -> bool:
    return any(f in out for f in {secret, json.dumps(secret)[1:-1], quote(secret, safe="")})


@given(SECRETS, safe_json, st.lists(st.integers(0, 10), max_size=4), words, words)
def test_secret_in_random_json_never_survives(secret: tuple[str, str], doc: Any, path: list[int], pre: str, post: str) -> None:
    sent, must_go = secret
    planted = _plant(doc, f"{pre} {sent} {post}", path)
    raw = orjson.dumps(planted)
    for ctype in ("application/json", "text/plain", None):
        assert not _survives(must_go, _render(raw, ctype)), ctype
    nested = orjson.dumps({"payload": raw.decode()})  # JSON inside a JSON string
    assert not _survives(must_go, _render(nested, "application/json"))


@given(SECRETS, words, words)
def test_secret_in_text_url_form_and_error_never_survives(secret: tuple[str, str], pre: str, post: str) -> None:
    sent, must_go = secret
    text = f"{pre} {sent} {post}"
    assert not _survives(must_go, _render(text.encode(), "text/plain"))
    assert not _survives(must_go, safe_error_text(text, POLICY))
    if "\n" not in sent:
        r = POLICY.redactor()
        url = r.redact_url(f"https://api.example.com/v1/x?q={quote(text, safe='')}&id=7")
        assert not _survives(must_go, url), url
        form = f"id=7&note={quote(text, safe='')}".encode()
        assert not _survives(must_go, _render(form, "application/x-www-form-urlencoded"))
        assert not _survives(must_go, _render(form, None))


@given(safe_json)
def test_secret_free_json_is_stored_unchanged(doc: Any) -> None:
    raw = orjson.dumps(doc)
    assert orjson.loads(_render(raw, "application/json")) == doc


CTYPES = [None, "application/json", "text/plain", "application/xml", "multipart/form-data; boundary=b",
          "application/x-www-form-urlencoded", "text/html"]  # fmt: skip


@given(st.binary(max_size=600), st.sampled_from(CTYPES))
def test_any_body_renders_without_raising(body: bytes, ctype: str | None) -> None:
    _render(body, ctype)


@given(st.text(max_size=2000))
def test_error_text_is_short_printable_and_never_raises(text: str) -> None:
    out = safe_error_text(text, POLICY)
    assert len(out) <= MAX_ERROR_TEXT
    assert not any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in out)


@given(st.text(max_size=300), st.lists(st.tuples(st.text(max_size=30), st.text(max_size=80)), max_size=6))
def test_urls_and_headers_redact_without_raising(url: str, headers: list[tuple[str, str]]) -> None:
    r = POLICY.redactor()
    r.redact_url(url)
    r.redact_headers(headers)
