"""How the proxy learns that a call is a replay, without letting a caller claim it.

The sidecar's replayer (the admin API's client of its own proxy listener) sends `X-Seamline-Replay:
<replayed event>;<new event>;<expiry>;<HMAC>`, the HMAC-SHA256 over those fields and the run ID, keyed by a secret
that lives only in this process (minted at start, never configured, never stored). The `ReplayMark` stage
accepts a mark only when its HMAC verifies for the call's run ID, it has not expired, and its new event ID has not
been used before (a mark is single-use); then the call is recorded with `replay_of` and that event ID. Anything else
(no secret can forge it) is ignored: the call goes on as an ordinary one. Like every `X-Seamline-*` header, the
mark never goes upstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from aiohttp import web

from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound

HEADER = "X-Seamline-Replay"
HEADER_L = HEADER.lower()
TTL_S = 120.0  # a mark is used right after it is signed: it only has to outlive the request's trip to the listener
_ID = re.compile(r"^[0-9a-fA-F-]{32,36}$")


class ReplayMarks:
    """Signs marks (the replayer) and checks them (the proxy stage): one secret per process."""

    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.clock = clock
        self._used: dict[str, float] = {}  # new event ID → expiry (single use)

    def __repr__(self) -> str:  # never the secret
        return "ReplayMarks()"

    def _mac(self, replay_of: str, event_id: str, run_id: str, expires: int) -> str:
        msg = f"seamline-replay\n{replay_of}\n{event_id}\n{run_id}\n{expires}".encode()
        return base64.urlsafe_b64encode(hmac.new(self._secret, msg, hashlib.sha256).digest()).decode().rstrip("=")

    def sign(self, replay_of: str, event_id: str, run_id: str) -> str:
        """The header value marking a call of `run_id` as event `event_id`, a replay of `replay_of`."""
        expires = int(self.clock() + TTL_S)
        return f"{replay_of};{event_id};{expires};{self._mac(replay_of, event_id, run_id, expires)}"

    def verify(self, value: str, run_id: str) -> tuple[str, str] | None:
        """(replay_of, event_id) of a valid, unexpired, unused mark for `run_id`; None otherwise."""
        parts = value.split(";")
        if len(parts) != 4 or not parts[2].isdigit() or len(parts[2]) > 12:
            return None
        replay_of, event_id, expires_text, mac = parts
        if not (_ID.match(replay_of) and _ID.match(event_id)):
            return None
        expires, now = int(expires_text), self.clock()
        if expires < now or not hmac.compare_digest(mac, self._mac(replay_of, event_id, run_id, expires)):
            return None
        self._used = {k: v for k, v in self._used.items() if v >= now} if len(self._used) > 1024 else self._used
        if event_id in self._used:
            return None
        self._used[event_id] = float(expires)
        return replay_of, event_id


class ReplayMark:
    """Request stage (after correlate: the mark is bound to the run ID): a valid mark sets `replay_of` and the
    event ID the replayer will look the call up by."""

    name = "replay_mark"
    essential = False

    def __init__(self, marks: ReplayMarks) -> None:
        self.marks = marks

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        value = heads.first(HEADER_L)
        if not value:
            return
        got = self.marks.verify(value, ex.run_id)
        if got is not None:
            ex.replay_of, ex.event_id = got
