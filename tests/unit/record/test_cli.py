"""`seamline schema` and `seamline migrate`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.chdb_path import chdb_url, unique_database

from seamline.cli import main
from seamline.record.schema import SCHEMA_VERSION
from seamline.record.store import open_store


def test_schema_prints_every_statement(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--database", "obs"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE IF NOT EXISTS `obs`.`handoffs` (" in out
    assert "ON CLUSTER" not in out


def test_schema_cluster_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--cluster", "prod"]) == 0
    out = capsys.readouterr().out
    assert "`seamline`.`handoffs_local` ON CLUSTER `prod`" in out and "Distributed(`prod`" in out


def test_migrate_applies_the_schema_to_the_configured_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = unique_database("cli_migrate")
    cfg = tmp_path / "seamline.yaml"
    cfg.write_text(f"storage:\n  clickhouse_url: {chdb_url()}\n  database: {db}\n")
    assert main(["migrate", "--config", str(cfg)]) == 0
    assert main(["migrate", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.count(f"schema version {SCHEMA_VERSION} in place") == 2

    async def tables() -> set[str]:
        store = await open_store(chdb_url(), db)
        try:
            rows = await store.query("SELECT name FROM system.tables WHERE database = {d:String}", {"d": db})
            await store.command(f"DROP DATABASE `{db}`")
        finally:
            await store.close()
        return {r["name"] for r in rows}

    assert "handoffs" in asyncio.run(tables())


def test_migrate_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
