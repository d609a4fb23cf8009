"""Embedded ClickHouse (chdb) operations, run on a store's own thread or in a child process the store owns.

Why a process: chdb parses, compresses and merges on threads of the process that hosts it; in the proxy's
process they take the proxy's core and its GIL (measured: +170 µs of event-loop CPU per recorded request, of which
~70 µs disappear once chdb lives elsewhere; see docs/benchmarks.md). The child is `python -m
seamline.record.engine PATH DATABASE CPUS LOG_LEVEL`, speaking length-prefixed pickled frames over a Unix socketpair
passed as its fd 0: request `(id, op, method, args)` (an insert's payload out of band, pickle protocol 5), reply
`(id, ok, value_or_error_text)`. Besides SQL the child hosts event building for the build offload (`Engine.run`;
the work itself is in `record.offload`). It exits when the parent's end closes (the sidecar stopped or died: the chdb
directory lock never outlives it) and, on Linux, by PDEATHSIG too. Given a listening socket as its fd 0 instead, it
serves every worker of `seamline serve --workers N` (seamline.record.engine_host).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("seamline.record.engine")

_LEN = struct.Struct("!I")
# A request: (pickle length, number of out-of-band buffers), the pickle, then each buffer as length + raw bytes.
_REQ = struct.Struct("!II")


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
        self.hosted: dict[str, Any] = {}  # state of the work `run` hosts, by name

    def call(self, op: str, method: str, args: tuple[Any, ...]) -> Any:
        """Run one operation; any failure becomes an EngineError with a one-line message."""
        try:
            return getattr(self, method)(*args)
        except Exception as e:
            raise EngineError(describe_error(op, e)) from e  # (the cause does not cross the process boundary)

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

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(engine, *args)`: work the engine process hosts beside SQL (events built by `record.offload`).

        `fn` is a module-level function, so it crosses the socketpair by reference, not as code; what it keeps
        between calls lives in `self.hosted`.
        """
        return fn(self, *args)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()


# -- parent side ----------------------------------------------------------------------------------------------------


class EngineProcess:
    """The parent's handle on one engine child: started on first call, one call in flight at a time.

    Frames go over a Unix socketpair (the child's fd 0) with `loop.sock_sendall`, which sends a multi-MB batch
    from a memoryview without re-buffering it (a pipe behind asyncio's StreamWriter re-copies the unsent tail on
    every write: ~5 µs per 3 KB row on the proxy's loop, measured). A call cancelled while waiting for its reply
    leaves the reply behind; replies carry the request id, so the next call skips it. A call cancelled while
    sending leaves half a frame, so the child is killed. If the child dies, the call raises EngineError and the
    next call starts a new child.
    """

    max_backoff_s = 30.0

    def __init__(self, path: str, database: str, cpus: Sequence[int] | None = None) -> None:
        self.path = path
        self.database = database
        self.cpus = tuple(cpus) if cpus else ()
        self.proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0
        self.on_start: list[tuple[str, str, tuple[Any, ...]]] = [("open", "open", ())]  # replayed on every new child
        self._backoff = 0.0
        self._retry_at = 0.0
        self._start_error = ""
        self.starts = 0  # children started (the first, then restarts)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for s in (ours, theirs):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        args = [sys.executable, "-m", "seamline.record.engine", self.path, self.database, ",".join(map(str, self.cpus)), level]
        try:
            self.proc = await asyncio.create_subprocess_exec(*args, stdin=theirs.fileno(), stdout=_stderr_fd())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its copy: its death now means EOF here
        ours.setblocking(False)
        self._sock = ours
        self.starts += 1
        log.info("embedded clickhouse process started", extra={"pid": self.proc.pid, "path": self.path})

    async def call(self, op: str, method: str, *args: Any) -> Any:
        """Run `Engine.<method>(*args)` in the child (started, and its client opened, first if need be).

        A child that fails to start (its directory is locked or unwritable, chdb cannot load) is not started again
        before a backoff (0.5 s doubling to 30 s): calls in between fail at once instead of spawning interpreters.
        """
        async with self._lock:
            if self.pid is None:
                await self._start(op)
            return await self._exchange(op, method, args)

    async def _start(self, op: str) -> None:
        await self._reap()
        now = time.monotonic()
        if now < self._retry_at:
            raise EngineError(
                f"{op} failed: the embedded ClickHouse process did not start ({self._start_error}); "
                f"retrying in {self._retry_at - now:.1f} s"
            )
        try:
            try:
                await self._spawn()
            except OSError as e:  # no interpreter, no file descriptors left, ...
                raise EngineError(describe_error(op, e)) from None
            for step in self.on_start:
                await self._exchange(*step)
        except EngineError as e:
            await self._reap()
            self._start_error = str(e)[:300]
            self._backoff = min(self._backoff * 2, self.max_backoff_s) if self._backoff else 0.5
            self._retry_at = time.monotonic() + self._backoff
            raise
        self._backoff = 0.0

    async def _exchange(self, op: str, method: str, args: tuple[Any, ...]) -> Any:
        sock = self._sock
        assert sock is not None
        loop = asyncio.get_running_loop()
        self._next_id += 1
        rid = self._next_id
        # Payloads wrapped in pickle.PickleBuffer (a batch to insert) travel out of band: sent from their own
        # memory, never copied into the pickle (a 32 MiB insert cost the loop a 32 MiB copy, measured).
        buffers: list[pickle.PickleBuffer] = []
        frame = pickle.dumps((rid, op, method, args), protocol=5, buffer_callback=buffers.append)
        try:
            try:
                await loop.sock_sendall(sock, _REQ.pack(len(frame), len(buffers)))
                await loop.sock_sendall(sock, frame)
                for b in buffers:
                    raw = b.raw()
                    await loop.sock_sendall(sock, _LEN.pack(raw.nbytes))
                    await loop.sock_sendall(sock, raw)
            except asyncio.CancelledError:
                await self._reap()  # half a frame is in the stream: this child can no longer be spoken to
                raise
            while True:
                (n,) = _LEN.unpack(await _recv_exactly(loop, sock, _LEN.size))
                got, ok, value = pickle.loads(await _recv_exactly(loop, sock, n))
                if got == rid:
                    break
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            await self._reap()
            raise EngineError(
                f"{op} failed: the embedded ClickHouse process exited ({type(e).__name__}); the next call starts a new one"
            ) from None
        if not ok:
            raise EngineError(value)
        return value

    async def _reap(self, grace: float = 0.0) -> None:
        """Close our end; give the child `grace` seconds to exit on its own (it does once its socket closes), then kill it."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if grace and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), grace)
                return  # a clean exit
            except TimeoutError:
                pass
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        log.warning("embedded clickhouse process exited", extra={"pid": proc.pid, "returncode": proc.returncode})

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the socket (the child closes its client and exits); kill it if it has not exited within `timeout`."""
        async with self._lock:
            await self._reap(grace=timeout)


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            raise EOFError("engine process closed the connection")
        got += k
    return buf


def _stderr_fd() -> int | None:
    """The child's stdout goes to our stderr: anything the engine prints stays out of the reply stream."""
    try:
        return sys.__stderr__.fileno() if sys.__stderr__ is not None else None
    except (OSError, ValueError):
        return None


# -- child side -----------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _recv(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return buf


def _recv_request(sock: socket.socket) -> tuple[Any, ...] | None:
    """One request (with its out-of-band buffers, as bytearrays), or None when the parent closed its end."""
    if (head := _recv(sock, _REQ.size)) is None:
        return None
    size, nbuf = _REQ.unpack(head)
    if (frame := _recv(sock, size)) is None:
        return None
    buffers: list[bytearray] = []
    for _ in range(nbuf):
        if (blen := _recv(sock, _LEN.size)) is None or (buf := _recv(sock, _LEN.unpack(blen)[0])) is None:
            return None
        buffers.append(buf)
    return tuple(pickle.loads(frame, buffers=buffers))


def serve(engine: Engine, sock: socket.socket) -> None:
    """Answer frames until the parent closes its end, then close the engine."""
    try:
        while (request := _recv_request(sock)) is not None:
            rid, op, method, args = request
            del request
            try:
                reply = (rid, True, engine.call(op, method, args))
            except EngineError as e:
                reply = (rid, False, str(e))
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            sock.sendall(_LEN.pack(len(data)))
            sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    path, database, cpus, level = argv if argv is not None else sys.argv[1:5]
    from seamline.logs import setup_logging

    setup_logging(level)  # the sidecar's level and JSON lines, on the sidecar's stderr
    _die_with_parent()
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the sidecar still needs its engine to
    # flush while it shuts down, then closes the socket, which ends this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cpus:
        try:
            os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})  # chdb's threads, started later, inherit it
        except (OSError, AttributeError, ValueError) as e:
            log.warning(
                "storage.embedded_cpus not applied; the engine runs on the sidecar's CPUs",
                extra={"cpus": cpus, "error": str(e)[:200]},
            )
    sock = socket.socket(fileno=os.dup(0))  # the parent's socketpair end (fd 0), or a listening socket (workers)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sock.setblocking(True)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        from seamline.record.engine_host import serve_many

        serve_many(Engine(path, database), sock, serve)  # `seamline serve --workers N`: every worker's engine
        return 0
    serve(Engine(path, database), sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
