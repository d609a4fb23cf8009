"""Row encoding and batch framing: cheap JSON rows and deterministic dedup tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from seamline.event import new_event
from seamline.record.rows import dedup_token, encode_event, seal


def test_ts_microseconds_are_sent_as_a_string_of_ticks() -> None:
    ev = new_event(event_id=str(uuid.uuid4()), ts=1_795_219_200_123_456)
    assert orjson.loads(encode_event(ev))["ts"] == "1795219200123456"
    assert ev["ts"] == 1_795_219_200_123_456  # the caller's event is not modified


def test_datetime_ts_is_sent_as_iso() -> None:
    ev = new_event(ts=datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    assert orjson.loads(encode_event(ev))["ts"].startswith("2026-11-20T12:00:00")


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
