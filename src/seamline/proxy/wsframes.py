"""WebSocket frame headers (RFC 6455 §5.2), read incrementally as relayed bytes pass. Pure: no I/O.

The relay forwards bytes untouched (so extensions such as permessage-deflate survive); this module only
watches them to count frames and messages and to note the close code. Payloads are skipped, never kept:
the only payload bytes read are the two of a Close frame's status code.
"""

from __future__ import annotations

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPS = frozenset((OP_TEXT, OP_BINARY))
_CONTROL_OPS = frozenset((OP_CLOSE, OP_PING, OP_PONG))

CLOSE_GOING_AWAY = 1001


class FrameCounter:
    """Counts the frames of one direction of a WebSocket connection from its bytes, in any chunking.

    `messages` counts complete data messages (a text or binary frame with FIN, or the final continuation frame
    of a fragmented one); `frames` counts every frame, control frames included. When the bytes stop looking like
    WebSocket frames, `error` says why and counting stops (the relay still forwards them: the endpoints judge).
    """

    __slots__ = (
        "_code",
        "_head",
        "_in_message",
        "_mask",
        "_opcode",
        "_reading_code",
        "_remaining",
        "close_code",
        "close_seen",
        "error",
        "frames",
        "messages",
        "pings",
        "pongs",
    )  # fmt: skip

    def __init__(self) -> None:
        self.frames = 0
        self.messages = 0
        self.pings = 0
        self.pongs = 0
        self.close_seen = False
        self.close_code: int | None = None  # from the first Close frame; None when it carried none
        self.error = ""
        self._head = bytearray()  # the frame header read so far (2 to 14 bytes)
        self._remaining = 0  # payload bytes of the current frame still to skip
        self._mask = b""
        self._code = bytearray()  # the Close frame's status code (its first two payload bytes), as read
        self._reading_code = False
        self._opcode = 0
        self._in_message = False  # a fragmented data message is open

    @property
    def at_boundary(self) -> bool:
        """True between frames: a frame written now would not split one (the idle close relies on it)."""
        return not self.error and self._remaining == 0 and not self._head

    def failed(self) -> bool:
        """The stream broke the framing rules (`error` says how); counting stopped there."""
        return bool(self.error)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Account for the next bytes of the stream."""
        if self.error:
            return
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._remaining:
                take = min(self._remaining, n - i)
                if self._reading_code:
                    self._read_code(view[i : i + take])
                self._remaining -= take
                i += take
                if not self._remaining:
                    self._end_frame()
                continue
            i = self._read_head(view, i)
            if self.failed():
                return

    def _read_head(self, view: memoryview, i: int) -> int:
        head = self._head
        need = _head_size(head)
        while len(head) < need and i < len(view):
            head.append(view[i])
            i += 1
            need = _head_size(head)
        if len(head) < need:
            return i  # the header continues in the next chunk
        self._start_frame(bytes(head))
        head.clear()
        return i

    def _start_frame(self, head: bytes) -> None:
        b0, b1 = head[0], head[1]
        fin, opcode, masked, length = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        if length == 126:
            length = int.from_bytes(head[2:4], "big")
            pos = 4
        elif length == 127:
            length = int.from_bytes(head[2:10], "big")
            pos = 10
            if length >> 63:
                self.error = "frame length has its most significant bit set"
                return
        if opcode in _CONTROL_OPS:
            if not fin or length > 125:
                self.error = "fragmented or oversized control frame"
                return
        elif opcode == OP_CONTINUATION:
            if not self._in_message:
                self.error = "continuation frame outside a message"
                return
        elif opcode not in _DATA_OPS:
            self.error = f"reserved opcode {opcode:#x}"
            return
        elif self._in_message:
            self.error = "new data frame inside a fragmented message"
            return
        self._mask = head[pos : pos + 4] if masked and opcode == OP_CLOSE else b""  # only a close code is unmasked
        self._opcode = opcode | (0x80 if fin else 0)
        self._remaining = length
        self._reading_code = opcode == OP_CLOSE and not self.close_seen and length >= 2
        self._code.clear()
        if not length:
            self._end_frame()

    def _read_code(self, chunk: memoryview) -> None:
        code, mask = self._code, self._mask
        for b in chunk[: 2 - len(code)]:
            code.append(b ^ mask[len(code)] if mask else b)
        if len(code) == 2:
            self.close_code = int.from_bytes(code, "big")
            self._reading_code = False

    def _end_frame(self) -> None:
        self.frames += 1
        fin, opcode = bool(self._opcode & 0x80), self._opcode & 0x0F
        if opcode in _DATA_OPS or opcode == OP_CONTINUATION:
            self._in_message = not fin
            if fin:
                self.messages += 1
        elif opcode == OP_CLOSE:
            self.close_seen = True
        elif opcode == OP_PING:
            self.pings += 1
        else:
            self.pongs += 1
        self._reading_code = False


def _head_size(head: bytearray) -> int:
    """Bytes of the frame header, as far as the bytes read so far tell."""
    if len(head) < 2:
        return 2
    length, masked = head[1] & 0x7F, head[1] & 0x80
    return 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if masked else 0)


def close_frame(code: int, mask: bytes = b"") -> bytes:
    """A Close frame carrying `code`: unmasked (server to client) or masked with a 4-byte key (client to server)."""
    payload = code.to_bytes(2, "big")
    if not mask:
        return bytes((0x80 | OP_CLOSE, len(payload))) + payload
    if len(mask) != 4:
        raise ValueError("a WebSocket mask key is 4 bytes")
    return bytes((0x80 | OP_CLOSE, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
