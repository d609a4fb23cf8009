"""The supervisor's port reservation, and its restart backoff: a crash loop waits longer each time, up to a cap."""

from __future__ import annotations

import socket
import time

import pytest

from seamline.workers.supervisor import BACKOFF_MAX_S, STABLE_AFTER_S, Child, _reserve


def test_a_crash_loop_backs_off_to_the_cap() -> None:
    child = Child("w0")
    delays = []
    for _ in range(10):
        child.started_at = time.monotonic()  # died right after its start
        delays.append(child.next_delay())
    assert delays[:5] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert max(delays) == BACKOFF_MAX_S and delays[-1] == BACKOFF_MAX_S
    assert child.restarts == 10 and child.failures == 10


def test_a_worker_that_ran_long_enough_restarts_at_once() -> None:
    child = Child("w0", failures=7, restarts=7)
    child.started_at = time.monotonic() - STABLE_AFTER_S - 1
    assert child.next_delay() == 0.0
    assert (child.failures, child.restarts) == (1, 8)


def test_a_port_already_shared_by_another_supervisor_is_refused() -> None:
    first = _reserve("127.0.0.1", 0)
    port = first.getsockname()[1]
    worker = socket.socket()
    try:
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))  # the first supervisor's worker joins the port
        worker.listen()
        with pytest.raises(OSError, match="in use"):  # a second supervisor would quietly share it otherwise
            _reserve("127.0.0.1", port)
    finally:
        worker.close()
        first.close()
