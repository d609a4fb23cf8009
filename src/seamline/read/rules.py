"""The shipped alert rules as plain data (no Grafana SDK): their SQL, windows and thresholds, in one place.

`seamline.dashboards.alerts` turns them into `grafana/provisioning/alerting/rules.yaml`; `seamline.read.alerting`
evaluates the very same SQL and thresholds itself (`seamline alerts check`, `/api/alerts`).
Time: `$__fromTime`/`$__toTime` are the rule's relative time range (`from` seconds ago → now), so every
window, including a baseline's, is anchored on the evaluation time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from seamline import outcomes as o
from seamline.read.grafana_ids import HEALTH_UID, OVERVIEW_UID, RUN_VIEW_URL, UPSTREAMS_UID
from seamline.read.sql import GUARDS, HANDOFFS, HEALTH, IS_AUTH_FAILURE, IS_ERROR, IS_UPSTREAM_CALL, IS_VALIDATED

FOLDER: Final = "Seamline"
FOLDER_UID: Final = "seamline"
GROUP: Final = "seamline-handoffs"
HEALTH_GROUP: Final = "seamline-sidecar"
ORG_ID: Final = 1
# Where docs/dashboards.md is published; each rule's runbook_url is this plus an anchor. Set at generation time.
RUNBOOK_BASE: Final = "https://github.com/seamline/seamline/blob/main/docs/dashboards.md"
EXPR_UID: Final = "__expr__"

# Thresholds and minimum samples (one place to tune them; docs/dashboards.md explains each).
MIN_CALLS: Final = 20  # calls in the window before a rate is judged
SUCCESS_WARN_PCT: Final = 95.0
SUCCESS_CRIT_PCT: Final = 80.0
SILENT_FAILURE_PCT: Final = 5.0
LATENCY_RATIO: Final = 2.0
LATENCY_BASELINE_MIN_CALLS: Final = 100
VOLUME_PCT: Final = 150.0
VOLUME_BASELINE_MIN_DAYS: Final = 3
VOLUME_BASELINE_MIN_CALLS: Final = 10.0
ERROR_PCT: Final = 50.0
ERROR_MIN_CALLS: Final = 10
AUTH_BURST: Final = 10  # more than this many auth failures in 5 minutes
LOOP_MAX_CALLS: Final = 10  # a run calling one handoff more than this many times in 15 minutes
CIRCUIT_OPEN_REFUSALS: Final = 0  # more than this many calls answered circuit-open in 5 minutes (any: it is open)
PAUSES_MAX: Final = 0  # more than this many 409 outcome-unknown answers in 15 minutes (any: a human must check)
LOOPS_STOPPED_MAX: Final = 0  # more than this many calls refused loop-suspected in 15 minutes
DUPLICATES_SPIKE: Final = 10  # more than this many duplicates prevented for one handoff in 15 minutes
HEARTBEAT_MAX_AGE_S: Final = 180
HEARTBEAT_MIN_ROWS: Final = 3

Op = Literal["gt", "lt"]


@dataclass(frozen=True)
class RuleSpec:
    """One alert rule: its SQL, window, threshold and what a human should read when it fires."""

    uid: str
    title: str
    sql: str
    window_s: int
    op: Op
    threshold: float
    severity: Literal["warning", "critical"]
    summary: str
    description: str
    anchor: str
    for_: str = "2m"
    no_data: Literal["OK", "NoData", "Alerting"] = "OK"
    exec_err: Literal["OK", "Error", "Alerting"] = "Error"
    group: str = GROUP
    static_labels: dict[str, str] = field(default_factory=dict)
    dashboard_uid: str = OVERVIEW_UID
    link: str = f"{RUN_VIEW_URL}?var-handoff={{{{ $labels.handoff }}}}&var-run_id=&from=now-1h&to=now"


_VALUE = "{{ humanize $values.B.Value }}"

RULES: Final[tuple[RuleSpec, ...]] = (
    RuleSpec(
        uid="seamline-success-rate-warning",
        title="Handoff business success rate below 95%",
        sql=(
            f"SELECT handoff, round(100 * countIf(outcome = '{o.OK}') / countIf({IS_VALIDATED}), 2) AS value "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) GROUP BY handoff "
            # The critical rule owns everything below 80 %: one alert per handoff, not two.
            f"HAVING countIf({IS_VALIDATED}) >= {MIN_CALLS} AND value >= {SUCCESS_CRIT_PCT}"
        ),
        window_s=300,
        op="lt",
        threshold=SUCCESS_WARN_PCT,
        severity="warning",
        summary=f"{{{{ $labels.handoff }}}}: business success {_VALUE}% over 5 min (warning below {SUCCESS_WARN_PCT:g}%)",
        description="Validated calls of this handoff that ended ok (status, schema, assertions, echo) over the last 5 minutes. "
        f"Needs {MIN_CALLS} validated calls (calls Seamline refused itself are not counted). "
        "Open the run view to see failing runs and their violations.",
        anchor="success-rate",
    ),
    RuleSpec(
        uid="seamline-success-rate-critical",
        title="Handoff business success rate below 80%",
        sql=(
            f"SELECT handoff, round(100 * countIf(outcome = '{o.OK}') / countIf({IS_VALIDATED}), 2) AS value "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) GROUP BY handoff HAVING countIf({IS_VALIDATED}) >= {MIN_CALLS}"
        ),
        window_s=300,
        op="lt",
        threshold=SUCCESS_CRIT_PCT,
        severity="critical",
        summary=f"{{{{ $labels.handoff }}}}: business success {_VALUE}% over 5 min (critical below {SUCCESS_CRIT_PCT:g}%)",
        description="At least one in five calls of this handoff fails in business terms. Check the upstream and the violations.",
        anchor="success-rate",
    ),
    RuleSpec(
        uid="seamline-silent-failure-rate",
        title="Handoff silent-failure rate high",
        sql=(
            f"SELECT handoff, round(100 * countIf(outcome = '{o.SILENT_FAILURE}') / countIf({IS_VALIDATED}), 2) AS value "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) GROUP BY handoff HAVING countIf({IS_VALIDATED}) >= {MIN_CALLS}"
        ),
        window_s=600,
        op="gt",
        threshold=SILENT_FAILURE_PCT,
        severity="critical",
        summary=f"{{{{ $labels.handoff }}}}: {_VALUE}% of calls returned 2xx but failed their contract (10 min)",
        description="The upstream answers successfully while the business outcome failed (e.g. payment declined, field dropped). "
        "HTTP monitoring sees nothing; the workflow is silently wrong.",
        anchor="silent-failures",
    ),
    RuleSpec(
        uid="seamline-latency-p95-baseline",
        title="Handoff p95 latency above twice its 7-day baseline",
        sql=(
            "SELECT c.handoff AS handoff, round(c.p95 / b.p95, 2) AS value FROM "
            f"(SELECT handoff, quantile(0.95)(duration_ms) AS p95 FROM {HANDOFFS} WHERE $__timeFilter(ts) AND {IS_UPSTREAM_CALL} "
            f"GROUP BY handoff HAVING count() >= {MIN_CALLS}) AS c "
            "INNER JOIN "
            # Baseline from the per-minute rollup, excluding the last hour so a slow-down does not raise its own bar.
            "(SELECT handoff, arrayElement(quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(duration_q), 3) AS p95 "
            "FROM handoffs_1m WHERE minute >= $__toTime - INTERVAL 7 DAY AND minute < $__toTime - INTERVAL 1 HOUR "
            f"AND {IS_UPSTREAM_CALL} GROUP BY handoff HAVING sum(calls) >= {LATENCY_BASELINE_MIN_CALLS} AND p95 > 0) AS b "
            "ON c.handoff = b.handoff"
        ),
        window_s=600,
        op="gt",
        threshold=LATENCY_RATIO,
        severity="warning",
        summary=f"{{{{ $labels.handoff }}}}: p95 latency is {_VALUE}x its 7-day baseline (10 min)",
        description=f"p95 over the last 10 minutes divided by p95 over the previous 7 days (excluding the last hour). "
        f"Needs {MIN_CALLS} calls now and {LATENCY_BASELINE_MIN_CALLS} in the baseline.",
        anchor="latency",
        dashboard_uid=UPSTREAMS_UID,
    ),
    RuleSpec(
        uid="seamline-volume-above-normal",
        title="Handoff volume above 150% of normal",
        sql=(
            "SELECT c.handoff AS handoff, round(100 * c.calls / b.normal, 1) AS value FROM "
            f"(SELECT handoff, count() AS calls FROM {HANDOFFS} WHERE $__timeFilter(ts) "
            f"GROUP BY handoff HAVING calls >= {MIN_CALLS}) AS c "
            "INNER JOIN "
            # Normal: calls in the same clock hour on each of the previous 7 days (rollup), averaged over the days that
            # had traffic.
            "(SELECT handoff, sum(calls) / uniqExact(day) AS normal FROM "
            "(SELECT handoff, calls, intDiv(dateDiff('second', minute, $__toTime), 86400) AS day FROM handoffs_1m "
            "WHERE minute > $__toTime - INTERVAL 7 DAY - INTERVAL 1 HOUR AND minute <= $__toTime - INTERVAL 1 DAY "
            "AND dateDiff('second', minute, $__toTime) % 86400 < 3600) "
            f"GROUP BY handoff HAVING uniqExact(day) >= {VOLUME_BASELINE_MIN_DAYS} "
            f"AND normal >= {VOLUME_BASELINE_MIN_CALLS}) AS b "
            "ON c.handoff = b.handoff"
        ),
        window_s=3600,
        op="gt",
        threshold=VOLUME_PCT,
        severity="warning",
        summary=f"{{{{ $labels.handoff }}}}: {_VALUE}% of its normal hourly volume",
        description="Calls in the last hour against the average of the same hour over the previous 7 days. "
        "A runaway workflow, a retry storm or a batch job; check the runs for loops.",
        anchor="volume",
        for_="5m",
    ),
    RuleSpec(
        uid="seamline-error-rate",
        title="Handoff error rate above 50%",
        sql=(
            # Seamline's own refusals are neither errors nor calls here: an upstream that was never called cannot fail.
            f"SELECT handoff, round(100 * countIf({IS_ERROR}) / countIf({IS_UPSTREAM_CALL}), 2) AS value "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) GROUP BY handoff HAVING countIf({IS_UPSTREAM_CALL}) >= {ERROR_MIN_CALLS}"
        ),
        window_s=600,
        op="gt",
        threshold=ERROR_PCT,
        severity="critical",
        summary=f"{{{{ $labels.handoff }}}}: {_VALUE}% of calls failed at the HTTP or transport level (10 min)",
        description="More than half the calls got an HTTP error or no answer (timeout, connect, DNS, TLS). "
        "The upstream is down or refusing us. Calls Seamline refused itself (unknown upstream, too large, …) are not counted.",
        anchor="error-rate",
        dashboard_uid=UPSTREAMS_UID,
        for_="1m",
    ),
    RuleSpec(
        uid="seamline-auth-failure-burst",
        title="Handoff authentication failures burst",
        sql=(
            f"SELECT handoff, upstream, countIf({IS_AUTH_FAILURE}) AS value "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) GROUP BY handoff, upstream HAVING value > 0"
        ),
        window_s=300,
        op="gt",
        threshold=AUTH_BURST,
        severity="critical",
        summary=f"{{{{ $labels.handoff }}}} ({{{{ $labels.upstream }}}}): {_VALUE} auth failures in 5 min",
        description="401/403 answers in a burst: credentials revoked or expired (error_class auth_expired), "
        "or a wrong key deployed.",
        anchor="auth-failures",
        dashboard_uid=UPSTREAMS_UID,
        for_="0s",
    ),
    RuleSpec(
        uid="seamline-run-loop",
        title="Run calling the same handoff in a loop",
        sql=(
            "SELECT handoff, argMax(run_id, calls) AS run_id, max(calls) AS value FROM "
            f"(SELECT handoff, run_id, count() AS calls FROM {HANDOFFS} WHERE $__timeFilter(ts) AND run_id != '' "
            "GROUP BY handoff, run_id) GROUP BY handoff"
        ),
        window_s=900,
        op="gt",
        threshold=LOOP_MAX_CALLS,
        severity="critical",
        summary=f"Run {{{{ $labels.run_id }}}} called {{{{ $labels.handoff }}}} {_VALUE} times in 15 min",
        description=f"One run called the same handoff more than {LOOP_MAX_CALLS} times: a workflow loop or an unbounded retry. "
        "Non-idempotent steps (never_repeat) may have been repeated.",
        anchor="loops",
        for_="0s",
        link=f"{RUN_VIEW_URL}?var-run_id={{{{ $labels.run_id }}}}&var-handoff={{{{ $labels.handoff }}}}&from=now-1h&to=now",
    ),
    RuleSpec(
        uid="seamline-circuit-open",
        title="Upstream circuit breaker open",
        sql=(
            # Every call an open (or half-open) breaker refused is recorded with error class circuit_open: any such
            # row in the window means the breaker was open then, on at least one replica.
            f"SELECT upstream, countIf(error_class = '{o.CIRCUIT_OPEN}') AS value "
            f"FROM {HANDOFFS} WHERE $__timeFilter(ts) GROUP BY upstream HAVING value > 0"
        ),
        window_s=300,
        op="gt",
        threshold=CIRCUIT_OPEN_REFUSALS,
        severity="critical",
        summary=f"{{{{ $labels.upstream }}}}: circuit breaker open, {_VALUE} calls refused in 5 min",
        description="Seamline's circuit breaker for this upstream opened (a failure rate over its window, or "
        "consecutive failures) and answers its calls 503 circuit-open without forwarding them. The upstream is failing; "
        "see Upstream health, and seamline_circuit_state for when it probes and closes.",
        anchor="circuit-open",
        for_="0s",
        static_labels={"handoff": "all"},
        dashboard_uid=UPSTREAMS_UID,
    ),
    RuleSpec(
        uid="seamline-pauses",
        title="Handoff paused: outcome unknown",
        sql=(
            f"SELECT handoff, sumIf(calls, error_class = '{o.OUTCOME_UNKNOWN}') AS value "
            f"FROM {GUARDS} WHERE $__timeFilter(minute) GROUP BY handoff HAVING value > 0"
        ),
        window_s=900,
        op="gt",
        threshold=PAUSES_MAX,
        severity="critical",
        summary=f"{{{{ $labels.handoff }}}}: {_VALUE} repeats paused (outcome unknown) in 15 min",
        description="A never_repeat/safe_once call timed out or was cut after it was sent, and its repeats are answered "
        "409 outcome-unknown: it may have taken effect. Check the upstream by the external IDs in the 409, then resend "
        "under a new key (seamline replay --force --idempotency-key) or leave it.",
        anchor="pauses",
        for_="0s",
    ),
    RuleSpec(
        uid="seamline-loop-stopped",
        title="Loop stopped by Seamline",
        sql=(
            f"SELECT handoff, sumIf(calls, guard = '{o.GUARD_LOOP_BLOCKED}') AS value "
            f"FROM {GUARDS} WHERE $__timeFilter(minute) GROUP BY handoff HAVING value > 0"
        ),
        window_s=900,
        op="gt",
        threshold=LOOPS_STOPPED_MAX,
        severity="warning",
        summary=f"{{{{ $labels.handoff }}}}: {_VALUE} calls refused as a loop (loop-suspected) in 15 min",
        description="A run called this handoff more than loops.max_calls_per_run times within loops.window, and Seamline "
        "refused the calls over it (429 loop-suspected, loops.block). Fix the workflow that loops; the run is in the table "
        "of the overview's Guards / recovery row.",
        anchor="loop-stopped",
        for_="0s",
    ),
    RuleSpec(
        uid="seamline-duplicates-spike",
        title="Many duplicates prevented",
        sql=(
            f"SELECT handoff, sumIf(calls, guard IN {o.sql_list(o.DUPLICATES_PREVENTED)}) AS value "
            f"FROM {GUARDS} WHERE $__timeFilter(minute) GROUP BY handoff HAVING value > 0"
        ),
        window_s=900,
        op="gt",
        threshold=DUPLICATES_SPIKE,
        severity="warning",
        summary=f"{{{{ $labels.handoff }}}}: {_VALUE} duplicates prevented in 15 min",
        description=f"More than {DUPLICATES_SPIKE} repeats of a never_repeat/safe_once call were answered by the duplicate "
        "guard (replayed, or refused 409/422) instead of reaching the upstream. Nothing was charged twice, but a caller is "
        "retrying hard (a timeout too short, a retry loop, or one key reused for different requests).",
        anchor="duplicates-prevented",
    ),
    RuleSpec(
        uid="seamline-heartbeat-missing",
        title="Seamline heartbeat missing",
        sql=(
            f"SELECT proxy_instance, dateDiff('second', max(ts), $__toTime) AS value "
            f"FROM {HEALTH} WHERE $__timeFilter(ts) GROUP BY proxy_instance"
        ),
        window_s=86400,
        op="gt",
        threshold=HEARTBEAT_MAX_AGE_S,
        severity="critical",
        summary=f"Seamline instance {{{{ $labels.proxy_instance }}}}: no heartbeat for {_VALUE} s",
        description="The sidecar writes a heartbeat row every minute. None arrived: it is down, cannot reach ClickHouse, "
        "or is stuck. No heartbeat at all in the last day (no rows) also fires (noDataState: Alerting).",
        anchor="heartbeat",
        group=HEALTH_GROUP,
        no_data="Alerting",
        exec_err="Alerting",
        for_="0s",
        static_labels={"handoff": "all"},
        dashboard_uid=HEALTH_UID,
        link=f"/d/{HEALTH_UID}/seamline-health?var-instance={{{{ $labels.proxy_instance }}}}",
    ),
    RuleSpec(
        uid="seamline-spool-backlog",
        title="Seamline spool backlog not draining",
        sql=(
            f"SELECT proxy_instance, min(spool_records) AS value FROM {HEALTH} WHERE $__timeFilter(ts) "
            f"GROUP BY proxy_instance HAVING count() >= {HEARTBEAT_MIN_ROWS}"
        ),
        window_s=600,
        op="gt",
        threshold=0,
        severity="warning",
        summary=f"Seamline instance {{{{ $labels.proxy_instance }}}}: spool held at least {_VALUE} records for 10 min",
        description="Events are waiting on disk because ClickHouse did not take them; nothing is lost yet, "
        "but the spool has a cap. Check ClickHouse reachability and the instance's sink_up/reasons.",
        anchor="spool-backlog",
        group=HEALTH_GROUP,
        static_labels={"handoff": "all"},
        dashboard_uid=HEALTH_UID,
        link=f"/d/{HEALTH_UID}/seamline-health?var-instance={{{{ $labels.proxy_instance }}}}",
    ),
    RuleSpec(
        uid="seamline-events-dropped",
        title="Seamline dropped events",
        sql=(
            f"SELECT proxy_instance, greatest(max(dropped) - min(dropped), 0) AS value FROM {HEALTH} "
            "WHERE $__timeFilter(ts) GROUP BY proxy_instance"
        ),
        window_s=600,
        op="gt",
        threshold=0,
        severity="critical",
        summary=f"Seamline instance {{{{ $labels.proxy_instance }}}} dropped {_VALUE} events in 10 min",
        description="The spool is full or unwritable: handoff records are being lost (traffic still flows). "
        "Free disk or restore ClickHouse.",
        anchor="dropped-events",
        group=HEALTH_GROUP,
        static_labels={"handoff": "all"},
        dashboard_uid=HEALTH_UID,
        for_="0s",
        link=f"/d/{HEALTH_UID}/seamline-health?var-instance={{{{ $labels.proxy_instance }}}}",
    ),
)


def firing(spec: RuleSpec, value: float) -> bool:
    """Grafana's Threshold expression: `value > threshold` (gt) or `value < threshold` (lt)."""
    return value > spec.threshold if spec.op == "gt" else value < spec.threshold
