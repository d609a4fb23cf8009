"""Contract drift: violations by rule over time, the schema drift per handoff (`seamline contracts diff`), unknown and
missing response fields, first-seen times."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb

from seamline import outcomes as o
from seamline.dashboards.common import DRIFT_UID, RUN_LINK, shell
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


def schema_drift_sql() -> str:
    """`seamline contracts diff` as a table: per handoff, each field not in the schema, required field missing and
    undocumented status, with its count, its share of the handoff's answered calls and the latest example."""
    # status:unexpected:<code> (a contract's `status`) and status:undocumented:<code> (an OpenAPI document's).
    found = (
        "arrayConcat(arrayMap(f -> ('field not in schema', f), unknown_fields), "
        "arrayMap(f -> ('required field missing', f), missing_fields), "
        "arrayMap(v -> ('undocumented status', splitByChar(':', toString(v))[-1]), "
        "arrayFilter(v -> startsWith(toString(v), 'status:'), violations)))"
    )
    return (
        "SELECT handoff, drift.1 AS kind, drift.2 AS item, count() AS calls, "
        "round(100 * calls / any(answered), 1) AS pct_of_calls, min(ts) AS first_seen, max(ts) AS last_seen, "
        "argMax(run_id, ts) AS example_run_id, argMax(toString(event_id), ts) AS example_event_id "
        f"FROM (SELECT handoff, ts, run_id, event_id, {found} AS found, count() OVER (PARTITION BY handoff) AS answered "
        f"FROM {HANDOFFS} WHERE {F} AND status > 0 AND outcome NOT IN {o.sql_list((o.REFUSED, o.REPLAYED))}) "
        "ARRAY JOIN found AS drift GROUP BY handoff, kind, item ORDER BY handoff, kind, calls DESC LIMIT 500"
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
            "Schema drift per handoff",
            schema_drift_sql(),
            w=24,
            h=10,
            description="What `seamline contracts diff` reports, from the drift recorded with each call: response fields "
            "the schema does not declare, required fields that did not come, statuses the contract does not accept; "
            "count, share of the handoff's answered calls, and the latest example run and event.",
            links={"example_run_id": ("Open run", RUN_LINK)},
            units={"pct_of_calls": "percent"},
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
