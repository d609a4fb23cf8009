"""`seamline migrate` (apply the schema to the configured store) and `seamline schema` (print the DDL)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from seamline.config.loader import load_config_or_report
from seamline.record.schema import SCHEMA_VERSION, migrate, statements
from seamline.record.store import StoreError, open_store


def add_parsers(subparsers: Any) -> None:
    """Register `migrate` and `schema`; each sets `func(args) -> exit code`."""
    p = subparsers.add_parser(
        "migrate",
        help="create or upgrade Seamline's ClickHouse schema",
        description="Apply pending schema migrations to the configured store (idempotent). "
        "With chdb, stop the sidecar first: chdb locks its directory to one process.",
    )
    p.add_argument("--config", "-c", default=os.environ.get("SEAMLINE_CONFIG"), help="seamline.yaml (default: built-in defaults)")
    p.set_defaults(func=cmd_migrate)

    s = subparsers.add_parser("schema", help="print the ClickHouse DDL", description="Print the DDL of the current schema.")
    s.add_argument("--database", default="seamline", help="database name (default seamline)")
    s.add_argument("--cluster", default=None, metavar="NAME", help="ReplicatedMergeTree ON CLUSTER + Distributed variant")
    s.add_argument("--ttl-days", type=int, default=30, help="metadata retention (default 30)")
    s.add_argument("--body-ttl-days", type=int, default=7, help="headers/bodies retention (default 7)")
    s.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    """Print every statement, `;`-terminated, ready for clickhouse-client --multiquery."""
    if args.body_ttl_days > args.ttl_days:
        print("--body-ttl-days must be <= --ttl-days", file=sys.stderr)
        return 2
    ddl = statements(args.database, ttl_days=args.ttl_days, body_ttl_days=args.body_ttl_days, cluster=args.cluster)
    header = f"-- Seamline schema version {SCHEMA_VERSION}" + (f", cluster {args.cluster}" if args.cluster else "")
    try:
        print(header + "\n" + "".join(stmt + ";\n\n" for stmt in ddl), end="")
    except BrokenPipeError:  # `seamline schema | head`
        sys.stderr.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Open the configured store, migrate, report the version."""
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    try:
        version, where = asyncio.run(_migrate(cfg.storage))
    except StoreError as e:
        print(f"migrate: {e}", file=sys.stderr)
        return 1
    print(f"schema version {version} in place ({where})")
    return 0


async def _migrate(storage: Any) -> tuple[int, str]:
    store = open_store(storage.clickhouse_url, storage.database)
    try:
        await store.open()
        version = await migrate(
            store, store.database, ttl_days=storage.ttl_days, body_ttl_days=storage.body_ttl_days, cluster=storage.cluster
        )
    finally:
        await store.close()
    where = getattr(store, "endpoint", None) or getattr(store, "path", "")
    return version, f"{store.kind} {where}, database {store.database}"
