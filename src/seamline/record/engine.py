"""Embedded ClickHouse (chdb) operations, run on a store's own thread or in a child process the store owns.

Why a process: chdb parses, compresses and merges on threads of the process that hosts it; in the proxy's
process they take the proxy's core and its GIL (measured: +170 µs of event-loop CPU per recorded request, of which
~70 µs disappear once chdb lives elsewhere; see docs/benchmarks.md). The child is `python -m
seamline.record.engine PATH DATABASE [CPUS]`, speaking length-prefixed pickled frames over its stdin/stdout:
request `(id, op, method, args)`, reply `(id, ok, value_or_error_text)`. It exits when its stdin closes (the
sidecar stopped or died: the chdb directory lock never outlives it) and, on Linux, by PDEATHSIG too.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import pickle
import signal
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("seamline.record.engine")

_LEN = struct.Struct("!I")


def describe_error(op: str, e: BaseException) -> str:
    """`"<op> failed: <Type>: <first line>"`: what a StoreError says (no credentials: chdb URLs carry none)."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return f"{op} failed: {type(e).__name__}: {msg[:500]}"


class EngineError(Exception):
    """An operation failed in the engine (message from describe_error) or the engine process is gone."""


class Engine:
    """The chdb client and the operations a ChdbStore marshals to it."""

    def __init__(self, path: str, database: str) -> None:
        self.path = path
        self.database = database
        self.client: Any = None

    def call(self, op: str, method: str, args: tuple[Any, ...]) -> Any:
        """Run one operation; any failure becomes an EngineError with a one-line message."""
        try:
            return getattr(self, method)(*args)
        except Exception as e:
            raise EngineError(describe_error(op, e)) from None

    def open(self) -> None:
        import clickhouse_connect

        Path(self.path).mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(dsn=f"chdb://{self.path}")
        client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        client.database = self.database
        self.client = client

    def query(self, sql: str, parameters: dict[str, Any] | None) -> list[dict[str, Any]]:
        return list(self.client.query(sql, parameters=parameters).named_results())

    def command(self, sql: str, parameters: dict[str, Any] | None, settings: dict[str, Any] | None) -> None:
        self.client.command(sql, parameters=parameters, settings=settings)

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: list[str], settings: dict[str, Any] | None) -> None:
        self.client.insert(table, rows, column_names=column_names, settings=settings)

    def insert_json(self, table: str, payload: bytes, settings: dict[str, Any] | None) -> None:
        self.client.raw_insert(table, None, payload, settings=settings, fmt="JSONEachRow")

    def ping(self) -> bool:
        return bool(self.client.ping())

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()


# -- parent side ----------------------------------------------------------------------------------------------------


class EngineProcess:
    """The parent's handle on one engine child: started on first call, one call in flight at a time.

    A call cancelled mid-way (a write timeout) leaves its reply in the pipe; replies carry the request id, so the
    next call skips it. If the child dies, the call raises EngineError and the next call starts a new child.
    """

    def __init__(self, path: str, database: str, cpus: Sequence[int] | None = None) -> None:
        self.path = path
        self.database = database
        self.cpus = tuple(cpus) if cpus else ()
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def _spawn(self) -> asyncio.subprocess.Process:
        args = [sys.executable, "-m", "seamline.record.engine", self.path, self.database, ",".join(map(str, self.cpus))]
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20
        )
        log.info("embedded clickhouse process started", extra={"pid": proc.pid, "path": self.path})
        return proc

    async def call(self, op: str, method: str, *args: Any) -> Any:
        """Run `Engine.<method>(*args)` in the child (started, and its client opened, first if need be)."""
        async with self._lock:
            if self.proc is None or self.proc.returncode is not None:
                self.proc = await self._spawn()
                try:
                    await self._exchange(self.proc, "open", "open", ())
                except EngineError:
                    await self._reap(self.proc)
                    raise
            return await self._exchange(self.proc, op, method, args)

    async def _exchange(self, proc: asyncio.subprocess.Process, op: str, method: str, args: tuple[Any, ...]) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        self._next_id += 1
        rid = self._next_id
        frame = pickle.dumps((rid, op, method, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(_LEN.pack(len(frame)))
            proc.stdin.write(frame)
            await proc.stdin.drain()
            while True:
                (n,) = _LEN.unpack(await proc.stdout.readexactly(_LEN.size))
                got, ok, value = pickle.loads(await proc.stdout.readexactly(n))
                if got == rid:
                    break
        except (OSError, asyncio.IncompleteReadError, EOFError, pickle.UnpicklingError) as e:
            await self._reap(proc)
            raise EngineError(
                f"{op} failed: the embedded ClickHouse process exited ({type(e).__name__}); the next call starts a new one"
            ) from None
        if not ok:
            raise EngineError(value)
        return value

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        log.warning("embedded clickhouse process exited", extra={"pid": proc.pid, "returncode": proc.returncode})

    async def stop(self, timeout: float = 10.0) -> None:
        """Close its stdin (it closes the client and exits); kill it if it has not exited within `timeout`."""
        async with self._lock:
            proc, self.proc = self.proc, None
            if proc is None or proc.returncode is not None:
                return
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                await self._reap(proc)


# -- child side -----------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    data = stream.read(n)
    return data if len(data) == n else None


def serve(engine: Engine, inp: BinaryIO, out: BinaryIO) -> None:
    """Answer frames until EOF on `inp`, then close the engine."""
    try:
        while (frame := _read_frame(inp)) is not None:
            rid, op, method, args = pickle.loads(frame)
            try:
                reply = (rid, True, engine.call(op, method, args))
            except EngineError as e:
                reply = (rid, False, str(e))
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            out.write(_LEN.pack(len(data)))
            out.write(data)
            out.flush()
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    path, database, cpus = argv if argv is not None else sys.argv[1:4]
    _die_with_parent()
    if cpus:
        try:
            os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})  # chdb's threads, started later, inherit it
        except (OSError, AttributeError, ValueError) as e:
            print(f"seamline: storage.embedded_cpus {cpus} not applied: {e}", file=sys.stderr)
    # Replies go to a private copy of fd 1; fd 1 itself becomes stderr, so nothing the engine prints can
    # corrupt the reply stream.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(Engine(path, database), sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
