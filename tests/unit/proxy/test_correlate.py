"""correlate(): the run ID (header, X-Correlation-ID, baggage, or minted), trace context and caller headers."""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict

from seamline.exchange import Exchange
from seamline.ids import is_valid_run_id
from seamline.proxy.correlate import correlate
from seamline.proxy.inbound import WATCHED, Inbound

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def run(*pairs: tuple[str, str]) -> Exchange:
    ex = Exchange(ts_us=time.time_ns() // 1000, t0=time.perf_counter(), mode="reverse", method="GET")
    correlate(ex, Inbound(CIMultiDict(pairs), "x-run-id", WATCHED | {"x-run-id"}), "x-run-id")
    return ex


@pytest.mark.parametrize(
    ("pairs", "run_id", "source"),
    [
        ((("X-Run-ID", "order-1"),), "order-1", "header"),
        ((("X-Correlation-ID", "corr-1"),), "corr-1", "correlation"),
        ((("baggage", "k=v,run_id=bag-1"),), "bag-1", "baggage"),
        ((("X-Run-ID", "order-1"), ("X-Correlation-ID", "corr-1")), "order-1", "header"),
        ((("X-Correlation-ID", "corr-1"), ("baggage", "run_id=bag-1")), "corr-1", "correlation"),
    ],
)
def test_run_id_sources_in_precedence_order(pairs, run_id: str, source: str) -> None:
    ex = run(*pairs)
    assert (ex.run_id, ex.run_id_source) == (run_id, source)
    assert "run_id_invalid" not in ex.attributes


@pytest.mark.parametrize(
    "pairs",
    [(("X-Run-ID", "a"), ("X-Run-ID", "b")), (("X-Run-ID", "bad id with spaces"),), (("X-Correlation-ID", "x" * 500),),
     (("baggage", "run_id=%00"),)],
)  # fmt: skip
def test_invalid_or_repeated_run_ids_are_replaced_and_flagged(pairs) -> None:
    ex = run(*pairs)
    assert ex.run_id_source == "replaced" and ex.attributes["run_id_invalid"] == "1"
    assert is_valid_run_id(ex.run_id)


def test_a_run_id_ending_in_a_newline_is_not_valid() -> None:
    # The old regex's `$` matched before a final newline; header values cannot carry one, other callers can.
    assert not is_valid_run_id("order-1\n") and not is_valid_run_id("order-1\r")
    assert is_valid_run_id("order-1") and is_valid_run_id("~" * 128) and not is_valid_run_id("~" * 129)


def test_no_run_id_mints_one() -> None:
    ex = run()
    assert ex.run_id_source == "generated" and is_valid_run_id(ex.run_id)


def test_trace_context_is_taken_from_a_valid_traceparent_or_started_here() -> None:
    ex = run(("traceparent", TP), ("tracestate", "v=1"))
    assert ex.trace is not None and ex.trace.trace_id == "0af7651916cd43dd8448eb211c80319c" and not ex.trace.started_here
    assert ex.trace.tracestate == "v=1"
    fresh = run(("traceparent", "garbage"), ("tracestate", "v=1"))
    assert fresh.trace is not None and fresh.trace.started_here and fresh.trace.tracestate is None


def test_caller_headers_are_kept_only_when_valid() -> None:
    ex = run(
        ("X-Seamline-App", "crm-sync"), ("X-Seamline-Tenant", "acme"), ("X-Seamline-Attempt", "3"), ("Idempotency-Key", "k" * 300)
    )
    assert (ex.source_app, ex.tenant, ex.attempt, len(ex.idempotency_key)) == ("crm-sync", "acme", 3, 256)
    bad = run(("X-Seamline-App", "no spaces allowed"), ("X-Seamline-Attempt", "0"))
    assert (bad.source_app, bad.attempt) == ("", 1)
    assert run(("X-Seamline-Attempt", "70000")).attempt == 1
