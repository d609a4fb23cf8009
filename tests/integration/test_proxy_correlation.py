"""Run IDs and W3C Trace Context across the hop, on real sockets."""

from __future__ import annotations

import re

import aiohttp
import pytest
from conftest import proxy_config
from support.rawhttp import raw_request

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
VALID = f"00-{TRACE}-{PARENT}-01"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


async def _call(sc, headers: list[tuple[str, str]]) -> tuple[aiohttp.ClientResponse, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/x", headers=headers) as r:
            await r.read()
            return r, dict(r.headers)


@pytest.fixture
async def sc(upstream, make_sidecar):
    return await make_sidecar(proxy_config({"billing": upstream.url}))


async def test_run_id_is_kept_byte_for_byte_forwarded_and_echoed(sc, upstream):
    rid = "order-123:attempt/1~A_b.c"
    _, h = await _call(sc, [("X-Run-ID", rid)])
    assert upstream.last.header("X-Run-ID") == rid
    assert h["X-Run-ID"] == rid


async def test_missing_run_id_is_minted_time_sortable(sc, upstream):
    _, h1 = await _call(sc, [])
    _, h2 = await _call(sc, [])
    assert UUID7.match(h1["X-Run-ID"]) and UUID7.match(h2["X-Run-ID"])
    assert h1["X-Run-ID"] < h2["X-Run-ID"]
    assert upstream.received[0].header("X-Run-ID") == h1["X-Run-ID"]


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "tab\there", "ünïcode", "ctl\x01x"])
async def test_invalid_run_id_is_replaced_never_reflected(sc, upstream, bad):
    raw = b"GET /billing/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Run-ID: " + bad.encode("utf-8") + b"\r\n\r\n"
    r = await raw_request(sc.proxy_port, raw)
    if r.status == 400:  # the HTTP parser itself refused the control character: also never reflected
        assert bad.encode() not in r.body
        return
    assert r.status == 200
    assert UUID7.match(r.header("X-Run-ID"))
    assert upstream.last.header("X-Run-ID") == r.header("X-Run-ID")


async def test_run_id_header_name_is_configurable(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, server={"run_id_header": "X-Workflow-Run"}))
    _, h = await _call(sc, [("X-Workflow-Run", "wf-9")])
    assert upstream.last.header("X-Workflow-Run") == "wf-9"
    assert h["X-Workflow-Run"] == "wf-9"


async def test_correlation_id_and_baggage_are_accepted(sc, upstream):
    _, h = await _call(sc, [("X-Correlation-ID", "corr-1")])
    assert h["X-Run-ID"] == "corr-1"
    assert upstream.last.header("X-Correlation-ID") == "corr-1"  # passes through too
    _, h = await _call(sc, [("baggage", "userId=alice, run_id=run%2D77;prop=1")])
    assert h["X-Run-ID"] == "run-77"
    assert upstream.last.header("baggage") == "userId=alice, run_id=run%2D77;prop=1"


async def test_valid_traceparent_keeps_trace_id_with_a_new_span_per_request(sc, upstream):
    _, h1 = await _call(sc, [("traceparent", VALID)])
    _, _h2 = await _call(sc, [("traceparent", VALID)])
    sent = [TP.match(r.header("traceparent")) for r in upstream.received]
    assert all(sent)
    assert sent[0].group(1) == TRACE and sent[1].group(1) == TRACE
    assert sent[0].group(2) != PARENT and sent[1].group(2) != PARENT
    assert sent[0].group(2) != sent[1].group(2)
    assert sent[0].group(3) == "01"
    assert h1["traceparent"] == upstream.received[0].header("traceparent")


@pytest.mark.parametrize(
    "tp",
    [
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE}-{PARENT}-0g",  # bad flags
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 must be exactly 55 chars
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
        f"00_{TRACE}_{PARENT}_01",  # wrong delimiter
        f"00-{TRACE} -{PARENT}-01",  # inner whitespace
        "garbage",
    ],
)
async def test_invalid_traceparent_starts_a_new_trace_and_drops_tracestate(sc, upstream, tp):
    await _call(sc, [("traceparent", tp), ("tracestate", "vendor=abc")])
    m = TP.match(upstream.last.header("traceparent"))
    assert m and m.group(1) != TRACE
    assert upstream.last.header("tracestate") is None


async def test_absent_traceparent_starts_a_new_sampled_random_trace(sc, upstream):
    await _call(sc, [])
    m = TP.match(upstream.last.header("traceparent"))
    assert m and m.group(3) == "03"


async def test_duplicated_traceparent_header_starts_a_new_trace(sc, upstream):
    raw = f"GET /billing/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\ntraceparent: {VALID}\r\ntraceparent: {VALID}\r\n\r\n"
    r = await raw_request(sc.proxy_port, raw.encode())
    assert r.status == 200
    assert TP.match(upstream.last.header("traceparent")).group(1) != TRACE


async def test_header_name_casing_and_surrounding_whitespace_are_tolerated(sc, upstream):
    raw = f"GET /billing/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTraceParent:   {VALID}  \r\nTRACESTATE: a=1\r\n\r\n"
    await raw_request(sc.proxy_port, raw.encode())
    m = TP.match(upstream.last.header("traceparent"))
    assert m.group(1) == TRACE
    assert upstream.last.header("tracestate") == "a=1"


async def test_higher_version_is_parsed_and_emitted_as_00_keeping_known_flags(sc, upstream):
    await _call(sc, [("traceparent", f"cc-{TRACE}-{PARENT}-ff-what-the-future-holds")])
    m = TP.match(upstream.last.header("traceparent"))
    assert m.group(1) == TRACE and m.group(3) == "03"


async def test_unsampled_flag_is_kept(sc, upstream):
    await _call(sc, [("traceparent", f"00-{TRACE}-{PARENT}-00")])
    assert TP.match(upstream.last.header("traceparent")).group(3) == "00"


async def test_tracestate_lines_are_merged_in_order(sc, upstream):
    raw = (
        f"GET /billing/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\ntraceparent: {VALID}\r\n"
        "tracestate: a=1, b=2\r\ntracestate: t@sys=3,,c=4\r\n\r\n"
    )
    await raw_request(sc.proxy_port, raw.encode())
    assert upstream.last.header("tracestate") == "a=1,b=2,t@sys=3,c=4"
    assert len(upstream.last.header_all("tracestate")) == 1


@pytest.mark.parametrize(
    "ts",
    [
        ",".join(f"k{i}=v" for i in range(33)),  # over 32 members
        "UPPER=1",  # bad key
        "@vendor=1",  # a key starts with a letter or a digit
        "z" * 257 + "=1",  # key over 256 chars
        "a=bad,value",  # comma inside value splits into an invalid member
        "a=tab\tx",  # bad value char
    ],
)
async def test_invalid_tracestate_is_dropped_whole(sc, upstream, ts):
    await _call(sc, [("traceparent", VALID), ("tracestate", ts)])
    assert upstream.last.header("tracestate") is None
    assert TP.match(upstream.last.header("traceparent")).group(1) == TRACE


async def test_level2_keys_and_duplicated_keys_are_propagated(sc, upstream):
    # Trace Context Level 2 §3.3.2.2.1 (digit first, '@' anywhere) and §3.5 (foreign duplicates are sent on).
    ts = "1abc=1,foo@=2,foo@bar@baz=3,a=1,a=2"
    await _call(sc, [("traceparent", VALID), ("tracestate", ts)])
    assert upstream.last.header("tracestate") == ts


async def test_32_tracestate_members_are_kept(sc, upstream):
    ts = ",".join(f"k{i}=v" for i in range(32))
    await _call(sc, [("traceparent", VALID), ("tracestate", ts)])
    assert upstream.last.header("tracestate") == ts


async def test_baggage_passes_through(sc, upstream):
    await _call(sc, [("baggage", "tenant=acme,region=eu")])
    assert upstream.last.header("baggage") == "tenant=acme,region=eu"


async def test_error_responses_carry_run_id_and_traceparent(sc):
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/unknown/x", headers={"X-Run-ID": "r1", "traceparent": VALID}) as r:
            body = await r.json()
            assert r.headers["X-Run-ID"] == "r1"
            assert TP.match(r.headers["traceparent"]).group(1) == TRACE
    assert body["trace_id"] == TRACE and body["run_id"] == "r1"
