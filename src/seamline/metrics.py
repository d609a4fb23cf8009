"""The proxy's Prometheus metrics (recording metrics live with the recorder)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "seamline_requests",
            "Proxied requests by handoff, status class and error class.",
            ["handoff", "status_class", "error_class"],
            registry=registry,
        )
        self.latency = Histogram(
            "seamline_request_duration_seconds",
            "End-to-end proxied request duration.",
            ["handoff"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge("seamline_in_flight_requests", "Requests being proxied now.", registry=registry)
        self.tunnel_bytes = Counter(
            "seamline_tunnel_bytes", "Bytes relayed through CONNECT tunnels.", ["upstream", "direction"], registry=registry
        )
        self.stage_errors = Counter(
            "seamline_stage_errors", "Exceptions isolated in a pipeline stage.", ["stage"], registry=registry
        )
        self._children: dict[tuple[str, str, str], object] = {}
        self._hist: dict[str, object] = {}

    def observe(self, handoff: str, status: int, error_class: str, seconds: float) -> None:
        key = (handoff, f"{status // 100}xx" if status else "none", error_class)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = self.requests.labels(*key)
        c.inc()  # type: ignore[attr-defined]
        h = self._hist.get(handoff)
        if h is None:
            h = self._hist[handoff] = self.latency.labels(handoff)
        h.observe(seconds)  # type: ignore[attr-defined]
