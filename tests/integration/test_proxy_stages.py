"""The request path's stages: run in the order the handler lists them, and a stage that raises is logged,
counted and isolated from the traffic (an essential request stage answers 500 instead)."""

from __future__ import annotations

import logging

import aiohttp
from conftest import proxy_config
from prometheus_client import generate_latest

from seamline.guards.circuit import CircuitGuard
from seamline.guards.dedup import Dedup
from seamline.guards.loops import LoopGuard
from seamline.proxy.accept import Authenticate, BodyLimit, InflightBodies
from seamline.proxy.correlate import Correlate
from seamline.proxy.redirects import RewriteRedirects
from seamline.proxy.route import Route
from seamline.proxy.spans import Spans
from seamline.proxy.via import Via
from seamline.replay.mark import ReplayMark


class Broken:
    def __init__(self, name: str, essential: bool = False) -> None:
        self.name, self.essential = name, essential

    def request(self, ex, http, heads):
        if self.name == "optional-async":
            return self._later()
        raise RuntimeError("stage bug")

    async def _later(self) -> None:
        raise RuntimeError("stage bug")

    def response(self, ex, http, headers) -> None:
        raise RuntimeError("stage bug")

    def done(self, ex) -> None:
        raise RuntimeError("stage bug")


def errors_of(sc, stage: str) -> float:
    for line in generate_latest(sc.registry).decode().splitlines():
        if line.startswith(f'seamline_stage_errors_total{{stage="{stage}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_the_stages_are_in_the_documented_order(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    assert [type(s) for s in sc.path.request] == [
        Correlate, ReplayMark, Via, Authenticate, Route, BodyLimit, InflightBodies, LoopGuard, CircuitGuard, Spans
    ]  # fmt: skip
    assert [type(s) for s in sc.path.response] == [RewriteRedirects, Correlate]
    assert [s.name for s in sc.path.done] == ["spans", "circuit_breaker", "metrics", "inflight_bodies"]


async def test_the_duplicate_guard_runs_after_body_limit_and_settles_when_a_handoff_is_guarded(upstream, make_sidecar):
    charge = {"upstream": "billing", "match": "POST /v1/charges", "safety": "never_repeat"}
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, handoffs={"billing.charge": charge}))
    assert [type(s) for s in sc.path.request] == [
        Correlate, ReplayMark, Via, Authenticate, Route, BodyLimit, InflightBodies, LoopGuard, Dedup, CircuitGuard, Spans
    ]  # fmt: skip
    assert [type(s) for s in sc.path.settle] == [Dedup]


async def test_a_failing_optional_stage_is_logged_counted_and_skipped(upstream, make_sidecar, caplog):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    sc.handler.path = sc.path._replace(
        request=(*sc.path.request, Broken("optional"), Broken("optional-async")), response=(*sc.path.response, Broken("resp")),
        done=(*sc.path.done, Broken("fin")), after=(*sc.path.after, Broken("later")),
    )  # fmt: skip
    sc.path.upstream.relay.stages = sc.handler.path.response
    with caplog.at_level(logging.ERROR, logger="seamline.proxy"):
        async with aiohttp.ClientSession() as s:
            async with s.get(sc.proxy_url + "/billing/v1/x", headers={"X-Run-ID": "run-stage"}) as r:
                assert r.status == 200 and await r.json() == {"ok": True, "path": "/v1/x"}
                assert r.headers["X-Run-ID"] == "run-stage"
            async with s.get(sc.admin_url + "/healthz") as r:  # one more loop turn: the `after` stage has run
                assert r.status == 200
    assert [errors_of(sc, n) for n in ("optional", "optional-async", "resp", "fin", "later")] == [1.0] * 5
    assert "optional stage failed" in caplog.text and "stage bug" in caplog.text


async def test_a_failing_essential_stage_answers_500_problem(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"billing": upstream.url}))
    sc.handler.path = sc.path._replace(request=(*sc.path.request[:4], Broken("essential", essential=True)))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/v1/x", headers={"X-Run-ID": "run-500"}) as r:
            body = await r.json(content_type=None)
    assert r.status == 500 and r.content_type == "application/problem+json"
    assert body["run_id"] == "run-500" and "essential stage failed" in body["detail"] and "stage bug" not in body["detail"]
    assert upstream.received == []
    assert errors_of(sc, "essential") == 1.0
