"""Responses that add no header the upstream did not send (besides the documented correlation headers).

aiohttp fills in `Content-Type: application/octet-stream` for a body without one and `Server: Python/… aiohttp/…`
(which also discloses versions). A transparent hop must not: a client that sniffs a missing Content-Type, or an
API whose 200 has none, would see a different response through Seamline. Kept from aiohttp: `Date` when the
upstream sent none (RFC 9110 §6.6.1: a recipient with a clock MUST add one when it forwards a response) and the
framing headers of this hop (Content-Length / Transfer-Encoding, Connection).
"""

from __future__ import annotations

from aiohttp import hdrs, web


class _AddNothing:
    """Drops what aiohttp's `_prepare_headers` would add on its own (a private hook: aiohttp is pinned < 4)."""

    async def _prepare_headers(self) -> None:
        headers = self._headers  # type: ignore[attr-defined]
        had_type = hdrs.CONTENT_TYPE in headers
        had_server = hdrs.SERVER in headers
        await super()._prepare_headers()  # type: ignore[misc]
        if not had_type:
            headers.popall(hdrs.CONTENT_TYPE, None)
        if not had_server:
            headers.popall(hdrs.SERVER, None)


class ExactResponse(_AddNothing, web.Response):
    """A whole-body response with exactly the headers given (plus Date and framing)."""


class ExactStreamResponse(_AddNothing, web.StreamResponse):
    """A streamed response with exactly the headers given (plus Date and framing)."""
