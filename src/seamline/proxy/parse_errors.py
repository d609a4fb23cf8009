"""Requests aiohttp's HTTP parser could not read: a stable kind, the status to answer, and a throttled log.

aiohttp's own answer to these is `400 text/plain` echoing the offending bytes, and a traceback at level error per
request (~650 B each, Authorization and Cookie values included). Here the kind comes from the exception's type and
the parser's fixed wording (never from the bytes it quotes), the answer is problem+json naming only the kind, and
the log is one line per kind per interval with the count of those suppressed since. Pure apart from the logger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from aiohttp import http_exceptions as he

log = logging.getLogger("seamline.listener")


class ParseError(NamedTuple):
    kind: str  # the label of seamline_http_parse_errors_total
    status: int
    detail: str  # what was wrong, in words of ours: nothing of the request is quoted


_TOO_LONG = ParseError("too_long", 431, "a request line or header field is longer than server.max_header_bytes")

# (the parser's wording, before the bytes it quotes) → kind; checked in order, first match wins.
_BY_TEXT: tuple[tuple[str, ParseError], ...] = (
    ("HTTPS traffic", ParseError("tls", 400, "TLS was sent to a plain-HTTP port; use http:// (or CONNECT for https)")),
    ("Invalid HTTP version", ParseError("version", 505, "the HTTP version is not supported (HTTP/1.0 and 1.1 are)")),
    ("Too many headers", ParseError("too_many_headers", 431, "the request has too many header fields")),
    ("Content-Length", ParseError("framing", 400, "the request's Content-Length / Transfer-Encoding framing is invalid")),
    ("Transfer-Encoding", ParseError("framing", 400, "the request's Content-Length / Transfer-Encoding framing is invalid")),
    ("chunk", ParseError("framing", 400, "the request's chunked body is malformed")),
    ("char", ParseError("invalid_character", 400, "the request contains a character not allowed there")),
    ("Host", ParseError("header", 400, "the request has no valid Host header")),
    ("header", ParseError("header", 400, "a header field is malformed")),
)
_METHOD = ParseError("method", 400, "the request method is malformed")
_LINE = ParseError("request_line", 400, "the request line is malformed")
_TARGET = ParseError("target", 400, "the request target is malformed")
_OTHER = ParseError("malformed", 400, "the request is not valid HTTP/1.1")


def classify_parse_error(exc: BaseException | None) -> ParseError:
    """The kind of a parser error (an `HttpProcessingError`); anything else is `malformed`."""
    if isinstance(exc, he.LineTooLong):
        return _TOO_LONG
    if isinstance(exc, he.InvalidURLError):
        return _TARGET
    text = exc.message if isinstance(exc, he.HttpProcessingError) else ""
    # The parser's words come before the first blank line; after it, it quotes the request's bytes (never read).
    words = str(text).split("\n\n", 1)[0]
    for needle, err in _BY_TEXT:
        if needle in words:
            return err
    if isinstance(exc, he.BadHttpMethod):
        return _METHOD
    if isinstance(exc, he.BadStatusLine):
        return _LINE
    return _OTHER


class ThrottledLog:
    """At most one warning per key per `interval_s`; the next one says how many were suppressed meanwhile."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log `msg % args` at warning unless `key` was logged less than `interval_s` ago; True when logged."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += " (%d more like it suppressed in the last %.0f s)"
            args = (*args, skipped, now - last if last is not None else 0.0)
        log.warning(msg, *args, extra={"kind": key})
        return True
