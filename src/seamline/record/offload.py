"""Event building in the engine process, off the proxy's event loop and core.

Building an event (redaction of both header sets, URL and bodies, body rendering, contract evaluation, JSON
encoding) costs ~60-75 µs of the proxy's loop per request, more than any other stage (docs/benchmarks.md).
With the embedded engine in its own process (`storage.embedded_engine: process`), finished exchanges are shipped
there in small batches instead; the engine returns encoded rows, which enter the Recorder as usual (its buffer,
batches, spool and replay are unchanged). Nothing is written by the engine in this step, so a lost reply costs no
duplicate.

If the engine cannot build a batch (it exited, or did not answer within `timeout_s`), this process builds it:
no exchange is lost, only the offload. Nor does an exchange wait here longer than half of `storage.max_unacked_ms`
(the engine is busy or frozen): it is then built here too, and the Recorder counts its max_unacked_ms from when it
was handed to the offload, so the whole in-memory window stays bounded (README "Delivery guarantee"). A build
abandoned that way may still come back from the engine: its reply is discarded (replies carry their request id).
Unredacted exchanges travel only over the socketpair to our own child; they never reach the spool or a log.

Both ends are here: `BuildOffload` in the sidecar, and the functions the engine process runs (`Engine.run`), sent
by reference, so the store and the engine carry no event-building code of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from seamline.exchange import Exchange
from seamline.record.engine import Engine
from seamline.record.recorder import Recorder
from seamline.record.store import ChdbStore
from seamline.record.wire import to_wire

log = logging.getLogger("seamline.record.offload")


class BuildOffload:
    """Ships finished exchanges to the engine process to be built; builds here when it cannot."""

    def __init__(
        self,
        store: ChdbStore,
        recorder: Recorder,
        build_here: Callable[[Exchange, float], None],
        registry: CollectorRegistry,
        *,
        max_batch: int = 256,
        max_wait_s: float = 0.02,
        timeout_s: float = 10.0,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self._build_here = build_here
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        # No exchange waits here longer than this (then it is built here): the Recorder's max_unacked_ms counts from
        # its hand-over, and half of it leaves the other half to reach the spool in time.
        self.budget_s = recorder.storage.max_unacked_ms / 2000
        # Beyond this many waiting exchanges (the engine is slow or stuck) new ones are built here: memory stays bounded.
        self.max_pending = max(max_batch, recorder.storage.queue_size // 4)
        self.built = Counter(
            "seamline_record_events_built", "Events built, by where: engine (offloaded) or proxy.", ["where"], registry=registry
        )
        self._pending: list[tuple[Exchange, float]] = []  # with when each was handed over (monotonic)
        self._shipping: float | None = None  # when the oldest exchange of the batch at the engine was handed over
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._last_fallback_log = 0.0
        recorder.track(self.oldest)

    async def configure(self, config: Any, instance: str) -> None:
        """Let the engine process build events from this config (now, and in every engine process started later)."""
        await self.store.run_in_every_engine("configure builder", _configure_in_engine, config, instance)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="seamline-build-offload")

    def oldest(self) -> float | None:
        """When the oldest exchange held here was handed over (monotonic); None when none is."""
        times = [t for t in (self._shipping, self._pending[0][1] if self._pending else None) if t is not None]
        return min(times, default=None)

    def submit(self, ex: Exchange) -> None:
        """Queue a finished exchange; never blocks, never raises."""
        now = time.monotonic()
        if self._stopped or len(self._pending) >= self.max_pending:
            self.built.labels("proxy").inc()
            self._build_here(ex, now)
            return
        self._pending.append((ex, now))
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout: float | None = None) -> None:
        """Return once every queued exchange has reached the Recorder."""
        while self._pending or not self._idle.is_set():
            self._wake.set()
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Hand everything queued to the Recorder (building here what the engine does not take in time), then stop."""
        self._stopped = True  # from now on, late exchanges are built here
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout / 2)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        pending, self._pending = self._pending, []
        self._local(pending)
        self._idle.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(self.max_wait_s)  # gather a batch: one round trip per batch, not per request
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._ship(batch)
            if not self._pending:
                self._idle.set()

    async def _ship(self, batch: list[tuple[Exchange, float]]) -> None:
        rows: list[tuple[bytes | None, str]] | None = None
        left = min(self.timeout_s, batch[0][1] + self.budget_s - time.monotonic())  # the batch is oldest first
        if left <= 0:  # waited its share of max_unacked_ms behind a busy or frozen engine
            self._log_fallback(len(batch), f"waited more than {self.budget_s:.3f} s for the engine")
            self._local(batch)
            return
        self._shipping = batch[0][1]
        try:
            wire = _wire_batch([ex for ex, _ in batch])
            rows = await asyncio.wait_for(self.store.run_in_engine("build", _build_in_engine, wire), left)
        except asyncio.CancelledError:
            self._pending[:0] = batch  # stop() builds them here
            raise
        except Exception as e:  # noqa: BLE001 - whatever went wrong there, the exchanges are built here
            self._log_fallback(len(batch), f"{type(e).__name__}: {e}"[:300])
        finally:
            self._shipping = None
        if rows is None or len(rows) != len(batch):
            self._local(batch)
            return
        failed: list[tuple[Exchange, float]] = []
        for (ex, since), (row, detail) in zip(batch, rows, strict=True):  # lengths checked above
            if row is None:
                failed.append((ex, since))
                log.warning("engine could not build an event; building it here", extra={"run_id": ex.run_id, "error": detail})
            else:
                self.recorder.submit_encoded(row, detail, since)
        self.built.labels("engine").inc(len(batch) - len(failed))
        self._local(failed)

    def _local(self, exchanges: list[tuple[Exchange, float]]) -> None:
        for ex, since in exchanges:
            self.built.labels("proxy").inc()
            self._build_here(ex, since)

    def _log_fallback(self, n: int, error: str) -> None:
        now = time.monotonic()
        if now - self._last_fallback_log >= 1.0:  # loud, but at most once a second
            self._last_fallback_log = now
            log.warning("engine did not build a batch; building it in the proxy", extra={"exchanges": n, "error": error})


def _wire_batch(batch: list[Exchange]) -> bytes:
    """marshal, not pickle: ~3 µs per exchange on the proxy's loop instead of ~14 (measured, 2.6 KB exchanges)."""
    items = [(to_wire(ex), (t.upstream_name, t.path, t.query) if (t := ex.target) is not None else None) for ex in batch]
    return marshal.dumps(items)


# -- in the engine process ------------------------------------------------------------------------------------------


def _configure_in_engine(engine: Engine, config: Any, instance: str) -> None:
    """Compile what building events needs (routes, redaction policies, contracts), as the sidecar does."""
    from seamline.event.build import EventBuilder
    from seamline.proxy.routing import Router
    from seamline.validate.validator import Validator

    engine.hosted["router"] = Router(config)
    engine.hosted["builder"] = EventBuilder(config, instance, Validator(config))


def _build_in_engine(engine: Engine, payload: bytes) -> list[tuple[bytes | None, str]]:
    """Shipped exchanges -> (encoded row, event_id), or (None, error) for one that failed to build.

    `payload` is `marshal.dumps([(to_wire(exchange), (upstream, raw path, query) or None), ...])` (`_wire_batch`)
    from the same interpreter; the target is resolved again here from the same config.
    """
    from seamline.record.rows import encode_event
    from seamline.record.wire import from_wire

    router, builder = engine.hosted["router"], engine.hosted["builder"]
    out: list[tuple[bytes | None, str]] = []
    for wire, key in marshal.loads(payload):
        try:
            ex = from_wire(wire)
            if key is not None:
                ex.target = router.target(key[0], ex.method, key[1], key[2])
            event = builder.build(ex)
            out.append((encode_event(event), event["event_id"]))
        except Exception as e:  # noqa: BLE001 - one bad exchange must not cost the batch; the sidecar rebuilds it
            out.append((None, f"{type(e).__name__}: {e}"[:300]))
    return out


def offload_pays(proxy_cpus: set[int] | None, engine_cpus: Sequence[int] | None) -> bool:
    """Does building in the engine process free the proxy's CPU? Not when both can only share one CPU.

    On one CPU the round trip only adds work (measured: 0.43-0.50 of the bare pass-through with the offload against
    0.49-0.58 building in the proxy, docs/benchmarks.md). `proxy_cpus` None: unknown (not Linux), assume several.
    """
    if proxy_cpus is None:
        return True
    return len(proxy_cpus | set(engine_cpus or proxy_cpus)) > 1


async def start_offload(
    store: Any,
    recorder: Recorder,
    config: Any,
    instance: str,
    build_here: Callable[[Exchange, float], None],
    registry: CollectorRegistry,
) -> BuildOffload | None:
    """A started BuildOffload when the store is an engine process that can run beside the proxy; None otherwise."""
    if not isinstance(store, ChdbStore) or store.engine != "process":
        return None
    if store.socket_path is not None:
        # `serve --workers N`: the workers are the parallelism; one engine building every worker's events would be
        # the one serial stage (one GIL) they all wait on, so each worker builds its own (docs/benchmarks.md).
        log.info("events are built in each worker: the embedded engine is shared by every worker")
        return None
    proxy_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if not offload_pays(proxy_cpus, config.storage.embedded_cpus):
        log.info(
            "events are built in the proxy: the engine process shares its only CPU", extra={"cpus": sorted(proxy_cpus or ())}
        )
        return None
    offload = BuildOffload(store, recorder, build_here, registry)
    await offload.configure(config, instance)
    offload.start()
    return offload
