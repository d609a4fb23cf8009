"""Alert rules, contact points and the notification policy, as Grafana file provisioning (apiVersion: 1).

Every rule is A (ClickHouse SQL: one row per handoff, string columns become labels, one numeric `value`)
→ B (Reduce: last) → C (Threshold). Minimum sample sizes live in the SQL (`HAVING`), so a handoff with
too little traffic returns no row instead of a noisy rate. Rules are built with the SDK's alerting models
(the HTTP API shape) and converted to the file-provisioning shape by `provisioning_rules()`.

Time: `$__fromTime`/`$__toTime` are the rule's relative time range (`from` seconds ago → now), so every
window, including a baseline's, is anchored on the evaluation time.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import alerting as ab
from grafana_foundation_sdk.builders import expr as eb
from grafana_foundation_sdk.models import alerting as am
from grafana_foundation_sdk.models import dashboard as dm

from seamline.dashboards.query import DATASOURCE_UID, Format, Query
from seamline.read.rules import (  # the rules themselves live with the sidecar, which evaluates them too
    AUTH_BURST,
    CIRCUIT_OPEN_REFUSALS,
    DUPLICATES_SPIKE,
    ERROR_MIN_CALLS,
    ERROR_PCT,
    EXPR_UID,
    FOLDER,
    FOLDER_UID,
    GROUP,
    HEALTH_GROUP,
    HEARTBEAT_MAX_AGE_S,
    HEARTBEAT_MIN_ROWS,
    LATENCY_BASELINE_MIN_CALLS,
    LATENCY_RATIO,
    LOOP_MAX_CALLS,
    LOOPS_STOPPED_MAX,
    MIN_CALLS,
    ORG_ID,
    PAUSES_MAX,
    RULES,
    RUNBOOK_BASE,
    SILENT_FAILURE_PCT,
    SUCCESS_CRIT_PCT,
    SUCCESS_WARN_PCT,
    VOLUME_BASELINE_MIN_CALLS,
    VOLUME_BASELINE_MIN_DAYS,
    VOLUME_PCT,
    Op,
    RuleSpec,
)

__all__ = [
    "AUTH_BURST",
    "CIRCUIT_OPEN_REFUSALS",
    "DUPLICATES_SPIKE",
    "ERROR_MIN_CALLS",
    "ERROR_PCT",
    "EXPR_UID",
    "FOLDER",
    "FOLDER_UID",
    "GROUP",
    "HEALTH_GROUP",
    "HEARTBEAT_MAX_AGE_S",
    "HEARTBEAT_MIN_ROWS",
    "LATENCY_BASELINE_MIN_CALLS",
    "LATENCY_RATIO",
    "LOOPS_STOPPED_MAX",
    "LOOP_MAX_CALLS",
    "MIN_CALLS",
    "ORG_ID",
    "PAUSES_MAX",
    "RULES",
    "RUNBOOK_BASE",
    "SILENT_FAILURE_PCT",
    "SUCCESS_CRIT_PCT",
    "SUCCESS_WARN_PCT",
    "VOLUME_BASELINE_MIN_CALLS",
    "VOLUME_BASELINE_MIN_DAYS",
    "VOLUME_PCT",
    "Op",
    "RuleSpec",
    "build_rule",
    "contact_points",
    "notification_policies",
    "provisioning_rules",
    "rule_groups",
]


def build_rule(spec: RuleSpec) -> ab.Rule:
    """The SDK model of one rule (API shape)."""
    a = (
        ab.Query("A")
        .datasource_uid(DATASOURCE_UID)
        .relative_time_range(am.RelativeTimeRange(from_val=spec.window_s, to=0))
        .model(Query(spec.sql, Format.TABLE).ref_id("A"))
    )
    expr_ds = dm.DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID)
    b = (
        ab.Query("B")
        .datasource_uid(EXPR_UID)
        .model(eb.TypeReduce().ref_id("B").expression("A").reducer("last").datasource(expr_ds))
    )
    c = (
        ab.Query("C")
        .datasource_uid(EXPR_UID)
        .model(
            eb.TypeThreshold()
            .ref_id("C")
            .expression("B")
            .datasource(expr_ds)
            .conditions(
                [
                    eb.ExprTypeThresholdConditions().evaluator(
                        eb.ExprTypeThresholdConditionsEvaluator().type(spec.op).params([spec.threshold])
                    )
                ]
            )
        )
    )
    annotations = {
        "summary": spec.summary,
        "description": spec.description,
        "runbook_url": f"{RUNBOOK_BASE}#{spec.anchor}",
        "run_view": spec.link,
        "__dashboardUid__": spec.dashboard_uid,
    }
    return (
        ab.Rule(spec.title)
        .uid(spec.uid)
        .org_id(ORG_ID)
        .folder_uid(FOLDER_UID)
        .rule_group(spec.group)
        .queries([a, b, c])
        .condition("C")
        .for_val(spec.for_)
        .no_data_state(spec.no_data)
        .exec_err_state(spec.exec_err)
        .labels({"severity": spec.severity, **spec.static_labels})
        .annotations(annotations)
    )


def rule_groups() -> list[am.RuleGroup]:
    """The SDK models of every rule group."""
    groups: dict[str, ab.RuleGroup] = {}
    for spec in RULES:
        g = groups.setdefault(spec.group, ab.RuleGroup(spec.group).folder_uid(FOLDER_UID).interval(60))
        g.with_rule(build_rule(spec))
    return [g.build() for g in groups.values()]


def _seconds(interval: Any) -> str:
    return f"{int(interval) // 60}m" if int(interval) % 60 == 0 else f"{int(interval)}s"


def provisioning_rules(groups: list[am.RuleGroup] | None = None) -> dict[str, Any]:
    """Convert the SDK's API-shaped groups into the file-provisioning document (apiVersion: 1)."""
    out = []
    for g in groups or rule_groups():
        rules = []
        for r in g.rules or []:
            api = _plain(r.to_json())
            rules.append(
                {
                    "uid": api["uid"],
                    "title": api["title"],
                    "condition": api["condition"],
                    "data": [
                        {
                            "refId": q["refId"],
                            "relativeTimeRange": q.get("relativeTimeRange", {"from": 0, "to": 0}),
                            "datasourceUid": q["datasourceUid"],
                            "model": q["model"],
                        }
                        for q in api["data"]
                    ],
                    "noDataState": api["noDataState"],
                    "execErrState": api["execErrState"],
                    "for": api["for"],
                    "labels": api.get("labels", {}),
                    "annotations": api.get("annotations", {}),
                    "isPaused": False,
                }
            )
        out.append({"orgId": ORG_ID, "name": g.title, "folder": FOLDER, "interval": _seconds(g.interval), "rules": rules})
    return {"apiVersion": 1, "groups": out}


def _plain(obj: Any) -> Any:
    """SDK objects → plain JSON values (what the SDK's JSONEncoder would write)."""
    if hasattr(obj, "to_json"):
        return _plain(obj.to_json())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def contact_points() -> dict[str, Any]:
    """Two receivers, one per severity; destinations come from environment variables (Grafana expands them)."""
    cps = [
        ab.ContactPoint()
        .uid("seamline-critical")
        .name("seamline-critical")
        .type("webhook")
        .settings({"url": "$SEAMLINE_ALERT_CRITICAL_WEBHOOK_URL", "httpMethod": "POST"}),
        ab.ContactPoint()
        .uid("seamline-warning")
        .name("seamline-warning")
        .type("webhook")
        .settings({"url": "$SEAMLINE_ALERT_WARNING_WEBHOOK_URL", "httpMethod": "POST"}),
    ]
    points = []
    for cp in (c.build() for c in cps):
        points.append(
            {
                "orgId": ORG_ID,
                "name": cp.name,
                "receivers": [{"uid": cp.uid, "type": cp.type_val, "settings": cp.settings, "disableResolveMessage": False}],
            }
        )
    return {"apiVersion": 1, "contactPoints": points}


def notification_policies() -> dict[str, Any]:
    """Route on `severity`: critical pages quickly and repeats hourly, warning batches and repeats every 4 hours."""
    policy = (
        ab.NotificationPolicy()
        .receiver("seamline-warning")
        .group_by(["grafana_folder", "alertname", "handoff"])
        .group_wait("30s")
        .group_interval("5m")
        .repeat_interval("4h")
        .routes(
            [
                ab.NotificationPolicy()
                .receiver("seamline-critical")
                .object_matchers([["severity", "=", "critical"]])
                .group_wait("10s")
                .group_interval("1m")
                .repeat_interval("1h"),
                ab.NotificationPolicy().receiver("seamline-warning").object_matchers([["severity", "=", "warning"]]),
            ]
        )
        .build()
    )
    tree = _plain(policy.to_json())
    return {"apiVersion": 1, "policies": [{"orgId": ORG_ID, **tree}]}
