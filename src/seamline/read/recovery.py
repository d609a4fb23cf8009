"""The recovery metrics over a time window, read from `handoffs` (the demo's summary, `GET /api/recovery`).

The same definitions as the dashboards' Guards / recovery row (seamline.dashboards.recovery), over raw rows: the
window is short and exact counts are cheap there. `retries_recovered` counts the calls a retry completed ok, the
sidecar's (`retry_of`) and the app's own (`attempt` > 1, X-Seamline-Attempt) alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seamline import outcomes as o
from seamline.read.queries import QueryStore

_SQL = f"""
SELECT
    countIf(guard IN {o.sql_list(o.DUPLICATES_PREVENTED)}) AS duplicates_prevented,
    countIf((retry_of != '' OR attempt > 1) AND outcome = '{o.OK}') AS retries_recovered,
    countIf(error_class = '{o.OUTCOME_UNKNOWN}') AS pauses,
    countIf(guard = '{o.GUARD_LOOP_BLOCKED}') AS loops_stopped,
    countIf(loop_suspected) AS loop_flagged,
    countIf(replay_of != '') AS replays,
    countIf(error_class = '{o.CIRCUIT_OPEN}') AS circuit_refusals
FROM handoffs WHERE ts >= fromUnixTimestamp64Micro({{since_us:Int64}}, 'UTC')
"""
# One opening per run of consecutive circuit-open refusals of an upstream.
_OPENS_SQL = f"""
SELECT countIf(refused AND NOT before) AS circuit_opens FROM (
    SELECT error_class = '{o.CIRCUIT_OPEN}' AS refused,
        lagInFrame(error_class = '{o.CIRCUIT_OPEN}', 1, false)
            OVER (PARTITION BY upstream ORDER BY ts, event_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS before
    FROM handoffs WHERE ts >= fromUnixTimestamp64Micro({{since_us:Int64}}, 'UTC')
)
"""


async def recovery_metrics(store: QueryStore, since: datetime) -> dict[str, int]:
    """Duplicates prevented, retries recovered, pauses, circuit opens, loops stopped (and flagged), replays."""
    params = {"since_us": int(since.timestamp() * 1_000_000)}
    [counts] = await store.query(_SQL, params)
    [opens] = await store.query(_OPENS_SQL, params)
    out: dict[str, Any] = {**counts, **opens}
    return {k: int(v or 0) for k, v in out.items()}
