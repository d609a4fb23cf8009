"""The committed grafana/ files are what the code generates; they round-trip through the SDK and hang together."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import alerting as am
from grafana_foundation_sdk.models.dashboard import Dashboard

from seamline.dashboards import alerts, generate
from seamline.dashboards.generate import DASHBOARDS, documents
from seamline.dashboards.provisioning import DASHBOARDS_PATH
from seamline.dashboards.query import DATASOURCE_UID, PLUGIN_ID, ClickHouseQuery, register

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_committed_files_match_the_generator(tmp_path: Path) -> None:
    written = {p.relative_to(tmp_path).as_posix() for p in generate(tmp_path)}
    committed = {p.relative_to(GRAFANA).as_posix() for p in GRAFANA.rglob("*") if p.is_file()}
    assert written == committed, "grafana/ has stale or missing files: run `python -m seamline.dashboards`"
    stale = [rel for rel in sorted(written) if (tmp_path / rel).read_bytes() != (GRAFANA / rel).read_bytes()]
    assert not stale, f"regenerate with `python -m seamline.dashboards`: {stale}"


def _dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((GRAFANA / "dashboards" / name).read_text()) for name in DASHBOARDS}


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_dashboard_round_trips_through_sdk_models(name: str) -> None:
    register_default_plugins()
    register()
    raw = json.loads((GRAFANA / "dashboards" / name).read_text())
    model = Dashboard.from_json(raw)
    again = json.loads(JSONEncoder(sort_keys=True).encode(model))
    assert again == raw
    targets = [t for p in model.panels or [] for t in (getattr(p, "targets", None) or [])]
    assert targets and all(isinstance(t, ClickHouseQuery) for t in targets)


def test_rule_groups_round_trip_through_sdk_models() -> None:
    register_default_plugins()
    register()
    for group in alerts.rule_groups():
        raw = json.loads(JSONEncoder(sort_keys=True).encode(group))
        again = json.loads(JSONEncoder(sort_keys=True).encode(am.RuleGroup.from_json(raw)))
        assert again == raw
    assert (
        alerts.provisioning_rules([am.RuleGroup.from_json(json.loads(JSONEncoder().encode(g))) for g in alerts.rule_groups()])
        == alerts.provisioning_rules()
    )


def test_dashboards_are_consistent() -> None:
    boards = _dashboards()
    uids = [d["uid"] for d in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, d in boards.items():
        ids = [p["id"] for p in d["panels"] if p["type"] != "row"]
        assert len(ids) == len(set(ids)), name
        names = {v["name"] for v in d["templating"]["list"]}
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                assert v["datasource"] == {"type": PLUGIN_ID, "uid": DATASOURCE_UID}
        for p in d["panels"]:
            if p["type"] == "row":
                continue
            assert p["datasource"] == {"type": PLUGIN_ID, "uid": DATASOURCE_UID}, (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == DATASOURCE_UID and t["editorType"] == "sql"
                used = set(re.findall(r"\$\{?(?!__)(\w+)", t["rawSql"]))
                assert used <= names, f"{name} / {p['title']} uses undefined variables {used - names}"
            if p["type"] == "traces":
                assert all(t["format"] == 3 for t in p["targets"])
            # Links point at dashboards that exist, with variables they declare.
            for o in p.get("fieldConfig", {}).get("overrides", []):
                for prop in o["properties"]:
                    if prop["id"] == "links":
                        for link in prop["value"]:
                            _check_link(link["url"], boards)


def _check_link(url: str, boards: dict[str, dict[str, Any]]) -> None:
    m = re.match(r"^/d/([\w-]+)/[\w-]+\?(.*)$", url)
    assert m, url
    target = next((d for d in boards.values() if d["uid"] == m.group(1)), None)
    assert target is not None, f"link to unknown dashboard {url}"
    declared = {v["name"] for v in target["templating"]["list"]}
    for var in re.findall(r"var-(\w+)=", m.group(2)):
        assert var in declared, f"{url}: {m.group(1)} has no variable {var}"


def test_alert_links_and_dashboard_uids_exist() -> None:
    boards = _dashboards()
    uids = {d["uid"] for d in boards.values()}
    rules = _load_yaml(GRAFANA / "provisioning/alerting/rules.yaml")
    for g in rules["groups"]:
        assert g["folder"] == "Seamline" and g["interval"] == "1m" and g["orgId"] == 1
        for r in g["rules"]:
            assert r["annotations"]["__dashboardUid__"] in uids
            _check_link(re.sub(r"\{\{[^}]*\}\}", "x", r["annotations"]["run_view"]), boards)
            assert r["data"][0]["datasourceUid"] == DATASOURCE_UID
            assert all(q["datasourceUid"] == "__expr__" for q in r["data"][1:])


def test_provisioning_structure() -> None:
    ds = _load_yaml(GRAFANA / "provisioning/datasources/clickhouse.yaml")
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == PLUGIN_ID
    jd = source["jsonData"]
    assert jd["protocol"] in ("native", "http") and jd["defaultDatabase"] == "seamline" and "database" not in jd
    assert jd["username"].startswith("$") and source["secureJsonData"]["password"].startswith("$")
    assert jd["traces"]["defaultTable"] == "otel_traces" and jd["traces"]["durationUnit"] == "nanoseconds"

    prov = _load_yaml(GRAFANA / "provisioning/dashboards/provider.yaml")
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == DASHBOARDS_PATH

    cps = _load_yaml(GRAFANA / "provisioning/alerting/contact-points.yaml")
    receivers = {cp["name"] for cp in cps["contactPoints"]}
    for cp in cps["contactPoints"]:
        for r in cp["receivers"]:
            assert r["settings"]["url"].startswith("$"), "destinations come from the environment"
    pol = _load_yaml(GRAFANA / "provisioning/alerting/policies.yaml")
    (tree,) = pol["policies"]
    assert tree["receiver"] in receivers
    routed = {tuple(m) for r in tree["routes"] for m in r["object_matchers"]}
    assert routed == {("severity", "=", "critical"), ("severity", "=", "warning")}
    assert {r["receiver"] for r in tree["routes"]} <= receivers
    severities = {
        r["labels"]["severity"] for g in _load_yaml(GRAFANA / "provisioning/alerting/rules.yaml")["groups"] for r in g["rules"]
    }
    assert severities == {"critical", "warning"}


def _compose() -> dict[str, Any]:
    return _load_yaml(ROOT / "docker-compose.yml")


def test_compose_stack_structure_and_referenced_files_exist() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"clickhouse", "otel-collector", "seamline", "grafana", "demo"} <= set(services)
    for name in ("clickhouse", "otel-collector", "grafana"):
        image = services[name]["image"]
        assert re.match(r"^[\w./-]+:\d+(\.\d+)+$", image), f"{name}: pin an exact version, got {image}"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    major, minor = map(int, services["grafana"]["image"].split(":")[1].split(".")[:2])
    assert (major, minor) >= (11, 6)
    assert re.fullmatch(
        r"grafana-clickhouse-datasource@4\.\d+\.\d+", services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    )
    assert services["demo"]["profiles"] == ["demo"]
    assert services["seamline"]["build"] == "." and (ROOT / "Dockerfile").is_file()
    for name in ("clickhouse", "seamline", "grafana"):
        assert "healthcheck" in services[name], name
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src, _dst = vol.split(":")[:2]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"
            else:
                assert src in declared_volumes, f"{name}: undeclared volume {src}"
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert grafana_mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert grafana_mounts["./grafana/dashboards"] == DASHBOARDS_PATH
    # Every $VAR the provisioning files expand is set on the Grafana container.
    env = set(services["grafana"]["environment"])
    for f in (GRAFANA / "provisioning").rglob("*.yaml"):
        text = f.read_text()
        if f.name == "rules.yaml":
            continue  # rule models and annotations are not expanded by Grafana
        for var in re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text):
            assert var in env, f"{f.name} needs ${var} on the grafana service"
    seamline_env = services["seamline"]["environment"]
    assert seamline_env["SEAMLINE_CLICKHOUSE_URL"].startswith("http://seamline_writer:")
    assert seamline_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and "USER seamline" in dockerfile and "EXPOSE 8080 9090" in dockerfile
    assert 'CMD ["seamline", "serve", "--config", "/etc/seamline/seamline.yaml"]' in dockerfile


def test_clickhouse_users_match_compose_and_datasource() -> None:
    root = ET.parse(ROOT / "clickhouse/users.d/seamline-users.xml").getroot()
    users = {u.tag: u for u in root.find("users")}
    assert set(users) == {"seamline_writer", "otel_writer", "grafana_reader"}
    ch_env = set(_compose()["services"]["clickhouse"]["environment"])
    for user in users.values():
        assert user.find("password").get("from_env") in ch_env
    reader = users["grafana_reader"]
    assert root.find(f"profiles/{reader.find('profile').text}/readonly").text in ("1", "2")
    assert reader.find("grants/query").text == "GRANT SELECT, SHOW ON seamline.*"
    compose = _compose()["services"]
    assert compose["grafana"]["environment"]["SEAMLINE_CLICKHOUSE_READER_USER"] == "grafana_reader"
    assert compose["otel-collector"]["environment"]["OTEL_CLICKHOUSE_USER"] == "otel_writer"


def test_collector_config_structure() -> None:
    cfg = _load_yaml(ROOT / "collector_config/otel-collector.yaml")
    assert {"health_check", "file_storage"} <= set(cfg["extensions"]) and set(cfg["service"]["extensions"]) >= {
        "health_check",
        "file_storage",
    }
    assert {"grpc", "http"} <= set(cfg["receivers"]["otlp"]["protocols"])
    ch = cfg["exporters"]["clickhouse"]
    assert ch["traces_table_name"] == "otel_traces" and ch["create_schema"] is False and ch["database"] == "seamline"
    assert ch["sending_queue"]["storage"] == "file_storage" and ch["retry_on_failure"]["enabled"] is True
    pipe = cfg["service"]["pipelines"]["traces"]
    assert pipe["receivers"] == ["otlp"] and "batch" in pipe["processors"] and pipe["exporters"] == ["clickhouse"]
    assert all(p in cfg["processors"] for p in pipe["processors"])
    mounts = dict(v.split(":")[:2] for v in _compose()["services"]["otel-collector"]["volumes"])
    assert mounts["otelcol-queue"] == cfg["extensions"]["file_storage"]["directory"]


def test_otel_traces_table_comes_from_the_schema() -> None:
    from seamline.record.schema import statements

    assert any("`otel_traces`" in s and "TraceId" in s for s in statements("seamline"))


def test_compose_seamline_config_is_valid_and_matches_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    from seamline.config.loader import load_config

    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", "compose-test-admin-token")  # compose sets it from .env (tests/test_compose.py)
    from seamline.demo.config import HANDOFFS

    cfg = load_config(ROOT / "deploy/seamline.compose.yaml")
    assert set(cfg.upstreams) == {"crm", "billing", "provisioning", "email"}
    assert set(cfg.handoffs) == set(HANDOFFS)
    assert cfg.server.host == "0.0.0.0" and cfg.server.port == 8080 and cfg.server.admin_port == 9090
    assert all(u.base_url.startswith("http://demo-mocks:") for u in cfg.upstreams.values())
    # The guards as `seamline demo` sets them (seamline.demo.config.demo_config): loops blocked, sidecar retries off.
    assert cfg.loops.block and not any(u.retry.enabled for u in cfg.upstreams.values())


def test_documents_are_deterministic() -> None:
    assert documents() == documents()
