"""Every worker's metrics in one exposition, each sample labelled with its worker; a silent worker shows as down."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from seamline.workers.metrics import WorkerMetrics, _Merged
from seamline.workers.slot import WorkerSlot


def exposition(requests: float, queue: float) -> str:
    registry = CollectorRegistry()
    Counter("seamline_requests", "Requests.", ["handoff"], registry=registry).labels("up.x").inc(requests)
    Gauge("seamline_record_queue_depth", "Queued.", registry=registry).set_function(lambda: queue)
    return generate_latest(registry).decode()


def samples(text: bytes) -> dict[tuple[str, str], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            if not s.name.endswith("_created"):
                out[(s.name, s.labels.get("worker", ""))] = s.value
    return out


def test_samples_of_every_worker_carry_its_label() -> None:
    got = samples(generate_latest(_Merged([exposition(3, 7), exposition(5, 0), None])))
    assert got[("seamline_requests_total", "0")] == 3 and got[("seamline_requests_total", "1")] == 5
    assert got[("seamline_record_queue_depth", "0")] == 7 and got[("seamline_record_queue_depth", "1")] == 0
    assert [got[("seamline_worker_up", w)] for w in "012"] == [1.0, 1.0, 0.0]
    assert ("seamline_requests_total", "2") not in got


async def test_a_worker_serves_its_own_registry_to_its_siblings(tmp_path: Path) -> None:
    registries = [CollectorRegistry(), CollectorRegistry()]
    for i, r in enumerate(registries):
        Counter("seamline_requests", "Requests.", registry=r).inc(i + 1)
    workers = [WorkerMetrics(WorkerSlot(i, 3, str(tmp_path), 1), r) for i, r in enumerate(registries)]
    for w in workers:
        await w.start()
    try:
        got = samples(await workers[0].exposition())  # worker 2 never started: left out, marked down
    finally:
        for w in workers:
            await w.close()
    assert got[("seamline_requests_total", "0")] == 1 and got[("seamline_requests_total", "1")] == 2
    assert [got[("seamline_worker_up", w)] for w in "012"] == [1.0, 1.0, 0.0]
