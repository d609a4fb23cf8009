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


# -- attempts (retries) -----------------------------------------------------------------------------------------------


def test_next_attempt_keeps_the_finished_one_and_starts_afresh() -> None:
    from seamline.exchange import Exchange
    from seamline.outcomes import NONE

    ex = Exchange(ts_us=1, t0=1.0, mode="reverse", method="GET", run_id="r", attempt=1)
    ex.request_tap, ex.response_tap = BodyTap(8), BodyTap(8)
    ex.response_tap.feed(b"busy")
    ex.status, ex.ttfb_s, ex.duration_s, ex.error_class = 503, 0.1, 0.2, "server_error"
    ex.attributes["k"] = "v"
    first = ex.next_attempt()
    assert first.event_id and first.attempt == 1 and first.status == 503 and first.response_tap is not None
    assert first.response_tap.data == b"busy" and first.retry_of == "" and first.prior_attempts == []
    assert (ex.attempt, ex.retry_of, ex.status, ex.error_class, ex.duration_s) == (2, first.event_id, 0, NONE, 0.0)
    assert ex.event_id not in ("", first.event_id)
    assert ex.response_tap is not None and ex.response_tap.total == 0 and ex.request_tap is first.request_tap
    ex.attributes["k2"] = "v2"
    assert "k2" not in first.attributes  # each attempt's record is its own
    second = ex.next_attempt()
    assert ex.prior_attempts == [first, second]
    assert (ex.attempt, ex.retry_of, second.retry_of) == (3, first.event_id, first.event_id)  # all name the first
    ex.t0 = 5.0
    assert ex.started_t0 == 1.0
