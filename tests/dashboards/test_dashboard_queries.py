"""Every dashboard panel and variable query runs on the real engine and schema, with All and with one value."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dashboards_engine import ALL, handoff, insert_handoffs, insert_health, new_database, query, render
from support.clock import utc_now

from seamline.dashboards.generate import DASHBOARDS, dashboard_json

# Relative to the engine's clock: the health panels compare heartbeats with now(), and a week of baseline traffic
# must stay inside the 30-day row TTL. On a whole minute, like the per-minute rollup.
NOW = utc_now(timedelta(minutes=1))
FROM = NOW - timedelta(hours=6)
RUN_WITH_TRACE = "run-0003"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HANDOFFS = ("crm.create_contact", "billing.charge", "provisioning.create_account", "email.send")
ONE = {
    "tenant": ["acme"],
    "source_app": ["onboarding"],
    "upstream": ["billing"],
    "handoff": ["billing.charge"],
    "instance": ["seamline-a"],
    "run_id": RUN_WITH_TRACE,
}


def _failure(i: int, name: str) -> dict[str, Any]:
    """A spread of outcomes so every panel has something to show."""
    if name == "billing.charge" and i % 4 == 1:
        return {"outcome": "silent_failure", "error_class": "contract", "violations": ["assert:payment_succeeded"]}
    if name == "crm.create_contact" and i % 5 == 2:
        return {
            "outcome": "silent_failure",
            "error_class": "contract",
            "violations": ["echo:missing:email", "schema:/email:required"],
            "missing_fields": ["email"],
            "unknown_fields": ["email_address"],
        }
    if name == "provisioning.create_account" and i % 6 == 3:
        return {"outcome": "http_error", "status": 429, "error_class": "rate_limited", "retry_after_s": 30.0}
    if name == "provisioning.create_account" and i % 6 == 4:
        return {"outcome": "http_error", "status": 401, "error_class": "auth_expired"}
    if name == "email.send" and i % 7 == 5:
        return {"outcome": "transport_error", "status": 0, "error_class": "timeout", "duration_ms": 10_000.0}
    if name == "email.send" and i % 7 == 6:
        return {"outcome": "unvalidated"}
    # Seamline's own refusals: never sent upstream, shown apart from upstream health.
    if name == "billing.charge" and i % 10 == 7:
        return {"outcome": "refused", "status": 413, "error_class": "too_large", "duration_ms": 1.0}
    if name == "crm.create_contact" and i % 11 == 4:
        return {"outcome": "refused", "status": 403, "error_class": "refused", "duration_ms": 1.0}
    return {}


def _guarded(i: int, at: Any) -> list[dict[str, Any]]:
    """One run where each guard acts: a retried call that recovers, a duplicate replayed, a pause, a circuit-open
    refusal (after an upstream failure), a loop stopped, and a replay."""
    common = {"tenant": "acme", "source_app": "onboarding", "run_id": f"guarded-{i:04d}"}
    first = handoff("provisioning.create_account", at, outcome="http_error", status=503, error_class="server_error",
                    guard="retried", **common)  # fmt: skip
    ms = timedelta(milliseconds=1)
    return [
        first,
        handoff("provisioning.create_account", at + 200 * ms, retry_of=first["event_id"], attempt=2, **common),
        handoff("billing.charge", at + 300 * ms, outcome="replayed", guard="replayed", **common),
        handoff(
            "billing.charge",
            at + 400 * ms,
            outcome="refused",
            status=409,
            error_class="outcome_unknown",
            guard="blocked_unknown",
            **common,
        ),
        handoff(
            "email.send", at + 500 * ms, outcome="refused", status=503, error_class="circuit_open", guard="circuit_open", **common
        ),
        handoff(
            "crm.create_contact",
            at + 600 * ms,
            outcome="refused",
            status=429,
            error_class="loop_suspected",
            guard="loop_blocked",
            loop_suspected=True,
            **common,
        ),
        handoff("email.send", at + 700 * ms, replay_of=first["event_id"], **common),
    ]


def _dataset() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = []
    for i in range(40):  # 40 runs over the last 6 hours, each calling the four handoffs in order
        start = FROM + timedelta(minutes=8 * i + 1)
        run = f"run-{i:04d}"
        trace = TRACE_ID if run == RUN_WITH_TRACE else f"{i:032x}"
        for j, name in enumerate(HANDOFFS):
            values = {"duration_ms": 40.0 + 10 * j + i, "ttfb_ms": 20.0, **_failure(i, name)}
            rows.append(
                handoff(
                    name,
                    start + timedelta(milliseconds=300 * j),
                    run_id=run,
                    trace_id=trace,
                    tenant="acme" if i % 2 else "globex",
                    source_app="onboarding" if i % 3 else "billing-app",
                    step=name.split(".")[1],
                    route="/v1/x",
                    attempt=2 if i % 9 == 0 else 1,
                    idempotency_key=f"k-{run}-{j}",
                    external_ids={"id": f"{name}-{i}"},
                    request_body='{"amount": 100}',
                    response_body='{"id": "x"}',
                    request_headers={"content-type": "application/json"},
                    proxy_instance="seamline-a" if i % 2 else "seamline-b",
                    **values,
                )
            )
    for i in range(1, 40, 5):  # the guards at work, in runs of their own (not RUN_WITH_TRACE's)
        rows += _guarded(i, FROM + timedelta(minutes=8 * i + 4))
    for day in range(1, 8):  # last week's traffic at the same clock times: the baselines
        for i in range(0, 40, 4):
            for name in HANDOFFS:
                rows.append(
                    handoff(
                        name,
                        FROM + timedelta(days=-day, minutes=8 * i + 2),
                        duration_ms=45.0,
                        tenant="acme",
                        source_app="onboarding",
                        proxy_instance="seamline-a",
                    )
                )
    health = [
        {
            "ts": NOW - timedelta(minutes=m),
            "proxy_instance": inst,
            "queue_depth": m % 5,
            "spool_bytes": 1024 * (m % 3),
            "spool_records": m % 3,
            "rows_written": 10 * (200 - m),
            "rows_replayed": 200 - m,
            "dropped": 0 if m > 10 else 2,
        }
        for m in range(120)
        for inst in ("seamline-a", "seamline-b")
    ]
    return rows, health


def _otel_rows(client: Any) -> None:
    root_at = (FROM + timedelta(minutes=25)).strftime("%Y-%m-%d %H:%M:%S")
    child_at = (FROM + timedelta(minutes=25, seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    client.command(
        "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, "
        "ResourceAttributes, SpanAttributes, Duration, StatusCode) VALUES "
        f"(toDateTime64('{root_at}', 9), '{TRACE_ID}', 'aaaaaaaaaaaaaaaa', '', "
        "'onboard', 'Server', 'workflow-app', {'service.name': 'workflow-app'}, {'run.id': 'run-0003'}, 900000000, 'Ok'), "
        f"(toDateTime64('{child_at}', 9), '{TRACE_ID}', 'bbbbbbbbbbbbbbbb', "
        "'aaaaaaaaaaaaaaaa', 'POST /billing/v1/x', 'Client', 'seamline', {'service.name': 'seamline'}, "
        "{'http.response.status_code': '200'}, 120000000, 'Ok')"
    )


@pytest.fixture(scope="module")
def populated() -> Any:
    client = new_database("panels")
    rows, health = _dataset()
    insert_handoffs(client, rows)
    insert_health(client, health)
    _otel_rows(client)
    return client


def _panel_cases() -> list[tuple[str, str, str, int, str]]:
    """(dashboard uid, panel title, refId, format, rawSql) for every target of every panel."""
    cases = []
    for build in DASHBOARDS.values():
        d = dashboard_json(build)
        for p in d["panels"]:
            for t in p.get("targets", []):
                cases.append((d["uid"], p["title"], t["refId"], t["format"], t["rawSql"]))
    return cases


def _variable_cases() -> list[tuple[str, str, str]]:
    out = []
    for build in DASHBOARDS.values():
        d = dashboard_json(build)
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                out.append((d["uid"], v["name"], v["query"]))
    return out


def _variables_of(uid: str, one: bool) -> dict[str, Any]:
    d = next(dashboard_json(b) for b in DASHBOARDS.values() if dashboard_json(b)["uid"] == uid)
    out: dict[str, Any] = {}
    for v in d["templating"]["list"]:
        if v["type"] == "textbox":
            out[v["name"]] = ONE[v["name"]]
        else:
            out[v["name"]] = ONE[v["name"]] if one else ALL
    return out


PANELS = _panel_cases()


@pytest.mark.parametrize("selection", ["all", "one"])
@pytest.mark.parametrize(("uid", "title", "ref", "fmt", "sql"), PANELS, ids=[f"{c[0]}:{c[1]}:{c[2]}" for c in PANELS])
def test_panel_query_runs_on_real_schema(
    populated: Any, selection: str, uid: str, title: str, ref: str, fmt: int, sql: str
) -> None:
    variables = _variables_of(uid, selection == "one")
    rendered = render(sql, frm=FROM, to=NOW, interval_s=300, variables=variables)
    names, types, rows = query(populated, rendered)
    if selection == "all":
        assert rows, f"{uid} / {title} returned no rows over the synthetic data:\n{rendered}"
    if fmt == 0:  # time series: a `time` column first
        assert names[0] == "time" and types[0].startswith("DateTime"), (names, types)
    if fmt == 3:  # the plugin's trace format
        assert names[:7] == ["traceID", "spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration"], names
        assert types[names.index("tags")] == "Array(Map(String, String))", types
        if rows:
            assert all(isinstance(r["startTime"], float) and r["duration"] >= 0 for r in rows)


def test_run_view_trace_from_handoffs_is_one_tree(populated: Any) -> None:
    from seamline.dashboards.runs import handoffs_trace_sql

    sql = render(handoffs_trace_sql(), frm=FROM, to=NOW, variables={"run_id": RUN_WITH_TRACE, "handoff": ALL})
    _, _, spans = query(populated, sql)
    roots = [s for s in spans if s["parentSpanID"] == ""]
    assert len(roots) == 1 and len(spans) == 1 + len(HANDOFFS)
    assert {s["parentSpanID"] for s in spans if s is not roots[0]} == {roots[0]["spanID"]}
    assert len({s["traceID"] for s in spans}) == 1
    assert [s["operationName"].split(" ")[0] for s in spans[1:]] == list(HANDOFFS)  # in call order
    assert roots[0]["duration"] >= max(s["startTime"] + s["duration"] for s in spans[1:]) - roots[0]["startTime"] - 0.001


@pytest.mark.parametrize(("uid", "name", "sql"), _variable_cases(), ids=[f"{c[0]}:{c[1]}" for c in _variable_cases()])
def test_variable_query_lists_values(populated: Any, uid: str, name: str, sql: str) -> None:
    _, _, rows = query(populated, render(sql, frm=FROM, to=NOW))
    values = [next(iter(r.values())) for r in rows]
    assert values and "" not in values
    assert ONE[name][0] in values


def _panel_sql(uid: str, title: str, ref: str = "A") -> str:
    (sql,) = [c[4] for c in PANELS if c[0] == uid and c[1] == title and c[2] == ref]
    return sql


def test_refused_calls_show_in_their_own_panels_and_in_no_upstream_rate() -> None:
    c = new_database("panels_refused")
    at = NOW - timedelta(minutes=30)
    rows = [handoff("billing.charge", at + timedelta(seconds=i), proxy_instance="seamline-a") for i in range(10)]
    rows += [
        handoff(
            "billing.charge",
            at + timedelta(seconds=20 + i),
            outcome="refused",
            status=413,
            error_class="too_large",
            duration_ms=1.0,
            proxy_instance="seamline-a",
        )
        for i in range(8)
    ]
    rows += [
        handoff(
            "",
            at + timedelta(seconds=40 + i),
            upstream="",
            outcome="refused",
            status=404,
            error_class="unknown_upstream",
            duration_ms=1.0,
            proxy_instance="seamline-a",
        )
        for i in range(2)
    ]
    insert_handoffs(c, rows)

    def one(uid: str, title: str) -> list[dict[str, Any]]:
        return query(c, render(_panel_sql(uid, title), frm=FROM, to=NOW, interval_s=300, variables=_variables_of(uid, False)))[2]

    assert one("seamline-overview", "Refused by Seamline")[0] == {"refused": 10}
    assert one("seamline-overview", "HTTP success")[0]["http_success"] == 100.0  # 413/404 answers are not the upstream's
    assert one("seamline-overview", "Business success")[0]["business_success"] == 100.0
    (series,) = [r for r in one("seamline-overview", "HTTP success vs business success") if r["http_success"] is not None]
    assert (series["http_success"], series["business_success"]) == (100.0, 100.0)
    refused = {r["series"]: r["calls"] for r in one("seamline-overview", "Refused by Seamline over time")}
    assert refused == {"refused: too_large": 8, "refused: unknown_upstream": 2}
    assert one("seamline-overview", "Error classes over time") == []  # upstream error classes only
    (summary,) = [r for r in one("seamline-upstreams", "Upstream summary") if r["upstream"] == "billing"]
    assert (summary["error_pct"], summary["refused_by_seamline"]) == (0.0, 8)
    health = {r["series"]: r["refused"] for r in one("seamline-health", "Refused by Seamline per instance")}
    assert health == {"seamline-a too_large": 8, "seamline-a unknown_upstream": 2}


def test_schema_drift_panel_counts_each_finding_per_handoff_with_its_latest_example(populated: Any) -> None:
    """The `seamline contracts diff` panel over the synthetic data: the CRM's drift, counted, with the latest run."""
    sql = render(
        _panel_sql("seamline-drift", "Schema drift per handoff"),
        frm=FROM,
        to=NOW,
        variables=_variables_of("seamline-drift", False),
    )
    _, _, rows = query(populated, sql)
    drifted = [i for i in range(40) if i % 5 == 2]
    refused = [i for i in range(40) if i % 11 == 4 and i not in drifted]  # no upstream's answer (see _failure)
    answered = 40 - len(refused)
    found = {(r["handoff"], r["kind"], r["item"]): r for r in rows}
    assert set(found) == {
        ("crm.create_contact", "field not in schema", "email_address"),
        ("crm.create_contact", "required field missing", "email"),
    }
    unknown = found[("crm.create_contact", "field not in schema", "email_address")]
    assert unknown["calls"] == len(drifted) and unknown["pct_of_calls"] == round(100 * len(drifted) / answered, 1)
    assert unknown["example_run_id"] == f"run-{drifted[-1]:04d}"
