"""W3C trace context parsing, directly on values."""

from __future__ import annotations

from seamline.tracecontext import incoming_context, parse_traceparent, parse_tracestate

T, P = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_valid_traceparent():
    tp = parse_traceparent([f"00-{T}-{P}-01"])
    assert (tp.trace_id, tp.parent_id, tp.flags) == (T, P, 1)


def test_unknown_flags_are_zeroed_on_output():
    tp = parse_traceparent([f"00-{T}-{P}-ff"])
    assert tp.header().endswith("-03")


def test_tracestate_key_grammar():
    assert parse_tracestate(["a-b_c*d/e=1", "t1@sys=2"]) == "a-b_c*d/e=1,t1@sys=2"
    assert parse_tracestate(["1abc=1"]) is None  # simple keys start with a letter
    assert parse_tracestate(["a=" + "v" * 257]) is None  # value over 256 chars
    assert parse_tracestate(["a= x"]) == "a= x"  # inner spaces are legal chars but not trailing
    assert parse_tracestate(["a=x "]) == "a=x"  # trailing OWS is trimmed from the member


def test_absent_context_mints_a_sampled_random_trace():
    tc = incoming_context([], ["a=1"])
    assert tc.started_here and tc.tracestate is None and tc.flags == 3 and len(tc.trace_id) == 32
