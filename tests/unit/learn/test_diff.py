"""The drift report: recorded calls evaluated again against the configured contract, per handoff."""

from __future__ import annotations

from datetime import timedelta

from support.clock import utc_now

from seamline.config.models import Config
from seamline.learn.diff import DriftReport
from seamline.validate.validator import Validator

from .test_suggest import call

CFG = Config(
    upstreams={"crm": {"base_url": "http://127.0.0.1:9"}},
    handoffs={
        "crm.create": {
            "upstream": "crm",
            "match": "POST /v1/contacts",
            "contract": {
                "status": [201],
                "response_schema": {
                    "type": "object",
                    "required": ["id", "email"],
                    "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
                },
            },
        },
        "crm.list": {"upstream": "crm", "match": "GET /v1/contacts"},
    },
)
URL = "http://127.0.0.1:9/v1/contacts"


def test_unknown_and_missing_fields_and_undocumented_statuses_with_counts_and_the_latest_example():
    now = utc_now()
    rows = [
        call("crm.create", URL, {"id": "ct_1", "email": "a@x.io"}, ts=now - timedelta(minutes=9)),
        call("crm.create", URL, {"id": "ct_2", "email": "b@x.io", "tier": "gold"}, ts=now - timedelta(minutes=5), run_id="r-a"),
        call("crm.create", URL, {"id": "ct_3", "email": "c@x.io", "tier": "vip"}, ts=now - timedelta(minutes=1), run_id="r-b"),
        call("crm.create", URL, {"id": "ct_4"}, ts=now - timedelta(minutes=2)),
        call("crm.create", URL, {"error": "x"}, status=409, outcome="http_error", ts=now),
        call("crm.list", URL, [{"id": "ct_1"}], method="GET", status=200, ts=now),
    ]
    report = DriftReport(Validator(CFG).contracts)
    report.extend(rows)
    create = report.handoffs["crm.create"]
    assert (create.calls, create.rechecked, create.reference) == (5, 5, "contract")
    found = {(f.kind, f.item): f for f in create.sorted_findings()}
    assert set(found) == {("unknown_field", "tier"), ("missing_field", "email"), ("undocumented_status", "409")}
    tier = found[("unknown_field", "tier")]
    assert (tier.count, tier.example, tier.example_run) == (2, rows[2]["event_id"], "r-b")  # the most recent one
    assert tier.first_seen == rows[1]["ts"] and tier.last_seen == rows[2]["ts"]
    assert report.handoffs["crm.list"].reference == "none" and not report.handoffs["crm.list"].findings
    doc = report.to_json()
    assert doc["handoffs"][0]["findings"][0] == {
        "kind": "unknown_field",
        "item": "tier",
        "count": 2,
        "share": 0.4,
        "example_event_id": rows[2]["event_id"],
        "example_run_id": "r-b",
        "first_seen": rows[1]["ts"].isoformat(),
        "last_seen": rows[2]["ts"].isoformat(),
    }


def test_a_call_whose_body_the_record_no_longer_holds_counts_the_drift_recorded_with_it():
    rows = [
        call("crm.create", URL, None, response_truncated=True, unknown_fields=["tier"], response_bytes=90_000),
        call("crm.create", URL, None, response_bytes=120, missing_fields=["email"], violations=["schema:/email:required"]),
    ]
    report = DriftReport(Validator(CFG).contracts)
    report.extend(rows)
    create = report.handoffs["crm.create"]
    assert create.rechecked == 0
    assert {(f.kind, f.item) for f in create.sorted_findings()} == {("unknown_field", "tier"), ("missing_field", "email")}
    assert report.has_drift()


def test_an_upstreams_openapi_document_is_the_reference_of_its_derived_handoffs():
    from pathlib import Path

    from seamline.config.loader import load_config

    example = Path(__file__).resolve().parents[3] / "examples" / "openapi" / "seamline.yaml"
    cfg = load_config(str(example))
    url = "https://petstore.swagger.io/v2/pets/7"
    rows = [
        call("pets.find_pet_by_id", url, {"id": 7, "name": "Rex", "tag": "dog"}, method="GET", status=200),
        call("pets.find_pet_by_id", url, {"id": 7, "name": "Rex", "color": "brown"}, method="GET", status=200),
        call("pets.find_pet_by_id", url, {"id": 7}, method="GET", status=200),
    ]
    for row in rows:
        row["response_content_type"] = "application/json"
    report = DriftReport(Validator(cfg, source=str(example)).contracts)
    report.extend(rows)
    pets = report.handoffs["pets.find_pet_by_id"]
    assert (pets.reference, pets.rechecked) == ("contract", 3)
    assert {(f.kind, f.item, f.count) for f in pets.sorted_findings()} == {
        ("unknown_field", "color", 1),
        ("missing_field", "name", 1),
    }
