"""The shipped docker-compose.yml and deploy/seamline.compose.yaml are not open: every port published on 127.0.0.1,
tokens required from .env (whose example holds none), and the configs they mount load with `seamline check-config`.
No Docker engine here: compose's own interpolation rules are applied to the parsed YAML."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from seamline.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(text: str, env: dict[str, str]) -> str:
    """${VAR}, ${VAR:-default}, ${VAR:?error} as docker compose reads them (empty counts as unset with ':')."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name, "")
        if value:
            return value
        if op == "?":
            raise LookupError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(one, text)


def _services(env: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env))["services"]


def _filled() -> dict[str, str]:
    tokens = {name: secrets.token_urlsafe(32) for name in ("SEAMLINE_ADMIN_TOKEN", "SEAMLINE_CLIENT_TOKEN")}
    return {**_env_example(), **tokens}


def test_every_variable_compose_uses_is_in_env_example_and_it_holds_no_token():
    used = {m.group(1) for m in _VAR.finditer(COMPOSE.read_text())}
    example = _env_example()
    assert used - set(example) == set(), "add them to .env.example"
    assert example["SEAMLINE_ADMIN_TOKEN"] == "" and example["SEAMLINE_CLIENT_TOKEN"] == ""
    assert example["SEAMLINE_PUBLISH_ADDRESS"] == "127.0.0.1"
    assert ".env" in (ROOT / ".gitignore").read_text().split() and ".env" in (ROOT / ".dockerignore").read_text().split()


@pytest.mark.parametrize("missing", ["SEAMLINE_ADMIN_TOKEN", "SEAMLINE_CLIENT_TOKEN"])
def test_compose_refuses_to_start_without_each_token(missing):
    env = {**_filled(), missing: ""}
    with pytest.raises(LookupError, match=f"{missing}: set {missing} in .env, see .env.example"):
        _services(env)


def test_every_published_port_binds_127_0_0_1_by_default():
    services = _services(_filled())
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert {"seamline", "clickhouse", "grafana", "otel-collector"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            host_ip, host_port, container_port = str(port).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            assert host_port == container_port
    assert published["seamline"] == ["127.0.0.1:8080:8080", "127.0.0.1:9090:9090"]


def test_the_seamline_and_demo_services_get_the_tokens():
    env = _filled()
    services = _services(env)
    seamline = services["seamline"]["environment"]
    assert seamline["SEAMLINE_ADMIN_TOKEN"] == env["SEAMLINE_ADMIN_TOKEN"]
    assert yaml.safe_load(seamline["SEAMLINE_SERVER__CLIENT_TOKENS"]) == {env["SEAMLINE_CLIENT_TOKEN"]: "demo-orders"}
    demo = services["demo"]["environment"]
    assert demo["SEAMLINE_ADMIN_TOKEN"] == env["SEAMLINE_ADMIN_TOKEN"]
    assert demo["SEAMLINE_CLIENT_TOKEN"] == env["SEAMLINE_CLIENT_TOKEN"]


def _mounted_configs(services: dict[str, Any]) -> list[Path]:
    mounts = [v.split(":")[0] for v in services["seamline"]["volumes"] if v.split(":")[1] == "/etc/seamline/seamline.yaml"]
    assert mounts == ["./deploy/seamline.compose.yaml"]
    return [ROOT / m for m in mounts]


def test_the_mounted_config_passes_check_config_with_the_compose_environment(monkeypatch, capsys):
    env = _filled()
    services = _services(env)
    for key, value in services["seamline"]["environment"].items():
        if key.startswith("SEAMLINE_"):
            monkeypatch.setenv(key, str(value))
    for path in _mounted_configs(services):
        assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
        assert "OK" in capsys.readouterr().out

    from seamline.config.loader import load_config

    cfg = load_config(ROOT / "deploy/seamline.compose.yaml")
    assert cfg.admin.secret() == env["SEAMLINE_ADMIN_TOKEN"]
    assert cfg.server.client_tokens == {env["SEAMLINE_CLIENT_TOKEN"]: "demo-orders"}


def test_the_mounted_config_refuses_to_start_without_the_admin_token(monkeypatch, capsys):
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN_FILE", raising=False)
    assert main(["check-config", str(ROOT / "deploy/seamline.compose.yaml")]) == 2
    assert "server.admin_host: '0.0.0.0' is not a loopback address" in capsys.readouterr().err
