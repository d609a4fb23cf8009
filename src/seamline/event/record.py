"""The record stage, after the client has its answer: validate → build the event → record.

With the build offload (the embedded engine in its own process), the exchange goes there as it is and the
contract checks, redaction and event building happen off the proxy's event loop; otherwise they happen here.
Either way the event reaches the recorder, which never blocks and never raises into the traffic.
"""

from __future__ import annotations

from typing import Any, Protocol

from seamline.event.build import EventBuilder
from seamline.exchange import Exchange


class EventSink(Protocol):
    def submit(self, event: dict[str, Any], since: float | None = None) -> None: ...


class ExchangeOffload(Protocol):
    def submit(self, ex: Exchange) -> None: ...


class RecordExchange:
    """`done(exchange)`: one event per finished exchange, built here or in the engine process."""

    name = "record"

    def __init__(self, builder: EventBuilder) -> None:
        self.builder = builder
        self.recorder: EventSink | None = None
        self.offload: ExchangeOffload | None = None

    def attach(self, recorder: EventSink | None, offload: ExchangeOffload | None) -> None:
        """Where events go, once the recorder (and the offload, when it runs) exist."""
        self.recorder, self.offload = recorder, offload

    def done(self, ex: Exchange) -> None:
        if self.offload is not None:
            self.offload.submit(ex)  # built in the engine process, off this loop
        elif self.recorder is not None:
            self.recorder.submit(self.builder.build(ex))

    def build_here(self, ex: Exchange, since: float | None = None) -> None:
        """Build and queue an event in this process (the offload's fallback for what it cannot build); `since`: when
        the offload took it (the recorder's max_unacked_ms counts from there)."""
        if self.recorder is not None:
            self.recorder.submit(self.builder.build(ex), since)
