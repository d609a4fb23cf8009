"""The on-disk spool: framing, order, corruption, cap, unwritable directory, crash survival."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seamline.record.rows import Batch
from seamline.record.spool import MAGIC, Spool, SpoolError, SpoolFull, encode_record


def batch(i: int, size: int = 100) -> Batch:
    return Batch(f"tok-{i}", i + 1, b"[" + (b"x" * size) + b"]")


def drain(spool: Spool) -> list[Batch]:
    out = []
    while (b := spool.peek()) is not None:
        out.append(b)
        spool.ack()
    return out


def test_round_trip_in_order_and_segments_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, segment_bytes=1000)
    spool.open()
    for i in range(20):
        spool.append(batch(i))
    assert spool.records == 20
    assert len(list(tmp_path.glob("*.seg"))) > 1  # rolled over segments
    got = drain(spool)
    assert [b.token for b in got] == [f"tok-{i}" for i in range(20)]
    assert [b.rows for b in got] == [i + 1 for i in range(20)]
    assert got[3].payload == batch(3).payload
    assert spool.records == 0 and spool.bytes == 0
    assert list(tmp_path.glob("*.seg")) == []


def test_peek_without_ack_returns_the_same_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.open()
    spool.append(batch(1))
    spool.append(batch(2))
    assert spool.peek() == spool.peek() == batch(1)
    spool.ack()
    assert spool.peek() == batch(2)


def test_survives_reopen_like_a_crash(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1 << 20)
    first.open()
    for i in range(5):
        first.append(batch(i))
    # no close(): the process "dies"; a new process opens the directory
    second = Spool(tmp_path, 1 << 20)
    second.open()
    assert second.records == 5
    second.append(batch(5))
    assert [b.token for b in drain(second)] == [f"tok-{i}" for i in range(6)]


def test_corrupt_record_is_skipped_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.open()
    for i in range(3):
        spool.append(batch(i))
    seg = next(tmp_path.glob("*.seg"))
    data = bytearray(seg.read_bytes())
    second = len(encode_record(batch(0)))
    data[second + 20] ^= 0xFF  # flip a payload byte of record 2: CRC mismatch
    seg.write_bytes(bytes(data))
    reopened = Spool(tmp_path, 1 << 20)
    reopened.open()
    with caplog.at_level("ERROR", logger="seamline.record.spool"):
        got = drain(reopened)
    assert [b.token for b in got] == ["tok-0", "tok-2"]
    assert reopened.corrupt == 1
    assert "spool corrupt record skipped" in caplog.text


def test_garbage_length_and_torn_tail_resync(tmp_path: Path) -> None:
    good = [encode_record(batch(i)) for i in range(3)]
    blob = good[0] + MAGIC + b"\xff\xff\xff\x7f" + b"\0\0\0\0" + b"junk" + good[1] + good[2][:-5]
    (tmp_path / "0000000000000001.seg").write_bytes(blob)
    (tmp_path / "0000000000000002.seg").write_bytes(encode_record(batch(9)))
    spool = Spool(tmp_path, 1 << 20)
    spool.open()
    assert [b.token for b in drain(spool)] == ["tok-0", "tok-1", "tok-9"]
    assert spool.corrupt == 2  # the bogus header and the torn tail
    assert list(tmp_path.glob("*.seg")) == []


def test_cap_raises_spool_full(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1000)
    spool.open()
    spool.append(batch(0, size=400))
    with pytest.raises(SpoolFull):
        spool.append(batch(1, size=700))
    assert spool.records == 1
    spool.append(batch(2, size=100))  # a smaller one still fits


def test_unwritable_directory_is_a_loud_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = tmp_path / "file-not-dir"
        target.write_text("x")  # root ignores chmod; a path under a regular file is unwritable for anyone
        spool = Spool(target / "spool", 1 << 20)
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        spool = Spool(ro / "spool", 1 << 20)
    with pytest.raises(SpoolError):
        spool.open()
    with pytest.raises(SpoolError):
        spool.append(batch(0))


def test_disappearing_directory_fails_append_with_spool_error(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    spool = Spool(d, 1 << 20)
    spool.open()
    spool.append(batch(0))
    spool.close()
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    d.write_text("now a file")
    with pytest.raises(SpoolError):
        spool.append(batch(1))


def test_a_batch_acknowledged_elsewhere_is_skipped_written_or_not(tmp_path: Path) -> None:
    """Write-ahead copies (the Recorder's max_unacked_ms): skipped once their own insert was acknowledged."""
    spool = Spool(tmp_path, 1 << 20)
    spool.open()
    spool.append(Batch("tok-0", 1, b"[0]", since=5.0))
    spool.append(Batch("tok-1", 1, b"[1]", since=6.0))
    assert spool.oldest_since == 5.0
    spool.skip("tok-0")  # written, then acknowledged: not replayed
    spool.skip("tok-2")  # acknowledged before it reached the disk: not written
    spool.append(Batch("tok-2", 1, b"[2]", since=7.0))
    assert spool.records == 2
    assert [b.token for b in drain(spool)] == ["tok-1"]
    assert spool.records == 0 and spool.oldest_since is None
    # After a crash the skips are gone: the copy is replayed (and ClickHouse drops it by its token).
    spool.append(Batch("tok-3", 1, b"[3]"))
    spool.skip("tok-3")
    spool.close()
    again = Spool(tmp_path, 1 << 20)
    again.open()
    assert again.oldest_since is not None
    assert [b.token for b in drain(again)] == ["tok-3"]
