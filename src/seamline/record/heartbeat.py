"""The heartbeat: one `seamline_health` row per interval, so the dashboards see every sidecar's recording state
(ready, sink, queue, spool, totals) even when no traffic flows, and notice a sidecar that stopped reporting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from seamline import __version__
from seamline.record.metrics import RecordMetrics
from seamline.record.store import Store

log = logging.getLogger("seamline.record")

HEALTH_TABLE = "seamline_health"
HEALTH_COLUMNS = (
    "ts", "proxy_instance", "version", "store", "ready", "sink_up", "reasons", "queue_depth", "spool_bytes",
    "spool_records", "rows_written", "batches_written", "rows_replayed", "dropped", "spool_corrupt", "uptime_s",
)  # fmt: skip
# The columns the Recorder reports; the others say who reports, and when.
STATE_COLUMNS = HEALTH_COLUMNS[4:]


def health_row(state: Mapping[str, Any], *, instance: str, store_kind: str, now: datetime) -> list[Any]:
    """One `seamline_health` row in HEALTH_COLUMNS order from the Recorder's state (keyed by STATE_COLUMNS)."""
    return [now, instance, __version__, store_kind, *(state[c] for c in STATE_COLUMNS)]


@dataclass(slots=True)
class Heartbeat:
    """Writes the health row; a failure is counted and logged at debug (the sink's own state says it is down)."""

    store: Store
    instance: str
    metrics: RecordMetrics
    state: Callable[[], Mapping[str, Any]] = field(kw_only=True)
    timeout_s: float = field(kw_only=True)

    async def beat(self) -> bool:
        """Write one row now; True on success."""
        row = health_row(self.state(), instance=self.instance, store_kind=self.store.kind, now=datetime.now(UTC))
        try:
            await asyncio.wait_for(self.store.insert(HEALTH_TABLE, [row], HEALTH_COLUMNS), self.timeout_s)
        except Exception as e:  # noqa: BLE001 - a missed heartbeat is counted, never raised
            self.metrics.heartbeats.labels("error").inc()
            log.debug("heartbeat not written", extra={"error": type(e).__name__})
            return False
        self.metrics.heartbeats.labels("ok").inc()
        return True
