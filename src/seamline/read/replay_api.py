"""`POST /api/events/{event_id}/replay` on the admin listener: the rules of `seamline replay` (seamline.replay.plan).

Body (JSON, optional fields): `{"force": false, "idempotency_key": ""}`. The request must say
`Content-Type: application/json`: a web page cannot send that cross-origin without a CORS preflight this listener
never grants, so a page the operator visits cannot trigger a replay (the loopback-only mode has no token to check).
Answers 200 with the replay's outcome, 404 for an unknown event, problem+json 409 when the event cannot or may not
be replayed (nothing is sent), 400 for a malformed request, 503 when the store cannot be read.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from aiohttp import web

from seamline.errors import problem
from seamline.replay.plan import Refusal
from seamline.replay.service import EventNotFound, Replayer

log = logging.getLogger(__name__)

_EVENT_ID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
MAX_BODY = 4096


def _bad(detail: str) -> web.Response:
    return problem(400, "bad-request", "Malformed request", detail)


def parse_options(raw: bytes) -> tuple[bool, str]:
    """(force, idempotency_key) from the JSON body; ValueError naming what is wrong."""
    if not raw.strip():
        return False, ""
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(doc) - {"force", "idempotency_key"})
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)[:200]} (use force, idempotency_key)")
    force, key = doc.get("force", False), doc.get("idempotency_key") or ""
    if not isinstance(force, bool):
        raise ValueError("force: must be true or false")
    if not isinstance(key, str):
        raise ValueError("idempotency_key: must be a string")
    return force, key


class ReplayHandler:
    def __init__(self, replayer: Replayer) -> None:
        self.replayer = replayer

    async def replay(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        if not _EVENT_ID.match(event_id):
            return _bad("event_id: not an event ID (a UUID)")
        if request.content_type != "application/json":
            return problem(
                415, "unsupported-media-type", "JSON required", "send the replay options as Content-Type: application/json"
            )
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _bad(f"the body is larger than {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _bad(f"the body is larger than {MAX_BODY} bytes")
        try:
            force, key = parse_options(raw)
        except ValueError as e:
            return _bad(str(e))
        try:
            result = await self.replayer.replay(event_id, force=force, idempotency_key=key)
        except EventNotFound:
            return problem(404, "event-not-found", "Event not found", f"no event {event_id} is recorded", event_id=event_id)
        except Refusal as r:
            return problem(r.status, r.slug, r.title, r.detail, event_id=event_id)
        except Exception as e:  # the store or the proxy listener failed: say so, never a bare 500
            log.exception("replay failed", extra={"event_id": event_id})
            return problem(503, "replay-failed", "Replay failed", f"the replay could not be done: {type(e).__name__}")
        return web.Response(body=orjson.dumps(result, default=str), content_type="application/json")


def setup_replay_routes(app: web.Application, replayer: Replayer) -> None:
    app.router.add_post("/api/events/{event_id}/replay", ReplayHandler(replayer).replay)
