"""The retry guard's pure parts: which calls may be retried, Retry-After, the compiled policy."""

from __future__ import annotations

import email.utils
import time

import aiohttp
import pytest
from conftest import proxy_config
from prometheus_client import CollectorRegistry

from seamline import errors
from seamline.config.guards import Retry
from seamline.exchange import Exchange
from seamline.guards.retry import CONNECT, TIMEOUT, Attempted, Retries, RetryPolicy, failure_reason, parse_retry_after
from seamline.proxy.netguard import RefusedAddress
from seamline.proxy.routing import Router
from seamline.proxy.spans import Spans, Telemetry


def retries_for(handoffs: dict[str, dict[str, object]], **upstream: object) -> tuple[Retries, Router]:
    cfg = proxy_config({"billing": "http://127.0.0.1:9"}, handoffs=handoffs)
    if upstream:
        up = cfg.upstreams["billing"]
        cfg = cfg.model_copy(update={"upstreams": {"billing": type(up).model_validate({**up.model_dump(), **upstream})}})
    spans = Spans(Telemetry(cfg.telemetry))
    return Retries(cfg, spans, CollectorRegistry(), lambda s: s), Router(cfg)


def policy(retries: Retries, router: Router, method: str, path: str) -> RetryPolicy | None:
    return retries.policy_for(router.target("billing", method, path, ""), method)


# -- which calls ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("safety", "method", "retried"),
    [
        (None, "GET", True),  # default safety, a method that repeats safely
        (None, "PUT", True),
        (None, "POST", False),  # default safety: nobody said this POST may be repeated
        (None, "PATCH", False),
        ("safe_to_repeat", "POST", True),  # said so in the config
        ("safe_once", "GET", False),
        ("never_repeat", "GET", False),
        ("never_repeat", "POST", False),
    ],
)
def test_only_handoffs_safe_to_repeat_are_retried(safety: str | None, method: str, retried: bool) -> None:
    h: dict[str, object] = {"upstream": "billing", "match": f"{method} /v1/x"}
    if safety is not None:
        h["safety"] = safety
    retries, router = retries_for({"billing.x": h})
    assert (policy(retries, router, method, "/v1/x") is not None) is retried


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("HEAD", True), ("OPTIONS", True), ("PUT", True),
                                                 ("DELETE", True), ("POST", False), ("PATCH", False)])  # fmt: skip
def test_unmatched_calls_are_retried_for_idempotent_methods_only(method: str, retried: bool) -> None:
    retries, router = retries_for({})
    assert (policy(retries, router, method, "/anything") is not None) is retried


def test_retry_false_on_the_upstream_and_a_handoffs_own_retry() -> None:
    handoffs = {"billing.x": {"upstream": "billing", "match": "GET /v1/x", "retry": {"attempts": 5}}}
    retries, router = retries_for(handoffs, retry=False)
    assert policy(retries, router, "GET", "/other") is None
    p = policy(retries, router, "GET", "/v1/x")
    assert p is not None and p.attempts == 5


def test_a_handoff_can_turn_retries_off() -> None:
    retries, router = retries_for({"billing.x": {"upstream": "billing", "match": "GET /v1/x", "retry": False}})
    assert policy(retries, router, "GET", "/v1/x") is None


def test_policy_compiles_the_config() -> None:
    p = RetryPolicy.from_config(Retry.model_validate({"on": ["connect", 503], "deadline": "2s", "backoff": "50ms"}))
    assert p is not None
    assert (p.connect, p.timeout, p.statuses, p.deadline, p.backoff) == (True, False, frozenset({503}), 2.0, 0.05)
    assert RetryPolicy.from_config(Retry(attempts=1)) is None  # one attempt: nothing to retry
    assert RetryPolicy.from_config(Retry(enabled=False)) is None


# -- Retry-After -----------------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = time.time()
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 120 ") == 120.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0  # already past
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


# -- what a failure means --------------------------------------------------------------------------------------------


def _connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, os_error)


def test_failure_reasons() -> None:
    up = errors.UpstreamError("x", "connect")
    assert failure_reason(_connector_error(ConnectionRefusedError(111, "refused")), up) == CONNECT
    assert failure_reason(TimeoutError("upstream response deadline"), errors.UpstreamTimeout("t")) == TIMEOUT
    assert failure_reason(aiohttp.ServerDisconnectedError(), up) == TIMEOUT  # sent, no answer: outcome unknown
    assert failure_reason(RefusedAddress("10.0.0.1 is private"), errors.Forbidden("no")) == ""
    assert failure_reason(aiohttp.ServerDisconnectedError(), errors.UpstreamError("tls", "tls")) == ""


def test_may_retry_refuses_a_retry_after_beyond_the_cap() -> None:
    retries, _ = retries_for({})
    p = RetryPolicy.from_config(Retry(max_retry_after=30))
    assert p is not None
    ex = Exchange(ts_us=0, t0=0.0, mode="reverse", method="GET")
    assert retries.may_retry(ex, p, Attempted(reason="503", retry_after=30.0))
    assert not retries.may_retry(ex, p, Attempted(reason="503", retry_after=31.0))
    assert not retries.may_retry(ex, p, Attempted(reason=""))
