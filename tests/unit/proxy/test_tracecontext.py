"""W3C trace context parsing, directly on values."""

from __future__ import annotations

import pytest

from seamline.proxy.tracecontext import incoming_context, parse_traceparent, parse_tracestate

T, P = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_valid_traceparent():
    tp = parse_traceparent([f"00-{T}-{P}-01"])
    assert (tp.trace_id, tp.parent_id, tp.flags) == (T, P, 1)


def test_unknown_flags_are_zeroed_on_output():
    tp = parse_traceparent([f"00-{T}-{P}-ff"])
    assert tp.header().endswith("-03")


def test_tracestate_key_grammar():
    assert parse_tracestate(["a-b_c*d/e=1", "t1@sys=2"]) == "a-b_c*d/e=1,t1@sys=2"
    assert parse_tracestate(["1abc=1"]) == "1abc=1"  # Level 2 §3.3.2.2.1: a key may start with a digit
    assert parse_tracestate(["a=" + "v" * 257]) is None  # value over 256 chars
    assert parse_tracestate(["a= x"]) == "a= x"  # inner spaces are legal chars but not trailing
    assert parse_tracestate(["a=x "]) == "a=x"  # trailing OWS is trimmed from the member


def test_absent_context_mints_a_sampled_random_trace():
    tc = incoming_context([], ["a=1"])
    assert tc.started_here and tc.tracestate is None and tc.flags == 3 and len(tc.trace_id) == 32


# tracestate per Trace Context Level 2 (https://www.w3.org/TR/trace-context-2/), rule by rule.
# Printable ASCII but ',' and '=' (§3.3.2.2.2).
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


@pytest.mark.parametrize("key", ["0", "1abc", "9vendor@sys", "007", "4-2_x*y/z"])
def test_key_may_start_with_a_digit(key):  # §3.3.2.2.1: key = (lcalpha / DIGIT) 0*255(keychar)
    assert parse_tracestate([f"{key}=1"]) == f"{key}=1"


@pytest.mark.parametrize("key", ["foo@", "foo@@bar", "foo@bar@baz", "t@" + "v" * 15, "t" * 242 + "@v", "a@b@c@d"])
def test_at_sign_is_an_ordinary_keychar(key):  # §3.3.2.2.1: no Level 1 tenant@system split nor its 241/14 limits
    assert parse_tracestate([f"{key}=1,bar=2"]) == f"{key}=1,bar=2"


def test_every_keychar_and_every_value_char_is_accepted():
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@"
    value = VALUE_CHARS.rstrip(" ")  # the value may not end in a space; 0x7E '~' ends it
    assert value[0] == " " and value[-1] == "~"
    assert parse_tracestate([f"{key}={value}"]) == f"{key}={value}"


def test_key_of_256_chars_is_kept_and_257_drops_the_header():  # §3.3.2.2.1: up to 256 characters
    assert parse_tracestate(["foo=1", "z" * 256 + "=1"]) == "foo=1," + "z" * 256 + "=1"
    assert parse_tracestate(["foo=1", "z" * 257 + "=1"]) is None
    assert parse_tracestate(["t" * 255 + "@=1"]) is not None  # '@' counts like any keychar
    assert parse_tracestate(["t" * 256 + "@=1"]) is None


@pytest.mark.parametrize(
    "member",
    [
        "@foo=1",  # must start with lcalpha or DIGIT
        "_foo=1",
        "FOO=1",  # upper case
        "foo.bar=1",  # '.' is no keychar
        "foo =1",  # no OWS between key and '='
        "=1",  # empty key
        "foo",  # no '='
        "fóo=1",  # non-ASCII
    ],
)
def test_bad_key_drops_the_header(member):
    assert parse_tracestate([f"ok=1,{member}"]) is None


def test_value_of_256_chars_is_kept_and_257_drops_the_header():  # §3.3.2.2.2: value = 0*255(chr) nblk-chr
    assert parse_tracestate(["a=" + "v" * 256]) == "a=" + "v" * 256
    assert parse_tracestate(["a=" + "v" * 257]) is None
    assert parse_tracestate(["a=" + " " * 255 + "v"]) == "a=" + " " * 255 + "v"  # 255 leading spaces + 1 char


def test_value_spaces_leading_kept_trailing_dropped():
    # §3.3.2.2.2: "All leading spaces MUST be preserved"; trailing ones are OWS and "MAY be excluded".
    assert parse_tracestate(["a=  x y"]) == "a=  x y"
    assert parse_tracestate(["a=x  ,b=y\t"]) == "a=x,b=y"


@pytest.mark.parametrize(
    "member",
    [
        "a=",  # a value has at least one non-blank character
        "a= ",  # only a space: the trailing space is OWS, leaving an empty value
        "a=x=y",  # '=' is excluded
        "a=tab\tx",  # tab is not printable ASCII
        "a=\x7f",  # DEL
        "a=caf\u00e9",  # non-ASCII
        "a=\x00",
    ],
)
def test_bad_value_drops_the_header(member):
    assert parse_tracestate([f"ok=1,{member}"]) is None


def test_comma_inside_a_value_splits_it_into_an_unparsable_member():
    assert parse_tracestate(["a=bad,value"]) is None  # 'value' has no '='


def test_duplicated_keys_are_propagated_as_received():
    # §3.5: a receiver MUST send tracestate on and SHOULD NOT delete keys it did not generate.
    assert parse_tracestate(["foo=1,foo=2"]) == "foo=1,foo=2"
    assert parse_tracestate(["foo=1,foo=1"]) == "foo=1,foo=1"
    assert parse_tracestate(["foo=1", "bar=2", "foo=3"]) == "foo=1,bar=2,foo=3"


def _members(n: int) -> list[str]:
    # Split over several lines, as the W3C test suite sends them.
    ms = [f"bar{i:02d}={i:02d}" for i in range(1, n + 1)]
    return [",".join(ms[i : i + 10]) for i in range(0, n, 10)]


def test_32_members_are_kept_and_33_drop_the_header():  # §3.3.2: "a maximum of 32 list-members"
    assert parse_tracestate(_members(32)) == ",".join(_members(32))
    assert parse_tracestate(_members(33)) is None
    assert parse_tracestate([",".join(f"k{i}=v" for i in range(33))]) is None  # one line, canonical form


def test_empty_members_do_not_count_toward_32():
    # §3.3.2: empty and whitespace-only members are allowed (they come from combining fields); only key=value
    # pairs are list-members of the 32.
    lines = [m + ", ,\t," for m in _members(32)]
    assert parse_tracestate(lines) == ",".join(_members(32))


def test_one_unparsable_member_drops_the_whole_header():  # §4.1.2 step 3
    assert parse_tracestate(["a=1,b=2", "c=3,UPPER=4", "d=5"]) is None
    assert parse_tracestate(["a=1", "not a member"]) is None


def test_lines_are_combined_in_order():  # §3.3.2 / RFC 9110 §5.3
    got = parse_tracestate(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"])
    assert got == "foo=1,bar=2,rojo=1,congo=2,baz=3"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([""], None),  # an empty tracestate is accepted, and not sent on
        ([" ", "\t,  ,"], None),
        (["", "foo=1"], "foo=1"),
        (["foo=1", ""], "foo=1"),
        (["foo=1,,bar=2"], "foo=1,bar=2"),
        (["foo=1 \t , \t bar=2, \t baz=3"], "foo=1,bar=2,baz=3"),  # OWS around members is ignored
        (["foo=1\t \t,\t \tbar=2,\t \tbaz=3"], "foo=1,bar=2,baz=3"),
        (["\t foo=1 \t"], "foo=1"),
        ([",foo=1,"], "foo=1"),
    ],
)
def test_empty_members_and_ows(lines, expected):
    assert parse_tracestate(lines) == expected


def test_canonical_header_is_propagated_as_sent():
    h = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,1x@y=a b"
    assert parse_tracestate([h]) == h


def test_tracestate_follows_the_traceparent():
    tc = incoming_context([f"00-{T}-{P}-01"], ["1abc=1,foo@=2"])
    assert not tc.started_here and tc.tracestate == "1abc=1,foo@=2"
    assert incoming_context([f"00-{T}-{'0' * 16}-01"], ["a=1"]).tracestate is None  # invalid traceparent (§4.1.2)
