"""Seamline health: heartbeats, queue, spool, replays and drops of every sidecar instance.

`seamline_health` counters (rows_written, rows_replayed, dropped, ...) are cumulative since the process
started; per-interval increases are max - min within the interval (a restart resets them).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb

from seamline.dashboards.common import HEALTH_UID, shell
from seamline.dashboards.panels import PanelIds, multi_variable, stat_panel, table_panel, time_series
from seamline.dashboards.sql import HANDOFFS, HEALTH, IS_REFUSED

INSTANCE = "$__conditionalAll(proxy_instance IN (${instance:singlequote}), $instance)"
HF = f"$__timeFilter(ts) AND {INSTANCE}"


def _gauge(column: str) -> str:
    return (
        f"SELECT $__timeInterval(ts) AS time, proxy_instance, max({column}) AS {column} "
        f"FROM {HEALTH} WHERE {HF} GROUP BY time, proxy_instance ORDER BY time"
    )


def _increase(column: str) -> str:
    return (
        f"SELECT $__timeInterval(ts) AS time, proxy_instance, greatest(max({column}) - min({column}), 0) AS {column} "
        f"FROM {HEALTH} WHERE {HF} GROUP BY time, proxy_instance ORDER BY time"
    )


def build() -> dsb.Dashboard:
    ids = PanelIds()
    d = shell(
        HEALTH_UID,
        "Seamline / Seamline health",
        "Is every sidecar alive and recording? Heartbeats, queue, spool, replays and drops.",
        time_from="now-3h",
    )
    d = d.with_variable(
        multi_variable("instance", "Instance", column="proxy_instance").query(
            f"SELECT DISTINCT proxy_instance FROM {HEALTH} WHERE $__timeFilter(ts) ORDER BY proxy_instance"
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Seconds since last heartbeat",
            f"SELECT dateDiff('second', max(ts), now()) AS seconds_since_heartbeat "
            f"FROM {HEALTH} WHERE ts >= now() - INTERVAL 1 DAY AND {INSTANCE}",
            unit="s",
            w=6,
            steps=[(None, "green"), (120, "orange"), (180, "red")],
            description="Worst of the selected instances' latest heartbeat would hide a dead one; see the table for each.",
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Spool backlog",
            f"SELECT argMax(spool_bytes, ts) AS spool_bytes FROM {HEALTH} WHERE {HF}",
            unit="bytes",
            w=6,
            steps=[(None, "green"), (1, "orange")],
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Dropped events",
            f"SELECT sum(d) AS dropped FROM (SELECT greatest(max(dropped) - min(dropped), 0) AS d "
            f"FROM {HEALTH} WHERE {HF} GROUP BY proxy_instance)",
            w=6,
            steps=[(None, "green"), (1, "red")],
        )
    )
    d = d.with_panel(
        stat_panel(
            ids,
            "Sink down (instances)",
            f"SELECT countIf(NOT last_sink_up) AS sink_down FROM (SELECT argMax(sink_up, ts) AS last_sink_up "
            f"FROM {HEALTH} WHERE {HF} GROUP BY proxy_instance)",
            w=6,
            steps=[(None, "green"), (1, "red")],
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Instances",
            f"SELECT proxy_instance, max(ts) AS last_heartbeat, dateDiff('second', last_heartbeat, now()) AS seconds_ago, "
            f"argMax(version, ts) AS version, argMax(store, ts) AS store, argMax(ready, ts) AS ready, "
            f"argMax(sink_up, ts) AS sink_up, argMax(reasons, ts) AS reasons, argMax(queue_depth, ts) AS queue_depth, "
            f"argMax(spool_records, ts) AS spool_records, argMax(spool_bytes, ts) AS spool_bytes, "
            f"argMax(dropped, ts) AS dropped, argMax(spool_corrupt, ts) AS spool_corrupt, argMax(uptime_s, ts) AS uptime_s "
            f"FROM {HEALTH} WHERE {HF} GROUP BY proxy_instance ORDER BY proxy_instance",
            h=6,
            units={"seconds_ago": "s", "spool_bytes": "bytes", "uptime_s": "s"},
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Heartbeats per interval",
            f"SELECT $__timeInterval(ts) AS time, proxy_instance, count() AS heartbeats "
            f"FROM {HEALTH} WHERE {HF} GROUP BY time, proxy_instance ORDER BY time",
            bars=True,
        )
    )
    d = d.with_panel(time_series(ids, "Queue depth", _gauge("queue_depth")))
    d = d.with_panel(time_series(ids, "Spool bytes", _gauge("spool_bytes"), unit="bytes"))
    d = d.with_panel(time_series(ids, "Spool records", _gauge("spool_records")))
    d = d.with_panel(time_series(ids, "Rows written", _increase("rows_written"), bars=True))
    d = d.with_panel(time_series(ids, "Rows replayed from the spool", _increase("rows_replayed"), bars=True))
    d = d.with_panel(time_series(ids, "Dropped events", _increase("dropped"), bars=True))
    d = d.with_panel(
        time_series(
            ids,
            "Handoffs recorded per instance",
            f"SELECT $__timeInterval(ts) AS time, proxy_instance, count() AS events FROM {HANDOFFS} "
            f"WHERE $__timeFilter(ts) AND {INSTANCE} GROUP BY time, proxy_instance ORDER BY time",
            description="What actually reached ClickHouse, per sidecar instance.",
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Refused by Seamline per instance",
            f"SELECT $__timeInterval(ts) AS time, concat(proxy_instance, ' ', error_class) AS series, count() AS refused "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) AND {INSTANCE} AND {IS_REFUSED} GROUP BY time, series ORDER BY time",
            description="Calls an instance answered itself (unknown upstream, refused target, too large, unknown client token, "
            "not implemented, malformed request), by reason. A burst after a deploy usually means a config or client mismatch.",
            w=24,
            bars=True,
            stacked=True,
        )
    )
    return d
