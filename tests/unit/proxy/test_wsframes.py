"""The incremental WebSocket frame-header reader, fed frames encoded by the `websockets` library itself."""

from __future__ import annotations

import os

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from seamline.proxy.wsframes import FrameCounter, close_frame

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = (
    Opcode.CONT,
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.CLOSE,
    Opcode.PING,
    Opcode.PONG,
)


def wire(*frames: Frame, masked: bool = True) -> bytes:
    """Frames as a client (masked) or a server (unmasked) sends them; RSV1 kept (websockets sets it only for its
    own permessage-deflate extension)."""
    out = b""
    for f in frames:
        raw = Frame(f.opcode, f.data, f.fin).serialize(mask=masked)
        out += bytes((raw[0] | (0x40 if f.rsv1 else 0),)) + raw[1:]
    return out


def fed(data: bytes, chunk: int | None = None) -> FrameCounter:
    c = FrameCounter()
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        c.feed(data[i : i + step])
    return c


def parse_one(data: bytes, *, mask: bool) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    gen = Frame.parse(reader.read_exact, mask=mask)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    return stop.value.value


CONVERSATION = (
    Frame(OP_TEXT, b"hello"),
    Frame(OP_BINARY, os.urandom(300)),  # 16-bit length
    Frame(OP_PING, b"p"),
    Frame(OP_BINARY, b"x" * 70_000),  # 64-bit length
    Frame(OP_PONG, b""),
    Frame(OP_TEXT, b"", rsv1=True),  # a permessage-deflate frame: RSV1 set, counted like any other
    Frame(OP_CLOSE, Close(1000, "done").serialize()),
)


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 4096])
def test_counts_are_the_same_in_any_chunking(masked: bool, chunk: int | None) -> None:
    c = fed(wire(*CONVERSATION, masked=masked), chunk)
    assert (c.frames, c.messages, c.pings, c.pongs) == (7, 4, 1, 1)
    assert c.close_seen and c.close_code == 1000
    assert c.at_boundary and not c.error


def test_a_fragmented_message_is_one_message_with_control_frames_between_its_fragments() -> None:
    data = wire(
        Frame(OP_TEXT, b"par", fin=False),
        Frame(OP_PING, b""),  # control frames may interleave fragments (RFC 6455 §5.4)
        Frame(OP_CONT, b"t-", fin=False),
        Frame(OP_CONT, b"two"),
        Frame(OP_BINARY, b"next"),
    )
    c = fed(data, 2)
    assert (c.frames, c.messages, c.pings) == (5, 2, 1)


def test_only_the_first_close_code_is_kept_and_a_close_without_one_has_none() -> None:
    bare = fed(wire(Frame(OP_CLOSE, b"")))
    assert bare.close_seen and bare.close_code is None
    two = fed(wire(Frame(OP_CLOSE, Close(4001, "app").serialize()), Frame(OP_CLOSE, Close(1000, "").serialize())), 1)
    assert two.close_code == 4001 and two.frames == 2


def test_mid_frame_is_not_a_boundary() -> None:
    data = wire(Frame(OP_BINARY, b"abcdef"))
    c = FrameCounter()
    c.feed(data[:1])
    assert not c.at_boundary  # inside the header
    c.feed(data[1:8])
    assert not c.at_boundary and c.frames == 0  # inside the payload
    c.feed(data[8:])
    assert c.at_boundary and c.frames == 1


NOT_FRAMES = [
    (bytes((0x83, 0x00)), "reserved opcode"),
    (wire(Frame(OP_CONT, b"x")), "continuation frame outside a message"),
    (bytes((0x89, 126, 0, 200)) + b"x" * 200, "oversized control frame"),
    (bytes((0x09, 0x00)), "fragmented or oversized control frame"),
    (wire(Frame(OP_TEXT, b"a", fin=False), Frame(OP_TEXT, b"b")), "new data frame inside a fragmented message"),
    (bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big"), "most significant bit"),
]


# Named by the reason: masked frames carry random bytes, and pytest-xdist needs the same test IDs in every worker.
@pytest.mark.parametrize("data, why", NOT_FRAMES, ids=[why for _, why in NOT_FRAMES])
def test_bytes_that_are_not_websocket_frames_stop_the_count(data: bytes, why: str) -> None:
    c = fed(data)
    assert why in c.error
    frames = c.frames
    c.feed(wire(Frame(OP_TEXT, b"later")))
    assert c.frames == frames and not c.at_boundary  # counting stopped; nothing is injected into such a stream


def test_close_frames_built_for_either_side_parse_as_valid_frames() -> None:
    to_app = parse_one(close_frame(1001), mask=False)
    to_upstream = parse_one(close_frame(1001, b"\x01\x02\x03\x04"), mask=True)
    for f in (to_app, to_upstream):
        assert f.opcode == OP_CLOSE and f.fin and Close.parse(f.data).code == 1001
    c = fed(close_frame(1001, b"\xff\x00\xaa\x55"))
    assert c.close_code == 1001
    with pytest.raises(ValueError):
        close_frame(1000, b"\x01")
