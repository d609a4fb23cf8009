"""The in-process store's contract (the Redis store's is exercised against a real redis-server in
tests/integration/test_guard_dedup.py): atomic claim, settle only by the owner, expiry, the byte bound."""

from __future__ import annotations

from support.recording import FakeClock

from seamline.guards.dedup_store import Entry, MemoryDedupStore


async def test_claim_then_duplicate_sees_the_claim() -> None:
    store = MemoryDedupStore(FakeClock())
    assert await store.claim("k", b"mine", 10) is None
    assert await store.claim("k", b"theirs", 10) == b"mine"


async def test_only_the_owner_settles_and_release_frees_the_key() -> None:
    store = MemoryDedupStore(FakeClock())
    await store.claim("k", b"mine", 10)
    assert not await store.settle("k", b"not-mine", b"result", 10)
    assert await store.settle("k", b"mine", None, 10)
    assert await store.claim("k", b"next", 10) is None
    assert await store.settle("k", b"next", b"result", 10)
    assert await store.claim("k", b"again", 10) == b"result"


async def test_entries_expire_after_their_window() -> None:
    clock = FakeClock()
    store = MemoryDedupStore(clock)
    await store.claim("k", b"mine", 10)
    clock.advance(10.5)
    assert await store.claim("k", b"later", 10) is None
    assert store.bytes == len(b"later")


def test_bytes_are_bounded() -> None:
    store = MemoryDedupStore(FakeClock(), max_bytes=100)
    assert store.fits(100) and not store.fits(101)


def test_an_entry_round_trips_with_its_exact_body_bytes() -> None:
    e = Entry("done", "rf", "bf", "o", "run", "ev", status=201, reason="Created",
              headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], body=b"\x00\n{\"a\":1}\n\xff")  # fmt: skip
    assert Entry.decode(e.encode()) == e
