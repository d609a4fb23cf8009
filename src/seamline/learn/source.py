"""Where `seamline contracts` reads recorded calls: the sidecar's admin API, or a ClickHouse server directly.

An embedded (chdb) store is locked by the sidecar's process, so it is read through the admin API (`GET /api/calls`,
with the admin token as `seamline runs` sends it). A ClickHouse server is read directly with the config's
`storage.clickhouse_url`, through the same query (`seamline.read.queries.list_calls`). Reading shows a progress bar
on stderr when that is a terminal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seamline.config.models import Storage
from seamline.read import queries
from seamline.read.terminal import AdminTarget, fetch

PAGE_SIZE = 200


@dataclass(frozen=True)
class CallFilter:
    """Which calls to read: by upstream or handoff, since an instant (resolved once, so pages agree on it)."""

    upstream: str | None = None
    handoff: str | None = None
    since: datetime | None = None
    max_calls: int = 20_000

    def describe(self) -> str:
        what = f"handoff {self.handoff}" if self.handoff else f"upstream {self.upstream}" if self.upstream else "all calls"
        since = self.since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if self.since else "ever"
        return f"{what}, since {since}"


class CallSource(Protocol):
    def page(self, flt: CallFilter, after: str | None, limit: int) -> dict[str, Any]: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class AdminSource:
    """The running sidecar's admin API."""

    def __init__(self, target: AdminTarget) -> None:
        self.target = target

    def describe(self) -> str:
        return f"the admin API at {self.target.base}"

    def page(self, flt: CallFilter, after: str | None, limit: int) -> dict[str, Any]:
        params = {"limit": str(limit), "since": flt.since.isoformat().replace("+00:00", "Z") if flt.since else "all"}
        if flt.upstream:
            params["upstream"] = flt.upstream
        if flt.handoff:
            params["handoff"] = flt.handoff
        if after:
            params["after"] = after
        return fetch(self.target.base, "/api/calls", params, token=self.target.token, timeout=60.0)

    def close(self) -> None:
        pass


class StoreSource:
    """A ClickHouse server, read directly (its own event loop: the CLI is synchronous)."""

    def __init__(self, storage: Storage) -> None:
        from seamline.record.store import open_store

        self._loop = asyncio.new_event_loop()
        self._store = open_store(storage.clickhouse_url, storage.database)
        self._where = f"{getattr(self._store, 'endpoint', '') or 'ClickHouse'}, database {self._store.database}"

    def describe(self) -> str:
        return self._where

    def page(self, flt: CallFilter, after: str | None, limit: int) -> dict[str, Any]:
        coro = queries.list_calls(
            self._store,
            upstream=flt.upstream,
            handoff=flt.handoff,
            since=flt.since,
            after=queries.parse_cursor(after) if after else None,
            limit=limit,
        )
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._store.close())
        finally:
            self._loop.close()


def read_calls(source: CallSource, flt: CallFilter, *, console: Console | None = None) -> Iterator[dict[str, Any]]:
    """Every matching call (newest first, at most `flt.max_calls`), a page at a time, with a progress bar."""
    err = console or Console(stderr=True)
    with Progress(
        TextColumn("reading calls"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("calls", total=None)
        after: str | None = None
        read = 0
        while read < flt.max_calls:
            page = source.page(flt, after, min(PAGE_SIZE, flt.max_calls - read))
            if page.get("total") is not None:
                progress.update(task, total=min(int(page["total"]), flt.max_calls))
            calls = page.get("calls") or []
            yield from calls
            read += len(calls)
            progress.advance(task, len(calls))
            after = page.get("next")
            if not after or not calls:
                return
