"""The Exchange: all state of one proxied call, carried through the stages (one object, one place)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from seamline.ids import new_event_id
from seamline.outcomes import NONE

if TYPE_CHECKING:  # annotations only: the exchange sits below the stages that fill it
    from seamline.proxy.routing import Target
    from seamline.proxy.tracecontext import TraceContext


@dataclass(slots=True)
class BodyTap:
    """Keeps the first `cap` bytes of a streamed body and counts the true size (never buffers whole)."""

    cap: int
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0
    total: int = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        n = len(chunk)
        self.total += n
        room = self.cap - self.kept
        if room > 0 and n:
            part = chunk if n <= room else chunk[:room]
            self.chunks.append(part if type(part) is bytes else bytes(part))  # a mutable buffer may change after
            self.kept += len(part)

    @property
    def data(self) -> bytes:
        if len(self.chunks) > 1:
            self.chunks = [b"".join(self.chunks)]
        return self.chunks[0] if self.chunks else b""

    @property
    def truncated(self) -> bool:
        return self.total > self.kept


@dataclass(slots=True)
class ReplayCapture:
    """The upstream's response exactly as the client got it, kept whole (up to the tap's cap) for a guarded call only:
    the duplicate guard stores it for replay. Unlike the record's capture, nothing here is capped by
    capture.max_body_bytes or redacted."""

    tap: BodyTap
    status: int = 0  # the upstream answered (its status line arrived)
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # as sent to the client (after the response stages)
    complete: bool = False  # the body was read to its end


@dataclass(slots=True)
class Exchange:
    """One inbound request and its upstream attempt; a retried call keeps its earlier attempts in `prior_attempts`.

    The exchange always describes the current (finally: the last) attempt; `ts_us`/`t0` are that attempt's start
    (the first attempt's is the request's arrival), so each attempt's event has its own time and duration.
    """

    ts_us: int  # wall-clock start, µs since epoch
    t0: float  # perf_counter at start
    mode: str  # reverse | forward | connect | websocket
    method: str
    run_id: str = ""
    run_id_source: str = ""
    trace: TraceContext | None = None
    span_id: str = ""  # our CLIENT span (sent upstream as parent-id)
    traceparent: str = ""  # the header sent upstream (echoed back to the app)
    target: Target | None = None
    handoff: str = ""
    upstream: str = ""
    url: str = ""
    tenant: str = ""
    source_app: str = ""
    attempt: int = 1
    idempotency_key: str = ""
    event_id: str = ""  # minted when the event is built, or earlier by a guard that must name it (retries, dedup)
    guard: str = ""  # seamline.outcomes.GuardDecision: what a guard did to this call
    loop_suspected: bool = False
    retry_of: str = ""  # event_id of the first attempt (retries)
    replay_of: str = ""  # event_id of the event re-sent (`seamline replay`)
    guard_wait_s: float = 0.0  # time spent waiting in a guard (the local rate limit's queue)
    request_headers: list[tuple[str, str]] = field(default_factory=list)  # as sent upstream
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    request_tap: BodyTap | None = None
    request_body: bytes | None = None  # read whole by a request stage (the duplicate guard): forwarded from these bytes
    replay_capture: ReplayCapture | None = None  # set by the duplicate guard for the call it lets through
    not_sent: bool = False  # the upstream call failed before the request left (connect, DNS, TLS handshake refused)
    response_tap: BodyTap | None = None
    status: int = 0
    ttfb_s: float = 0.0
    duration_s: float = 0.0
    error_class: str = NONE  # seamline.outcomes
    error_detail: str = ""
    error_status: int = 0  # our own problem+json status when we answered instead of the upstream
    request_violations: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    spans: tuple[Any, Any] | None = None  # (SERVER, CLIENT) OpenTelemetry spans while the call runs; never on the wire
    prior_attempts: list[Exchange] = field(default_factory=list)  # finished attempts before this one (retries), in order

    def next_attempt(self) -> Exchange:
        """Move on to the next upstream attempt; returns the one just finished, recorded as its own event.

        The finished attempt keeps its response (status, headers, body tap, error, timings) and gets an event ID
        now, so the next one can name it in `retry_of`; this exchange starts afresh on the response side.
        """
        if not self.event_id:
            self.event_id = new_event_id()
        done = replace(self, attributes=dict(self.attributes), extra=dict(self.extra), prior_attempts=[])
        done.request_violations = list(self.request_violations)
        self.prior_attempts.append(done)
        self.retry_of = self.retry_of or done.event_id
        self.event_id = new_event_id()
        self.attempt += 1
        self.guard, self.guard_wait_s = "", 0.0
        self.status, self.ttfb_s, self.duration_s = 0, 0.0, 0.0
        self.response_headers = []
        if self.response_tap is not None:
            self.response_tap = BodyTap(self.response_tap.cap)
        self.error_class, self.error_detail, self.error_status = NONE, "", 0
        self.not_sent = False
        return done

    @property
    def started_t0(self) -> float:
        """perf_counter at the request's arrival (the first attempt's start)."""
        return self.prior_attempts[0].t0 if self.prior_attempts else self.t0
