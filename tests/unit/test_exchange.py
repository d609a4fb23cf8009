"""The Exchange's body buffer: BodyTap keeps the capped prefix of a streamed body and counts the true size."""

from __future__ import annotations

from seamline.exchange import BodyTap

# -- BodyTap (the one body buffer) ------------------------------------------------------------------------------------


def test_body_under_the_cap_is_kept_whole() -> None:
    cap = BodyTap(10)
    cap.feed(b"abc")
    cap.feed(b"def")
    assert (cap.data, cap.total, cap.truncated) == (b"abcdef", 6, False)


def test_body_exactly_at_the_cap_is_not_truncated() -> None:
    cap = BodyTap(4)
    cap.feed(b"abcd")
    assert (cap.data, cap.truncated) == (b"abcd", False)


def test_body_over_the_cap_keeps_the_prefix_and_true_total() -> None:
    cap = BodyTap(5)
    for chunk in (b"abc", b"defgh", b"ijk"):
        cap.feed(chunk)
    assert (cap.data, cap.total, cap.truncated) == (b"abcde", 11, True)


def test_chunks_beyond_the_cap_are_counted_not_kept() -> None:
    cap = BodyTap(4)
    cap.feed(b"abcd")
    for _ in range(1000):
        cap.feed(b"x" * 1024)
    assert len(cap.chunks) == 1 and cap.total == 4 + 1024 * 1000


def test_zero_cap_keeps_nothing() -> None:
    cap = BodyTap(0)
    cap.feed(b"abc")
    assert (cap.data, cap.total, cap.truncated) == (b"", 3, True)


def test_mutable_chunks_are_copied() -> None:
    buf = bytearray(b"abc")
    cap = BodyTap(10)
    cap.feed(memoryview(buf))
    buf[:] = b"xyz"
    assert cap.data == b"abc"


def test_empty_chunks_change_nothing() -> None:
    cap = BodyTap(3)
    cap.feed(b"")
    assert (cap.data, cap.total, cap.truncated) == (b"", 0, False)
