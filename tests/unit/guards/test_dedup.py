"""The duplicate guard's pure parts: which handoffs it guards, the key, the fingerprint, and what a finished call
leaves in the store (its response, known, unknown, or released)."""

from __future__ import annotations

import time

import jmespath
import pytest

from seamline import outcomes as o
from seamline.config.models import Config
from seamline.exchange import BodyTap, Exchange, ReplayCapture
from seamline.guards.dedup import expression_key, fingerprints, header_key, policies, settled, store_key
from seamline.guards.dedup_store import Entry

CLAIM = Entry("in_flight", "rf", "bf", "owner", "run-1", "ev-1", lease_until=1.0, external_ids={"invoice": "in_1"})


def config(**handoffs: dict) -> Config:
    base = {"upstream": "up", "match": "POST /x"}
    return Config(
        upstreams={"up": {"base_url": "http://127.0.0.1:1"}},
        handoffs={n: {**base, **h} for n, h in handoffs.items()},
        storage={"enabled": False},
    )


def test_guarded_by_default_for_never_repeat_and_safe_once_only() -> None:
    got = policies(
        config(a={"safety": "never_repeat"}, b={"safety": "safe_once"}, c={}, d={"safety": "never_repeat", "dedup": False})
    )
    assert set(got) == {"a", "b"}
    assert not got["a"].fail_open and got["b"].fail_open  # fail_closed for never_repeat, fail_open for safe_once
    assert got["a"].window_s == 86400.0 and got["a"].max_response_bytes == 1024 * 1024


def test_an_explicit_dedup_guards_a_safe_to_repeat_handoff_and_policy_overrides() -> None:
    got = policies(config(c={"dedup": {"window": "10m", "on_store_down": "fail_closed", "key": "request.body.id"}}))
    assert got["c"].window_s == 600.0 and not got["c"].fail_open and got["c"].key is not None


@pytest.mark.parametrize(("sent", "key"), [("abc", "abc"), ('"abc"', "abc"), ('"a\\"b"', 'a"b'), (" k ", "k"), ("", "")])
def test_header_key_reads_the_drafts_sf_string(sent: str, key: str) -> None:
    assert header_key(sent) == key


def test_expression_key_over_the_request() -> None:
    expr = jmespath.compile("join('/', [request.body.invoice, to_string(request.body.amount)])")
    assert expression_key(expr, "POST", "/x", "", [], b'{"invoice": "in_1", "amount": 500}') == "in_1/500"
    assert expression_key(jmespath.compile('request.headers."x-order"'), "POST", "/x", "", [("X-Order", "o-9")], b"") == "o-9"
    assert expression_key(jmespath.compile("request.query.ref"), "POST", "/x", "ref=r1", [], b"") == "r1"
    assert expression_key(expr, "POST", "/x", "", [], b"not json") == ""  # nothing found: no key


def test_fingerprints_tell_body_from_path() -> None:
    a = fingerprints("POST", "/v1/charges", b'{"a":1}')
    assert fingerprints("POST", "/v1/charges", b'{"a":1}') == a
    assert fingerprints("POST", "/v1/charges", b'{"a": 1}')[1] != a[1]  # the exact bytes
    assert fingerprints("POST", "/v1/charges/2", b'{"a":1}') == (fingerprints("POST", "/v1/charges/2", b"")[0], a[1])


def test_store_keys_are_scoped_by_handoff_and_tenant() -> None:
    assert store_key("h", "", "k") != store_key("h2", "", "k") != store_key("h", "t", "k")
    assert len(store_key("h", "", "k" * 10_000)) < 100


def answered(status: int, body: bytes, *, complete: bool = True, cap: int = 100) -> Exchange:
    ex = Exchange(ts_us=0, t0=time.perf_counter(), mode="reverse", method="POST")
    ex.replay_capture = keep = ReplayCapture(BodyTap(cap), status=status, reason="OK", headers=[("A", "1")])
    keep.tap.feed(body)
    keep.complete = complete
    ex.status = status
    return ex


def test_a_whole_response_is_kept_for_replay() -> None:
    got = settled(answered(201, b"body"), CLAIM, lambda n: True)
    assert got is not None and (got.state, got.status, got.headers, got.body) == ("done", 201, [("A", "1")], b"body")
    assert (got.owner, got.event_id, got.external_ids) == ("owner", "ev-1", {"invoice": "in_1"})


def test_any_upstream_status_is_replayed_but_429_releases() -> None:
    done = settled(answered(500, b"oops"), CLAIM, lambda n: True)
    assert done is not None and done.state == "done"
    assert settled(answered(429, b""), CLAIM, lambda n: True) is None


def test_too_large_or_cut_or_unstorable_responses_are_known() -> None:
    big = settled(answered(200, b"x" * 101), CLAIM, lambda n: True)
    cut = settled(answered(200, b"x", complete=False), CLAIM, lambda n: True)
    full = settled(answered(200, b"x"), CLAIM, lambda n: False)
    assert big is not None and big.state == "known" and "100 bytes" in big.why and big.status == 200
    assert cut is not None and cut.state == "known" and "not received whole" in cut.why
    assert full is not None and full.state == "known" and "full" in full.why


@pytest.mark.parametrize(("error_class", "not_sent", "state"), [
    (o.TIMEOUT, False, "unknown"), (o.CONNECT, False, "unknown"), (o.SERVER_ERROR, False, "unknown"),
    (o.CONNECT, True, None), (o.DNS, True, None), (o.TOO_LARGE, False, None), (o.CONTRACT, False, None),
    (o.REFUSED_TARGET, False, None),
])  # fmt: skip
def test_no_answer_is_unknown_unless_nothing_was_sent(error_class: str, not_sent: bool, state: str | None) -> None:
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="POST", error_class=error_class, not_sent=not_sent)
    ex.replay_capture = ReplayCapture(BodyTap(100))
    got = settled(ex, CLAIM, lambda n: True)
    assert (got.state if got else None) == state
