"""The recorder's self-metrics (prefix `seamline_record_`), registered on the registry the composition root owns;
its running totals (for the heartbeat row) and the one place events are counted as lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("seamline.record")

WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RecordMetrics:
    """Counters, gauges and the write-latency histogram of one Recorder."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "seamline_record_"
        self.queue_depth = Gauge(p + "queue_depth", "Events held in memory (buffer + sealed batches).", registry=registry)
        self.batches_written = Counter(p + "batches_written", "Batches written to ClickHouse.", ["path"], registry=registry)
        self.rows_written = Counter(p + "rows_written", "Rows written to ClickHouse.", ["path"], registry=registry)
        self.write_seconds = Histogram(
            p + "write_duration_seconds", "Latency of one batch insert.", buckets=WRITE_BUCKETS, registry=registry
        )
        self.write_errors = Counter(p + "write_errors", "Failed batch inserts (batch then goes to the spool).", registry=registry)
        self.spooled_batches = Counter(
            p + "spooled_batches", "Batches written to the spool, by reason.", ["reason"], registry=registry
        )
        self.spooled_rows = Counter(
            p + "spooled_rows", "Rows written to the spool (in spooled batches), by reason.", ["reason"], registry=registry
        )
        self.spool_bytes = Gauge(p + "spool_bytes", "Bytes in the on-disk spool.", registry=registry)
        self.spool_records = Gauge(p + "spool_records", "Batches waiting in the on-disk spool.", registry=registry)
        self.spool_corrupt = Counter(p + "spool_corrupt_records", "Corrupt spool records skipped.", registry=registry)
        self.replayed_rows = Counter(p + "replayed_rows", "Rows replayed from the spool into ClickHouse.", registry=registry)
        self.replayed_batches = Counter(p + "replayed_batches", "Batches replayed from the spool.", registry=registry)
        self.dropped = Counter(
            p + "dropped", "Events lost (0 unless the spool is full or unwritable), by reason.", ["reason"], registry=registry
        )
        self.oldest_unacked = Gauge(
            p + "oldest_unacked_seconds",
            "Age of the oldest event ClickHouse has not acknowledged (in memory, being built, or spooled); 0 when there is none.",
            registry=registry,
        )
        self.sink_up = Gauge(p + "sink_up", "1 when the last contact with ClickHouse succeeded.", registry=registry)
        self.ready = Gauge(p + "ready", "1 when recording is healthy (spool writable, nothing dropped now).", registry=registry)
        self.engine_starts = Gauge(
            p + "engine_process_starts",
            "Embedded ClickHouse engine processes started by this sidecar (above 1: the engine was restarted).",
            registry=registry,
        )
        self.heartbeats = Counter(
            p + "heartbeats", "Heartbeat rows written to seamline_health, by result.", ["result"], registry=registry
        )

    def bind(
        self, queue_depth: Callable[[], float], spool_bytes: Callable[[], float], spool_records: Callable[[], float]
    ) -> None:
        """Read gauges at scrape time instead of on the hot path."""
        self.queue_depth.set_function(queue_depth)
        self.spool_bytes.set_function(spool_bytes)
        self.spool_records.set_function(spool_records)


@dataclass
class Totals:
    """Counts since this Recorder was made, as plain numbers: the heartbeat row and the stop log carry them."""

    rows_written: int = 0
    batches_written: int = 0
    rows_replayed: int = 0
    dropped: int = 0


class Drops:
    """Events lost: counted by reason, added to the totals, and logged loudly but at most once a second per reason."""

    def __init__(self, metrics: RecordMetrics, totals: Totals, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._totals = totals
        self._clock = clock
        self._last_log: dict[str, float] = {}

    def __call__(self, rows: int, reason: str) -> None:
        self._metrics.dropped.labels(reason).inc(rows)
        self._totals.dropped += rows
        now = self._clock()
        if now - self._last_log.get(reason, -1e9) >= 1.0:
            self._last_log[reason] = now
            log.error("events dropped", extra={"rows": rows, "reason": reason, "dropped_total": self._totals.dropped})
