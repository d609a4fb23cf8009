"""Loading the configuration (seamline.config.loader): the file and its YAML, environment overrides, contract files
resolved next to the config, and every error naming the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

from support.config_yaml import error_of, write

from seamline.config.loader import load_config


def test_unknown_key_names_file_field_and_allowed_keys(tmp_path):
    msg = error_of(write(tmp_path, "upstreams:\n  billing:\n    base_url: https://x.example\n    allow_privat: true\n"))
    assert "seamline.yaml" in msg
    assert "upstreams.billing.allow_privat" in msg
    assert "allow_private" in msg


def test_not_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in error_of(write(tmp_path, "upstreams: [\n"))
    assert "file not found" in error_of(tmp_path / "nope.yaml")
    assert "top level must be a mapping" in error_of(write(tmp_path, "- a\n"))


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMLINE_CLICKHOUSE_URL", "http://u:p@ch:8123/seamline")
    monkeypatch.setenv("SEAMLINE_SERVER__PORT", "9999")
    cfg = load_config(write(tmp_path, "server:\n  port: 8081\n"))
    assert cfg.storage.clickhouse_url == "http://u:p@ch:8123/seamline"
    assert cfg.server.port == 9999


def test_invalid_environment_value_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAMLINE_CLICKHOUSE_URL", "mysql://x")
    assert "storage.clickhouse_url" in error_of(write(tmp_path, "{}\n"))


def test_contract_file_reference_is_loaded_relative_to_the_config(tmp_path):
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "charge.yaml").write_text("status: [200]\nextract: {charge_id: response.body.id}\n")
    cfg = load_config(
        write(
            tmp_path,
            "upstreams:\n  b:\n    base_url: https://b.example\n"
            "handoffs:\n  b.charge:\n    upstream: b\n    match: POST /c\n    contract: contracts/charge.yaml\n",
        )
    )
    assert cfg.handoffs["b.charge"].contract.status == [200]


def test_missing_contract_file_is_named(tmp_path):
    msg = error_of(
        write(
            tmp_path,
            "upstreams:\n  b:\n    base_url: https://b.example\n"
            "handoffs:\n  b.charge:\n    upstream: b\n    match: POST /c\n    contract: nope.yaml\n",
        )
    )
    assert "handoffs.b.charge.contract" in msg and "nope.yaml" in msg


def test_openapi_operations_become_handoffs_and_the_configs_own_extend_them(tmp_path):
    from seamline.validate.openapi import openapi_specs

    doc = Path(__file__).resolve().parents[3] / "examples" / "openapi" / "petstore-expanded.yaml"
    (tmp_path / "seamline.yaml").write_text(
        f"""
upstreams:
  pets: {{base_url: "https://petstore.swagger.io/v2", openapi: "{doc}"}}
handoffs:
  my.add: {{upstream: pets, match: "POST /pets"}}
  my.delete: {{upstream: pets, match: "DELETE /pets/{{petId}}", safety: never_repeat}}
"""
    )
    cfg = load_config(tmp_path / "seamline.yaml")
    assert set(cfg.handoffs) == {"my.add", "my.delete", "pets.findPets", "pets.find_pet_by_id"}
    assert cfg.handoffs["pets.find_pet_by_id"].match == "GET /pets/{id}"
    assert cfg.handoffs["my.add"].safety == "never_repeat"  # POST's default, the config set none
    assert cfg.handoffs["my.delete"].safety == "never_repeat"  # the config's own wins over DELETE's safe_to_repeat
    specs = openapi_specs(cfg)
    assert specs.operation("my.add").operation_id == "addPet"
    assert specs.derived == {"pets.findPets", "pets.find_pet_by_id"}


def test_openapi_file_not_found_names_the_config_key_and_the_fix(tmp_path):
    (tmp_path / "seamline.yaml").write_text('upstreams:\n  a: {base_url: "https://a.example", openapi: nope.yaml}\n')
    msg = error_of(tmp_path / "seamline.yaml")
    assert "seamline.yaml: upstreams.a.openapi:" in msg and "nope.yaml: file not found" in msg and "relative to the config" in msg


def test_the_retry_key_on_is_a_key_not_a_yaml_1_1_boolean(tmp_path):
    # The README's example, as written: YAML 1.1 reads a bare `on` as True, which made this config invalid.
    text = (
        "upstreams:\n  crm:\n    base_url: https://api.crm.example\n"
        "    retry: {attempts: 4, deadline: 5s, on: [connect, 502, 503, 504, 429], max_retry_after: 10s}\n"
        "    circuit_breaker: {enabled: true}\n"
    )
    cfg = load_config(write(tmp_path, text))
    retry = cfg.upstreams["crm"].retry
    assert retry is not None and retry.on == ["connect", 502, 503, 504, 429] and retry.attempts == 4
    assert cfg.upstreams["crm"].circuit_breaker.enabled is True  # true/false are still booleans
