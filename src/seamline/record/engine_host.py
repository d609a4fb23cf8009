"""One embedded engine shared by the workers of `seamline serve --workers N`: both ends.

chdb locks its data directory to one process, so with several workers the supervisor starts the one engine process
(`python -m seamline.record.engine …`, as a single sidecar does) but hands it a *listening* Unix socket as its fd 0
instead of one end of a socketpair. The engine then accepts every worker (and the supervisor, which migrates the
schema before any worker takes traffic) on the same frame protocol, one thread per connection. SQL calls are
serialized on one lock: chdb's client is not documented as thread-safe, and one insert at a time is what a single
sidecar's engine does anyway (the work inside each call is chdb's own threads). Each connection keeps its own
`hosted` state. The engine exits when its owner's connection (its parent's: the supervisor's) closes, after the
workers are gone; PDEATHSIG kills it if the supervisor dies.

Worker side: `SharedEngine` is an `EngineProcess` that connects to the socket instead of spawning a child; a worker
never starts an engine, so if the engine is gone a call fails (the recorder spools) and a later call reconnects
once the supervisor has started a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from seamline.record.engine import Engine, EngineProcess

log = logging.getLogger("seamline.record.engine")

# Operations that touch the chdb client; `run` (event building for the offload) touches only its connection's state.
_SQL = frozenset({"open", "query", "command", "insert", "insert_json", "ping"})


class Tenant(Engine):
    """One connection's view of the shared engine: the shared client behind one lock, its own `hosted` state."""

    def __init__(self, shared: Engine, lock: threading.Lock) -> None:
        super().__init__(shared.path, shared.database)
        self.client = shared.client
        self._lock = lock

    def call(self, op: str, method: str, args: tuple[Any, ...]) -> Any:
        if method not in _SQL:
            return super().call(op, method, args)
        with self._lock:
            return super().call(op, method, args)

    def open(self) -> None:
        """The shared client is open already (the host opened it before accepting anyone)."""

    def close(self) -> None:
        """The host closes the shared client once its owner is gone, not each connection."""


def peer_pid(sock: socket.socket) -> int:
    """The pid at the other end of a Unix socket (SO_PEERCRED), 0 when unknown."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[0])
    except (OSError, AttributeError):
        return 0


def serve_many(engine: Engine, listener: socket.socket, serve: Callable[[Engine, socket.socket], None]) -> None:
    """Accept connections on `listener`, each answered by `serve` on its own thread, until the owner's closes."""
    engine.open()  # before anyone is accepted: a directory that cannot be opened ends the host (the supervisor sees it)
    lock = threading.Lock()
    owner = os.getppid()
    owner_gone = threading.Event()

    def answer(conn: socket.socket) -> None:
        is_owner = peer_pid(conn) == owner
        try:
            serve(Tenant(engine, lock), conn)
        finally:
            conn.close()
            if is_owner:
                owner_gone.set()

    def accept() -> None:
        while not owner_gone.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: shutting down
            conn.setblocking(True)
            threading.Thread(target=answer, args=(conn,), name="seamline-engine-client", daemon=True).start()

    acceptor = threading.Thread(target=accept, name="seamline-engine-accept", daemon=True)
    acceptor.start()
    owner_gone.wait()
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    with lock:  # no SQL call is under way while the client closes
        engine.close()


class SharedEngine(EngineProcess):
    """A worker's (or the supervisor's) connection to the shared engine at `socket_path`: connects, never spawns."""

    max_backoff_s = 2.0  # the supervisor restarts the engine within about a second: reconnect soon after

    def __init__(self, socket_path: str, path: str, database: str) -> None:
        super().__init__(path, database)
        self.socket_path = socket_path

    @property
    def pid(self) -> int | None:
        """-1 while connected (the engine's pid is not ours to know: the socket's credentials are its creator's)."""
        return -1 if self._sock is not None else None

    async def _spawn(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self.socket_path)
        except BaseException:
            sock.close()
            raise
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock = sock
        self.starts += 1
        log.info("connected to the shared embedded clickhouse", extra={"socket": self.socket_path, "path": self.path})

    async def _reap(self, grace: float = 0.0) -> None:
        """Close our connection; the engine is the supervisor's to stop."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
