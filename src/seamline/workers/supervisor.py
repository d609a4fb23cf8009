"""The supervisor of `seamline serve --workers N`: the one process that starts, watches and stops the workers.

As gunicorn's arbiter and uvicorn's multiprocess supervisor, with the stdlib only: each worker is `python -m seamline
serve … --worker-slot JSON` started with asyncio's subprocess support (a fresh interpreter, nothing inherited from a
fork but the file descriptors we pass), and the port is shared with SO_REUSEPORT, so the kernel spreads connections
over the workers' own accept queues (no accept lock, no handing sockets down). What it does, in order:

1. reserves the proxy and admin ports (a bound, never listening SO_REUSEPORT socket each: port 0 becomes one
   concrete port every worker binds, and no other program can take it between two worker starts);
2. with the embedded store, starts the one engine process on a listening Unix socket in its private run
   directory (seamline.record.engine_host) and stays connected to it as its owner; the data directory stays
   single-owner;
3. applies the schema migrations once (embedded or ClickHouse server), before any worker takes traffic;
4. starts the workers and waits for each to say it is ready (a line on its stdout), then prints the banner;
5. restarts a worker that exits (logged, with its exit code or signal) after a backoff: 0.5 s doubling to 30 s for a
   worker that keeps dying within 30 s of its start, so a crash loop costs one start per 30 s, not a core. The engine
   process is restarted the same way, on the same socket (connections wait in its backlog meanwhile);
6. on SIGTERM, SIGINT or SIGHUP sends SIGTERM to every worker (each stops its listeners, drains and flushes its
   recorder, as a single `seamline serve` does), waits up to GRACE_S, kills what is left, then stops the engine.

Exit code: 0 when every worker stopped cleanly, 1 when one had to be killed or failed, 2 when the workers could not
start for a configuration error (a worker exiting 2 at its first start stops the supervisor: restarting would only
repeat it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from seamline.config.models import Config
from seamline.workers.slot import WorkerSlot

log = logging.getLogger("seamline.workers")

GRACE_S = 45.0  # a worker's stop flushes its offload and recorder (10 s each) and spools the rest
READY_TIMEOUT_S = 90.0  # a worker's first start compiles contracts and may wait for the store
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a worker that ran this long before it died starts again at once: it was not a crash loop
CONFIG_ERROR = 2


@dataclass(slots=True)
class Child:
    """One supervised process (a worker, or the engine) and its restart history."""

    name: str
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    failures: int = 0  # consecutive deaths within STABLE_AFTER_S of a start
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once it first said it takes traffic
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    def next_delay(self) -> float:
        """Record a death and return how long to wait before the next start."""
        if time.monotonic() - self.started_at >= STABLE_AFTER_S:
            self.failures = 0
        self.failures += 1
        self.restarts += 1
        return 0.0 if self.failures == 1 else min(BACKOFF_BASE_S * 2 ** (self.failures - 2), BACKOFF_MAX_S)


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, never listening: it holds the port for the workers.

    First bound once without SO_REUSEPORT: another program on the port, even one using SO_REUSEPORT itself (a second
    supervisor), makes that fail, where the SO_REUSEPORT bind alone would quietly share the port with it.
    """
    family, _, _, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(addr)
    except BaseException:
        s.close()
        raise
    return s


def _describe_exit(rc: int | None) -> dict[str, Any]:
    if rc is not None and rc < 0:
        return {"returncode": rc, "signal": signal.Signals(-rc).name}
    return {"returncode": rc}


class Supervisor:
    """Runs `cfg.server.workers` workers of the config at `source` until a stop signal; `await run()` → exit code."""

    def __init__(self, cfg: Config, source: str, *, log_level: str = "INFO") -> None:
        self.cfg = cfg
        self.source = source
        self.log_level = log_level
        self.count = cfg.server.workers
        self.workers = [Child(f"w{i}") for i in range(self.count)]
        self.engine = Child("engine")
        self._stop = asyncio.Event()
        self._fatal: int | None = None
        self._stopping = False
        self._run_dir = ""
        self._reserved: list[socket.socket] = []
        self._engine_listener: socket.socket | None = None
        self._engine_store: Any = None  # the supervisor's own connection to the engine (it owns the engine's lifetime)
        self._migrated = False
        self.ports: tuple[int, int] = (0, 0)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._stop.set)
        if not self.cfg.redis_url:
            log.warning(
                "loop detection counts each run's calls per worker without redis_url: a run whose calls spread over "
                "several workers may stay under loops.max_calls_per_run (set redis_url for exact counts)",
                extra={"workers": self.count},
            )
        try:
            try:
                await self._prepare()
            except OSError as e:  # the port is taken, the address is not this host's, no file descriptors left
                log.error("cannot start the workers", extra={"error": f"{type(e).__name__}: {e}"[:300]})
                print(f"seamline: cannot start the workers: {e}", file=sys.stderr)
                return 1
            ready = await self._start_all()
            if ready:
                srv = self.cfg.server
                from seamline import __version__

                print(
                    f"seamline {__version__}: proxy http://{_url_host(srv.host)}:{self.ports[0]}  "
                    f"admin http://{_url_host(srv.admin_host)}:{self.ports[1]}  ({self.count} workers, supervisor {os.getpid()})",
                    file=sys.stderr,
                    flush=True,
                )
                log.info("workers started", extra={"workers": self.count, "proxy_port": self.ports[0]})
                await self._stop.wait()
            clean = await self._stop_all()
        finally:
            await self._cleanup()
        if self._fatal is not None:
            return self._fatal
        return 0 if clean else 1

    async def _prepare(self) -> None:
        srv = self.cfg.server
        proxy = _reserve(srv.host, srv.port)
        self._reserved.append(proxy)
        admin = _reserve(srv.admin_host, srv.admin_port)
        self._reserved.append(admin)
        self.ports = (proxy.getsockname()[1], admin.getsockname()[1])
        self._run_dir = tempfile.mkdtemp(prefix="seamline-workers-")  # mode 0700: only this user reaches its sockets
        st = self.cfg.storage
        if st.enabled and st.clickhouse_url.startswith("chdb://"):
            await self._start_engine_listener()
            await self._spawn_engine()
        if st.enabled:
            await self._migrate()

    async def _start_all(self) -> bool:
        """Start every worker and wait until each is ready; False when stopped (a signal, a config error) first."""
        if self._stop.is_set():  # a signal while the engine started: no worker to start only to stop it
            return False
        for i in range(self.count):
            await self._spawn_worker(i)
        ready: asyncio.Future[Any] = asyncio.gather(*(w.ready.wait() for w in self.workers))
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([stop, ready], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        ready.cancel()
        return all(w.ready.is_set() for w in self.workers) and not self._stop.is_set()

    async def _stop_all(self) -> bool:
        """SIGTERM every worker, wait for them (killing what outlives GRACE_S), then stop the engine; True if clean."""
        self._stopping = True
        procs = [(w, w.proc) for w in self.workers if w.proc is not None]
        for _, proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        clean = True
        for w, proc in procs:
            try:
                async with asyncio.timeout(GRACE_S):
                    rc = await proc.wait()
            except TimeoutError:
                log.error("worker did not stop in time; killing it", extra={"worker": w.name, "pid": proc.pid})
                proc.kill()
                rc = await proc.wait()
            if rc != 0:
                clean = False
                log.warning("worker stopped", extra={"worker": w.name, "pid": proc.pid, **_describe_exit(rc)})
            else:
                log.info("worker stopped", extra={"worker": w.name, "pid": proc.pid, "returncode": 0})
        for w in self.workers:
            if w.watcher is not None:
                w.watcher.cancel()
        await self._stop_engine()
        return clean

    async def _cleanup(self) -> None:
        for s in self._reserved:
            s.close()
        self._reserved.clear()
        if self._engine_listener is not None:
            self._engine_listener.close()
            self._engine_listener = None
        for c in (*self.workers, self.engine):
            if c.proc is not None and c.proc.returncode is None:  # only after an error in the supervisor itself
                c.proc.kill()
                await c.proc.wait()
        if self._run_dir:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    # -- workers ---------------------------------------------------------------------------------------------------

    def _slot(self, index: int) -> WorkerSlot:
        sock = os.path.join(self._run_dir, "engine.sock") if self._engine_listener is not None else None
        return WorkerSlot(index, self.count, self._run_dir, os.getpid(), engine_socket=sock, migrated=self._migrated)

    def _worker_argv(self, index: int) -> list[str]:
        srv = self.cfg.server
        return [
            sys.executable, "-m", "seamline", "serve", "--config", self.source,
            "--host", srv.host, "--port", str(self.ports[0]), "--admin-port", str(self.ports[1]),
            "--log-level", self.log_level, "--workers", str(self.count), "--worker-slot", self._slot(index).to_arg(),
        ]  # fmt: skip

    async def _spawn_worker(self, index: int) -> None:
        w = self.workers[index]
        w.started_at = time.monotonic()
        argv = self._worker_argv(index)
        w.proc = proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
        )
        log.info("worker starting", extra={"worker": w.name, "pid": proc.pid, "restarts": w.restarts})
        w.watcher = asyncio.create_task(self._watch_worker(index, proc), name=f"seamline-watch-{w.name}")

    async def _watch_worker(self, index: int, proc: asyncio.subprocess.Process) -> None:
        """Wait for the worker's ready line, then for its exit; restart it (a new task) unless stopping."""
        w = self.workers[index]
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                line = await proc.stdout.readline()
        except TimeoutError:
            line = b""
            log.error("worker did not become ready in time; killing it", extra={"worker": w.name, "pid": proc.pid})
            proc.kill()
        first = not w.ready.is_set()
        if line.strip() == b"ready":
            w.ready.set()
            log.info("worker ready", extra={"worker": w.name, "pid": proc.pid})
            first = False
        rc = await proc.wait()
        if self._stopping or self._stop.is_set():
            return
        if rc == CONFIG_ERROR and first:
            log.error("worker refused its configuration; stopping", extra={"worker": w.name, "pid": proc.pid})
            self._fatal = CONFIG_ERROR
            self._stop.set()
            return
        delay = w.next_delay()
        log.warning(
            "worker exited; restarting",
            extra={"worker": w.name, "pid": proc.pid, **_describe_exit(rc), "restart_in_s": delay, "restarts": w.restarts,
                   "consecutive_failures": w.failures},
        )  # fmt: skip
        if delay:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            if self._stop.is_set():
                return
        await self._spawn_worker(index)

    # -- the embedded engine ---------------------------------------------------------------------------------------

    async def _start_engine_listener(self) -> None:
        path = os.path.join(self._run_dir, "engine.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(256)
        self._engine_listener = s
        from seamline.record.store import ChdbStore, chdb_path_from_url

        st = self.cfg.storage
        self._engine_path = chdb_path_from_url(st.clickhouse_url)
        self._engine_store = ChdbStore(self._engine_path, st.database, socket_path=path)

    async def _spawn_engine(self) -> None:
        from seamline.record.engine import _stderr_fd

        assert self._engine_listener is not None
        st = self.cfg.storage
        cpus = ",".join(map(str, st.embedded_cpus or ()))
        args = [sys.executable, "-m", "seamline.record.engine", self._engine_path, st.database, cpus, self.log_level]
        self.engine.started_at = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*args, stdin=self._engine_listener.fileno(), stdout=_stderr_fd())
        self.engine.proc = proc
        log.info("embedded clickhouse process started", extra={"pid": proc.pid, "path": self._engine_path, "shared": True})
        self.engine.watcher = asyncio.create_task(self._watch_engine(proc), name="seamline-watch-engine")
        await self._connect_owner()

    async def _connect_owner(self) -> None:
        """Be the engine's owner connection (its lifetime ends with it); a first ping may find the last engine's
        socket dead, the second connects to this one. A failure shows in the log and in the workers' sinks."""
        for _ in range(2):
            if await self._engine_store.ping():
                return

    async def _watch_engine(self, proc: asyncio.subprocess.Process) -> None:
        rc = await proc.wait()
        if self._stopping:
            return
        delay = self.engine.next_delay()
        log.warning(
            "embedded clickhouse process exited; restarting",
            extra={"pid": proc.pid, **_describe_exit(rc), "restart_in_s": delay, "restarts": self.engine.restarts},
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay or 0.001):
                await self._stop.wait()
        if not self._stopping:
            await self._spawn_engine()

    async def _stop_engine(self) -> None:
        if self._engine_store is not None:
            if self.engine.proc is not None and self.engine.proc.returncode is None:
                await self._connect_owner()
            await self._engine_store.close()  # the owner's connection closes: the engine closes chdb and exits
        proc = self.engine.proc
        if self.engine.watcher is not None:
            self.engine.watcher.cancel()
        if proc is None or proc.returncode is not None:
            return
        try:
            async with asyncio.timeout(GRACE_S):
                await proc.wait()
        except TimeoutError:
            log.error("embedded clickhouse process did not exit; killing it", extra={"pid": proc.pid})
            proc.kill()
            await proc.wait()

    async def _migrate(self) -> None:
        """The schema, once, before the workers start (they migrate themselves only if this fails)."""
        from seamline.record.schema import migrate
        from seamline.record.store import open_store

        st = self.cfg.storage
        store = self._engine_store or open_store(st.clickhouse_url, st.database)
        try:
            async with asyncio.timeout(30):
                await store.open()
                await migrate(store, store.database, ttl_days=st.ttl_days, body_ttl_days=st.body_ttl_days, cluster=st.cluster)
            self._migrated = True
        except Exception as e:  # noqa: BLE001 - the store may be down: the workers spool and migrate once it answers
            why = {"error": str(e)[:300]}
            log.warning("schema not migrated by the supervisor; each worker migrates once the store answers", extra=why)
        finally:
            if store is not self._engine_store:
                await store.close()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
