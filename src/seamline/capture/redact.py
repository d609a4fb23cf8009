"""Redaction of one exchange (headers, URL, bodies) before anything is stored. Pure: no I/O.

Rules:

- **Headers** (names lower-cased, repeated values joined with ", "): redacted when the name is in
  `capture.redact_headers` or the upstream's `redact_headers.deny`, or contains one of
  `capture.redact_header_parts` (token, secret, password, key, auth, signature, api-key, x-amz-); never when it is in
  `capture.allow_headers` or the upstream's `redact_headers.allow`. Authorization keeps its scheme
  (`Bearer [REDACTED]`), Cookie/Set-Cookie keep cookie names (`sid=[REDACTED]; theme=[REDACTED]`).
- **Query parameters and form fields**: redacted when the name is in `capture.redact_query`, contains
  one of `redact_header_parts` (except `auth`, which would hit `author`), or matches the body-key rule
  below; a value that decodes to a detected credential shape too. URL userinfo passwords too.
- **Body keys** (JSON at any depth, form fields): a key is normalised (`clientSecret`, `Client-Secret`
  → `client_secret`) and matches when an entry of `redact_keys` + `redact_keys_extra` equals it or is a
  whole `_`-delimited run inside it: `token` matches `api_token`, `refreshToken`, `access_token` but not
  `prompt_tokens`/`max_tokens` (LLM usage counters); `secret` matches `client_secret`. A plain substring
  rule (as for headers) would also hit `primary_key`, `keyword`, `tokenizer`, so bodies use segments.
  The whole value (even an object) becomes `"[REDACTED]"`.
- **Cross-scrub**: every secret value redacted above (header values, each cookie value, the credential
  after `Bearer `/`Basic ` and the base64-decoded Basic password, query/form values, string values of
  redacted body keys) is collected; `scrub()` replaces each occurrence (and its percent-encoded form)
  anywhere else in the exchange. Values shorter than `capture.scrub_min_length` (6) are not collected:
  replacing `"en"` or `"1"` everywhere would destroy the record while protecting nothing.
  Order: redact both header sets and the URL first, then render bodies, then scrub error text.
- **Credential shapes** (`seamline.capture.detectors`: detect-secrets' patterns for JWTs, AWS, GitHub, GitLab,
  Slack, Stripe, Google, private keys, `Bearer …` in text, …) are replaced wherever they occur: bodies,
  URLs, non-secret header values, error text. Each one found is collected for the cross-scrub too.
- **JSON inside JSON**: a string value that is itself a JSON object or array is parsed and redacted (4 deep).
- **Text pairs**: `name=value`, `name: value` and `"name": value` in free text (error texts, text bodies)
  with a secret name (query list or body-key rule) have the value redacted.
- **Cards**: 13–19 digits (single spaces/dashes allowed between digits) starting with 2–6 (the card
  networks' IIN ranges; this spares 13-digit millisecond timestamps) that pass Luhn → `[REDACTED]`,
  in bodies, URLs and scrubbed text (not in header values: cost, and they are never carried there).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any, Final, NamedTuple
from urllib.parse import quote, unquote, unquote_plus, urlsplit, urlunsplit

import orjson

from seamline.capture.detectors import DETECTOR_NAMES, SecretDetectors, compile_detectors
from seamline.config.models import Capture, HeaderRedaction

REDACTED: Final = "[REDACTED]"
_CACHE_MAX: Final = 4096

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")
# No lookbehind: a leading character class lets `re` skip ahead fast (4x); the character before
# the match is checked in Python instead (a card is not the tail of a longer number or a decimal).
_CARD_RE = re.compile(r"[2-6](?:[ -]?\d){12,18}(?!\d)")
# bytes.translate table for the cheap pre-filter: digits -> "0", everything else -> "x".
_DIGIT_TABLE = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9_.~-]")
_HAS_SPACE = re.compile(r"\s")
_AUTH_RE = re.compile(r"^\s*([A-Za-z][\w.+-]*)\s+(\S.*?)\s*$")
# A "key": value pair in JSON-like text that failed to parse (truncated or invalid JSON).
_JSON_PAIR_RE = re.compile(r'"((?:[^"\\]|\\.){1,256})"(\s*:\s*)("(?:[^"\\]|\\.)*(?:"|$)|[^\s,{}\[\]"][^\s,}\]]*)', re.S)

# name=value, name: value, "name": "value", 'name'='value' (query strings, headers, JSON and form fragments in text).
# A value stops at '?' and '=' (but keeps base64 padding) so `host: x?password=…` still finds the inner pair.
_TEXT_PAIR_RE = re.compile(r"([A-Za-z0-9_.-]{1,64})([\"']?\s*[=:]\s*[\"']?)([^\s&\"',;<>?=]+=*)")
_AUTH_SCHEMES: Final = frozenset({"bearer", "basic", "token", "digest", "apikey"})
# Header-name parts that would hit innocent query/form names (`auth` → `author`): headers only.
_HEADER_ONLY_PARTS: Final = frozenset({"auth"})
_JSON_IN_STRING_DEPTH: Final = 4
_JSON_OPENERS: Final = "{["  # a 1-character slice is compared, so "" (empty string) never matches
_JSON_CLOSERS: Final = "}]"


def normalize_key(key: str) -> str:
    """`clientSecret` / `Client-Secret` / `CLIENT_SECRET` → `client_secret`."""
    return _NON_ALNUM_RE.sub("_", _CAMEL_RE.sub("_", key).lower()).strip("_")


def luhn_valid(digits: str) -> bool:
    """True when a string of digits passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(m: re.Match[str]) -> bool:
    start = m.start()
    if start and m.string[start - 1] in "0123456789.":
        return False
    return luhn_valid(m.group(0).replace(" ", "").replace("-", ""))


def _card_sub(m: re.Match[str]) -> str:
    return REDACTED if _is_card(m) else m.group(0)


def may_have_card(data: bytes) -> bool:
    """Cheap necessary condition on raw bytes: 13+ digits once spaces and dashes are removed."""
    return len(data) >= 13 and b"0000000000000" in data.translate(_DIGIT_TABLE, b" -")


def has_card(text: str) -> bool:
    """True when `text` contains a Luhn-valid card number."""
    return may_have_card(text.encode("utf-8", "surrogatepass")) and any(_is_card(m) for m in _CARD_RE.finditer(text))


def redact_cards(text: str) -> str:
    """Replace Luhn-valid card numbers in `text` by `[REDACTED]`."""
    if not may_have_card(text.encode("utf-8", "surrogatepass")):
        return text
    return _CARD_RE.sub(_card_sub, text)


class HeaderSet(NamedTuple):
    """One header list read once (`Redactor.read_headers`): what redaction, contracts and the row need from it."""

    items: list[tuple[str, str, bool]]  # (lower-cased name, value, secret), in order
    plain: list[str]  # the values of the headers that are not secret, in order (scanned for credential shapes)
    lowered: dict[str, str]  # lower-cased name → values joined with ", ", unredacted (what contracts read)
    content_type: str  # the last Content-Type ("" if none)
    content_encoding: str  # the last Content-Encoding


class KeyRule:
    """Body-key matcher: exact normalised name or a whole `_`-delimited run of it (see module doc)."""

    __slots__ = ("_cache", "_needles", "_segments")

    def __init__(self, words: Iterable[str]) -> None:
        norm = sorted({normalize_key(w) for w in words if normalize_key(w)})
        self._needles = tuple(f"_{w}_" for w in norm)
        self._cache: dict[str, bool] = {}
        self._segments = tuple(tuple(w.split("_")) for w in norm)

    def may_match(self, text: str) -> bool:
        """Cheap necessary condition: does the lower-cased text hold every segment of some word?

        (`str.lower()` + `in` is ~50x faster than one case-insensitive regex alternation.)
        """
        low = text.lower()
        return any(segs[0] in low and (len(segs) == 1 or all(seg in low for seg in segs)) for segs in self._segments)

    def __call__(self, key: str) -> bool:
        hit = self._cache.get(key)
        if hit is None:
            n = f"_{normalize_key(key)}_"
            hit = any(w in n for w in self._needles)
            if len(self._cache) < _CACHE_MAX:
                self._cache[key] = hit
        return hit


class RedactionPolicy:
    """The redaction rules of one upstream, compiled once from config and shared by its exchanges."""

    __slots__ = (
        "_hdr_cache",
        "_names",
        "allow",
        "body_key",
        "cards",
        "deny",
        "detectors",
        "min_secret_len",
        "param_parts",
        "parts",
        "query_names",
    )

    def __init__(
        self,
        *,
        deny: Iterable[str],
        allow: Iterable[str],
        parts: Iterable[str],
        query_names: Iterable[str],
        body_keys: Iterable[str],
        cards: bool = True,
        min_secret_len: int = 6,
        detectors: SecretDetectors | None = None,
    ) -> None:
        self.deny = frozenset(n.lower() for n in deny)
        self.allow = frozenset(n.lower() for n in allow)
        self.parts = tuple(p.lower() for p in parts if p)
        self.param_parts = tuple(p for p in self.parts if p not in _HEADER_ONLY_PARTS)
        self.query_names = frozenset(n.lower() for n in query_names)
        self.body_key = KeyRule(body_keys)
        self.cards = cards
        self.min_secret_len = min_secret_len
        self.detectors = detectors if detectors is not None else compile_detectors(DETECTOR_NAMES)
        self._hdr_cache: dict[str, bool] = {}
        self._names: dict[str, tuple[str, bool]] = {}  # header name as sent → (lower-cased, secret)

    @classmethod
    def from_config(cls, capture: Capture, upstream: HeaderRedaction | None = None) -> RedactionPolicy:
        """Compile `capture` plus one upstream's header allow/deny lists."""
        up = upstream or HeaderRedaction()
        return cls(
            deny=[*capture.redact_headers, *up.deny],
            allow=[*capture.allow_headers, *up.allow],
            parts=capture.redact_header_parts,
            query_names=capture.redact_query,
            body_keys=[*capture.redact_keys, *capture.redact_keys_extra],
            cards=capture.redact_cards,
            min_secret_len=capture.scrub_min_length,
            detectors=compile_detectors(tuple(capture.secret_detectors), tuple(capture.redact_patterns)),
        )

    def header_is_secret(self, name: str) -> bool:
        """Is this (lower-cased) header name redacted?"""
        hit = self._hdr_cache.get(name)
        if hit is None:
            hit = name not in self.allow and (name in self.deny or any(p in name for p in self.parts))
            if len(self._hdr_cache) < _CACHE_MAX:
                self._hdr_cache[name] = hit
        return hit

    def header_name(self, name: str) -> tuple[str, bool]:
        """(lower-cased name, is it redacted?) of a header name as sent: names repeat, so one lookup per header."""
        hit = self._names.get(name)
        if hit is None:
            low = name.lower()
            hit = (low, self.header_is_secret(low))
            if len(self._names) < _CACHE_MAX:
                self._names[name] = hit
        return hit

    def param_is_secret(self, name: str) -> bool:
        """Is this query parameter / form field name redacted?"""
        low = name.lower()
        return low in self.query_names or any(p in low for p in self.param_parts) or self.body_key(name)

    def redactor(self) -> Redactor:
        """A fresh per-exchange redactor."""
        return Redactor(self)


class Redactor:
    """Redacts one exchange and remembers its secret values so they can be scrubbed everywhere else."""

    __slots__ = ("_depth", "_ordered", "_secrets", "policy")

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] | None = ()
        self._depth = 0  # JSON-in-a-string nesting while walking

    @classmethod
    def from_config(cls, capture: Capture, upstream: HeaderRedaction | None = None) -> Redactor:
        """Convenience for one-offs; the proxy should build a `RedactionPolicy` once per upstream."""
        return cls(RedactionPolicy.from_config(capture, upstream))

    @property
    def secrets(self) -> frozenset[str]:
        """Secret values collected so far (including percent-encoded variants)."""
        return frozenset(self._secrets)

    def add_secret(self, value: str) -> None:
        """Remember a secret value for `scrub()` (ignored when shorter than the minimum length)."""
        value = value.strip()
        if len(value) < self.policy.min_secret_len or value in self._secrets:
            return
        self._secrets.add(value)
        if _NEEDS_QUOTING.search(value) and not _HAS_SPACE.search(value):
            self._secrets.add(quote(value, safe=""))
        self._ordered = None

    # -- headers ---------------------------------------------------------------------------------

    def collect_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        """Collect secret values from headers without rendering them (e.g. response headers early)."""
        self.read_headers(headers)

    def read_headers(self, headers: Iterable[tuple[str, str]]) -> HeaderSet:
        """One pass over a header list: names lower-cased once, verdicts looked up once, secret values collected."""
        policy = self.policy
        names = policy._names
        items: list[tuple[str, str, bool]] = []
        plain: list[str] = []
        lowered: dict[str, str] = {}
        ctype = cenc = ""
        for k, v in headers:
            hit = names.get(k)
            low, secret = hit if hit is not None else policy.header_name(k)
            if secret:
                self._collect_header(low, v)
            else:
                plain.append(v)
            items.append((low, v, secret))
            prev = lowered.get(low)
            lowered[low] = v if prev is None else f"{prev}, {v}"
            if low == "content-type":
                ctype = v
            elif low == "content-encoding":
                cenc = v
        return HeaderSet(items, plain, lowered, ctype, cenc)

    def redact_headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Lower-cased name → redacted value (repeats joined with ', '); collects secrets first."""
        return self.redact_header_set(self.read_headers(headers))

    def redact_header_set(self, headers: HeaderSet, *, detect: bool = True) -> dict[str, str]:
        """`redact_headers` of a header list already read (its secrets collected). `detect=False`: the caller's
        `may_detect` over these values found nothing (the detectors cannot change them)."""
        items = headers.items
        # One anchor scan over all plain values together; the detectors run per value only when it found one.
        detectors = self.policy.detectors
        plain = "\n".join(headers.plain)
        detect = detect and detectors.may_find(plain)
        secrets = self._secrets
        # Without detection the secrets cannot change in the loop, so when none occurs in any plain value (each is a
        # substring of `plain`) no value would change: skip the per-value replace.
        scrub = self._replace_secrets if secrets and (detect or any(s in plain for s in secrets)) else None
        out: dict[str, str] = {}
        for k, v, secret in items:
            if secret:
                v = _mask_header(k, v)
            else:
                if detect:
                    v = detectors.redact(v, self.add_secret)
                if scrub is not None:
                    v = scrub(v)
            prev = out.get(k)
            out[k] = v if prev is None else f"{prev}, {v}"
        return out

    def _collect_header(self, name: str, value: str) -> None:
        if name in ("cookie", "set-cookie"):
            pairs = value.split(";") if name == "cookie" else value.split(";", 1)[:1]
            for pair in pairs:
                self.add_secret(pair.partition("=")[2].strip().strip('"'))
            return
        m = _AUTH_RE.match(value)
        if m is None:
            self.add_secret(value)
            return
        cred = m.group(2)
        self.add_secret(cred)  # the whole value contains it, so it is scrubbed too
        if m.group(1).lower() == "basic":
            try:
                plain = base64.b64decode(cred, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                return
            self.add_secret(plain)
            self.add_secret(plain.partition(":")[2])

    # -- URL, forms --------------------------------------------------------------------------------

    def redact_url(self, url: str) -> str:
        """Redact secret query parameters and a userinfo password; collect them; scrub the rest."""
        if "?" not in url and "@" not in url:
            return self.scrub(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.scrub(url)
        netloc = parts.netloc
        if parts.password is not None:
            self.add_secret(unquote(parts.password))
            self.add_secret(parts.password)
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{hostport}"
        query = self._redact_params(parts.query, plus=False) if parts.query else parts.query
        rebuilt = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        return self.scrub(rebuilt)

    def redact_form(self, text: str) -> str:
        """Redact secret fields of an application/x-www-form-urlencoded body (no scrub)."""
        return self._redact_params(text, plus=True)

    def _redact_params(self, query: str, *, plus: bool) -> str:
        decode = unquote_plus if plus else unquote
        fields = query.split("&")
        changed = False
        detectors = self.policy.detectors
        for i, field in enumerate(fields):
            name, sep, value = field.partition("=")
            if not (sep and value):
                continue
            if self.policy.param_is_secret(decode(name)):
                self.add_secret(decode(value))
                self.add_secret(value)
            elif "%" in value or (plus and "+" in value):
                # A credential shape hidden by percent-encoding (`Bearer%20…`, `https%3A%2F%2Fuser%3Apass%40…`):
                # the scrub sees only the encoded text, so detect on the decoded value here.
                plain = decode(value)
                if detectors.redact(plain, self.add_secret) == plain:
                    continue
                self.add_secret(value)
            else:
                continue
            fields[i] = f"{name}={REDACTED}"
            changed = True
        return "&".join(fields) if changed else query

    # -- bodies ------------------------------------------------------------------------------------

    def redact_json(self, value: Any, *, cards: bool = False) -> Any:
        """Copy of a parsed JSON value with secret keys redacted (and card numbers when `cards`)."""
        return self._walk(value, cards)

    def json_may_need_redaction(self, raw_text: str) -> bool:
        """Cheap necessary condition: could any key in this JSON text match the key rule?"""
        return "\\u" in raw_text or self.policy.body_key.may_match(raw_text)

    def _walk(self, v: Any, cards: bool) -> Any:
        t = type(v)
        if t is dict:
            return self._walk_dict(v, cards)
        if t is list:
            return self._walk_list(v, cards)
        if t is str and v[:1] in _JSON_OPENERS:
            return self._json_in_string(v, cards)
        return _card_scalar(v) if cards else v

    def _walk_dict(self, d: dict[str, Any], cards: bool) -> dict[str, Any]:
        rule = self.policy.body_key
        cache = rule._cache
        out: dict[str, Any] | None = None
        for k, x in d.items():
            secret = cache.get(k)
            if secret is None:
                secret = rule(k)
            if secret:
                nx: Any = REDACTED
                self._collect_value(x)
            else:
                t = type(x)
                if t is dict:
                    nx = self._walk_dict(x, cards)
                elif t is list:
                    nx = self._walk_list(x, cards)
                elif t is str and x[:1] in _JSON_OPENERS:
                    nx = self._json_in_string(x, cards)
                elif cards:
                    nx = _card_scalar(x)
                else:
                    continue
            if nx is not x:
                if out is None:
                    out = dict(d)
                out[k] = nx
        return d if out is None else out

    def _walk_list(self, lst: list[Any], cards: bool) -> list[Any]:
        out: list[Any] | None = None
        for i, x in enumerate(lst):
            t = type(x)
            nx: Any
            if t is dict:
                nx = self._walk_dict(x, cards)
            elif t is list:
                nx = self._walk_list(x, cards)
            elif t is str and x[:1] in _JSON_OPENERS:
                nx = self._json_in_string(x, cards)
            elif cards:
                nx = _card_scalar(x)
            else:
                continue
            if nx is not x:
                if out is None:
                    out = list(lst)
                out[i] = nx
        return lst if out is None else out

    def _json_in_string(self, s: str, cards: bool) -> Any:
        """A string that is itself JSON (`"payload": "{\\"password\\": …}"`): redacted inside, re-serialised."""
        if self._depth >= _JSON_IN_STRING_DEPTH or s[-1:] not in _JSON_CLOSERS:
            return _card_scalar(s) if cards else s
        try:
            inner = orjson.loads(s)
        except orjson.JSONDecodeError:
            return _card_scalar(s) if cards else s
        self._depth += 1
        try:
            walked = self._walk(inner, cards)
        finally:
            self._depth -= 1
        if walked is inner:
            return s
        return orjson.dumps(walked).decode()

    def _collect_value(self, v: Any) -> None:
        if type(v) is str:
            self.add_secret(v)
        elif type(v) is dict:
            for x in v.values():
                self._collect_value(x)
        elif type(v) is list:
            for x in v:
                self._collect_value(x)

    def redact_json_text(self, text: str) -> str:
        """Redact `"key": value` pairs with secret keys in JSON-like text that does not parse (no scrub)."""
        if not self.json_may_need_redaction(text):
            return text
        return _JSON_PAIR_RE.sub(self._pair_sub, text)

    def _pair_sub(self, m: re.Match[str]) -> str:
        if not self.policy.body_key(m.group(1)):
            return m.group(0)
        value = m.group(3)
        self.add_secret(value.strip('"'))
        return f'"{m.group(1)}"{m.group(2)}"{REDACTED}"'

    # -- scrub -------------------------------------------------------------------------------------

    def scrub(self, text: str, *, detect: bool = True) -> str:
        """Replace detected credentials, collected secret values and (per policy) card numbers anywhere in `text`.

        `detect=False`: the caller's `may_detect` over `text` found nothing, so the detectors are not run again."""
        if not text and "" not in self._secrets:  # most events' error text and idempotency key
            return text
        if detect:
            text = self.policy.detectors.redact(text, self.add_secret)
        text = self._replace_secrets(text)
        return redact_cards(text) if self.policy.cards else text

    def may_detect(self, texts: list[str]) -> bool:
        """Can a detector change any of `texts`? One anchor scan of them all (a necessary condition for each: every
        text is a substring of the joined one), so texts read once per event need not be scanned one by one."""
        return self.policy.detectors.may_find("\n".join(texts))

    def scrub_secrets(self, text: str) -> str:
        """Replace detected credentials and collected secret values (serialised JSON: cards handled structurally)."""
        return self._replace_secrets(self.policy.detectors.redact(text, self.add_secret))

    def detect(self, text: str) -> str:
        """Replace detected credentials only (collecting them)."""
        return self.policy.detectors.redact(text, self.add_secret)

    def redact_text_pairs(self, text: str) -> str:
        """Redact the value of `name=value` / `name: value` / `"name": "value"` pairs with a secret name in free text."""
        if "=" not in text and ":" not in text:
            return text
        return _TEXT_PAIR_RE.sub(self._text_pair_sub, text)

    def _text_pair_sub(self, m: re.Match[str]) -> str:
        name, sep, value = m.group(1), m.group(2), m.group(3)
        # Names by the query list or the body-key rule (segments: `access_token`, not `prompt_tokens`).
        policy = self.policy
        if value == REDACTED or value.lower() in _AUTH_SCHEMES:
            return m.group(0)
        if not (name.lower() in policy.query_names or policy.body_key(name)):
            return m.group(0)
        self.add_secret(value)
        return f"{name}{sep}{REDACTED}"

    def _replace_secrets(self, text: str) -> str:
        ordered = self._ordered
        if ordered is None:
            # Longest first so `user:password` goes before `password`.
            ordered = self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))
        for s in ordered:
            if s in text:
                text = text.replace(s, REDACTED)
        return text


def _card_scalar(v: Any) -> Any:
    """A string with card numbers redacted, or `[REDACTED]` for an integer that is one."""
    t = type(v)
    if t is str and len(v) >= 13:
        r = redact_cards(v)
        return v if r == v else r
    if t is int and v >= 10**12 and redact_cards(str(v)) == REDACTED:
        return REDACTED
    return v


def _mask_header(name: str, value: str) -> str:
    """The stored form of a secret header: scheme and cookie names kept, values gone."""
    if name in ("authorization", "proxy-authorization"):
        m = _AUTH_RE.match(value)
        return f"{m.group(1)} {REDACTED}" if m else REDACTED
    if name == "cookie":
        names = [p.partition("=")[0].strip() for p in value.split(";") if p.strip()]
        return "; ".join(f"{n}={REDACTED}" for n in names) or REDACTED
    if name == "set-cookie":
        first, sep, attrs = value.partition(";")
        cname = first.partition("=")[0].strip()
        return f"{cname}={REDACTED}{sep}{attrs}" if cname else REDACTED
    return REDACTED
