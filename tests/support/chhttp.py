"""A ClickHouse-HTTP-protocol adapter over chdb on 127.0.0.1: enough for clickhouse-connect's async client.

`POST /?query=…` (or the statement as the body's first line) with the data as body (Content-Encoding lz4/zstd/gzip/
deflate/br), settings and `param_*` from the query string, `X-ClickHouse-*` response headers, errors as HTTP 500 with
`X-ClickHouse-Exception-Code`. `stop()`/`start()` on the same port simulate an outage. A test fixture, not a server:
no auth, no sessions. It shares the test process's one chdb engine (tests.support.chdb_path).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import chdb
import orjson
import pytest
from aiohttp import web

from support.chdb_path import chdb_path

_TRANSPORT = {
    "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query", "client_protocol_version",
    "enable_http_compression", "send_progress_in_http_headers", "http_headers_progress_interval_ms", "role", "quota_key",
}  # fmt: skip
_FORMAT_RE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I | re.S)
_INSERT_RE = re.compile(r"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)\s*$", re.I | re.S)
_SETTING_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _decode_body(data: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "").lower()
    if not enc or enc == "identity":
        return data
    if enc == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    if enc == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if enc == "gzip":
        return gzip.decompress(data)
    if enc == "deflate":
        return zlib.decompress(data)
    if enc == "br":
        import brotli

        return brotli.decompress(data)
    raise ValueError(f"unsupported Content-Encoding {encoding}")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ClickHouseHttpAdapter:
    """`await start()` → `url`; `await stop()` closes the listener (clients see connection refused)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._exec: ThreadPoolExecutor | None = None
        self._conn: Any = None
        self._open = asyncio.Event()  # cleared by stall(): queries and inserts wait (ping still answers)
        self._open.set()
        self.waiting = 0  # requests held by a stall right now

    def stall(self) -> None:
        """Hold every query and insert from now on until `resume()`, as a ClickHouse that stopped answering."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    @property
    def url(self) -> str:
        return f"http://default:@127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port after a stop)."""
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/", self._handle)
        app.router.add_get("/ping", self._ping)
        self._exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chhttp")
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the listener and open connections; join the engine thread."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._exec is not None:
            ex, self._exec = self._exec, None
            await asyncio.get_running_loop().run_in_executor(ex, self._close_conn)
            await asyncio.get_running_loop().run_in_executor(None, ex.shutdown, True)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if not self._open.is_set():
            self.waiting += 1
            try:
                await self._open.wait()
            finally:
                self.waiting -= 1
        q = request.query
        body = await request.read() if request.can_read_body else b""
        try:
            body = _decode_body(body, request.headers.get("Content-Encoding"))
        except Exception as e:  # noqa: BLE001 - every codec's error is ClickHouse's "cannot decode" answer
            return self._error(400, 27, f"cannot decode body: {e}")
        sql = q.get("query", "")
        nl = body.find(b"\n")
        if not sql and nl >= 0 and _INSERT_RE.match(body[:nl].decode(errors="replace")):
            # `INSERT INTO t FORMAT f` + its data, as ClickHouse reads them (the data starts after the FORMAT clause);
            # an `INSERT INTO t SELECT …` over several lines is one statement, with no data.
            sql, body = body[:nl].decode(), body[nl + 1 :]
        elif not sql:
            sql, body = body.decode(), b""
        elif sql and body and not sql.lstrip().upper().startswith("INSERT"):
            sql, body = sql + " " + body.decode(), b""
        settings = {k: v for k, v in q.items() if k not in _TRANSPORT and not k.startswith("param_")}
        params = {k[6:]: v for k, v in q.items() if k.startswith("param_")}
        database = q.get("database") or request.headers.get("X-ClickHouse-Database")
        default_format = q.get("default_format") or request.headers.get("X-ClickHouse-Format") or "TabSeparated"
        assert self._exec is not None
        loop = asyncio.get_running_loop()
        try:
            out, fmt, summary = await loop.run_in_executor(
                self._exec, self._execute, sql, body, settings, params, database, default_format
            )
        except _SqlError as e:
            return self._error(500, e.code, e.message)
        headers = {
            "X-ClickHouse-Summary": orjson.dumps(summary).decode(),
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Query-Id": q.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Server-Display-Name": "chhttp-adapter",
        }
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        return web.Response(body=out, headers=headers, content_type="application/octet-stream")

    def _error(self, status: int, code: int, message: str) -> web.Response:
        text = f"Code: {code}. DB::Exception: {message}. (ADAPTER_ERROR)\n"
        return web.Response(status=status, text=text, headers={"X-ClickHouse-Exception-Code": str(code)})

    def _execute(
        self,
        sql: str,
        body: bytes,
        settings: dict[str, str],
        params: dict[str, str],
        database: str | None,
        default_format: str,
    ) -> tuple[bytes, str | None, dict[str, Any]]:
        if self._conn is None:  # one session, used only on the adapter's thread (opening one is not free)
            self._conn = chdb.connect(os.path.realpath(chdb_path()))
        conn = self._conn
        applied = [k for k in settings if _SETTING_RE.match(k)]
        try:
            conn.query(f"USE `{database or 'default'}`")
            for k in applied:
                conn.query(f"SET {k} = {_quote(settings[k])}")
            m = _INSERT_RE.match(sql)
            if m and body:
                return self._insert(conn, m.group("target"), m.group("fmt"), body)
            fm = _FORMAT_RE.search(sql)
            fmt = fm.group(1) if fm else default_format
            res = conn.query(sql, fmt, params=params)
            data = res.bytes() or b""
            return data, fmt, {"read_rows": str(res.rows_read()), "read_bytes": str(res.bytes_read())}
        except Exception as e:  # noqa: BLE001 - any engine error becomes ClickHouse's error answer, as the server does
            msg = str(e)
            code = re.search(r"Code: (\d+)", msg)
            raise _SqlError(int(code.group(1)) if code else 1000, msg.replace("\n", " ")[:2000]) from None
        finally:
            for k in applied:
                conn.query(f"SET {k} = DEFAULT")

    def _insert(self, conn: Any, target: str, fmt: str, body: bytes) -> tuple[bytes, None, dict[str, Any]]:
        fd, path = tempfile.mkstemp(suffix=".chhttp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            res = conn.query(f"INSERT INTO {target} FROM INFILE {_quote(path)} FORMAT {fmt}")
            return b"", None, {"written_rows": str(res.rows_read()), "written_bytes": str(len(body))}
        finally:
            os.unlink(path)


@pytest.fixture
async def adapter() -> AsyncIterator[ClickHouseHttpAdapter]:
    """A started adapter on an ephemeral 127.0.0.1 port, stopped after the test."""
    ad = ClickHouseHttpAdapter()
    await ad.start()
    yield ad
    await ad.stop()


class _SqlError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
