"""The demo's Seamline config: four upstreams on the mocks and a contract for every handoff."""

from __future__ import annotations

from typing import Any

import yaml

# A stand-in credential: the record shows it redacted.
DEMO_TOKEN = "Bearer demo-sk-live-0c7e2f54"

HANDOFFS: dict[str, dict[str, Any]] = {
    "crm.create_contact": {
        "upstream": "crm",
        "match": "POST /v1/contacts",
        "safety": "safe_to_repeat",
        "step": "create contact",
        "contract": {
            "status": [201],
            "request_schema": {"type": "object", "required": ["email", "name"]},
            "response_schema": {
                "type": "object",
                "required": ["id", "email"],
                "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
            },
            "echo": ["email"],
            "extract": {"contact_id": "response.body.id"},
            "enforce": "record",
        },
    },
    "billing.create_invoice": {
        "upstream": "billing",
        "match": "POST /v1/invoices",
        "safety": "safe_to_repeat",
        "step": "create invoice",
        "contract": {
            "status": [201],
            "request_schema": {
                "type": "object",
                "required": ["customer", "amount", "currency"],
                "properties": {"amount": {"type": "integer", "minimum": 1}},
            },
            "response_schema": {"type": "object", "required": ["id", "status", "amount", "currency"]},
            "assert": {"invoice_open": "response.body.status == 'open'"},
            "echo": ["amount", "currency"],
            "extract": {"invoice_id": "response.body.id"},
            "enforce": "record",
        },
    },
    "billing.charge": {
        "upstream": "billing",
        "match": "POST /v1/charges",
        "safety": "never_repeat",
        "step": "charge",
        "contract": {
            "status": [200, 201],
            "request_schema": {"type": "object", "required": ["amount", "currency", "invoice"]},
            "response_schema": {"type": "object", "required": ["id", "status"]},
            "assert": {"payment_succeeded": "response.body.status == 'succeeded'"},
            "echo": ["amount", "currency"],
            "extract": {"charge_id": "response.body.id"},
            "enforce": "record",
        },
    },
    "billing.refund": {
        "upstream": "billing",
        "match": "POST /v1/refunds",
        "safety": "safe_once",
        "step": "refund (compensation)",
        "contract": {
            "status": [200],
            "request_schema": {"type": "object", "required": ["charge", "amount"]},
            "response_schema": {"type": "object", "required": ["id", "status"]},
            "assert": {"refund_succeeded": "response.body.status == 'succeeded'"},
            "extract": {"refund_id": "response.body.id"},
            "enforce": "record",
        },
    },
    "provisioning.create_account": {
        "upstream": "provisioning",
        "match": "POST /v1/accounts",
        "safety": "safe_to_repeat",
        "step": "provision account",
        "contract": {
            "status": [201],
            "request_schema": {"type": "object", "required": ["customer", "plan"]},
            "response_schema": {"type": "object", "required": ["id", "status", "plan"]},
            "assert": {"account_active": "response.body.status == 'active'"},
            "echo": ["plan"],
            "extract": {"account_id": "response.body.id"},
            "enforce": "record",
        },
    },
    "email.send_welcome": {
        "upstream": "email",
        "match": "POST /v1/messages",
        "safety": "safe_once",
        "step": "welcome email",
        "contract": {
            "status": [202],
            "request_schema": {"type": "object", "required": ["to", "template"]},
            "response_schema": {"type": "object", "required": ["id", "status"]},
            "assert": {"queued": "response.body.status == 'queued'"},
            "echo": ["to"],
            "extract": {"message_id": "response.body.id"},
            "enforce": "record",
        },
    },
    # The sync loop's two sides (see seamline.demo.driver.SyncLoop).
    "crm.update_contact": {
        "upstream": "crm",
        "match": "PATCH /v1/contacts/{id}",
        "safety": "safe_to_repeat",
        "step": "sync contact from billing",
        "contract": {"status": [200]},
    },
    "billing.update_customer": {
        "upstream": "billing",
        "match": "PATCH /v1/customers/{id}",
        "safety": "safe_to_repeat",
        "step": "sync customer from CRM",
        "contract": {"status": [200]},
    },
}


def demo_config(
    mock_urls: dict[str, str],
    *,
    proxy_port: int = 0,
    admin_port: int = 9090,
    storage: dict[str, Any] | None = None,
    read_timeout_s: float = 1.5,
) -> dict[str, Any]:
    """A config dict (feed it to `seamline.config.Config(**…)` or dump it as YAML) for the demo's mocks."""
    timeouts = {"connect": 1.0, "read": read_timeout_s, "total": read_timeout_s * 2}
    upstreams: dict[str, Any] = {}
    for name, url in mock_urls.items():
        # The demo's app retries its safe steps itself (X-Seamline-Attempt) and the mocks plan each fault per app
        # attempt, so a sidecar retry would only meet the same planned fault again: the sidecar's retries are off here.
        upstreams[name] = {"base_url": url, "allow_private": True, "timeouts": timeouts, "retry": False}
    if "billing" in upstreams:
        upstreams["billing"]["headers"] = {"Authorization": DEMO_TOKEN}
    cfg: dict[str, Any] = {
        "upstreams": upstreams,
        "handoffs": {k: v for k, v in HANDOFFS.items() if v["upstream"] in upstreams},
        "server": {"host": "127.0.0.1", "port": proxy_port, "admin_host": "127.0.0.1", "admin_port": admin_port},
        # A run calling one handoff more than 20 times in 10 minutes is a loop: stop it (the sync loop shows it).
        "loops": {"block": True},
    }
    if storage:
        cfg["storage"] = storage
    return cfg


def demo_config_yaml(mock_urls: dict[str, str], **kwargs: Any) -> str:
    """The same config as YAML, for the README and for `seamline serve --config`."""
    return yaml.safe_dump(demo_config(mock_urls, **kwargs), sort_keys=False)
