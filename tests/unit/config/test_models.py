"""The configuration models' rules (seamline.config.models), seen through a loaded seamline.yaml: URLs, `match`,
choices and bounds, upstream references, one upstream per host and base path, timeout defaults."""

from __future__ import annotations

import pytest
from support.config_yaml import error_of, write

from seamline.config.loader import load_config


def test_issue_example_loads(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
upstreams:
  billing:
    base_url: https://api.billing.example
    timeouts: {connect: 2, read: 10, total: 30}
    allow_private: false
handoffs:
  billing.create_invoice:
    upstream: billing
    match: POST /v1/invoices
""",
        )
    )
    assert cfg.upstreams["billing"].timeouts.read == 10
    assert cfg.handoffs["billing.create_invoice"].method == "POST"
    assert cfg.handoffs["billing.create_invoice"].path_template == "/v1/invoices"


def test_bad_url_and_unknown_upstream_reference(tmp_path):
    msg = error_of(write(tmp_path, "upstreams:\n  crm:\n    base_url: ftp://x\n"))
    assert "upstreams.crm.base_url" in msg and "http" in msg
    msg = error_of(
        write(
            tmp_path,
            "upstreams:\n  crm:\n    base_url: https://crm.example\nhandoffs:\n  a.b:\n    upstream: billng\n    match: GET /x\n",
        )
    )
    assert "billng" in msg and "known: crm" in msg


def test_bad_match_and_literal_choices(tmp_path):
    msg = error_of(
        write(
            tmp_path,
            "upstreams:\n  crm:\n    base_url: https://crm.example\n"
            "handoffs:\n  a:\n    upstream: crm\n    match: charges\n    safety: maybe\n",
        )
    )
    assert "handoffs.a.match" in msg and "POST /v1/charges" in msg
    assert "handoffs.a.safety" in msg and "never_repeat" in msg


def test_out_of_range_storage_sizes_name_the_field_and_the_bound(tmp_path):
    msg = error_of(write(tmp_path, "storage:\n  max_insert_bytes: 1073741824\n"))
    assert "seamline.yaml" in msg and "storage.max_insert_bytes" in msg and "268435456" in msg
    msg = error_of(write(tmp_path, "storage:\n  batch_size: 0\n"))
    assert "storage.batch_size" in msg and "1" in msg


@pytest.mark.parametrize(
    ("first", "second", "both"),
    [
        ("http://h.example:9000/api", "http://h.example:9000/api/", "http://h.example:9000/api"),
        ("http://h.example", "http://H.EXAMPLE:80", "http://h.example:80, no base path"),  # case, default port
        ("https://h.example/", "https://h.example:443", "https://h.example:443, no base path"),
        ("http://[::1]:9000/v1", "http://[0:0::1]:9000/v1", "http://[::1]:9000/v1"),
    ],
)
def test_two_upstreams_on_one_host_and_base_path_are_refused_naming_both_and_the_fix(tmp_path, first, second, both):
    msg = error_of(write(tmp_path, f"upstreams:\n  up:\n    base_url: '{first}'\n  billing:\n    base_url: '{second}'\n"))
    assert "seamline.yaml" in msg
    assert "upstreams.billing.base_url" in msg and "upstreams.up.base_url" in msg
    assert f"(both {both})" in msg
    assert "give one a distinct base path, or merge them" in msg
    assert "(top level)" not in msg


def test_duplicate_upstream_message_keeps_credentials_out(tmp_path):
    msg = error_of(
        write(tmp_path, "upstreams:\n  a:\n    base_url: https://user:s3cret@h.example\n  b:\n    base_url: https://h.example\n")
    )
    assert "upstreams.b.base_url" in msg and "s3cret" not in msg and "user" not in msg


def test_upstreams_sharing_a_host_with_distinct_base_paths_load(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
upstreams:
  root: {base_url: 'http://h.example:9000'}
  up: {base_url: 'http://h.example:9000/ok'}
  billing: {base_url: 'http://h.example:9000/api'}
  billing_v2: {base_url: 'http://h.example:9000/api/v2'}
  other_scheme: {base_url: 'https://h.example:9000/ok'}
  other_port: {base_url: 'http://h.example:9001/ok'}
""",
        )
    )
    assert len(cfg.upstreams) == 6


def test_websocket_idle_timeout_defaults_to_five_minutes_and_must_be_positive(tmp_path):
    cfg = load_config(write(tmp_path, "upstreams:\n  chat:\n    base_url: https://chat.example\n"))
    assert cfg.upstreams["chat"].timeouts.websocket_idle == 300.0
    cfg = load_config(
        write(tmp_path, "upstreams:\n  chat:\n    base_url: https://chat.example\n    timeouts: {websocket_idle: 30}\n")
    )
    assert cfg.upstreams["chat"].timeouts.websocket_idle == 30.0
    msg = error_of(
        write(tmp_path, "upstreams:\n  chat:\n    base_url: https://chat.example\n    timeouts: {websocket_idle: 0}\n")
    )
    assert "upstreams.chat.timeouts.websocket_idle" in msg and "0" in msg
