"""SIGKILL while the sink is down: what reached the spool is replayed by the next Recorder at start-up."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry
from support.chhttp import ClickHouseHttpAdapter
from support.recording import counts, db  # db: a fixture
from support.servers import free_ports
from support.waiting import wait_for

from seamline.config.models import Storage
from seamline.record.recorder import Recorder
from seamline.record.store import open_store

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time, uuid
    from prometheus_client import CollectorRegistry
    from seamline.config.models import Storage
    from seamline.event.columns import new_event
    from seamline.record.recorder import build_recorder

    async def main(url, spool_dir):
        storage = Storage(clickhouse_url=url, spool_dir=spool_dir, batch_size=50, flush_interval_ms=3_600_000)
        rec = await build_recorder(storage, CollectorRegistry(), "crashy", heartbeat_interval_s=0)
        for i in range(300):
            rec.submit(new_event(event_id=str(uuid.uuid4()), ts=int(time.time() * 1e6), run_id="crash", handoff="h"))
        assert await rec.flush(30)          # the sink is down: all 300 are in the (fsynced) spool now
        for i in range(20):                 # these stay in memory: the documented loss window
            rec.submit(new_event(event_id=str(uuid.uuid4()), ts=int(time.time() * 1e6), run_id="lost", handoff="h"))
        print("SPOOLED", rec.spool.records, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_spool_is_replayed_at_start_up_after_sigkill(db, tmp_path: Path) -> None:
    store, name = db
    spool_dir = tmp_path / "spool"
    down_url = f"http://default:@127.0.0.1:{free_ports(1)[0]}/{name}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, down_url, str(spool_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert b"SPOOLED 6" in out

    adapter = ClickHouseHttpAdapter()
    await adapter.start()
    storage = Storage(clickhouse_url=f"{adapter.url}/{name}", spool_dir=str(spool_dir))
    reg = CollectorRegistry()
    rec = Recorder(storage, lambda: open_store(storage.clickhouse_url, storage.database), reg, "next", heartbeat_interval_s=0)
    try:
        await rec.start()  # replays at start-up
        await wait_for(rec.replay_now, 30, what="the spool to drain into the sink (it is up)")
    finally:
        await rec.stop(5)
        await adapter.stop()
    assert await counts(store, name) == (300, 300)
    assert reg.get_sample_value("seamline_record_replayed_rows_total") == 300
    assert list(spool_dir.glob("*.seg")) == []
