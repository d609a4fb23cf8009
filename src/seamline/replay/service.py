"""The replayer: looks an event up in the store, plans its replay, sends it through this sidecar's proxy listener
(so every guard applies and it is recorded like any call) and reads back what became of it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from yarl import URL

from seamline.config.models import Config
from seamline.event.columns import COLUMN_NAMES
from seamline.ids import new_event_id
from seamline.replay.mark import HEADER, ReplayMarks
from seamline.replay.plan import ReplayRequest, plan

log = logging.getLogger("seamline.replay")

REPLAYED_HEADER = "Seamline-Replayed"
SEND_TIMEOUT_S = 300.0  # the proxy answers within its own deadlines (timeouts, retries); this only bounds a hang
_RESULT_COLUMNS = ("event_id", "status", "outcome", "error_class", "guard", "attempt", "replay_of")


class EventNotFound(LookupError):
    """No recorded event has this ID."""


class Replayer:
    """One per sidecar: `await replay(event_id, force=…, idempotency_key=…)` → the outcome of the replay."""

    def __init__(
        self,
        config: Config,
        store: Any,
        marks: ReplayMarks,
        proxy_url: Callable[[], str],
        flush: Callable[[], Awaitable[bool]],
    ) -> None:
        self.config = config
        self.store = store
        self.marks = marks
        self.proxy_url = proxy_url
        self.flush = flush
        self.run_header = config.server.run_id_header
        self._tokens = {app: token for token, app in config.server.client_tokens.items()}
        self._session: aiohttp.ClientSession | None = None

    async def event(self, event_id: str) -> dict[str, Any]:
        rows = await self.store.query(
            f"SELECT {', '.join(COLUMN_NAMES)} FROM handoffs WHERE event_id = toUUIDOrZero({{id:String}}) LIMIT 1",
            {"id": event_id},
        )
        if not rows:
            raise EventNotFound(event_id)
        row = dict(rows[0])
        row["event_id"] = str(row["event_id"])
        return row

    async def replay(self, event_id: str, *, force: bool = False, idempotency_key: str = "") -> dict[str, Any]:
        """Replay one event; raises `EventNotFound`, or `plan.Refusal` (nothing sent)."""
        row = await self.event(event_id)
        req = plan(self.config, row, force=force, idempotency_key=idempotency_key)
        new_id = new_event_id()
        status, replayed, problem_type = await self._send(req, row, new_id)
        log.info(
            "replayed event", extra={"run_id": req.run_id, "event_id": event_id, "replay_event_id": new_id, "status": status}
        )
        result: dict[str, Any] = {
            "event_id": event_id,
            "replay_event_id": new_id,
            "run_id": req.run_id,
            "handoff": req.handoff,
            "safety": req.safety,
            "status": status,
            "replayed_by_guard": replayed,  # the duplicate guard answered with a stored response: no upstream call
            "problem_type": problem_type,
            "outcome": "",
            "error_class": "",
            "guard": "",
            "attempts": 0,
        }
        try:
            result.update(await self._recorded(new_id))
        except Exception:  # it was sent: report that, even when its record cannot be read back yet
            log.exception("replay sent, its record could not be read back", extra={"event_id": event_id})
        return result

    async def _send(self, req: ReplayRequest, row: dict[str, Any], new_id: str) -> tuple[int, bool, str]:
        headers = [*req.headers, (self.run_header, req.run_id), (HEADER, self.marks.sign(req.event_id, new_id, req.run_id))]
        if req.idempotency_key:
            headers.append(("Idempotency-Key", req.idempotency_key))
        for name, column in (("X-Seamline-Tenant", "tenant"), ("X-Seamline-App", "source_app")):
            if row.get(column):
                headers.append((name, str(row[column])))
        token = self._tokens.get(str(row.get("source_app") or "")) or next(iter(self.config.server.client_tokens), None)
        if token:
            headers.append(("X-Seamline-Token", token))
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S), auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        async with self._session.request(
            req.method, URL(self.proxy_url() + req.target, encoded=True), headers=headers, data=req.body if req.body else None,
            allow_redirects=False,
        ) as resp:  # fmt: skip
            problem_type = ""
            if resp.content_type == "application/problem+json" and REPLAYED_HEADER not in resp.headers:
                try:
                    problem_type = str(orjson.loads(await resp.content.read(65536)).get("type", ""))
                except (orjson.JSONDecodeError, AttributeError):
                    problem_type = ""
            else:
                await resp.read()
            return resp.status, resp.headers.get(REPLAYED_HEADER) == "true", problem_type.rsplit("/", 1)[-1]

    async def _recorded(self, new_id: str) -> dict[str, Any]:
        """The recorded outcome of the replay (its last attempt, when the sidecar retried it); {} when not stored yet."""
        if not await self.flush():
            return {}
        rows = await self.store.query(
            f"SELECT {', '.join(_RESULT_COLUMNS)} FROM handoffs WHERE event_id = toUUIDOrZero({{id:String}}) "
            "OR retry_of = {id:String} ORDER BY ts, attempt",
            {"id": new_id},
        )
        if not rows:
            return {}
        last = rows[-1]
        return {
            "outcome": last["outcome"],
            "error_class": last["error_class"],
            "guard": last["guard"],
            "attempts": len(rows),
            "last_event_id": str(last["event_id"]),
        }

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
