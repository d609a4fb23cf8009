"""Leak probes: one per secret kind × carrier, each a whole exchange as the proxy records it (issue #14 item 5).

A *kind* is a secret as it travels: either a credential with a recognisable shape (`shape=True`: JWT, AWS key
ID, GitHub/GitLab/Slack/Stripe/Google/SendGrid/OpenAI tokens, private keys, `Bearer …` in text), placed under
an innocent name (`note`), or a value recognisable only by the name it sits under (`password`, `pwd`, header
names by pattern, query parameter names), placed under that name. A *carrier* is where it sits: JSON body,
text body, JSON sent as text/plain, JSON inside a JSON string, form, form without a Content-Type, multipart,
XML, URL query, a header, an upstream error text. `secret` is what must not survive (for `Bearer …` only the
credential). All values are made up; they only have the shapes of real ones.

NEGATIVES are values that must come through unchanged (UUIDs, order IDs, timestamps, ordinary words), so
the redactor is not just blanking everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

CARRIERS = (
    "json_body",
    "text_body",
    "json_in_text",
    "json_in_string",
    "form",
    "form_untyped",
    "multipart",
    "xml",
    "url_query",
    "header",
    "error_text",
)


@dataclass(frozen=True)
class Kind:
    name: str
    value: str  # what is sent
    secret: str = ""  # what must not be stored (default: the value)
    key: str = "note"  # the name it travels under
    shape: bool = True  # detectable by its shape (under an innocent name) rather than by its name
    only: frozenset[str] = field(default_factory=lambda: frozenset(CARRIERS))

    @property
    def leaked_value(self) -> str:
        return self.secret or self.value


_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
)
_OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDnLfbZ5Y2Lr4Qq7Zg2u9a3Y6sXW0v6GfPGzB8ZzZ9RkwAAAJgmH1rZJh9a\n-----END OPENSSH PRIVATE KEY-----"
)
_NO_NEWLINES = frozenset(CARRIERS) - {"url_query", "header", "form", "form_untyped"}  # PEM blocks span lines
_QUERYISH = frozenset({"url_query", "form", "form_untyped", "multipart"})
_BY_NAME = frozenset(CARRIERS) - {"header"}  # body/query/text names; header names have their own patterns

KINDS: tuple[Kind, ...] = (
    # -- shapes (detect-secrets' patterns and the few added), under an innocent name ------------------------
    Kind(
        "jwt",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
    Kind("aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"),
    Kind("aws_session_key_id", "ASIAY34FZKBOKMUTVV7A"),
    Kind("github_classic", "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"),
    Kind("github_fine_grained", "github_pat_11ABCDEFG0123456789abc_" + "x9Y8z7W6v5U4t3S2r1Q0" * 3),
    Kind("gitlab", "glpat-xKq3sD9fLmN2pR7tV4wY"),
    Kind("slack_bot", "xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1"),
    Kind("slack_webhook", "https://hooks.slack.com/services/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"),
    Kind("stripe_live", "sk_live_51MmlLrLkdIwHu7ix0snN0B15aG8hU2pQe3Rt4Yw5Vb6Nc7Md8Lf9Kg0Jh1Ij2Hk3Gl4Fm5En6Do7Cp8Bq9Ar"),
    Kind("stripe_restricted", "rk_live_51MmlLrLkdIwHu7ix0snN0B15aG8hU2pQe3Rt4Yw5Vb6Nc7Md8"),
    Kind("stripe_test", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    Kind("google_api_key", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"),
    Kind("google_oauth_token", "ya29.a0AfH6SMBx3kZpQ9vL2mN8rT5wY1cF7gH4jK0lP6sD3"),
    Kind("google_client_secret", "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"),
    Kind("sendgrid", "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"),
    Kind("openai", "sk-proj-abcDEF123456ghiJKL78T3BlbkFJmnoPQR901234stuVWX56"),
    Kind("private_key_rsa", _PEM, only=_NO_NEWLINES),
    Kind("private_key_openssh", _OPENSSH, only=_NO_NEWLINES),
    Kind("bearer_in_text", "Bearer 8f14e45fceea167a5a36dedd4bea2543", secret="8f14e45fceea167a5a36dedd4bea2543"),
    Kind("basic_in_text", "Basic ZGVwbG95OnMzY3IzdFBhNTU=", secret="ZGVwbG95OnMzY3IzdFBhNTU="),
    Kind(
        "url_userinfo_in_text",
        "https://deploy:s3cr3tPa55w0rd@git.example.com/repo.git",
        secret="s3cr3tPa55w0rd",
    ),
    # -- by name (body keys, form/query names, text pairs) ----------------------------------------------------
    Kind("password", "hunter2-Correct-Horse", key="password", shape=False, only=_BY_NAME),
    Kind("pwd", "Tr0ub4dor-and-3", key="pwd", shape=False, only=_BY_NAME),
    Kind("passwd", "passw0rd-Zebra-77", key="passwd", shape=False, only=_BY_NAME),
    Kind("pass", "letmein-Orchid-42", key="pass", shape=False, only=_BY_NAME),
    Kind("secret", "s3kr1t-Value-Plum", key="secret", shape=False, only=_BY_NAME),
    Kind("client_secret", "cs-9f8e7d6c5b4a3210", key="client_secret", shape=False, only=_BY_NAME),
    Kind("refresh_token", "rt-1a2b3c4d5e6f7a8b9c", key="refresh_token", shape=False, only=_BY_NAME),
    Kind("private_key_field", "pk-material-0a1b2c3d4e", key="private_key", shape=False, only=_BY_NAME),
    Kind(
        "aws_secret_access_key",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        key="aws_secret_access_key",
        shape=False,
        only=_BY_NAME,
    ),
    Kind("api_key_camel", "ak-77f0c2d9e1b3a5c7", key="apiKey", shape=False, only=_BY_NAME),
    # -- query parameter names ---------------------------------------------------------------------------------
    Kind(
        "x_amz_signature",
        "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
        key="X-Amz-Signature",
        shape=False,
        only=_QUERYISH,
    ),
    Kind(
        "x_amz_credential", "AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request", key="X-Amz-Credential", shape=False, only=_QUERYISH
    ),
    Kind("sig", "sv2Kq8Zr5mT1wY4cF7gH0j", key="sig", shape=False, only=_QUERYISH),
    Kind("signature", "c2lnbmF0dXJlLXZhbHVlLTQy", key="signature", shape=False, only=_QUERYISH),
    # -- header names by pattern (*auth*, *token*, *secret*, *signature*, *api-key*, X-Amz-*) ---------------
    Kind("h_auth", "opaque-cred-5566778899", key="X-Upstream-Auth", shape=False, only=frozenset({"header"})),
    Kind("h_token", "tok-a1b2c3d4e5f6", key="X-Session-Token", shape=False, only=frozenset({"header"})),
    Kind("h_secret", "sec-f6e5d4c3b2a1", key="X-Client-Secret", shape=False, only=frozenset({"header"})),
    Kind(
        "h_signature",
        "sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        key="X-Hub-Signature-256",
        shape=False,
        only=frozenset({"header"}),
    ),
    Kind("h_api_key", "gk-0011223344556677", key="X-Goog-Api-Key", shape=False, only=frozenset({"header"})),
    Kind("h_amz", "FwoGZXIvYXdzEBYaDKxample-session-token", key="X-Amz-Security-Token", shape=False, only=frozenset({"header"})),
)

NEGATIVES: tuple[str, ...] = (
    "550e8400-e29b-41d4-a716-446655440000",  # UUID
    "ord_1042",  # order ID
    "ch_3MmlLrLkdIwHu7ix0snN0B15",  # a Stripe charge ID is not a key
    "cus_NffrFeUfNV2Hib",
    "4bf92f3577b34da6a3ce929d0e0e4736",  # a trace ID (hex, high entropy)
    "d41d8cd98f00b204e9800998ecf8427e",  # an MD5
    "1700000000123",  # a millisecond timestamp (13 digits, not a card)  # date-ok: a value to keep readable, no clock
    "the quick brown fox pays the invoice",
    "basic information about the bearer of good news",
    "prompt_tokens",
    "sku_0042",
    "https://api.example.com/v1/orders/ord_1042",
)


@dataclass(frozen=True)
class Probe:
    """One exchange to record: what goes in, and which secret must not come out."""

    kind: str
    carrier: str
    secret: str
    url: str = "https://api.example.com/v1/things"
    request_headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_type: str | None = None
    error_text: str = ""


def _text_pair(kind: Kind) -> str:
    return kind.value if kind.shape else f"{kind.key}={kind.value}"


def carry(kind: Kind, carrier: str) -> Probe:
    """The probe that sends `kind` in `carrier`."""
    k, v, s = kind.key, kind.value, kind.leaked_value
    neg = NEGATIVES[0]

    def p(**kw: object) -> Probe:
        return Probe(kind.name, carrier, s, **kw)  # type: ignore[arg-type]

    if carrier == "json_body":
        return p(body=json.dumps({"id": "ord_1042", k: v}).encode(), content_type="application/json")
    if carrier == "text_body":
        return p(body=f"2024 worker ok request {neg} {_text_pair(kind)} done".encode(), content_type="text/plain")
    if carrier == "json_in_text":
        return p(body=json.dumps({"id": "ord_1042", k: v}).encode(), content_type="text/plain; charset=utf-8")
    if carrier == "json_in_string":
        inner = json.dumps({"id": "ord_1042", k: v})
        return p(body=json.dumps({"event": "created", "payload": inner}).encode(), content_type="application/json")
    if carrier in ("form", "form_untyped"):
        ct = "application/x-www-form-urlencoded" if carrier == "form" else None
        return p(body=f"id=ord_1042&{quote(k)}={quote(v, safe='')}".encode(), content_type=ct)
    if carrier == "multipart":
        b = "----seamline7MA4YWxkTrZu0gW"
        body = (
            f'--{b}\r\nContent-Disposition: form-data; name="id"\r\n\r\nord_1042\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n--{b}--\r\n'
        )
        return p(body=body.encode(), content_type=f"multipart/form-data; boundary={b}")
    if carrier == "xml":
        tag = k.replace("-", "_")
        return p(
            body=f"<?xml version='1.0'?><req><id>ord_1042</id><{tag}>{v}</{tag}></req>".encode(), content_type="application/xml"
        )
    if carrier == "url_query":
        return p(url=f"https://api.example.com/v1/things?id=ord_1042&{quote(k)}={quote(v, safe='')}")
    if carrier == "header":
        name = k if not kind.shape else "X-Debug-Context"
        return p(request_headers=((name, v),))
    if carrier == "error_text":
        return p(error_text=f"Invalid HTTP status line from upstream: 'HTTP/1.1 2OO {_text_pair(kind)}'")
    raise ValueError(carrier)


def probes(select: Callable[[Kind], bool] = lambda k: True) -> list[Probe]:
    """Every (kind, carrier) probe the kinds allow."""
    return [carry(kind, c) for kind in KINDS if select(kind) for c in CARRIERS if c in kind.only]
