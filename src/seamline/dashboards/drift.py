"""Contract drift: violations by rule over time, unknown and missing response fields, first-seen times."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb

from seamline.dashboards.common import DRIFT_UID, shell
from seamline.dashboards.panels import PanelIds, multi_variable, table_panel, time_series
from seamline.dashboards.sql import HANDOFFS, var_filter, where

VARS = ("upstream", "handoff")
F = where(*VARS)


def _fields_table(column: str) -> str:
    # first_seen looks back over the whole retention so "new this week" is true, not an artefact of the range.
    return (
        f"SELECT handoff, field, countIf(ts >= $__fromTime AND ts <= $__toTime) AS events, "
        f"min(ts) AS first_seen, max(ts) AS last_seen, first_seen >= $__fromTime AS new_in_range "
        f"FROM {HANDOFFS} ARRAY JOIN {column} AS field "
        f"WHERE ts <= $__toTime AND notEmpty({column}) AND {var_filter(*VARS)} "
        f"GROUP BY handoff, field HAVING last_seen >= $__fromTime ORDER BY first_seen DESC, events DESC LIMIT 200"
    )


def build() -> dsb.Dashboard:
    ids = PanelIds()
    d = shell(
        DRIFT_UID,
        "Seamline / Contract drift",
        "How upstream responses drift from their contracts: violations by rule, fields the schema does not know, "
        "required fields that went missing, and when each first appeared.",
        time_from="now-7d",
    )
    d = d.with_variable(multi_variable("upstream", "Upstream")).with_variable(multi_variable("handoff", "Handoff"))
    d = d.with_panel(
        time_series(
            ids,
            "Violations by rule",
            f"SELECT $__timeInterval(ts) AS time, violation, count() AS events "
            f"FROM {HANDOFFS} ARRAY JOIN violations AS violation WHERE {F} GROUP BY time, violation ORDER BY time",
            description="Rule codes: schema:<pointer>:<keyword>, assert:<name>, echo:missing:<field>, status:<code>.",
            bars=True,
            stacked=True,
            w=24,
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Calls with drift per handoff",
            f"SELECT $__timeInterval(ts) AS time, handoff, countIf(notEmpty(unknown_fields)) AS unknown_fields, "
            f"countIf(notEmpty(missing_fields)) AS missing_fields FROM {HANDOFFS} WHERE {F} "
            f"GROUP BY time, handoff ORDER BY time",
            w=24,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Unknown response fields",
            _fields_table("unknown_fields"),
            w=12,
            h=10,
            description="Fields upstreams started sending that the response schema does not declare.",
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Missing required fields",
            _fields_table("missing_fields"),
            w=12,
            h=10,
            description="Required response fields that did not come back.",
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Violation rules: first and last seen",
            f"SELECT violation, handoff, splitByChar(':', violation)[1] AS kind, "
            f"countIf(ts >= $__fromTime AND ts <= $__toTime) AS events, min(ts) AS first_seen, max(ts) AS last_seen, "
            f"first_seen >= $__fromTime AS new_in_range "
            f"FROM {HANDOFFS} ARRAY JOIN violations AS violation "
            f"WHERE ts <= $__toTime AND notEmpty(violations) AND {var_filter(*VARS)} "
            f"GROUP BY violation, handoff HAVING last_seen >= $__fromTime ORDER BY first_seen DESC LIMIT 200",
        )
    )
    return d
