"""Row encoding and batch framing: cheap JSON rows and deterministic dedup tokens."""

from __future__ import annotations

import uuid

import orjson
from support.clock import now_us, utc_now

from seamline.event.columns import new_event
from seamline.record.rows import dedup_token, encode_event, seal


def test_ts_microseconds_are_sent_as_a_string_of_ticks() -> None:
    ts = now_us()
    ev = new_event(event_id=str(uuid.uuid4()), ts=ts)
    assert orjson.loads(encode_event(ev))["ts"] == str(ts)
    assert ev["ts"] == ts  # the caller's event is not modified


def test_datetime_ts_is_sent_as_iso() -> None:
    at = utc_now()
    ev = new_event(ts=at)
    assert orjson.loads(encode_event(ev))["ts"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_dedup_token_is_deterministic_and_order_sensitive() -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    assert dedup_token(ids) == dedup_token(list(ids))
    assert dedup_token(ids) != dedup_token(ids[::-1])
    assert dedup_token(ids) != dedup_token(ids[:4])


def test_seal_frames_a_json_array() -> None:
    rows = [encode_event(new_event(event_id=str(uuid.uuid4()))) for _ in range(3)]
    b = seal(rows, ["a", "b", "c"])
    assert b.rows == 3 and len(orjson.loads(b.payload)) == 3
    assert b.token == dedup_token(["a", "b", "c"])
