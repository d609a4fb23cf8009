"""Waits a guard makes on a call's behalf (a retry's backoff, a rate-limit queue), cut short when the client leaves.

aiohttp does not cancel a handler whose client disconnected (`handler_cancellation` is off: an upstream call in
flight must finish and be recorded). A wait is different: nothing was sent for it yet, so a client that left is the
end of the call — a retry nobody will read is not sent, a rate-limit slot is not used for nobody.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from seamline import errors


def connection_lost(http: web.BaseRequest) -> asyncio.Future[None] | None:
    """A future done when the client's connection closes (a `ListenerProtocol`'s), or None when unknowable."""
    lost = getattr(http.protocol, "lost", None)
    return lost() if callable(lost) else None


async def sleep_while_connected(http: web.BaseRequest | None, seconds: float) -> None:
    """Sleep `seconds`; raise `ClientDisconnected` as soon as the client's connection closes."""
    lost = connection_lost(http) if http is not None else None
    if lost is None:
        await asyncio.sleep(seconds)
        return
    if not lost.done():
        try:
            async with asyncio.timeout(seconds):
                await asyncio.shield(lost)  # the shield: the timeout must not cancel the connection's own future
        except TimeoutError:
            return
    raise errors.ClientDisconnected(f"the client closed its connection while Seamline held the call ({seconds:.3g} s wait)")
