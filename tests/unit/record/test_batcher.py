"""The in-memory batches: sealing by size and by age, what counts as held, and which queued batches go as one insert."""

from __future__ import annotations

import orjson
import pytest
from support.recording import FakeClock

from seamline.record.batcher import Batcher, group_size
from seamline.record.rows import dedup_token


def batcher(clock: FakeClock | None = None, **kw: int) -> Batcher:
    kw.setdefault("batch_size", 3)
    kw.setdefault("flush_interval_ms", 500)
    kw.setdefault("queue_size", 100)
    kw.setdefault("max_insert_bytes", 1 << 20)
    return Batcher(clock=clock or FakeClock(), **kw)


def fill(b: Batcher, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        b.add(orjson.dumps({"i": i}), f"e{i}")


def ids(payload: bytes) -> list[int]:
    return [r["i"] for r in orjson.loads(payload)]


def test_group_size_takes_the_oldest_then_what_fits_behind_it_in_order() -> None:
    assert group_size([], 100) == 0
    assert group_size([40, 40, 40], 100) == 2
    assert group_size([40, 60, 1], 100) == 2  # exactly the cap fits
    assert group_size([40, 70, 10], 100) == 1  # never skips ahead of a batch that does not fit: order is kept
    assert group_size([500, 1], 100) == 1  # the oldest goes even when it alone is over the cap
    assert group_size([40, 40], 0) == 1  # max_insert_bytes 0: one insert per batch


def test_a_full_buffer_is_sealed_and_the_flusher_woken() -> None:
    b = batcher(batch_size=3)
    wakes = [b.add(orjson.dumps({"i": i}), f"e{i}") for i in range(4)]
    assert wakes == [True, False, True, True]  # first row (its age starts), sealing row, first row of the next buffer
    assert b.has_sealed and b.in_memory == 4
    batch = b.take()
    assert batch.rows == 3 and ids(batch.payload) == [0, 1, 2] and batch.token == dedup_token(["e0", "e1", "e2"])


def test_the_buffer_is_sealed_once_its_first_row_is_flush_interval_old() -> None:
    clock = FakeClock()
    b = batcher(clock, batch_size=1000, flush_interval_ms=500)
    assert b.due_in() is None  # empty: the flusher idles without a deadline
    fill(b, 1)
    clock.advance(0.2)
    fill(b, 1, start=1)  # a later row does not restart the age
    assert b.due_in() == pytest.approx(0.3)
    b.seal_if_due()
    assert not b.has_sealed
    clock.advance(0.3)
    assert b.due_in() == 0.001  # due: the flusher's timeout never drops to zero
    b.seal_if_due()
    assert b.has_sealed and b.take().rows == 2 and b.due_in() is None


def test_everything_held_counts_toward_the_queue_size_including_the_insert_in_flight() -> None:
    b = batcher(batch_size=2, queue_size=5)
    fill(b, 4)
    inflight = b.take()
    fill(b, 1, start=4)
    assert b.in_memory == 5 and b.full  # 4 in flight + 1 buffered
    assert b.take_sealed() == []  # only what is queued can be spilled; the insert in flight stays with its sender
    b.settle()
    assert b.in_memory == 1 and not b.full and not b.empty
    assert inflight.rows == 4


def test_queued_batches_are_coalesced_up_to_max_insert_bytes() -> None:
    b = batcher(batch_size=2, max_insert_bytes=40)
    fill(b, 8)  # four sealed batches of two rows, 21 bytes each
    first = b.take()
    assert first.rows == 4 and ids(first.payload) == [0, 1, 2, 3] and first.token.startswith("sl1c-")
    b.settle()
    second = b.take()
    assert ids(second.payload) == [4, 5, 6, 7]
    assert b.take_sealed() == [] and b.empty


def test_a_put_back_insert_goes_again_alone_with_its_token() -> None:
    b = batcher(batch_size=2)
    fill(b, 4)
    sent = b.take()  # two batches coalesced
    fill(b, 2, start=4)  # queued behind while the insert hangs
    b.put_back(sent)  # cancelled: it may have landed
    b.settle()
    again = b.take()
    assert again == sent  # exactly as it went, not coalesced with the batch behind it
    b.settle()
    assert ids(b.take().payload) == [4, 5]


def test_take_sealed_leaves_the_buffer() -> None:
    b = batcher(batch_size=2)
    fill(b, 5)
    assert [x.rows for x in b.take_sealed()] == [2, 2]
    assert b.in_memory == 1 and not b.has_sealed
    b.seal()
    assert b.take().rows == 1
