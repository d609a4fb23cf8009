"""Inbound: one pass over the request headers — what the stages read, and what is relayed upstream."""

from __future__ import annotations

from multidict import CIMultiDict

from seamline.proxy.inbound import WATCHED, Inbound, baggage_member, connection_tokens, header_tokens


def inbound(*pairs: tuple[str, str], run_header: str = "x-run-id") -> Inbound:
    return Inbound(CIMultiDict(pairs), run_header, WATCHED | {run_header})


def test_watched_values_are_collected_in_order_and_case_insensitively() -> None:
    heads = inbound(("X-Run-ID", "a"), ("x-run-id", "b"), ("Traceparent", "tp"), ("X-Other", "o"))
    assert heads.all("x-run-id") == ["a", "b"]
    assert heads.first("traceparent") == "tp"
    assert heads.all("x-other") == () and heads.first("x-other") == ""


def test_hop_by_hop_own_and_connection_listed_headers_are_not_relayed() -> None:
    heads = inbound(
        ("Host", "app"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"), ("Proxy-Authorization", "Basic x"), ("Expect", "100-continue"),
        ("Content-Length", "4"), ("traceparent", "t"), ("tracestate", "s"), ("X-Seamline-App", "a"),
        ("X-Run-ID", "r"), ("HTTP2-Settings", "AAA"), ("Upgrade", "h2c"), ("X-Keep", "yes"), ("x-keep", "too"),
    )  # fmt: skip
    assert heads.relay == [("X-Keep", "yes"), ("x-keep", "too")]


def test_a_custom_run_header_is_consumed_not_relayed() -> None:
    heads = inbound(("X-Flow", "r1"), ("X-Run-ID", "other"), run_header="x-flow")
    assert heads.all("x-flow") == ["r1"]
    assert heads.relay == [("X-Run-ID", "other")]


def test_header_tokens_and_connection_tokens() -> None:
    assert header_tokens(["close, X-A", " x-b ,,"]) == {"close", "x-a", "x-b"}
    assert connection_tokens(CIMultiDict([("Connection", "Upgrade"), ("connection", "X-Y")])) == {"upgrade", "x-y"}


def test_baggage_member_is_percent_decoded_and_properties_dropped() -> None:
    assert baggage_member(["a=1, run_id=order%2042;prop=x"], "run_id") == "order 42"
    assert baggage_member(["run_idx=1", "other=2"], "run_id") is None
    assert baggage_member(["run_id"], "run_id") is None
