"""Grouping recorded calls into handoffs: what teaches a contract, and what is only counted."""

from __future__ import annotations

import uuid

import orjson

from seamline.config.models import Config
from seamline.learn.suggest import TrafficGrouper, default_safety


def call(handoff: str, url: str, body: object, *, method: str = "POST", status: int = 201, **kw: object) -> dict:
    row = {
        "event_id": str(uuid.uuid4()),
        "handoff": handoff,
        "upstream": handoff.split(".", 1)[0],
        "method": method,
        "url": url,
        "route": "",
        "status": status,
        "outcome": "ok",
        "response_body": orjson.dumps(body).decode() if body is not None else "",
        "response_truncated": False,
        "request_body": "",
        "idempotency_key": "",
    }
    row.update(kw)
    return row


def test_only_whole_ok_bodies_teach_and_unmatched_calls_become_new_handoffs():
    cfg = Config(
        upstreams={"crm": {"base_url": "http://127.0.0.1:9/crm"}},
        handoffs={"crm.create": {"upstream": "crm", "match": "POST /v1/contacts", "safety": "safe_once"}},
    )
    g = TrafficGrouper(cfg)
    g.extend(
        [
            call("crm.create", "http://127.0.0.1:9/crm/v1/contacts", {"id": "ct_1abcd"}),
            call("crm.create", "http://127.0.0.1:9/crm/v1/contacts", {"id": "ct_2"}, response_truncated=True),
            call("crm.create", "http://127.0.0.1:9/crm/v1/contacts", {"error": "x"}, status=500, outcome="http_error"),
            call("crm.create", "http://127.0.0.1:9/crm/v1/contacts", None, response_body="<html>"),
            call("crm.other", "http://127.0.0.1:9/crm/v1/contacts/ct_9f00aa1", {"id": "ct_9f00aa1"}, method="GET", status=200),
            call("crm.other", "http://127.0.0.1:9/crm/v1/contacts/ct_1b2c3d4", {"id": "ct_1b2c3d4"}, method="GET", status=200),
        ]
    )
    create = g.handoffs["crm.create"]
    assert (create.calls, create.learned_from, create.template, create.safety) == (4, 1, "/v1/contacts", "safe_once")
    assert dict(create.skipped) == {"response truncated": 1, "http_error": 1, "response not_json": 1}
    new = g.handoffs["crm.get_v1_contacts_id"]  # the base path /crm is not part of the template
    assert (new.configured, new.method, new.template, new.learned_from) == (None, "GET", "/v1/contacts/{id}", 2)
    assert new.request_schema() is None  # a GET sends no body: no request schema to hold it to


def test_a_request_schema_only_when_every_learned_call_sent_json():
    g = TrafficGrouper()
    g.add(call("b.pay", "http://h/pay", {"id": "p_1abc"}, request_body='{"amount": 5}'))
    assert g.handoffs["b.pay"].request_schema() is not None
    g.add(call("b.pay", "http://h/pay", {"id": "p_2abc"}, request_body=""))
    assert g.handoffs["b.pay"].request_schema() is None  # else `request:body:empty` for the call that sent none


def test_default_safety_follows_the_method_and_the_idempotency_key():
    assert default_safety("GET", False) == "safe_to_repeat"
    assert default_safety("POST", False) == "never_repeat"
    assert default_safety("POST", True) == "safe_once"
