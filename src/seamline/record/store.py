"""One ClickHouse client for both stores: chdb embedded (sync client on one owned thread) or a server (async client).

`open_store("chdb:///path", db)` or `open_store("http(s)://user:pass@host:8123/db", db)`; every method is a
coroutine and every failure is a `StoreError` (message without credentials, cause chained).
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import zstandard

log = logging.getLogger("seamline.record.store")

T = TypeVar("T")

# JSON payloads above this size are zstd-compressed before they go over HTTP.
_COMPRESS_OVER = 64 * 1024


class StoreError(Exception):
    """A storage operation failed (connect, query, insert); the cause is chained."""


class Store(ABC):
    """Async facade over clickhouse-connect; `database` is the default for unqualified table names.

    A store connects lazily on its first call; `await store` (or `await open_store(...)`) connects eagerly.
    """

    kind: str
    database: str
    _opened: bool = False
    _open_lock: asyncio.Lock | None = None

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self._open()
                self._opened = True

    @abstractmethod
    async def _open(self) -> None:
        """Connect, create the database and make it the default."""

    async def open(self) -> Store:
        """Connect now (idempotent) and return self."""
        await self._ensure_open()
        return self

    def __await__(self) -> Generator[Any, None, Store]:
        return self.open().__await__()

    @abstractmethod
    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT with server-side `{name:Type}` parameters; rows as dicts."""

    @abstractmethod
    async def command(self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, INSERT … SELECT)."""

    @abstractmethod
    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict[str, Any] | None = None
    ) -> None:
        """Insert row-ordered values (Native format)."""

    @abstractmethod
    async def insert_json(self, table: str, payload: bytes, settings: dict[str, Any] | None = None) -> None:
        """Insert a JSONEachRow payload (a JSON array or lines of objects) parsed by the engine."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers `SELECT 1`."""

    @abstractmethod
    async def close(self) -> None:
        """Release the client (and its thread); idempotent."""


def _wrap(op: str, e: BaseException) -> StoreError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return StoreError(f"{op} failed: {type(e).__name__}: {msg[:500]}")


class ChdbStore(Store):
    """chdb in-process: the sync client lives on one dedicated thread; all calls are marshalled there."""

    kind = "chdb"

    def __init__(self, path: str, database: str) -> None:
        self.path = path
        self.database = database
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seamline-chdb")
        self._client: Any = None
        self._closed = False

    async def _run(self, op: str, fn: Callable[[], T], *, opening: bool = False) -> T:
        if self._closed:
            raise StoreError(f"{op} failed: store is closed")
        if not opening:
            await self._ensure_open()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except StoreError:
            raise
        except Exception as e:
            raise _wrap(op, e) from e

    async def _open(self) -> None:
        """Create the directory, connect, create the database and make it the default."""

        def _open() -> None:
            import clickhouse_connect

            Path(self.path).mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{self.path}")
            client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            client.database = self.database
            self._client = client

        await self._run("open", _open, opening=True)
        log.info("store opened", extra={"store": "chdb", "path": self.path, "database": self.database})

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await self._run("query", lambda: list(self._client.query(sql, parameters=parameters).named_results()))

    async def command(self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> None:
        await self._run("command", lambda: self._client.command(sql, parameters=parameters, settings=settings))

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict[str, Any] | None = None
    ) -> None:
        await self._run("insert", lambda: self._client.insert(table, rows, column_names=list(column_names), settings=settings))

    async def insert_json(self, table: str, payload: bytes, settings: dict[str, Any] | None = None) -> None:
        await self._run("insert", lambda: self._client.raw_insert(table, None, payload, settings=settings, fmt="JSONEachRow"))

    async def ping(self) -> bool:
        try:
            return bool(await self._run("ping", lambda: self._client.ping()))
        except StoreError:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        client, self._client = self._client, None
        if client is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._executor, client.close)
            except Exception as e:  # closing is best effort; the thread is joined below
                log.warning("store close failed", extra={"store": "chdb", "error": type(e).__name__})
        self._closed = True
        # Join the worker thread without blocking the event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)


class HttpStore(Store):
    """A ClickHouse server over HTTP(S) with clickhouse-connect's async client."""

    kind = "http"

    def __init__(self, url: str, database: str) -> None:
        parts = urlsplit(url)
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (8443 if parts.scheme == "https" else 8123)
        self._user = unquote(parts.username) if parts.username else "default"
        self._password = unquote(parts.password) if parts.password else ""
        db = parts.path.strip("/")
        self.database = unquote(db) if db else database
        self.endpoint = f"{parts.scheme}://{self._host}:{self._port}"  # safe to log: no credentials
        self._client: Any = None
        self._closed = False

    async def _open(self) -> None:
        """Connect, create the database and make it the default."""
        import clickhouse_connect

        try:
            self._client = await clickhouse_connect.get_async_client(
                host=self._host,
                port=self._port,
                username=self._user,
                password=self._password,
                secure=self._scheme == "https",
                compress="lz4",
                connect_timeout=5,
                send_receive_timeout=30,
            )
            await self._client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            self._client.database = self.database
        except Exception as e:
            if self._client is not None:
                await self._client.close()
                self._client = None
            raise _wrap(f"open {self.endpoint}", e) from e
        log.info("store opened", extra={"store": "http", "endpoint": self.endpoint, "database": self.database})

    async def _live(self, op: str) -> Any:
        if self._closed:
            raise StoreError(f"{op} failed: store is closed")
        await self._ensure_open()
        return self._client

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        client = await self._live("query")
        try:
            result = await client.query(sql, parameters=parameters)
            return list(result.named_results())
        except Exception as e:
            raise _wrap("query", e) from e

    async def command(self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> None:
        client = await self._live("command")
        try:
            await client.command(sql, parameters=parameters, settings=settings)
        except Exception as e:
            raise _wrap("command", e) from e

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict[str, Any] | None = None
    ) -> None:
        client = await self._live("insert")
        try:
            await client.insert(table, rows, column_names=list(column_names), settings=settings)
        except Exception as e:
            raise _wrap("insert", e) from e

    async def insert_json(self, table: str, payload: bytes, settings: dict[str, Any] | None = None) -> None:
        client = await self._live("insert")
        compression = None
        body: bytes = payload
        if len(payload) > _COMPRESS_OVER:
            # zstandard releases the GIL while compressing.
            body = await asyncio.to_thread(zstandard.ZstdCompressor(level=1).compress, payload)
            compression = "zstd"
        try:
            await client.raw_insert(table, None, body, settings=settings, fmt="JSONEachRow", compression=compression)
        except Exception as e:
            raise _wrap("insert", e) from e

    async def ping(self) -> bool:
        if self._closed:
            return False
        try:
            await self._ensure_open()
            return bool(await self._client.ping())
        except Exception:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def chdb_path_from_url(url: str) -> str:
    """`chdb:///abs/path` -> /abs/path; `chdb:///./rel` or `chdb://./rel` -> absolute path under the CWD."""
    rest = url.split("://", 1)[1]
    if rest.startswith("/./") or rest.startswith("/../"):
        rest = rest[1:]
    if not rest:
        raise StoreError("chdb URL needs a path, e.g. chdb:///./.seamline/data")
    return os.path.realpath(rest)


def open_store(url: str, database: str) -> Store:
    """The store named by `url` (chdb:///path or http(s)://user:pass@host:port/db); `await` it to connect now."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "chdb":
        return ChdbStore(chdb_path_from_url(url), database)
    if scheme in ("http", "https"):
        return HttpStore(url, database)
    raise StoreError("storage URL must start with chdb:// or http(s)://")
