"""Admin routes for reading runs: JSON under /api/runs (and the recorded calls under /api/calls), and a
self-contained HTML run page under /runs; the handoff overview (/handoffs, /api/handoffs) and the shipped alert rules
evaluated now (/api/alerts)."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web

from seamline.errors import problem
from seamline.read import alerting, overview
from seamline.read import queries as runs
from seamline.read.auth import render_html
from seamline.read.web import handoffs as handoffs_web
from seamline.read.web import render

log = logging.getLogger(__name__)

STORE_KEY = web.AppKey("seamline_runs_store", object)

MAX_RUN_ID_LEN = 256
MAX_HANDOFF_LEN = 200
DEFAULT_SINCE = "24h"
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BODY_COLUMNS = ("request_body", "response_body", "request_headers", "response_headers")


class ParamError(ValueError):
    """A query parameter that cannot be used; the message names it and what is allowed."""


def parse_since(text: str) -> timedelta | datetime | None:
    """'90s', '15m', '1h', '2d', '1w', an ISO-8601 instant, or 'all' (no bound)."""
    text = text.strip()
    if text in ("", "all"):
        return None
    m = _DURATION_RE.match(text)
    if m:
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParamError(f"since: {text!r} is neither a duration like 15m, 1h, 2d nor an ISO-8601 time") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def parse_bool(name: str, text: str) -> bool:
    v = text.strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise ParamError(f"{name}: {text!r} is not a boolean (use true or false)")


def parse_list_params(query: Any) -> dict[str, Any]:
    """Validate the /api/runs (and /runs) query string into `runs.list_runs` keyword arguments."""
    out: dict[str, Any] = {"since": parse_since(query.get("since", DEFAULT_SINCE))}
    outcome = query.get("outcome", "").strip()
    if outcome and outcome not in runs.KNOWN_OUTCOMES:
        raise ParamError(f"outcome: {outcome!r} is unknown (use one of {', '.join(runs.KNOWN_OUTCOMES)})")
    out["outcome"] = outcome or None
    handoff = query.get("handoff", "").strip()
    if len(handoff) > MAX_HANDOFF_LEN:
        raise ParamError(f"handoff: longer than {MAX_HANDOFF_LEN} characters")
    out["handoff"] = handoff or None
    out["failed"] = parse_bool("failed", query.get("failed", ""))
    raw_limit = query.get("limit", "50").strip()
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ParamError(f"limit: {raw_limit!r} is not an integer") from None
    if not 1 <= limit <= runs.MAX_LIST_LIMIT:
        raise ParamError(f"limit: must be between 1 and {runs.MAX_LIST_LIMIT}")
    out["limit"] = limit
    return out


def parse_calls_params(query: Any) -> dict[str, Any]:
    """Validate the /api/calls query string into `runs.list_calls` keyword arguments."""
    out: dict[str, Any] = {"since": parse_since(query.get("since", "7d"))}
    for name in ("upstream", "handoff"):
        value = query.get(name, "").strip()
        if len(value) > MAX_HANDOFF_LEN:
            raise ParamError(f"{name}: longer than {MAX_HANDOFF_LEN} characters")
        out[name] = value or None
    wanted = tuple(x.strip() for x in query.get("outcome", "").split(",") if x.strip())
    unknown = [x for x in wanted if x not in runs.KNOWN_OUTCOMES]
    if unknown:
        raise ParamError(f"outcome: {unknown[0]!r} is unknown (use one of {', '.join(runs.KNOWN_OUTCOMES)})")
    out["outcomes"] = wanted or None
    after = query.get("after", "").strip()
    try:
        out["after"] = runs.parse_cursor(after) if after else None
    except ValueError as e:
        raise ParamError(f"after: {e}") from None
    raw_limit = query.get("limit", "200").strip()
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ParamError(f"limit: {raw_limit!r} is not an integer") from None
    if not 1 <= limit <= runs.MAX_CALLS_PAGE:
        raise ParamError(f"limit: must be between 1 and {runs.MAX_CALLS_PAGE}")
    out["limit"] = limit
    return out


def _default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=dumps(value), content_type="application/json")


def _html(text: str, nonce: str, status: int = 200) -> web.Response:
    return render_html(text, nonce, status)


class RunsHandlers:
    """Request handlers bound to one store."""

    def __init__(self, store: Any, *, database: str | None = None) -> None:
        self.store = store
        self.database = database

    async def _load_run(self, run_id: str, *, bodies: bool = True) -> dict[str, Any] | None:
        rows = await runs.get_run(self.store, run_id, database=self.database)
        if not rows:
            return None
        summary = runs.summarize_run(rows)
        if not bodies:
            for row in rows:
                for col in _BODY_COLUMNS:
                    row.pop(col, None)
        return {"run_id": run_id, "summary": summary, "handoffs": rows}

    async def api_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        if len(run_id) > MAX_RUN_ID_LEN:
            return problem(400, "bad-request", "Malformed request", f"run_id: longer than {MAX_RUN_ID_LEN} characters")
        try:
            bodies = parse_bool("bodies", request.query.get("bodies", "true"))
        except ParamError as e:
            return problem(400, "bad-request", "Malformed request", str(e))
        try:
            run = await self._load_run(run_id, bodies=bodies)
        except Exception as e:  # the store is down or the query failed: say so, never a bare 500
            log.exception("run lookup failed")
            return problem(503, "store-unavailable", "Store unavailable", f"could not read the run: {type(e).__name__}")
        if run is None:
            return problem(404, "run-not-found", "Run not found", f"no handoffs recorded for run {run_id!r}", run_id=run_id)
        return _json(run)

    async def api_runs(self, request: web.Request) -> web.Response:
        try:
            params = parse_list_params(request.query)
        except ParamError as e:
            return problem(400, "bad-request", "Malformed request", str(e))
        try:
            rows = await runs.list_runs(self.store, database=self.database, **params)
        except Exception as e:
            log.exception("run listing failed")
            return problem(503, "store-unavailable", "Store unavailable", f"could not list runs: {type(e).__name__}")
        filters = {k: v for k, v in params.items() if k != "since"}
        filters["since"] = runs.resolve_since(params["since"])
        return _json({"runs": rows, "count": len(rows), "filters": filters})

    async def api_calls(self, request: web.Request) -> web.Response:
        """Answered calls with their captured bodies, a page at a time (what `seamline contracts` learns from)."""
        try:
            params = parse_calls_params(request.query)
        except ParamError as e:
            return problem(400, "bad-request", "Malformed request", str(e))
        try:
            page = await runs.list_calls(self.store, database=self.database, **params)
        except Exception as e:
            log.exception("call listing failed")
            return problem(503, "store-unavailable", "Store unavailable", f"could not list calls: {type(e).__name__}")
        return _json({**page, "count": len(page["calls"])})

    async def api_recovery(self, request: web.Request) -> web.Response:
        """GET /api/recovery?since=1h: the recovery metrics over the window (seamline.read.recovery)."""
        from seamline.read.recovery import recovery_metrics

        try:
            since = runs.resolve_since(parse_since(request.query.get("since", DEFAULT_SINCE)))
        except ParamError as e:
            return problem(400, "bad-request", "Malformed request", str(e))
        lower = since or datetime.fromtimestamp(0, UTC)
        try:
            metrics = await recovery_metrics(self.store, lower)
        except Exception as e:
            log.exception("recovery metrics failed")
            return problem(503, "store-unavailable", "Store unavailable", f"could not read the metrics: {type(e).__name__}")
        return _json({"since": lower, "metrics": metrics})

    async def page_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        nonce = secrets.token_urlsafe(16)
        if len(run_id) > MAX_RUN_ID_LEN:
            return _html(render.not_found_page(run_id[:MAX_RUN_ID_LEN]), nonce, status=400)
        try:
            run = await self._load_run(run_id)
        except Exception as e:
            log.exception("run lookup failed")
            return _html(render.error_page(f"could not read the run: {type(e).__name__}"), nonce, status=503)
        if run is None:
            return _html(render.not_found_page(run_id), nonce, status=404)
        data = dumps(run).decode()
        return _html(render.run_page(run, data_json=data, nonce=nonce), nonce)

    async def page_runs(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        query = dict(request.query)
        query.setdefault("failed", "true")
        try:
            params = parse_list_params(query)
        except ParamError as e:
            return _html(render.error_page(str(e)), nonce, status=400)
        try:
            rows = await runs.list_runs(self.store, database=self.database, **params)
        except Exception as e:
            log.exception("run listing failed")
            return _html(render.error_page(f"could not list runs: {type(e).__name__}"), nonce, status=503)
        form = {
            "since": query.get("since", DEFAULT_SINCE),
            "outcome": params["outcome"] or "",
            "handoff": params["handoff"] or "",
            "failed": params["failed"],
            "limit": params["limit"],
        }
        return _html(render.runs_page(rows, form=form, nonce=nonce), nonce)


def parse_window(query: Any) -> str:
    since = str(query.get("since", overview.DEFAULT_WINDOW)).strip()
    if since not in overview.WINDOWS:
        raise ParamError(f"since: {since!r} is not a window of the overview (use one of {', '.join(overview.WINDOWS)})")
    return since


class OverviewHandlers:
    """The handoff overview and the alert check, on the store's default database (the shared SQL is unqualified)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def api_handoffs(self, request: web.Request) -> web.Response:
        try:
            since = parse_window(request.query)
        except ParamError as e:
            return problem(400, "bad-request", "Malformed request", str(e))
        try:
            data = await overview.handoff_health(self.store, since)
        except Exception as e:
            log.exception("handoff overview failed")
            return problem(503, "store-unavailable", "Store unavailable", f"could not read the handoffs: {type(e).__name__}")
        return _json(data)

    async def page_handoffs(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        try:
            since = parse_window(request.query)
        except ParamError as e:
            return _html(render.error_page(str(e)), nonce, status=400)
        try:
            data = await overview.handoff_health(self.store, since)
        except Exception as e:
            log.exception("handoff overview failed")
            return _html(render.error_page(f"could not read the handoffs: {type(e).__name__}"), nonce, status=503)
        return _html(handoffs_web.handoffs_page(data, nonce=nonce), nonce)

    async def api_alerts(self, request: web.Request) -> web.Response:
        try:
            evaluations = await alerting.evaluate(self.store)
        except Exception as e:
            log.exception("alert evaluation failed")
            return problem(503, "store-unavailable", "Store unavailable", f"could not evaluate the rules: {type(e).__name__}")
        alerts = [ev.as_dict() for ev in evaluations]
        return _json({"firing": sum(1 for a in alerts if a["firing"]), "evaluations": alerts})


def setup_routes(app: web.Application, store: Any, *, database: str | None = None) -> None:
    """Register the run API and pages, the handoff overview and the alert check on the admin app."""
    handlers = RunsHandlers(store, database=database)
    app[STORE_KEY] = store
    health = OverviewHandlers(store)
    app.router.add_get("/api/handoffs", health.api_handoffs)
    app.router.add_get("/api/alerts", health.api_alerts)
    app.router.add_get("/handoffs", health.page_handoffs)
    app.router.add_get("/api/runs", handlers.api_runs)
    app.router.add_get("/api/recovery", handlers.api_recovery)
    app.router.add_get("/api/runs/{run_id:.+}", handlers.api_run)
    app.router.add_get("/api/calls", handlers.api_calls)
    app.router.add_get("/runs", handlers.page_runs)
    app.router.add_get("/runs/{run_id:.+}", handlers.page_run)
