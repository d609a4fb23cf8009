"""`seamline contracts suggest | diff` on traffic recorded by a real sidecar on the real chdb engine.

A real upstream app answers as the demo's mock APIs do (seamline.demo.mocks.RESPONDERS); the CLI reads the calls
through the sidecar's admin API with its admin token (or straight from a ClickHouse server). The round trip: the
contracts suggested from one sidecar's recording, configured on a second sidecar, judge that same traffic `ok`;
then the upstream starts sending a new field and `diff` names it.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from openapi_spec_validator import validate
from support.chdb_path import chdb_url, unique_database
from support.chhttp import ClickHouseHttpAdapter, adapter  # adapter: a fixture
from support.handoff_rows import handoff_row, insert_rows

from seamline.cli import build_parser
from seamline.config.models import Config
from seamline.demo.config import HANDOFFS
from seamline.demo.mocks import RESPONDERS
from seamline.record.schema import statements
from seamline.record.store import open_store

TOKEN = secrets.token_urlsafe(24)
ORDERS = 12
SERVICES = ("crm", "billing", "provisioning", "email")
# The demo's handoffs without their contracts (those are what is learned), and without the contact update: that call
# matches no handoff, and suggest must make it one from its URLs.
LEARNED = {n: {k: v for k, v in h.items() if k != "contract"} for n, h in HANDOFFS.items() if "update" not in n}


def demo_upstream(upstream: Any, added: dict[str, dict[str, Any]]) -> None:
    """Answer each demo endpoint as the demo's mocks do, plus the fields in `added[handoff]` (the upstream's drift)."""

    def route(handoff: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            status, payload = RESPONDERS[handoff](body, request.headers["X-Demo-Order"], 1, None)
            return web.json_response({**payload, **added.get(handoff, {})}, status=status)

        return handle

    for name, h in HANDOFFS.items():
        if "{" not in h["match"]:
            upstream.routes[f"/{h['upstream']}{h['match'].split(' ', 1)[1]}"] = route(name)
    upstream.update_contact = route("crm.update_contact")


def config_dict(upstream: Any, handoffs: dict[str, Any], database: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "upstreams": {s: {"base_url": f"{upstream.url}/{s}", "allow_private": True, "retry": False} for s in SERVICES},
        "handoffs": handoffs,
        "server": {"host": "127.0.0.1", "port": 0, "admin_port": 0},
        "admin": {"token": TOKEN},
        "storage": {
            "clickhouse_url": chdb_url(),
            "database": database,
            "spool_dir": str(tmp_path / f"spool-{database}"),
            "flush_interval_ms": 20,
        },
    }


async def send_orders(sc: Any, upstream: Any, orders: range) -> None:
    """Each order: contact, invoice, charge, account, welcome email, and a contact update no handoff matches."""
    async with aiohttp.ClientSession() as s:
        for i in orders:
            order = f"order-{i}"
            headers = {"X-Run-ID": f"run-{i}", "X-Demo-Order": order}

            async def post(
                path: str, body: dict[str, Any], method: str = "POST", headers: dict[str, str] = headers, **extra: str
            ) -> dict[str, Any]:
                async with s.request(method, sc.proxy_url + path, json=body, headers={**headers, **extra}) as r:
                    assert r.status < 300, (path, r.status, await r.text())
                    return dict(await r.json())

            email = f"user{i}@example.com"
            contact = await post("/crm/v1/contacts", {"email": email, "name": f"User {i}", "company": "Acme" if i % 2 else None})
            invoice = await post("/billing/v1/invoices", {"customer": contact["id"], "amount": 1000 + i, "currency": "eur"})
            await post(
                "/billing/v1/charges",
                {"invoice": invoice["id"], "amount": 1000 + i, "currency": "eur"},
                **{"Idempotency-Key": f"charge-{order}-{secrets.token_hex(4)}"},
            )
            await post("/provisioning/v1/accounts", {"customer": contact["id"], "plan": "pro" if i % 3 else "team"})
            await post("/email/v1/messages", {"to": email, "template": "welcome"})
            upstream.routes[f"/crm/v1/contacts/{contact['id']}"] = upstream.update_contact
            await post(f"/crm/v1/contacts/{contact['id']}", {"name": f"User {i} (synced)"}, method="PATCH")
    assert await sc.recorder.flush(30)


async def cli(*argv: str) -> tuple[int, str, str]:
    """The real CLI, in a thread (it is synchronous and talks to the sidecar on this loop)."""
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(args.func, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def rows_of(sc: Any) -> list[dict[str, Any]]:
    return await sc.store.query(
        "SELECT event_id, handoff, outcome, violations, unknown_fields, missing_fields FROM handoffs ORDER BY ts"
    )


@pytest.mark.slow
async def test_suggested_contracts_judge_the_same_traffic_ok_and_diff_finds_the_field_the_upstream_added(
    upstream, make_sidecar, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no ./seamline.yaml to pick up by accident
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN", raising=False)
    added: dict[str, dict[str, Any]] = {}
    demo_upstream(upstream, added)

    # 1. Record the demo's traffic with no contracts at all.
    first = config_dict(upstream, LEARNED, unique_database("learn_a"), tmp_path)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(first))
    sc = await make_sidecar(Config(**first))
    await send_orders(sc, upstream, range(ORDERS))

    code, _, err = await cli("contracts", "suggest", "--upstream", "crm", "--admin-url", sc.admin_url)
    assert code == 3 and "needs its admin token" in err  # the admin API is not open, and says how to get in

    suggested: dict[str, Any] = {}
    texts = {}
    for service in SERVICES:
        code, out, err = await cli(
            "contracts", "suggest", "--upstream", service, "--since", "1h", "-c", "a.yaml", "--admin-url", sc.admin_url
        )
        assert code == 0, err
        texts[service] = out
        suggested.update(yaml.safe_load(out)["handoffs"])

    # What a reviewer sees: formats, enum candidates (commented), ID extraction, the unmatched call made a handoff.
    assert set(suggested) == {*LEARNED, "crm.patch_v1_contacts_id"} - {"billing.refund"}  # the demo refunds nothing here
    assert "# billing.refund: no call recorded, nothing to learn from" in texts["billing"]
    contact = suggested["crm.create_contact"]
    assert contact["match"] == "POST /v1/contacts" and contact["step"] == "create contact"
    schema = contact["contract"]["response_schema"]
    assert schema["properties"]["email"]["format"] == "email"
    assert schema["properties"]["created_at"]["format"] == "date-time"
    assert set(schema["required"]) == {"id", "object", "email", "name", "company", "lifecycle_stage", "owner_id", "created_at"}
    assert set(schema["properties"]["company"]["type"]) == {"null", "string"}
    assert contact["contract"]["extract"] == {"contact_id": "response.body.id"}
    assert contact["contract"]["status"] == [201]
    assert "# enum: [customer]" in texts["crm"] and "# owner_id: response.body.owner_id" in texts["crm"]
    assert suggested["billing.charge"]["contract"]["extract"] == {"charge_id": "response.body.id"}
    patch = suggested["crm.patch_v1_contacts_id"]
    assert (patch["match"], patch["safety"], patch["upstream"]) == ("PATCH /v1/contacts/{id}", "never_repeat", "crm")
    assert f"from {ORDERS * 2} calls" in texts["crm"]

    # 2. The round trip: the suggestion, configured on a new sidecar, judges the same traffic ok.
    second = config_dict(upstream, suggested, unique_database("learn_b"), tmp_path)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(second))
    sc2 = await make_sidecar(Config(**second))
    await send_orders(sc2, upstream, range(ORDERS))
    rows = await rows_of(sc2)
    assert len(rows) == ORDERS * 6
    bad = [(r["handoff"], r["outcome"], r["violations"], r["unknown_fields"]) for r in rows if r["outcome"] != "ok"]
    assert not bad
    assert all(not r["unknown_fields"] and not r["missing_fields"] for r in rows)

    code, out, err = await cli(
        "contracts", "diff", "--upstream", "crm", "--since", "1h", "-c", "b.yaml", "--admin-url", sc2.admin_url
    )
    assert code == 0 and "loyalty_tier" not in out

    # 3. The CRM starts sending a new field: diff names it, with its count and an example event.
    added["crm.create_contact"] = {"loyalty_tier": "gold"}
    await send_orders(sc2, upstream, range(100, 103))
    code, out, err = await cli(
        "contracts",
        "diff",
        "--upstream",
        "crm",
        "--since",
        "1h",
        "-c",
        "b.yaml",
        "--admin-url",
        sc2.admin_url,
        "--json",
        "--exit-code",
    )
    assert code == 1, err
    report = {h["handoff"]: h for h in orjson.loads(out)["handoffs"]}
    assert set(report) == {"crm.create_contact", "crm.patch_v1_contacts_id"}
    contact_drift = report["crm.create_contact"]
    assert contact_drift["calls"] == ORDERS + 3 and contact_drift["reference"] == "contract"
    (finding,) = contact_drift["findings"]
    assert (finding["kind"], finding["item"], finding["count"]) == ("unknown_field", "loyalty_tier", 3)
    drifted = {r["event_id"] for r in await rows_of(sc2) if r["unknown_fields"] == ["loyalty_tier"]}
    assert len(drifted) == 3 and str(finding["example_event_id"]) in {str(e) for e in drifted}
    assert finding["example_run_id"] == "run-102"  # the most recent
    assert report["crm.patch_v1_contacts_id"]["findings"] == []
    code, text, _ = await cli(
        "contracts", "diff", "--upstream", "crm", "--since", "1h", "-c", "b.yaml", "--admin-url", sc2.admin_url
    )
    assert code == 0 and "loyalty_tier" in text and "field not in schema" in text and "run-102" in text

    # 4. The same recording as an OpenAPI 3.1 document of the upstream.
    code, _, err = await cli(
        "contracts",
        "suggest",
        "--upstream",
        "crm",
        "--as",
        "openapi",
        "-o",
        "crm.yaml",
        "-c",
        "a.yaml",
        "--admin-url",
        sc.admin_url,
    )
    assert code == 0 and "wrote crm.yaml" in err
    doc = yaml.safe_load((tmp_path / "crm.yaml").read_text())
    validate(doc)
    assert set(doc["paths"]) == {"/v1/contacts", "/v1/contacts/{id}"}
    assert doc["servers"] == [{"url": f"{upstream.url}/crm"}]
    assert set(doc["paths"]["/v1/contacts/{id}"]) == {"patch"} and set(doc["paths"]["/v1/contacts"]["post"]["responses"]) == {
        "201"
    }


async def test_suggest_reads_a_clickhouse_server_directly(adapter: ClickHouseHttpAdapter, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = unique_database("learn_http")
    store = open_store(f"{adapter.url}/{database}", database)
    try:
        for stmt in statements(database):
            await store.command(stmt)
        bodies = [{"id": f"ct_{i:04d}abcd", "email": f"u{i}@example.com"} for i in range(5)]
        await insert_rows(
            store,
            [
                handoff_row("r", "crm.create_contact", at_ms=i, status=201, response_body=orjson.dumps(b).decode())
                for i, b in enumerate(bodies)
            ],
        )
        cfg = {
            "upstreams": {"crm": {"base_url": "http://127.0.0.1:9/crm"}},
            "handoffs": {"crm.create_contact": {"upstream": "crm", "match": "POST /v1/contacts"}},
            "storage": {"clickhouse_url": f"{adapter.url}/{database}"},
        }
        (tmp_path / "seamline.yaml").write_text(yaml.safe_dump(cfg))  # found in the working directory
        before = adapter.requests
        code, out, err = await cli("contracts", "suggest", "--handoff", "crm.create_contact", "--since", "1d")
        assert code == 0, err
        assert adapter.requests > before
        contract = yaml.safe_load(out)["handoffs"]["crm.create_contact"]["contract"]
        assert contract["status"] == [201] and contract["response_schema"]["required"] == ["id", "email"]
        assert f"read from http://127.0.0.1:{adapter.port}, database {database})" in out  # not the admin API
    finally:
        await store.command(f"DROP DATABASE IF EXISTS `{database}`")
        await store.close()
