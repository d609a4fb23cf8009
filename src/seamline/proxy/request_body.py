"""The client's request body on its way upstream: `Expect: 100-continue`, and deadlines that blame the right side.

Two waits look alike from the proxy's task and are not: a client that is slow to send its body (its fault:
408, class `client_timeout`, bounded by `timeouts.request_body_idle` between chunks) and an upstream that is
slow to take it or to answer (its fault: 504, bounded by `timeouts.read`). So the upstream's response deadline
(`min(total, read)`) starts when the last body byte has been handed over, never while the client is uploading:
a 200 KB body sent at 16 KiB/s for 12 s reaches the upstream and gets its answer.

The body generator runs in aiohttp's body-writer task, not in the proxy's task (`owner`); an error raised here
reaches the proxy wrapped in aiohttp's ClientConnectionError, with this error as its `__cause__`
(`forwarder.classify_client_error` looks there first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from seamline import errors
from seamline.exchange import BodyTap
from seamline.proxy.deadlines import Deadlines

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def send_continue(request: web.BaseRequest, expect: str) -> None:
    """Answer `Expect: 100-continue` ourselves, once, right before the body is first read (RFC 9110 §10.1.1).

    aiohttp's low-level server leaves this to the handler; without it curl waits 1 s per upload before sending
    anyway. The request was already routed and checked, so a refused one gets its final answer instead.
    """
    if expect.strip().lower() != "100-continue" or request.version < (1, 1):
        return
    writer = request.writer
    if writer is not None:
        await writer.write(_CONTINUE)


class BodyDeadlines:
    """Who to blame while the body moves: the client (idle gap) or the upstream (backpressure, then its answer)."""

    __slots__ = ("answer_s", "answered", "deadlines", "failure", "idle_s", "owner", "read_s")

    def __init__(self, deadlines: Deadlines, owner: asyncio.Task[object], idle_s: float, read_s: float, answer_s: float) -> None:
        self.deadlines = deadlines
        self.owner = owner  # the proxy's task, waiting for the upstream's response
        self.idle_s = idle_s
        self.read_s = read_s
        self.answer_s = answer_s
        self.answered = False  # the response headers arrived: the relay owns the owner's deadline now
        # Why the body stopped, when it was the client's doing (over the limit, too slow). aiohttp may report the
        # aborted upload as something else (the upstream's reset can win the race): this answer wins.
        self.failure: errors.ProxyError | None = None

    def _arm_owner(self, seconds: float) -> None:
        if not self.answered:
            self.deadlines.arm(self.owner, self.deadlines.here()[0].time() + seconds)

    async def read_chunk(self, request: web.BaseRequest) -> bytes:
        """The next chunk from the client, within `idle_s`; the owner is not blamed meanwhile."""
        loop, me = self.deadlines.here()
        self._arm_owner(self.idle_s + 1.0)  # a backstop only: our own deadline below fires first
        self.deadlines.arm(me, loop.time() + self.idle_s)
        try:
            return await request.content.readany()
        except asyncio.CancelledError:
            if not self.deadlines.expired(me):
                raise
            me.uncancel()
            self.failure = errors.ClientBodyTimeout(f"no request body data for {self.idle_s:g} s (timeouts.request_body_idle)")
            raise self.failure from None
        finally:
            self.deadlines.disarm(me)

    def handed_over(self) -> None:
        """A chunk goes upstream: the upstream has `read_s` to take it."""
        self._arm_owner(self.read_s)

    def body_done(self) -> None:
        """The whole body was sent: the upstream has `min(total, read)` to answer."""
        self._arm_owner(self.answer_s)


async def read_known_body(request: web.BaseRequest, length: int, timing: BodyDeadlines) -> bytes:
    """A small body of known length, read whole (headers and body then leave in one write)."""
    parts: list[bytes] = []
    got = 0
    while got < length:
        chunk = await timing.read_chunk(request)
        if not chunk:
            raise errors.BadRequest("the request body ended before its Content-Length")
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def stream_body(
    request: web.BaseRequest, tap: BodyTap, timing: BodyDeadlines, limit: int | None, head: list[bytes] | None = None
) -> AsyncIterator[bytes]:
    """The body as it arrives (after `head`, chunks already read), kept in `tap`; over `limit` → 413."""
    for chunk in head or ():
        timing.handed_over()
        yield chunk
    while True:
        chunk = await timing.read_chunk(request)
        if not chunk:
            break
        tap.feed(chunk)
        if limit is not None and tap.total > limit:
            # Raised inside aiohttp's body writer: the upload is aborted (its connection closed, no last chunk sent),
            # so the upstream sees a cut-off body, never one that looks whole.
            timing.failure = errors.PayloadTooLarge(f"request body exceeds {limit} bytes")
            raise timing.failure
        timing.handed_over()
        yield chunk
    timing.body_done()
