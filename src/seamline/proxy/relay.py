"""The upstream's response on its way back: headers through the response stages, the body streamed (the first
N KiB kept for the record), per-chunk read deadlines, and what a failure mid-body means for each side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import aiohttp
from aiohttp import web

from seamline import outcomes as o
from seamline.exchange import Exchange
from seamline.proxy.deadlines import Deadlines
from seamline.proxy.forward import classify_client_error
from seamline.proxy.inbound import HOP_BY_HOP, header_tokens
from seamline.proxy.stage import Headers, ResponseStage
from seamline.responses import ExactResponse, ExactStreamResponse

SMALL_BODY = 64 * 1024
_DROP_SETS_MAX = 64


class Relay:
    """Relays one upstream response to the client (an ordinary HTTP response or a declined upgrade)."""

    def __init__(
        self,
        stages: Sequence[ResponseStage],
        deadlines: Deadlines,
        run_header: str,
        safe: Callable[[str], str],
        on_stage_error: Callable[[str, Exchange], None],
    ) -> None:
        self.stages = tuple(stages)
        self.deadlines = deadlines
        # Hop-by-hop headers dropped; the echoed run ID and traceparent replace any the upstream sent.
        self.drop = HOP_BY_HOP | {run_header.lower(), "traceparent"}
        self._safe = safe
        self._stage_failed = on_stage_error
        # The drop set for each Connection header seen (nearly always the one `keep-alive`): bounded, built once each.
        self._drop_by_connection: dict[tuple[str, ...], frozenset[str]] = {}

    def response_headers(self, ex: Exchange, http: web.BaseRequest, resp: aiohttp.ClientResponse) -> Headers:
        """The headers the client gets: the upstream's, less hop-by-hop, through the response stages."""
        drop = self.drop
        connection = tuple(resp.headers.getall("Connection", ()))
        if connection:
            known = self._drop_by_connection.get(connection)
            if known is None:
                known = frozenset(drop | header_tokens(connection))
                if len(self._drop_by_connection) >= _DROP_SETS_MAX:
                    self._drop_by_connection.clear()
                self._drop_by_connection[connection] = known
            drop = known
        items = list(resp.headers.items())
        ex.response_headers = items
        out = [(k, v) for k, v in items if k.lower() not in drop]  # aiohttp copies it into the response's multidict
        for stage in self.stages:
            try:
                stage.response(ex, http, out)
            except Exception:  # noqa: BLE001 - a broken concern must never break traffic
                self._stage_failed(stage.name, ex)
        return out

    async def relay(self, ex: Exchange, http: web.BaseRequest, resp: aiohttp.ClientResponse) -> web.StreamResponse:
        ex.status = resp.status
        headers = self.response_headers(ex, http, resp)
        tap = ex.response_tap
        assert tap is not None
        keep = ex.replay_capture  # a guarded call only: its exact response, for the duplicate guard
        if keep is not None:
            keep.status, keep.reason, keep.headers = resp.status, resp.reason or "", headers
        length = resp.content_length
        deadlines = self.deadlines
        loop, task = deadlines.here()
        read_s = ex.target.upstream.timeouts.read if ex.target else 10.0
        if length is not None and length <= SMALL_BODY and http.method != "HEAD" and resp.status not in (204, 304):
            # Small, known-length body: one write for headers + body (streaming it costs 3 syscalls).
            deadlines.arm(task, loop.time() + read_s)
            try:
                body = await resp.content.readexactly(length) if length else b""
            except asyncio.CancelledError:
                if not deadlines.expired(task):
                    raise
                resp.release()
                ex.status = 0  # we answer instead of the upstream
                raise classify_client_error(TimeoutError("upstream body read deadline")) from None
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.IncompleteReadError) as e:
                err = classify_client_error(e)
                ex.status = 0  # we answer instead of the upstream
                resp.release()
                raise err from None
            finally:
                deadlines.disarm(task)
                resp.release()
            tap.feed(body)
            if keep is not None:
                keep.tap.feed(body)
                keep.complete = True
            return ExactResponse(status=resp.status, reason=resp.reason, body=body, headers=headers)
        out = ExactStreamResponse(status=resp.status, reason=resp.reason, headers=headers)
        try:
            try:
                await out.prepare(http)
            except (ConnectionError, RuntimeError) as e:
                ex.error_class, ex.error_detail = o.CLIENT_DISCONNECTED, self._safe(str(e))
                return out
            try:
                try:
                    while True:
                        deadlines.arm(task, loop.time() + read_s)  # per-chunk read deadline
                        chunk = await resp.content.readany()
                        if not chunk:
                            break
                        tap.feed(chunk)
                        if keep is not None:
                            keep.tap.feed(chunk)
                        await out.write(chunk)
                except asyncio.CancelledError:
                    if not deadlines.expired(task):
                        raise
                    raise TimeoutError("upstream body read deadline") from None
                finally:
                    deadlines.disarm(task)
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
                # The status line is gone already: abort the client connection so it sees a broken body.
                err = classify_client_error(e)
                ex.error_class, ex.error_detail = err.error_class, self._safe("upstream failed mid-body: " + err.detail)
                if http.transport is not None:
                    http.transport.close()
                return out
            except ConnectionError as e:
                ex.error_class, ex.error_detail = o.CLIENT_DISCONNECTED, self._safe(str(e))
                return out
            await out.write_eof()
            if keep is not None:
                keep.complete = True
            return out
        finally:
            resp.release()
