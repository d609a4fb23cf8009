"""The admin listener's pure auth helpers: session values, token comparison, redirect targets."""

from __future__ import annotations

import pytest

from seamline.read.auth import local_next, session_valid, session_value, token_matches

TOKEN = "t" * 32


def test_a_session_value_is_valid_until_it_expires_and_only_for_its_token():
    value = session_value(TOKEN, 1_000)
    assert TOKEN not in value
    assert session_valid(TOKEN, value, now=999.0)
    assert not session_valid(TOKEN, value, now=1_000.0)  # expiry is exclusive
    assert not session_valid("u" * 32, value, now=0.0)  # a new token ends every session


@pytest.mark.parametrize("value", ["", ".", "abc", "1000", "1000.", "-5.x", "1" * 40 + ".x", "1000.AAAA"])
def test_malformed_or_forged_session_values_are_refused(value):
    assert not session_valid(TOKEN, value, now=0.0)


def test_a_session_value_with_its_expiry_moved_is_refused():
    mac = session_value(TOKEN, 1_000).split(".", 1)[1]
    assert not session_valid(TOKEN, f"9999999999.{mac}", now=0.0)


def test_token_comparison_is_exact():
    assert token_matches(TOKEN, TOKEN)
    for offered in ("", TOKEN[:-1], TOKEN + "t", TOKEN.upper()):
        assert not token_matches(TOKEN, offered)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/runs/order-1?x=1", "/runs/order-1?x=1"),
        ("//evil.example/", "/runs"),
        ("https://evil.example/", "/runs"),
        ("/\\evil.example", "/runs"),
        ("runs", "/runs"),
        ("/runs\r\nSet-Cookie: x=1", "/runs"),
    ],
)
def test_login_redirects_stay_on_the_listener(raw, expected):
    assert local_next(raw) == expected
