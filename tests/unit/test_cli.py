"""The `seamline` command line: check-config, bad configs at start-up, schema output."""

from __future__ import annotations

import pytest

from seamline.cli import main

GOOD = """
upstreams:
  billing: {base_url: "https://api.billing.example"}
handoffs:
  billing.charge:
    upstream: billing
    match: POST /v1/charges
    contract:
      status: [200]
      assert: {paid: "response.body.status == 'succeeded'"}
"""


def test_check_config_prints_resolved_routes(tmp_path, capsys):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD)
    assert main(["check-config", str(p)]) == 0
    out = capsys.readouterr().out
    assert "billing.charge" in out and "https://api.billing.example" in out and "billing.other" in out


@pytest.mark.parametrize(
    "contract, field",
    [
        ('assert: {paid: "response.body.status == "}', "assert.paid"),
        ("response_schema: {type: 17}", "response_schema"),
        ('extract: {id: "nowhere.id"}', "extract.id"),
    ],
)
def test_bad_contract_names_file_handoff_and_field(tmp_path, capsys, contract, field):
    p = tmp_path / "bad.yaml"
    p.write_text(
        f"upstreams:\n  b: {{base_url: 'https://b.example'}}\n"
        f"handoffs:\n  b.pay:\n    upstream: b\n    match: POST /p\n    contract:\n      {contract}\n"
    )
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "handoffs.b.pay.contract." + field in err


def test_serve_refuses_a_bad_config_with_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("upstreams:\n  b: {base_url: 'ftp://x'}\n")
    assert main(["serve", "--config", str(p)]) == 2
    assert "upstreams.b.base_url" in capsys.readouterr().err


def test_serve_refuses_a_bad_contract_with_exit_2_not_a_traceback(tmp_path, capsys):
    """Contracts compile when the sidecar is built: the error still names file, handoff and field."""
    p = tmp_path / "bad.yaml"
    p.write_text(
        "upstreams:\n  b: {base_url: 'https://b.example'}\n"
        "handoffs:\n  b.pay:\n    upstream: b\n    match: POST /p\n    contract:\n      response_schema: {type: 17}\n"
        "storage: {enabled: false}\nserver: {port: 0, admin_port: 0}\n"
    )
    assert main(["serve", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "handoffs.b.pay.contract.response_schema" in err and "Traceback" not in err


def test_schema_prints_ddl_and_cluster_variant(capsys):
    assert main(["schema"]) == 0
    plain = capsys.readouterr().out
    assert "CREATE TABLE" in plain and "handoffs" in plain
    assert main(["schema", "--cluster", "prod"]) == 0
    clustered = capsys.readouterr().out
    assert "ON CLUSTER `prod`" in clustered and "Replicated" in clustered and "Distributed" in clustered


def test_check_config_refuses_two_upstreams_on_one_host_and_base_path(tmp_path, capsys):
    p = tmp_path / "dup.yaml"
    p.write_text("upstreams:\n  crm: {base_url: 'http://localhost:9000'}\n  billing: {base_url: 'http://LOCALHOST:9000/'}\n")
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "upstreams.billing.base_url" in err and "upstreams.crm.base_url" in err
    assert "give one a distinct base path, or merge them" in err
    p.write_text(
        "upstreams:\n  crm: {base_url: 'http://localhost:9000/crm'}\n  billing: {base_url: 'http://localhost:9000/billing'}\n"
    )
    assert main(["check-config", str(p)]) == 0


def test_serve_refuses_an_exposed_admin_listener_without_a_token(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN_FILE", raising=False)
    p = tmp_path / "exposed.yaml"
    p.write_text("server: {admin_host: 0.0.0.0, port: 0, admin_port: 0}\nstorage: {enabled: false}\n")
    assert main(["serve", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: invalid configuration" in err and "server.admin_host: '0.0.0.0' is not a loopback address" in err
    assert "set admin.token_file" in err and "Traceback" not in err


def test_check_config_lists_the_handoffs_derived_from_openapi(tmp_path, capsys):
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "examples" / "openapi" / "petstore-expanded.yaml"
    p = tmp_path / "s.yaml"
    p.write_text(
        f"""
upstreams:
  pets: {{base_url: "https://petstore.swagger.io/v2", openapi: "{doc}"}}
handoffs:
  pets.add: {{upstream: pets, match: "POST /pets", safety: safe_once, contract: {{enforce: request}}}}
"""
    )
    assert main(["check-config", str(p)]) == 0
    out = capsys.readouterr().out
    assert "4 handoff(s) (3 derived from OpenAPI)" in out
    assert "4 operation(s), 3 derived" in out
    assert "pets.find_pet_by_id  [safe_to_repeat, openapi 200 default]" in out
    assert "pets.deletePet  [safe_to_repeat, openapi 204 default]" in out
    assert "pets.add  [safe_once, openapi 200 default + contract]" in out  # the config's name and safety win


def test_check_config_names_the_openapi_problem(tmp_path, capsys):
    (tmp_path / "api.yaml").write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a: {get: {responses: {}}}\n")
    p = tmp_path / "s.yaml"
    p.write_text('upstreams:\n  a: {base_url: "https://a.example", openapi: api.yaml}\n')
    assert main(["check-config", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: upstreams.a.openapi: {tmp_path / 'api.yaml'}: not a valid OpenAPI 3.0.3 document" in err
    assert "#/paths/~1a/get/responses" in err


def test_serve_workers_flag_overrides_the_file_and_the_refusal_names_it(tmp_path, capsys):
    p = tmp_path / "guarded.yaml"
    p.write_text(GOOD.replace("match: POST /v1/charges", "match: POST /v1/charges\n    safety: never_repeat"))
    assert main(["serve", "--config", str(p), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{p}: invalid configuration" in err and "server.workers: 2 workers" in err
    assert "handoffs.billing.charge.dedup" in err and "set redis_url" in err
