"""What the supervisor tells a worker (`seamline serve --worker-slot JSON`), and the worker's view of the config."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seamline.config.models import Config


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Worker `index` of `count`; `run_dir` is the supervisor's private directory (mode 0700) for the Unix sockets."""

    index: int
    count: int
    run_dir: str
    supervisor: int  # the supervisor's pid: a worker whose parent is another process has lost its supervisor
    engine_socket: str | None = None  # the embedded engine the supervisor owns (seamline.record.engine_host)
    migrated: bool = False  # the supervisor applied the schema migrations: the worker does not run them again

    def to_arg(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_arg(cls, text: str) -> WorkerSlot:
        return cls(**json.loads(text))

    def metrics_socket(self, index: int) -> str:
        """Where worker `index` serves its own registry (seamline.workers.metrics)."""
        return str(Path(self.run_dir) / f"metrics-w{index}.sock")

    def configure(self, cfg: Config) -> Config:
        """The file's config as this worker runs it: its own instance name and spool directory."""
        instance = f"{cfg.server.instance or socket.gethostname()}/w{self.index}"
        spool = str(Path(cfg.storage.spool_dir) / f"worker-{self.index}")
        server = cfg.server.model_copy(update={"instance": instance})
        storage = cfg.storage.model_copy(update={"spool_dir": spool})
        return cfg.model_copy(update={"server": server, "storage": storage})

    def tag_logs(self) -> None:
        """Every log line of this worker says which one it is (`"worker": "w<i>"`): the workers share one stderr."""
        name = f"w{self.index}"

        def tag(record: logging.LogRecord) -> bool:
            record.worker = name
            return True

        for handler in logging.getLogger().handlers:
            handler.addFilter(tag)

    def die_with_supervisor(self) -> None:
        """SIGTERM (a graceful stop) if the supervisor dies, so a worker is never left serving alone."""
        if sys.platform == "linux":
            try:
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            except (OSError, AttributeError):
                return
        if os.getppid() != self.supervisor:  # it died before the prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)


def ready(fd: Any = None) -> None:
    """Tell the supervisor this worker takes traffic: one line on its stdout (a pipe the supervisor reads)."""
    out = sys.stdout if fd is None else fd
    out.write("ready\n")
    out.flush()
