"""Handoff health over a window: the overview dashboard's SQL (`seamline.read.sql`), run by Seamline itself, with the
change against the previous window of the same length and a sparkline series per handoff; worst handoff first.

Serves `/handoffs`, `/api/handoffs` and `seamline top` (one shape: `handoff_health()`'s dict, JSON-ready).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from seamline.read.macros import expand
from seamline.read.queries import QueryStore
from seamline.read.sql import handoff_health_sql, handoff_trend_sql

WINDOWS: Final = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
DEFAULT_WINDOW: Final = "1h"
SPARK_POINTS: Final = 24
# Compared with the previous window; NULL rates (nothing to judge) stay None.
_COMPARED: Final = ("calls", "http_success_pct", "business_success_pct", "p95_ms", "silent_failures")
_INTS: Final = (
    "calls",
    "validated",
    "ok",
    "silent_failures",
    "failed",
    "refused",
    "rate_limited",
    "auth_expired",
    "duplicates_prevented",
)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    row = dict(raw)
    for k in _INTS:
        row[k] = int(row.get(k) or 0)
    for k in ("http_success_pct", "business_success_pct", "p50_ms", "p95_ms"):
        row[k] = _num(row.get(k))
    for k in ("p50_ms", "p95_ms"):  # quantileIf over no upstream call: NaN, not a number to show
        if row[k] is not None and row[k] != row[k]:
            row[k] = None
    row["handoff"] = str(row.get("handoff") or "")
    row["top_error_class"] = str(row.get("top_error_class") or "")
    row["last_failed_run"] = str(row.get("last_failed_run") or "")
    return row


def change(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, float | None]:
    """Current minus previous for each compared figure (percentage points for rates; None when either is unknown)."""
    out: dict[str, float | None] = {}
    for k in _COMPARED:
        now, before = current.get(k), (previous or {}).get(k)
        if k in ("calls", "silent_failures") and previous is None:
            before = 0
        out[k] = None if now is None or before is None else round(float(now) - float(before), 2)
    return out


def worst_first_key(row: dict[str, Any]) -> tuple[float, float, float, int, str]:
    """Lowest business success first (a handoff with nothing judged last), then HTTP success, then the bigger drop."""
    business = row.get("business_success_pct")
    http = row.get("http_success_pct")
    drop = (row.get("change") or {}).get("business_success_pct")
    return (
        101.0 if business is None else float(business),
        101.0 if http is None else float(http),
        0.0 if drop is None else float(drop),
        -int(row.get("failed") or 0),
        str(row.get("handoff") or ""),
    )


def _buckets(frm: datetime, to: datetime, interval_s: int) -> list[int]:
    """The bucket starts `toStartOfInterval(…, INTERVAL n second)` yields over [frm, to] (epoch-aligned)."""
    first = int(frm.timestamp()) // interval_s * interval_s
    return list(range(first, int(to.timestamp()) + 1, interval_s))


def sparkline_series(points: list[dict[str, Any]], starts: list[int]) -> list[dict[str, Any]]:
    """One point per bucket (missing buckets: 0 calls, no rate)."""
    by_start = {int(_as_utc(p["time"]).timestamp()): p for p in points}
    out = []
    for s in starts:
        p = by_start.get(s)
        out.append(
            {
                "t": s,
                "calls": int(p["volume"]) if p else 0,
                "business_success_pct": _num(p.get("business_success_pct")) if p else None,
            }
        )
    return out


def _as_utc(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


async def handoff_health(store: QueryStore, since: str = DEFAULT_WINDOW, *, now: datetime | None = None) -> dict[str, Any]:
    """Every handoff with calls in the last `since` (a key of WINDOWS), worst first, with totals for a header."""
    window = WINDOWS[since]
    to = now or datetime.now(UTC)
    if to.microsecond:  # the time macros work in whole seconds: round up, or the last second's calls are left out
        to = to.replace(microsecond=0) + timedelta(seconds=1)
    frm = to - window
    interval_s = max(60, int(window.total_seconds()) // SPARK_POINTS)
    sql = handoff_health_sql()
    current = [_row(r) for r in await store.query(expand(sql, frm=frm, to=to))]
    previous = {r["handoff"]: r for r in (_row(r) for r in await store.query(expand(sql, frm=frm - window, to=frm)))}
    trend: dict[str, list[dict[str, Any]]] = {}
    for p in await store.query(expand(handoff_trend_sql(), frm=frm, to=to, interval_s=interval_s)):
        trend.setdefault(str(p.get("handoff") or ""), []).append(p)
    starts = _buckets(frm, to, interval_s)
    for row in current:
        before = previous.get(row["handoff"])
        row["previous"] = {k: before.get(k) for k in _COMPARED} if before else None
        row["change"] = change(row, before)
        row["sparkline"] = sparkline_series(trend.get(row["handoff"], []), starts)
    current.sort(key=worst_first_key)
    calls = sum(r["calls"] for r in current)
    validated = sum(r["validated"] for r in current)
    ok = sum(r["ok"] for r in current)
    return {
        "since": since,
        "from": frm,
        "to": to,
        "interval_s": interval_s,
        "totals": {
            "handoffs": len(current),
            "calls": calls,
            "calls_per_s": round(calls / window.total_seconds(), 3),
            "business_success_pct": round(100 * ok / validated, 2) if validated else None,
            "failed": sum(r["failed"] for r in current),
            "silent_failures": sum(r["silent_failures"] for r in current),
        },
        "handoffs": current,
    }
