"""The README stays true: its set-up commands are what CI runs, and every command in it is run here."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from seamline.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.M | re.S)


def commands() -> list[str]:
    """Every shell command line in the README's bash blocks (comments stripped)."""
    out = []
    for block in code_blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_first_screen_has_exactly_the_two_setup_commands_ci_runs():
    first = code_blocks("bash")[0].strip().splitlines()
    assert len(first) == 2
    assert "pip install" in first[0] and "seamline demo" in first[0]
    assert "pytest" in first[1]
    extracted = subprocess.run(
        ["bash", "-c", "awk '/^```bash$/{f=1; next} /^```$/{if (f) exit} f && !/^#/ && NF' README.md | head -n 2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert extracted == first
    assert README.index(first[0]) < 1500  # on the first screen


def test_every_seamline_command_parses():
    parser = build_parser()
    seen = 0
    for cmd in commands():
        for part in cmd.split("&&"):
            argv = shlex.split(part.strip())
            if argv and argv[0].endswith("seamline"):
                parser.parse_args(argv[1:])
                seen += 1
    assert seen >= 6


def test_python_snippets_compile():
    for block in code_blocks("python"):
        compile("async def _snippet():\n" + "\n".join("    " + ln for ln in block.splitlines()), "README", "exec")


def test_bench_and_generator_commands_exist():
    for cmd in commands():
        argv = shlex.split(cmd)
        if argv[0].endswith("python") and argv[1].startswith("bench/"):
            assert (ROOT / argv[1]).exists(), argv[1]
            r = subprocess.run([sys.executable, argv[1], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        if argv[0].endswith("python") and argv[1:3] == ["-m", "seamline.dashboards"]:
            pass  # run by tests/dashboards (regenerates into a temp dir and diffs)


def run_cli(cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(cmd)
    assert argv[0].endswith("seamline")
    return subprocess.run(
        [sys.executable, "-m", "seamline", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_check_config_command_runs():
    (cmd,) = [c for c in commands() if "check-config" in c]
    r = run_cli(cmd)
    assert r.returncode == 0, r.stderr
    assert "billing.charge" in r.stdout


def test_schema_and_cluster_commands_run():
    r = run_cli("seamline schema --cluster NAME")
    assert r.returncode == 0 and "ON CLUSTER `NAME`" in r.stdout


@pytest.mark.slow
def test_serve_command_starts_and_stops_on_sigterm(tmp_path):
    (cmd,) = [c for c in commands() if " serve " in c]
    argv = shlex.split(cmd)
    env = {
        **os.environ,
        "SEAMLINE_SERVER__PORT": "0",
        "SEAMLINE_SERVER__ADMIN_PORT": "0",
        "SEAMLINE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'data'}",
        "SEAMLINE_STORAGE__SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc = subprocess.Popen([sys.executable, "-m", "seamline", *argv[1:]], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the start-up line names both listeners
            if "proxy http://" in line:
                break
        else:
            pytest.fail("serve exited before listening")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_trace_and_runs_commands_run_against_a_sidecar(upstream, make_sidecar, tmp_path):
    from conftest import proxy_config
    from support.chdb_path import chdb_url, unique_database

    storage = {
        "enabled": True,
        "clickhouse_url": chdb_url(),
        "database": unique_database("readme"),
        "spool_dir": str(tmp_path / "s"),
    }
    sc = await make_sidecar(proxy_config({"billing": upstream.url}, storage=storage))
    trace_cmds = [c for c in commands() if re.match(r"^\S*seamline (trace|runs) ", c)]
    run_ids = {shlex.split(c)[2] for c in trace_cmds if " trace " in c}
    async with aiohttp.ClientSession() as s:
        for rid in run_ids:
            await (await s.get(sc.proxy_url + "/billing/missing", headers={"X-Run-ID": rid})).read()
            await (await s.get(sc.proxy_url + "/nowhere/x", headers={"X-Run-ID": rid})).read()
    await sc.recorder.flush(30)
    for cmd in trace_cmds:
        r = await asyncio.to_thread(run_cli, cmd, SEAMLINE_ADMIN_URL=sc.admin_url)
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout.strip()


def test_openapi_example_is_the_shipped_config_and_checks():
    section = README[README.index("## Contracts from OpenAPI") :]
    shown = re.search(r"^```yaml\n(.*?)^```", section, re.M | re.S)
    assert shown is not None
    assert shown.group(1) == (ROOT / "examples" / "openapi" / "seamline.yaml").read_text()
    r = run_cli("seamline check-config examples/openapi/seamline.yaml")
    assert r.returncode == 0, r.stderr
    output = re.search(r"^```text\n(.*?)^```", section, re.M | re.S)
    assert output is not None
    for line in output.group(1).splitlines():
        if not line.endswith("…"):  # a line cut short in the README
            assert line in r.stdout
