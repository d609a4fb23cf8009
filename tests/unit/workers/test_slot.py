"""A worker's view of the config: its own instance name and spool directory; the slot survives its command line."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

from seamline.config.models import Config
from seamline.logs import setup_logging
from seamline.workers.slot import WorkerSlot


def test_each_worker_gets_its_own_instance_and_spool(tmp_path: Path) -> None:
    cfg = Config(server={"instance": "box", "workers": 2}, storage={"spool_dir": str(tmp_path / "spool")})  # type: ignore[arg-type]
    w1 = WorkerSlot(1, 2, str(tmp_path), 123).configure(cfg)
    assert w1.server.instance == "box/w1"
    assert w1.storage.spool_dir == str(tmp_path / "spool" / "worker-1")
    assert cfg.server.instance == "box"  # the file's config is unchanged
    assert w1.server.port == cfg.server.port and w1.storage.clickhouse_url == cfg.storage.clickhouse_url


def test_the_instance_defaults_to_the_host_name(tmp_path: Path) -> None:
    assert WorkerSlot(0, 2, str(tmp_path), 1).configure(Config()).server.instance == f"{socket.gethostname()}/w0"


def test_the_slot_round_trips_through_its_argument(tmp_path: Path) -> None:
    slot = WorkerSlot(3, 4, str(tmp_path), 99, engine_socket=str(tmp_path / "engine.sock"), migrated=True)
    assert WorkerSlot.from_arg(slot.to_arg()) == slot
    assert slot.metrics_socket(2) == str(tmp_path / "metrics-w2.sock")


def test_a_workers_log_lines_name_it(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        setup_logging("INFO", stream=out)
        WorkerSlot(1, 2, str(tmp_path), 1).tag_logs()
        logging.getLogger("seamline.test").info("hello", extra={"k": 1})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = json.loads(out.getvalue())
    assert (line["msg"], line["worker"], line["k"]) == ("hello", "w1", 1)
