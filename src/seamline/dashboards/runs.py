"""Runs (recent failed runs) and Run view (one run: its handoffs, payloads and trace)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dsb
from grafana_foundation_sdk.models import dashboard as dm

from seamline.dashboards.common import RUN_LINK, RUN_VIEW_UID, RUNS_UID, shell
from seamline.dashboards.panels import PanelIds, multi_variable, raw_panel, stat_panel, table_panel, time_series
from seamline.dashboards.query import Format
from seamline.dashboards.sql import HANDOFFS, IS_FAILED, IS_REFUSED, IS_RUN_FAILED, RUN_FAILED_OUTCOMES, TRACES, var_filter, where

RUN = "run_id = ${run_id:singlequote}"


def failed_runs_sql(variables: tuple[str, ...], limit: int = 200) -> str:
    """Runs with at least one failed handoff (among the selected handoffs), newest first; refusals count as failed."""
    return (
        f"SELECT run_id, min(ts) AS started, max(ts) AS last_call, count() AS calls, "
        f"countIf({IS_RUN_FAILED}) AS failed_calls, countIf({IS_REFUSED}) AS refused_calls, "
        f"groupUniqArrayIf(handoff, {IS_RUN_FAILED}) AS failed_handoffs, "
        f"argMinIf(outcome, ts, {IS_RUN_FAILED}) AS first_failure, "
        f"argMinIf(error_class, ts, {IS_RUN_FAILED}) AS first_error_class, "
        f"any(tenant) AS run_tenant, any(source_app) AS run_source_app "
        f"FROM {HANDOFFS} WHERE $__timeFilter(ts) AND run_id != '' "
        f"AND {var_filter(*(v for v in variables if v != 'handoff'))} "
        f"GROUP BY run_id "
        f"HAVING countIf({IS_RUN_FAILED} AND {var_filter('handoff')}) > 0 "
        f"ORDER BY last_call DESC LIMIT {limit}"
    )


def build_runs() -> dsb.Dashboard:
    ids = PanelIds()
    vars_ = ("tenant", "source_app", "handoff")
    d = shell(RUNS_UID, "Seamline / Runs", "Recent workflow runs with at least one failed handoff; a run ID opens the run view.")
    for name, label in (("tenant", "Tenant"), ("source_app", "Source app"), ("handoff", "Failed handoff")):
        d = d.with_variable(multi_variable(name, label))
    run_stats = (
        f"SELECT run_id, countIf({IS_RUN_FAILED}) > 0 AS failed FROM {HANDOFFS} "
        f"WHERE {where('tenant', 'source_app', 'handoff')} AND run_id != '' GROUP BY run_id"
    )
    d = d.with_panel(stat_panel(ids, "Runs", f"SELECT count() AS runs FROM ({run_stats})", w=6))
    d = d.with_panel(
        stat_panel(
            ids,
            "Failed runs",
            f"SELECT countIf(failed) AS failed_runs FROM ({run_stats})",
            w=6,
            steps=[(None, "green"), (1, "red")],
        )
    )
    d = d.with_panel(
        time_series(
            ids,
            "Runs started: ok vs failed",
            # A run whose only failures are Seamline's refusals is told apart: its upstreams were fine.
            f"SELECT $__timeInterval(started) AS time, "
            f"multiIf(failed, 'failed', refused, 'refused by Seamline', 'ok') AS result, "
            f"count() AS runs FROM ("
            f"SELECT run_id, min(ts) AS started, countIf({IS_FAILED}) > 0 AS failed, countIf({IS_REFUSED}) > 0 AS refused "
            f"FROM {HANDOFFS} WHERE {where('tenant', 'source_app', 'handoff')} AND run_id != '' GROUP BY run_id) "
            f"GROUP BY time, result ORDER BY time",
            w=12,
            h=4,
            bars=True,
            stacked=True,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Recent failed runs",
            failed_runs_sql(vars_),
            h=16,
            links={"run_id": ("Open run", RUN_LINK)},
            description=f"Failed = an outcome in {RUN_FAILED_OUTCOMES} (refused: Seamline answered the call itself; "
            "refused_calls counts those). Filtered by handoff, a run is listed when that handoff failed in it.",
        )
    )
    return d


def handoffs_trace_sql() -> str:
    """The run as a trace from the handoffs table alone (plugin trace format): a root span per run, one child per call.

    traceID is derived from the run ID so a run spanning several OTel traces still renders as one waterfall;
    each call's real trace_id travels as a tag.
    """
    run_trace = "lower(hex(MD5(run_id)))"
    return (
        f"SELECT traceID, spanID, parentSpanID, serviceName, operationName, startTime, duration, tags, serviceTags FROM ("
        f"SELECT {run_trace} AS traceID, substring({run_trace}, 1, 16) AS spanID, '' AS parentSpanID, "
        f"'workflow' AS serviceName, concat('run ', run_id) AS operationName, "
        f"toFloat64(min(toUnixTimestamp64Micro(ts))) / 1000 AS startTime, "
        f"max(toUnixTimestamp64Micro(ts) / 1000 + duration_ms) - startTime AS duration, "
        f"[map('key', 'run_id', 'value', run_id), map('key', 'calls', 'value', toString(count()))] AS tags, "
        f"[map('key', 'source_app', 'value', toString(any(source_app)))] AS serviceTags "
        f"FROM {HANDOFFS} WHERE {RUN} AND $__timeFilter(ts) GROUP BY run_id "
        f"UNION ALL "
        f"SELECT {run_trace} AS traceID, span_id AS spanID, substring({run_trace}, 1, 16) AS parentSpanID, "
        f"toString(upstream) AS serviceName, "
        f"concat(toString(handoff), ' ', toString(method), ' ', toString(route)) AS operationName, "
        f"toFloat64(toUnixTimestamp64Micro(ts)) / 1000 AS startTime, duration_ms AS duration, "
        f"[map('key', 'status', 'value', toString(status)), map('key', 'outcome', 'value', toString(outcome)), "
        f"map('key', 'error_class', 'value', toString(error_class)), map('key', 'attempt', 'value', toString(attempt)), "
        f"map('key', 'violations', 'value', arrayStringConcat(violations, ', ')), "
        f"map('key', 'trace_id', 'value', trace_id), map('key', 'url', 'value', url)] AS tags, "
        f"[map('key', 'proxy_instance', 'value', toString(proxy_instance))] AS serviceTags "
        f"FROM {HANDOFFS} WHERE {RUN} AND $__timeFilter(ts) AND {var_filter('handoff')}"
        f") ORDER BY startTime LIMIT 1000"
    )


def otel_trace_sql() -> str:
    """The OTel Collector's spans for the run's trace IDs (empty when tracing is off)."""
    return (
        f"SELECT TraceId AS traceID, SpanId AS spanID, ParentSpanId AS parentSpanID, ServiceName AS serviceName, "
        f"SpanName AS operationName, toFloat64(toUnixTimestamp64Nano(Timestamp)) / 1000000 AS startTime, "
        f"Duration / 1000000 AS duration, "
        f"arrayMap(k -> map('key', k, 'value', SpanAttributes[k]), mapKeys(SpanAttributes)) AS tags, "
        f"arrayMap(k -> map('key', k, 'value', ResourceAttributes[k]), mapKeys(ResourceAttributes)) AS serviceTags "
        f"FROM {TRACES} WHERE TraceId IN (SELECT DISTINCT trace_id FROM {HANDOFFS} WHERE {RUN} AND $__timeFilter(ts)) "
        f"AND $__timeFilter(Timestamp) ORDER BY Timestamp LIMIT 1000"
    )


def build_run_view() -> dsb.Dashboard:
    ids = PanelIds()
    d = shell(
        RUN_VIEW_UID,
        "Seamline / Run view",
        "One workflow run: its handoffs in order, their payloads (redacted) and the run as a trace. "
        "Leave run_id empty to pick one of the latest failed runs.",
        time_from="now-24h",
        refresh="",
    )
    d = d.with_variable(
        dsb.TextBoxVariable("run_id").label("Run ID").default_value("").current(dm.VariableOption(text="", value=""))
    )
    d = d.with_variable(multi_variable("handoff", "Handoff"))
    d = d.with_panel(
        table_panel(
            ids,
            "Latest failed runs (pick one)",
            failed_runs_sql(("handoff",), limit=20),
            h=6,
            links={"run_id": ("Open run", RUN_LINK)},
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Handoffs in this run",
            f"SELECT round((toUnixTimestamp64Micro(ts) - min(toUnixTimestamp64Micro(ts)) OVER ()) / 1000, 1) AS offset_ms, "
            f"ts, step, handoff, method, url, attempt, status, outcome, error_class, duration_ms, ttfb_ms, "
            f"violations, external_ids, unknown_fields, missing_fields, idempotency_key, trace_id, span_id, event_id "
            f"FROM {HANDOFFS} WHERE {RUN} AND $__timeFilter(ts) AND {var_filter('handoff')} ORDER BY ts, attempt",
            h=10,
            units={"offset_ms": "ms", "duration_ms": "ms", "ttfb_ms": "ms"},
        )
    )
    d = d.with_panel(
        raw_panel(
            ids,
            "traces",
            "Run timeline (from the handoffs table)",
            handoffs_trace_sql(),
            fmt=Format.TRACES,
            description="Built from Seamline's own records: one span per call under a root span for the run.",
            h=12,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "Payloads (redacted)",
            f"SELECT ts, handoff, status, outcome, request_headers, request_body, request_truncated, request_bytes, "
            f"response_headers, response_body, response_truncated, response_bytes "
            f"FROM {HANDOFFS} WHERE {RUN} AND $__timeFilter(ts) AND {var_filter('handoff')} ORDER BY ts, attempt",
            h=10,
        )
    )
    d = d.with_panel(
        table_panel(
            ids,
            "OpenTelemetry traces of this run",
            f"SELECT TraceId AS traceID, count() AS spans, groupUniqArray(ServiceName) AS services, min(Timestamp) AS start, "
            f"round((max(toUnixTimestamp64Nano(Timestamp) + Duration) - min(toUnixTimestamp64Nano(Timestamp))) / 1e6, 1) "
            f"AS duration_ms "
            f"FROM {TRACES} WHERE TraceId IN (SELECT DISTINCT trace_id FROM {HANDOFFS} WHERE {RUN} AND $__timeFilter(ts)) "
            f"AND $__timeFilter(Timestamp) GROUP BY traceID ORDER BY start",
            description="Traces the OTel Collector stored for this run's calls; the traceID column opens the trace "
            "(the datasource's trace settings point at otel_traces).",
            h=6,
        )
    )
    d = d.with_panel(
        raw_panel(
            ids,
            "traces",
            "OpenTelemetry trace (collector)",
            otel_trace_sql(),
            fmt=Format.TRACES,
            description="The spans the OTel Collector wrote for this run's trace IDs, including the app's own spans.",
            h=12,
        )
    )
    return d
