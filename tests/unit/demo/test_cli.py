"""`seamline demo` modes (seamline.demo.cli): argument parsing, `--mocks-only` on fixed ports, and the
docker-compose demo commands being ones this CLI accepts. Waiting for an external sidecar: test_driver.py."""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console
from support.servers import free_ports

from seamline.cli import build_parser
from seamline.demo.cli import check_args, cmd_demo, demo_mode, serve_mocks
from seamline.demo.mocks import SERVICES

ROOT = Path(__file__).resolve().parents[3]


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


def test_no_new_flag_keeps_the_embedded_demo_and_its_defaults():
    args = _parse()
    assert demo_mode(args) == "embedded" and check_args(args) is None
    assert (args.seed, args.failure_rate, args.keep_serving, args.mock_ports) == (7, 0.2, False, None)
    args = _parse("--runs", "5", "--port", "0", "--admin-port", "0", "--keep-serving", "--no-progress", "--concurrency", "2")
    assert demo_mode(args) == "embedded" and check_args(args) is None


def test_mocks_only_takes_host_ports_seed_and_rate():
    args = _parse(
        "--mocks-only", "--mock-host", "0.0.0.0", "--mock-ports", "9101,9102,9103,9104", "--seed", "3", "--failure-rate", "0.5"
    )
    assert demo_mode(args) == "mocks-only" and check_args(args) is None
    assert args.mock_host == "0.0.0.0" and args.mock_ports == (9101, 9102, 9103, 9104)
    assert (args.seed, args.failure_rate) == (3, 0.5)


def test_proxy_url_takes_admin_url_wait_and_run_options():
    args = _parse(
        "--proxy-url",
        "http://seamline:8080/",
        "--admin-url",
        "http://seamline:9090",
        "--runs",
        "200",
        "--seed",
        "3",
        "--failure-rate",
        "0.1",
        "--wait",
        "60",
        "--no-progress",
    )
    assert demo_mode(args) == "proxy" and check_args(args) is None
    assert args.proxy_url == "http://seamline:8080" and args.admin_url == "http://seamline:9090"
    assert (args.runs, args.wait) == (200, 60.0)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (("--proxy-url", "http://s:8080", "--keep-serving"), "--keep-serving"),
        (("--proxy-url", "http://s:8080", "--mock-ports", "1,2,3,4"), "--mock-ports"),
        (("--proxy-url", "http://s:8080", "--admin-port", "9"), "--admin-port"),
        (("--mocks-only", "--runs", "5"), "--runs"),
        (("--mocks-only", "--admin-url", "http://s:9090"), "--admin-url"),
        (
            (
                "--admin-url",
                "http://s:9090",
            ),
            "--admin-url",
        ),
        (
            (
                "--wait",
                "5",
            ),
            "--wait",
        ),
    ],
)
def test_a_flag_from_another_mode_is_refused_not_ignored(argv, flag, capsys):
    args = _parse(*argv)
    problem = check_args(args)
    assert problem is not None and flag in problem
    assert cmd_demo(args) == 2  # refused before anything starts
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--failure-rate", "1.5"), "--failure-rate"),
        (("--proxy-url", "http://s:8080", "--runs", "0"), "--runs"),
        (("--proxy-url", "http://s:8080", "--wait", "-1"), "--wait"),
    ],
)
def test_out_of_range_values_are_refused(argv, message):
    assert message in (check_args(_parse(*argv)) or "")


@pytest.mark.parametrize(
    "argv",
    [
        ("--mocks-only", "--proxy-url", "http://s:8080"),
        ("--mock-ports", "9101,9102,9103"),
        ("--mock-ports", "9101,9101,9103,9104"),
        ("--mock-ports", "0,9102,9103,9104"),
        ("--mock-ports", "a,b,c,d"),
        ("--proxy-url", "seamline:8080"),
        ("--proxy-url", "ftp://seamline"),
    ],
)
def test_malformed_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2
    capsys.readouterr()


async def test_mocks_only_serves_each_api_on_its_port_until_stopped():
    ports = free_ports(len(SERVICES))
    out, stop, ready = io.StringIO(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve_mocks(
            seed=3,
            failure_rate=0.0,
            host="127.0.0.1",
            ports=ports,
            stop_event=stop,
            ready=ready,
            console=Console(file=out, width=200),
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as c:
            for port in ports:
                assert (await c.get(f"http://127.0.0.1:{port}/health")).json() == {"status": "ok"}
            # crm, billing, provisioning, email in that order
            r = await c.post(f"http://127.0.0.1:{ports[0]}/v1/contacts", json={"email": "a@example.com", "name": "A"})
            assert r.status_code == 201 and r.json()["id"].startswith("ct_")
            r = await c.post(f"http://127.0.0.1:{ports[3]}/v1/messages", json={"to": "a@example.com", "template": "welcome"})
            assert r.status_code == 202
    finally:
        stop.set()
    fleet = await asyncio.wait_for(task, 10)
    assert fleet.urls == {s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, ports, strict=True)}
    text = out.getvalue()
    assert all(f"http://127.0.0.1:{p}" in text for p in ports) and "--seed 3 --failure-rate 0" in text
    for port in ports:  # stopped: nothing listens any more
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_mocks_only_on_a_busy_port_fails_and_leaves_nothing_listening():
    ports = free_ports(len(SERVICES))
    busy = socket.socket()
    busy.bind(("127.0.0.1", ports[2]))
    busy.listen()
    try:
        with pytest.raises(OSError):
            await serve_mocks(ports=ports, stop_event=asyncio.Event(), console=Console(file=io.StringIO()))
    finally:
        busy.close()
    for port in ports[:2]:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


# --- the docker-compose demo profile runs commands this CLI accepts, wired to the compose sidecar config ---


def _compose_services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _compose_args(service: dict[str, Any]) -> argparse.Namespace:
    command = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", part) for part in service["command"]]  # ${VAR:-default} → default
    assert command[:2] == ["seamline", "demo"]
    args = build_parser().parse_args(command[1:])
    assert check_args(args) is None, command
    return args


def test_compose_demo_mocks_and_driver_use_real_flags_and_agree(monkeypatch):
    from seamline.config.loader import load_config

    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", "compose-test-admin-token")  # compose sets it from .env (tests/test_compose.py)

    services = _compose_services()
    mocks, driver = services["demo-mocks"], services["demo"]
    assert mocks["profiles"] == driver["profiles"] == ["demo"]
    m, d = _compose_args(mocks), _compose_args(driver)
    assert demo_mode(m) == "mocks-only" and m.mock_host == "0.0.0.0"
    assert demo_mode(d) == "proxy" and d.proxy_url == "http://seamline:8080" and d.admin_url == "http://seamline:9090"
    assert (m.seed, m.failure_rate) == (d.seed, d.failure_rate)  # the mocks decide the faults
    assert mocks["command"][mocks["command"].index("--seed") + 1] == driver["command"][driver["command"].index("--seed") + 1]
    assert driver["depends_on"]["seamline"] == {"condition": "service_healthy"}
    assert driver["depends_on"]["demo-mocks"] == {"condition": "service_healthy"}
    for svc in (mocks, services["seamline"]):
        test = svc["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"] and "urllib.request" in test[-1]  # the image has no curl
    assert ":9090/readyz" in services["seamline"]["healthcheck"]["test"][-1]
    assert f":{m.mock_ports[0]}/health" in mocks["healthcheck"]["test"][-1]

    cfg = load_config(ROOT / "deploy/seamline.compose.yaml")
    assert {name: up.base_url for name, up in cfg.upstreams.items()} == {
        s: f"http://demo-mocks:{p}" for s, p in zip(SERVICES, m.mock_ports, strict=True)
    }
    assert all(up.allow_private for up in cfg.upstreams.values())
    assert cfg.server.port == 8080 and cfg.server.admin_port == 9090 and cfg.server.admin_host == "0.0.0.0"
    assert "TODO" not in (ROOT / "docker-compose.yml").read_text() + (ROOT / "deploy/seamline.compose.yaml").read_text()
