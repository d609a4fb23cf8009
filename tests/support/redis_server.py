"""A real `redis-server` (Debian's package) on 127.0.0.1 for the guards' shared-state tests.

Started per test with no persistence, in its own temporary directory; `stop()`, `pause()` (SIGSTOP) and `resume()`
let failure tests really kill or freeze it. `.ci/run` installs the package; elsewhere a machine without it skips
these tests, except under CI, where a missing server is a failure (a skipped guard test must not pass CI silently).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.servers import free_ports


@dataclass
class RedisServer:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise AssertionError(f"redis-server did not answer PING on port {self.port} within {timeout} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGKILL: the server is gone at once, as a crashed Redis is."""
        if self.proc and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a frozen Redis)."""
        assert self.proc
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)


def require_redis_server() -> None:
    if shutil.which("redis-server"):
        return
    if os.environ.get("CI"):
        pytest.fail("redis-server is not installed (.ci/run installs Debian's redis-server)")
    pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for this test; killed after it."""
    require_redis_server()
    server = RedisServer(free_ports(1)[0], tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
