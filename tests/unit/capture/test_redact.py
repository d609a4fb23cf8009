"""Redaction rules of one exchange: headers, URL, bodies, cross-scrub, card numbers."""

from __future__ import annotations

import base64
import json

import pytest

from seamline.capture.bodies import render_body
from seamline.capture.redact import REDACTED, RedactionPolicy, Redactor, has_card, luhn_valid, normalize_key, redact_cards
from seamline.config.models import Capture, HeaderRedaction

SECRET = "s3cr3t-VALUE-9f8e7d"
VISA = "4111111111111111"


def redactor(capture: Capture | None = None, upstream: HeaderRedaction | None = None) -> Redactor:
    return RedactionPolicy.from_config(capture or Capture(), upstream).redactor()


def render_json(r: Redactor, obj: object) -> str:
    raw = json.dumps(obj).encode()
    return render_body(
        raw, content_type="application/json", content_encoding=None, truncated=False, total_bytes=len(raw), redactor=r
    ).text


# -- headers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-API-Key"])
def test_default_deny_list_headers_are_redacted(name: str) -> None:
    out = redactor().redact_headers([(name, f"v={SECRET}")])
    assert SECRET not in out[name.lower()]
    assert REDACTED in out[name.lower()]


def test_read_headers_lowers_joins_and_collects_in_one_pass() -> None:
    r = redactor()
    headers = [("Content-Type", "text/plain"), ("X-Multi", "a"), ("x-multi", "b"), ("Authorization", f"Bearer {SECRET}"),
               ("content-type", "application/json"), ("Content-Encoding", "gzip")]  # fmt: skip
    read = r.read_headers(headers)
    assert read.lowered == {"content-type": "text/plain, application/json", "x-multi": "a, b",
                            "authorization": f"Bearer {SECRET}", "content-encoding": "gzip"}  # fmt: skip
    assert (read.content_type, read.content_encoding) == ("application/json", "gzip")  # the last one, as sent
    assert read.plain == ["text/plain", "a", "b", "application/json", "gzip"]
    assert SECRET in r.secrets  # collected while reading
    assert r.redact_header_set(read) == redactor().redact_headers(headers)


def test_may_detect_finds_a_shape_in_any_of_the_texts() -> None:
    r = redactor()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert not r.may_detect(["idem-1234", "", "application/json", "keep-alive"])
    assert r.may_detect(["idem-1234", "", f"note {jwt}", "keep-alive"])
    assert r.may_detect(["https://api.example.com/v1"])  # `://` is an anchor (basic-auth-url): every URL is a candidate
    assert r.scrub(f"x {jwt}") == f"x {REDACTED}"
    assert r.scrub(f"x {jwt}", detect=False) == f"x {REDACTED}"  # collected by the scrub before: still replaced
    assert redactor().scrub(f"x {jwt}", detect=False) == f"x {jwt}"  # detect=False trusts the caller's scan


@pytest.mark.parametrize("name", ["X-Auth-Token", "X-Client-Secret", "X-Password", "X-Signing-Key"])
def test_header_names_containing_token_secret_password_key_are_redacted(name: str) -> None:
    assert redactor().redact_headers([(name, SECRET)]) == {name.lower(): REDACTED}


def test_ordinary_headers_are_kept_with_lower_cased_names() -> None:
    assert redactor().redact_headers([("Content-Type", "application/json")]) == {"content-type": "application/json"}


def test_repeated_headers_are_joined_with_comma_space() -> None:
    assert redactor().redact_headers([("Accept", "a"), ("ACCEPT", "b")]) == {"accept": "a, b"}


def test_upstream_deny_redacts_an_extra_header() -> None:
    out = redactor(upstream=HeaderRedaction(deny=["X-Customer-SSN"])).redact_headers([("x-customer-ssn", SECRET)])
    assert out == {"x-customer-ssn": REDACTED}


def test_upstream_allow_keeps_a_header_the_deny_rules_would_redact() -> None:
    out = redactor(upstream=HeaderRedaction(allow=["X-Public-Key"])).redact_headers([("X-Public-Key", "pk_live_123456")])
    assert out == {"x-public-key": "pk_live_123456"}


def test_idempotency_key_is_allowed_by_default() -> None:
    assert redactor().redact_headers([("Idempotency-Key", "idem-123456")]) == {"idempotency-key": "idem-123456"}


def test_authorization_keeps_its_scheme_only() -> None:
    assert redactor().redact_headers([("Authorization", f"Bearer {SECRET}")]) == {"authorization": f"Bearer {REDACTED}"}


def test_cookie_keeps_cookie_names_only() -> None:
    out = redactor().redact_headers([("Cookie", "sid=abcdef123456; theme=darkmode")])
    assert out == {"cookie": f"sid={REDACTED}; theme={REDACTED}"}


def test_set_cookie_keeps_name_and_attributes() -> None:
    out = redactor().redact_headers([("Set-Cookie", "sid=abcdef123456; Path=/; HttpOnly")])
    assert out == {"set-cookie": f"sid={REDACTED}; Path=/; HttpOnly"}


def test_bearer_token_echoed_in_another_header_is_scrubbed() -> None:
    out = redactor().redact_headers([("Authorization", f"Bearer {SECRET}"), ("X-Debug", f"got {SECRET}")])
    assert out["x-debug"] == f"got {REDACTED}"


def test_basic_auth_password_is_decoded_and_scrubbed_elsewhere() -> None:
    r = redactor()
    cred = base64.b64encode(b"alice:pa55word-xyz").decode()
    r.redact_headers([("Authorization", f"Basic {cred}")])
    assert r.scrub("login failed for alice with pa55word-xyz") == f"login failed for alice with {REDACTED}"


def test_each_cookie_value_is_scrubbed_individually() -> None:
    r = redactor()
    r.redact_headers([("Cookie", "a=first-cookie-val; b=second-cookie-val")])
    assert r.scrub("x first-cookie-val y second-cookie-val") == f"x {REDACTED} y {REDACTED}"


def test_values_shorter_than_six_chars_are_not_scrubbed() -> None:
    r = redactor()
    r.redact_headers([("Cookie", "lang=en")])
    assert r.scrub("lang en is fine") == "lang en is fine"


def test_scrub_min_length_is_configurable() -> None:
    r = redactor(Capture(scrub_min_length=2))
    r.redact_headers([("X-Api-Key", "abc")])
    assert r.scrub("key abc") == f"key {REDACTED}"


def test_percent_encoded_form_of_a_secret_is_scrubbed() -> None:
    r = redactor()
    r.redact_headers([("X-Api-Key", "a/b+c=d==")])
    assert r.scrub("next=%2Fcb%3Fk%3Da%2Fb%2Bc%3Dd%3D%3D") == f"next=%2Fcb%3Fk%3D{REDACTED}"


def test_collect_headers_lets_response_secrets_scrub_request_headers() -> None:
    r = redactor()
    r.collect_headers([("Set-Cookie", "sid=fresh-session-42; Path=/")])
    assert r.redact_headers([("X-Echo", "fresh-session-42")]) == {"x-echo": REDACTED}


# -- URL --------------------------------------------------------------------------------------------


def test_query_parameters_are_redacted_by_name_and_order_kept() -> None:
    url = redactor().redact_url(f"https://api.x/v1?q=shoes&api_key={SECRET}&page=2")
    assert url == f"https://api.x/v1?q=shoes&api_key={REDACTED}&page=2"


def test_query_parameters_containing_token_are_redacted() -> None:
    assert SECRET not in redactor().redact_url(f"https://api.x/?x_auth_token={SECRET}")


def test_url_userinfo_password_is_redacted() -> None:
    assert redactor().redact_url(f"https://bob:{SECRET}@api.x/p") == f"https://bob:{REDACTED}@api.x/p"


def test_query_secret_is_scrubbed_from_bodies() -> None:
    r = redactor()
    r.redact_url(f"https://api.x/cb?access_token={SECRET}")
    assert SECRET not in render_json(r, {"message": f"token {SECRET} rejected"})


def test_url_without_query_is_returned_unchanged() -> None:
    assert redactor().redact_url("https://api.x/v1/charges") == "https://api.x/v1/charges"


# -- body keys ----------------------------------------------------------------------------------------


def test_json_keys_are_redacted_at_any_depth() -> None:
    text = render_json(redactor(), {"a": [{"b": {"password": SECRET, "ok": 1}}]})
    assert json.loads(text) == {"a": [{"b": {"password": REDACTED, "ok": 1}}]}


def test_json_key_match_is_case_insensitive_and_camel_case_aware() -> None:
    text = render_json(redactor(), {"PASSWORD": "x1", "cardNumber": "x2", "Client-Secret": "x3", "apiToken": "x4"})
    assert set(json.loads(text).values()) == {REDACTED}


def test_token_counters_are_not_redacted() -> None:
    body = {"usage": {"prompt_tokens": 12, "max_tokens": 99}, "tokenizer": "bpe"}
    assert json.loads(render_json(redactor(), body)) == body


def test_whole_object_under_a_secret_key_is_redacted() -> None:
    assert json.loads(render_json(redactor(), {"credentials": {"user": "u", "pw": SECRET}})) == {"credentials": REDACTED}


def test_redact_keys_are_configurable() -> None:
    record = {"dob": "1990-01-01", "password": "p"}  # date-ok: a value to redact
    text = render_json(redactor(Capture(redact_keys=["dob"], redact_keys_extra=[])), record)
    assert json.loads(text) == {"dob": REDACTED, "password": "p"}


def test_secret_from_a_request_body_key_is_scrubbed_from_the_response() -> None:
    r = redactor()
    render_json(r, {"password": SECRET})
    assert SECRET not in render_json(r, {"error": f"password {SECRET} too weak"})


def test_normalize_key_handles_camel_dash_and_case() -> None:
    assert [normalize_key(k) for k in ("clientSecret", "Client-Secret", "CLIENT_SECRET", "APIKey")] == [
        "client_secret",
        "client_secret",
        "client_secret",
        "apikey",
    ]


# -- cards ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [VISA, "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "5555555555554444"])
def test_luhn_valid_card_numbers_are_redacted_in_text(number: str) -> None:
    assert redact_cards(f"card {number} ok") == f"card {REDACTED} ok"


# Its 13-digit value is a fixed Luhn-invalid ms timestamp: a current one would be Luhn-valid one time in ten.
@pytest.mark.parametrize("number", ["4111111111111112", "1715000000000", "411111111111", "41111111111111111111"])  # date-ok
def test_luhn_invalid_short_long_or_timestamp_numbers_are_kept(number: str) -> None:
    assert redact_cards(f"n={number}") == f"n={number}"


def test_luhn_checksum() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_card_number_as_json_integer_keeps_json_valid() -> None:
    text = render_json(redactor(), {"n": int(VISA), "s": f"pay {VISA}", "ts": 1715000000000})  # date-ok: Luhn-invalid, as above
    assert json.loads(text) == {"n": REDACTED, "s": f"pay {REDACTED}", "ts": 1715000000000}  # date-ok: the same value


def test_card_redaction_can_be_disabled() -> None:
    assert VISA in render_json(redactor(Capture(redact_cards=False)), {"s": VISA})


def test_has_card_detects_only_valid_numbers() -> None:
    assert has_card(f"x {VISA}") and not has_card("x 4111111111111112")


# -- the whole exchange -------------------------------------------------------------------------------


def test_secret_in_every_position_appears_nowhere_in_the_outputs() -> None:
    r = redactor()
    basic = base64.b64encode(f"svc:{SECRET}".encode()).decode()
    req_headers = r.redact_headers(
        [
            ("Authorization", f"Bearer {SECRET}"),
            ("Proxy-Authorization", f"Basic {basic}"),
            ("Cookie", f"sid={SECRET}; theme=dark"),
            ("X-Api-Key", SECRET),
            ("X-Vendor-Token", SECRET),
            ("X-Forwarded-Note", f"echo {SECRET}"),
        ]
    )
    resp_headers = r.redact_headers([("Set-Cookie", f"sid={SECRET}; Path=/"), ("X-Trace", SECRET)])
    url = r.redact_url(f"https://api.x/v1/u?token={SECRET}&apikey={SECRET}&q=1")
    form = f"username=a&password={SECRET}&note={SECRET}".encode()
    req_body = render_body(
        form,
        content_type="application/x-www-form-urlencoded",
        content_encoding=None,
        truncated=False,
        total_bytes=len(form),
        redactor=r,
    ).text
    resp_raw = json.dumps({"user": {"profile": {"api_token": SECRET}}, "error": {"message": f"bad token {SECRET}"}}).encode()
    resp_body = render_body(
        resp_raw, content_type="application/json", content_encoding=None, truncated=False, total_bytes=len(resp_raw), redactor=r
    ).text
    error = r.scrub(f"upstream said: invalid credential {SECRET}")
    outputs = [*req_headers.values(), *resp_headers.values(), url, req_body, resp_body, error]
    assert all(SECRET not in o for o in outputs), outputs
    assert all(REDACTED in o for o in outputs)
