"""WebSocket upgrades to configured upstreams: the opening handshake relayed as HTTP, then the connection as bytes.

Why a byte relay and not aiohttp's WebSocket client and server: relaying bytes keeps everything the two ends
negotiated exactly as they sent it — the subprotocol, permessage-deflate (its compressed frames, RSV bits and
context takeover), their own pings and close handshake. Terminating the WebSocket in Seamline would re-encode
every message and make Seamline negotiate the extensions itself, so the upstream would see Seamline's client,
not the app's. The frames are only watched as they pass (`seamline.wsframes`), to count them; payloads are
never stored.

The handshake goes through its own pooled client (a `Forwarder` of its own): the same guarded DNS, TLS settings
and timeouts as HTTP, while open WebSockets never hold connections of the upstream's HTTP pool.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from seamline import errors
from seamline.config.models import Config
from seamline.exchange import Exchange
from seamline.proxy.deadlines import Deadlines
from seamline.proxy.forward import Forwarder, classify_client_error
from seamline.proxy.inbound import header_tokens
from seamline.proxy.routing import Target
from seamline.proxy.tunnel import TakenOver, relay
from seamline.proxy.wsframes import CLOSE_GOING_AWAY, FrameCounter, close_frame
from seamline.responses import ExactStreamResponse

# RFC 6455 §7.4.1: codes for reporting a close that carried none (never sent on the wire).
_NO_STATUS, _ABNORMAL = 1005, 1006


def websocket_offer(method: str, upgrade: Sequence[str], connection: Sequence[str], has_body: bool) -> bool:
    """Is this a WebSocket opening handshake (RFC 6455 §4.1: GET, `Upgrade: websocket`, `Connection: upgrade`)?

    Any other upgrade offer (h2c, …) is declined the way an upstream that does not speak it would: the request
    goes on over HTTP/1.1 without it.
    """
    return method == "GET" and not has_body and "websocket" in header_tokens(upgrade) and "upgrade" in header_tokens(connection)


def upgrade_headers(upgrade: Sequence[str]) -> dict[str, str]:
    """The hop-by-hop headers that carry the offer to the upstream (the proxy drops them from every request)."""
    return {"Connection": "Upgrade", "Upgrade": ", ".join(upgrade)}


class _Directions:
    """Frame counts both ways, who started the close, and whether the close handshake is done."""

    def __init__(self) -> None:
        self.sent = FrameCounter()  # app → upstream
        self.received = FrameCounter()  # upstream → app
        self.closer = ""
        self.closed = asyncio.Event()  # a Close frame went each way: the connections have `linger` left to end

    def on_sent(self, data: bytes) -> None:
        self.sent.feed(data)
        if not self.closer and self.sent.close_seen:
            self.closer = "client"
        self._check()

    def on_received(self, data: bytes) -> None:
        self.received.feed(data)
        if not self.closer and self.received.close_seen:
            self.closer = "upstream"
        self._check()

    def _check(self) -> None:
        if self.sent.close_seen and self.received.close_seen:
            self.closed.set()


class WebSocketRelay:
    """Opens upstream WebSockets and relays them; `shutdown()` ends the open ones (1001), `close()` the pool."""

    def __init__(self, config: Config, deadlines: Deadlines) -> None:
        self._forwarder = Forwarder(config, deadlines)
        self._stop = asyncio.Event()

    async def handshake(self, target: Target, headers: CIMultiDict[str]) -> aiohttp.ClientResponse:
        """Send the opening handshake upstream; the response (a 101, or any other answer, body unread)."""
        try:
            return await self._forwarder.send(target, "GET", headers, None)
        except errors.ProxyError:
            raise
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise classify_client_error(exc) from None

    async def relay(
        self,
        request: web.BaseRequest,
        ex: Exchange,
        resp: aiohttp.ClientResponse,
        drop: frozenset[str] | set[str],
        echo: dict[str, str],
    ) -> web.StreamResponse:
        """After the upstream's 101: answer the app's 101 (the upstream's headers, minus `drop`, plus `echo`), then
        relay the frames until either side closes, the idle timeout passes, or Seamline shuts down."""
        assert ex.target is not None
        timeouts = ex.target.upstream.timeouts
        ex.status = resp.status
        ex.response_headers = list(resp.headers.items())
        ex.request_tap = ex.response_tap = None  # no HTTP bodies: the frames are counted instead
        headers = [(k, v) for k, v in ex.response_headers if k.lower() not in drop]
        headers += [("Connection", "Upgrade"), ("Upgrade", resp.headers.get("Upgrade", "websocket")), *echo.items()]
        out = ExactStreamResponse(status=resp.status, reason=resp.reason, headers=headers)
        connection = resp.connection
        try:
            try:
                await out.prepare(request)
            except (ConnectionError, RuntimeError) as e:
                ex.error_class, ex.error_detail = "client_disconnected", str(e)[:200]
                return out
            if connection is None or connection.transport is None:  # the upstream went away with its 101
                ex.error_class, ex.error_detail = "connect", "the upstream closed the connection after its 101"
                if request.transport is not None:
                    request.transport.close()
                return out
            client, upstream = TakenOver.inbound(request), TakenOver.upstream(connection)
            seen = _Directions()
            try:
                moved = await relay(
                    client,
                    upstream,
                    linger=timeouts.read,
                    idle=timeouts.websocket_idle,
                    stop=self._stop,
                    settled=seen.closed,
                    on_sent=seen.on_sent,
                    on_received=seen.on_received,
                )
                if moved.ended in ("idle", "stopped"):
                    _going_away(client, upstream, seen)
            finally:
                client.close()
                upstream.close()
        finally:
            resp.close()  # never back to the pool: the connection was upgraded
        ex.extra["tunnel"] = (moved.sent, moved.received)
        ex.attributes.update(_attributes(seen, moved.ended, moved.sent, moved.received))
        return out

    def shutdown(self) -> None:
        """End every open relay now (a 1001 Going Away to both sides); new ones end as soon as they open."""
        self._stop.set()

    async def close(self) -> None:
        await self._forwarder.close()


def _going_away(client: TakenOver, upstream: TakenOver, seen: _Directions) -> None:
    """Seamline ends the connection: a Close frame to each side not already closing, if it splits no frame."""
    if seen.received.at_boundary and not seen.received.close_seen:
        client.send_last(close_frame(CLOSE_GOING_AWAY))  # to the app we are the server: unmasked
    if seen.sent.at_boundary and not seen.sent.close_seen:
        upstream.send_last(close_frame(CLOSE_GOING_AWAY, secrets.token_bytes(4)))  # to the upstream, masked


def _attributes(seen: _Directions, ended: str, sent: int, received: int) -> dict[str, str]:
    """What is recorded of a WebSocket connection: counts each way and how it closed (never a payload)."""
    closer, code = seen.closer, None
    if closer:
        first = seen.sent if closer == "client" else seen.received
        code = first.close_code if first.close_code is not None else _NO_STATUS
    elif ended in ("idle", "stopped"):
        closer, code = ("idle_timeout" if ended == "idle" else "shutdown"), CLOSE_GOING_AWAY
    else:
        closer, code = ended, _ABNORMAL  # the connection ended without a Close frame
    out = {
        "ws_messages_sent": str(seen.sent.messages),
        "ws_messages_received": str(seen.received.messages),
        "ws_frames_sent": str(seen.sent.frames),
        "ws_frames_received": str(seen.received.frames),
        "ws_bytes_sent": str(sent),
        "ws_bytes_received": str(received),
        "ws_closed_by": closer,
        "ws_close_code": str(code),
    }
    errors_seen = [f"{side}: {c.error}" for side, c in (("sent", seen.sent), ("received", seen.received)) if c.error]
    if errors_seen:
        out["ws_frame_error"] = "; ".join(errors_seen)[:200]
    return out


def mark(ex: Exchange) -> None:
    """Record the exchange as a WebSocket, keeping how the app reached Seamline (reverse | forward)."""
    if ex.mode != "websocket":
        ex.attributes["ws_via"] = ex.mode
        ex.mode = "websocket"
