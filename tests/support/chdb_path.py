"""One chdb data directory per test process (per pytest-xdist worker): chdb can open only one path per process, so
isolate by database."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import uuid

_path: str | None = None


def chdb_path() -> str:
    """The process-wide chdb directory (SEAMLINE_TEST_CHDB_PATH or a temp dir removed at exit)."""
    global _path
    if _path is None:
        # Kept in the environment too, so a second import of this module (as `support.` or `tests.support.`)
        # agrees on the one path chdb allows per process.
        env = os.environ.get("SEAMLINE_TEST_CHDB_PATH")
        # pytest-xdist runs the suite in worker processes (gw0, gw1…), each needing a directory of its own: a path
        # set for the whole run (by hand, or inherited from the controlling process) gets one subdirectory per worker.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        if env and os.environ.get("SEAMLINE_TEST_CHDB_WORKER", "") != worker:
            env = os.path.join(env, worker)
            os.makedirs(env, exist_ok=True)
        if env:
            _path = env
        else:
            _path = tempfile.mkdtemp(prefix="seamline-test-chdb-")
            atexit.register(shutil.rmtree, _path, True)
        os.environ["SEAMLINE_TEST_CHDB_PATH"] = _path
        os.environ["SEAMLINE_TEST_CHDB_WORKER"] = worker
    return _path


def chdb_url() -> str:
    """`chdb:///<process path>` for open_store / Storage.clickhouse_url."""
    return f"chdb://{chdb_path()}"


def unique_database(hint: str = "t") -> str:
    """A fresh database name for one test, e.g. `t_test_replay_3f9a1c2b`."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', hint)[:40]}_{uuid.uuid4().hex[:8]}"
