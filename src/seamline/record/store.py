"""One ClickHouse client for both stores: chdb embedded (sync client in one owned process or thread) or a server (async client).

`open_store("chdb:///path", db)` or `open_store("http(s)://user:pass@host:8123/db", db)`; every method is a
coroutine and every failure is a `StoreError` (message without credentials, cause chained).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

import zstandard

from seamline.record.engine import Engine, EngineError, EngineProcess, describe_error

log = logging.getLogger("seamline.record.store")

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
    return StoreError(describe_error(op, e))


class ChdbStore(Store):
    """chdb embedded: its client in one child process the store owns (`engine="process"`) or on one owned thread.

    The process keeps chdb's parsing, compression and merge threads off the proxy's event loop and GIL (and, with
    `cpus`, off its core); if it dies, the failing call raises StoreError and the next call starts a new one.
    See `seamline.record.engine`.
    """

    kind = "chdb"

    def __init__(
        self,
        path: str,
        database: str,
        *,
        engine: str = "thread",
        cpus: Sequence[int] | None = None,
        socket_path: str | None = None,
    ) -> None:
        if engine not in ("thread", "process"):
            raise StoreError(f"embedded engine must be thread or process, not {engine!r}")
        self.path = path
        self.database = database
        # `socket_path`: the engine process the supervisor of `serve --workers N` owns (seamline.record.engine_host).
        self.socket_path = socket_path
        self.engine = engine = "process" if socket_path is not None else engine
        self._process: EngineProcess | None = None
        if socket_path is not None:
            from seamline.record.engine_host import SharedEngine

            self._process = SharedEngine(socket_path, path, database)
        elif engine == "process":
            self._process = EngineProcess(path, database, cpus)
        self._local = Engine(path, database) if engine == "thread" else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seamline-chdb") if self._local else None
        self._closed = False

    @property
    def engine_starts(self) -> int:
        """Engine processes started so far (0 with the thread engine)."""
        return self._process.starts if self._process is not None else 0

    async def _call(self, op: str, method: str, *args: Any) -> Any:
        if self._closed:
            raise StoreError(f"{op} failed: store is closed")
        try:
            if self._process is not None:
                return await self._process.call(op, method, *args)
            assert self._local is not None
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._local.call, op, method, args)
        except EngineError as e:
            raise StoreError(str(e)) from (e.__cause__ or e)

    async def _run(self, op: str, method: str, *args: Any) -> Any:
        await self._ensure_open()
        return await self._call(op, method, *args)

    async def _open(self) -> None:
        """Create the directory, connect, create the database and make it the default."""
        if self._process is not None:
            await self._call("open", "ping")  # a new engine process opens its client first (EngineProcess.call)
        else:
            await self._call("open", "open")
        log.info("store opened", extra={"store": "chdb", "engine": self.engine, "path": self.path, "database": self.database})

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._run("query", "query", sql, parameters)
        return rows

    async def command(self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> None:
        await self._run("command", "command", sql, parameters, settings)

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict[str, Any] | None = None
    ) -> None:
        await self._run("insert", "insert", table, rows, list(column_names), settings)

    async def insert_json(self, table: str, payload: bytes, settings: dict[str, Any] | None = None) -> None:
        # To the engine process out of band (no copy into the pickle); the child receives it as a bytearray.
        body: Any = pickle.PickleBuffer(payload) if self._process is not None else payload
        await self._run("insert", "insert_json", table, body, settings)

    async def ping(self) -> bool:
        if self._closed:
            return False
        try:
            return bool(await self._run("ping", "ping"))
        except StoreError:
            return False

    async def run_in_engine(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(engine, *args)` where the engine runs (see Engine.run), the store opened first; failures are StoreErrors."""
        return await self._run(op, "run", fn, *args)

    async def run_in_every_engine(self, op: str, fn: Callable[..., Any], *args: Any) -> None:
        """`fn(engine, *args)` in the engine process now if it runs, and first thing in every one started later."""
        if self._process is None:
            raise StoreError(f"{op} needs the engine process (storage.embedded_engine: process)")
        self._process.on_start.append((op, "run", (fn, *args)))
        if self._process.pid is not None:
            await self._call(op, "run", fn, *args)

    async def close(self) -> None:
        if self._closed:
            return
        if self._process is not None:
            self._closed = True
            await self._process.stop()  # the child closes its client and exits, releasing the directory lock
            return
        if self._opened:
            try:
                await self._call("close", "close")
            except StoreError as e:  # closing is best effort; the thread is joined below
                log.warning("store close failed", extra={"store": "chdb", "error": str(e)[:200]})
        self._closed = True
        # Join the worker thread without blocking the event loop.
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)  # type: ignore[union-attr]


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
        except Exception:  # noqa: BLE001 - any failure means: not reachable
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
    if rest.startswith(("/./", "/../")):
        rest = rest[1:]
    if not rest:
        raise StoreError("chdb URL needs a path, e.g. chdb:///./.seamline/data")
    return os.path.realpath(rest)


def open_store(
    url: str, database: str, *, engine: str = "thread", cpus: Sequence[int] | None = None, engine_socket: str | None = None
) -> Store:
    """The store named by `url` (chdb:///path or http(s)://user:pass@host:port/db); `await` it to connect now.

    `engine`, `cpus` and `engine_socket` apply to chdb only: where its engine runs (see ChdbStore).
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "chdb":
        return ChdbStore(chdb_path_from_url(url), database, engine=engine, cpus=cpus, socket_path=engine_socket)
    if scheme in ("http", "https"):
        return HttpStore(url, database)
    raise StoreError("storage URL must start with chdb:// or http(s)://")
