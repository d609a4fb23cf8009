"""Property tests of the request-path parsers: traceparent, tracestate, baggage, run IDs, routing.

Whatever a caller sends, they return a value or refuse with Seamline's own error type: no other exception, no
hang (hypothesis' deadline), and what they accept satisfies the spec they implement.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from seamline.config.models import Config
from seamline.errors import ProxyError
from seamline.ids import is_valid_run_id
from seamline.proxy.inbound import baggage_member
from seamline.proxy.routing import Router, check_path
from seamline.proxy.tracecontext import MAX_TRACESTATE_MEMBERS, incoming_context, parse_traceparent, parse_tracestate

HEX = "0123456789abcdef"
hexes = lambda n: st.text(HEX, min_size=n, max_size=n)  # noqa: E731
# Header values as aiohttp hands them over: any str, biased toward the grammar's own characters.
header_text = st.one_of(st.text(max_size=300), st.text("0123456789abcdefABCDEF-=,; \t@*/_", max_size=300))
_TRACESTATE_MEMBER = re.compile(
    r"[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


@given(st.lists(header_text, max_size=3))
def test_traceparent_never_raises_and_accepts_only_valid(values: list[str]) -> None:
    tp = parse_traceparent(values)
    if tp is not None:
        assert re.fullmatch(r"[0-9a-f]{32}", tp.trace_id) and tp.trace_id != "0" * 32
        assert re.fullmatch(r"[0-9a-f]{16}", tp.parent_id) and tp.parent_id != "0" * 16
        assert 0 <= tp.flags <= 255
        assert parse_traceparent([tp.header()]) is not None  # what we emit, we accept


@given(hexes(32), hexes(16), hexes(2))
def test_traceparent_round_trips(trace_id: str, parent_id: str, flags: str) -> None:
    tp = parse_traceparent([f"00-{trace_id}-{parent_id}-{flags}"])
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        assert tp is None
    else:
        assert tp is not None and (tp.trace_id, tp.parent_id, tp.flags) == (trace_id, parent_id, int(flags, 16))


@given(st.lists(header_text, max_size=4))
def test_tracestate_never_raises_and_keeps_only_valid_members(values: list[str]) -> None:
    out = parse_tracestate(values)
    if out is not None:
        members = [m.strip(" \t") for m in out.split(",")]
        assert 0 < len(members) <= MAX_TRACESTATE_MEMBERS
        assert all(_TRACESTATE_MEMBER.fullmatch(m) for m in members), out


@given(st.lists(header_text, max_size=2), st.lists(header_text, max_size=2))
def test_incoming_context_always_yields_a_usable_context(tp: list[str], ts: list[str]) -> None:
    ctx = incoming_context(tp, ts)
    assert re.fullmatch(r"[0-9a-f]{32}", ctx.trace_id)
    assert ctx.started_here == (ctx.caller_span_id == "")
    if ctx.started_here:
        assert ctx.tracestate is None  # no tracestate without a valid traceparent (§3.3)


@given(st.lists(header_text, max_size=3), st.text(max_size=20))
def test_baggage_member_never_raises(values: list[str], key: str) -> None:
    out = baggage_member(values, key)
    assert out is None or isinstance(out, str)


@given(st.text(max_size=200))
def test_run_id_validation_is_visible_ascii_up_to_128(value: str) -> None:
    assert is_valid_run_id(value) == (0 < len(value) <= 128 and all(0x21 <= ord(c) <= 0x7E for c in value))


ROUTER = Router(
    Config(
        upstreams={"crm": {"base_url": "https://crm.example/api"}, "pay": {"base_url": "http://pay.example:8080"}},
        handoffs={
            "crm.get": {"upstream": "crm", "match": "GET /contacts/{id}"},
            "crm.notes": {"upstream": "crm", "match": "/contacts/{id}/notes"},
            "pay.charge": {"upstream": "pay", "match": "POST /v1/charges"},
        },
    )
)
path_text = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(["crm", "pay", "contacts", "42", "notes", "..", ".", "%2e%2e", "%5c", "\\", "", "v1", "%00", "?"]),
             max_size=8).map(lambda parts: "/" + "/".join(parts)),
)  # fmt: skip


@given(st.sampled_from(["GET", "POST", "DELETE", "PATCH"]), path_text)
def test_reverse_routing_returns_a_target_under_its_upstream_or_refuses(method: str, raw: str) -> None:
    try:
        t = ROUTER.resolve_reverse(method, raw)
    except ProxyError:
        return
    base = ROUTER.upstreams[t.upstream_name].url
    assert (t.url.scheme, t.url.host, t.url.port) == (base.scheme, base.host, base.port)
    assert ".." not in t.path.split("/")
    assert t.handoff.upstream == t.upstream_name


@given(st.text(max_size=200))
def test_check_path_refuses_or_passes_never_crashes(raw: str) -> None:
    try:
        check_path(raw)
    except ProxyError:
        return
    assert "\\" not in raw
