"""The current schema for a read-side test's fresh database, copied from a template made once per process.

Running `schema.statements()` for every test cost ~1-1.7 s on an idle machine (7-9 s under the suite's load): 17
statements, of which five no-op `ALTER … ADD COLUMN IF NOT EXISTS` and the guards_1m backfill are the slowest. The
template database is built by `statements()` itself the first time a test asks; each test then gets a new database
whose tables and materialized views are created from the template's own `create_table_query` (ClickHouse's
canonical text of what `statements()` created: columns, codecs, TTLs, engines, settings), one statement each
(~0.2 s). tests/unit/record/test_schema.py checks that a copy and a database made by `statements()` are the same.
"""

from __future__ import annotations

import re
from typing import Any

from seamline.record.schema import statements
from support.chdb_path import unique_database

# SELECT giving the template's tables, plain tables before the materialized views that write into them.
TEMPLATE_TABLES = (
    "SELECT name, create_table_query FROM system.tables WHERE database = {db:String} ORDER BY engine = 'MaterializedView', name"
)

# One template per process (chdb opens one directory per process); built on first use.
_TEMPLATE_NAME = unique_database("schema_template")
_template: dict[str, Any] | None = None  # {"database": name, "tables": rows of TEMPLATE_TABLES}


def copy_statements(template: str, tables: list[dict[str, Any]], database: str) -> list[str]:
    """CREATE DATABASE + one CREATE per template table, the template's name replaced by `database`."""
    name = re.compile(rf"(?<![\w`]){re.escape(template)}(?=\.)|`{re.escape(template)}`(?=\.)")
    return [f"CREATE DATABASE IF NOT EXISTS `{database}`"] + [name.sub(f"`{database}`", t["create_table_query"]) for t in tables]


def template_statements() -> list[str]:
    """What builds the template: the real schema."""
    return statements(_TEMPLATE_NAME)


async def schema_copy(store: Any, database: str) -> None:
    """Create `database` holding the current schema on `store` (a seamline Store on the process's chdb path)."""
    global _template
    if _template is None:
        for stmt in template_statements():
            await store.command(stmt)
        _template = {"database": _TEMPLATE_NAME, "tables": await store.query(TEMPLATE_TABLES, {"db": _TEMPLATE_NAME})}
    for stmt in copy_statements(_template["database"], _template["tables"], database):
        await store.command(stmt)


def schema_copy_sync(client: Any, database: str) -> None:
    """`schema_copy` for a clickhouse-connect client (the dashboard tests use one directly)."""
    global _template
    if _template is None:
        for stmt in template_statements():
            client.command(stmt)
        rows = list(client.query(TEMPLATE_TABLES, parameters={"db": _TEMPLATE_NAME}).named_results())
        _template = {"database": _TEMPLATE_NAME, "tables": rows}
    for stmt in copy_statements(_template["database"], _template["tables"], database):
        client.command(stmt)
