"""The shipped alert rules (`seamline.read.rules`, the very rules of grafana/provisioning/alerting/rules.yaml)
evaluated by Seamline itself: each rule's SQL over its window ending now, one series per row (string columns are
labels, `value` the number), Grafana's Threshold on it.

Unlike Grafana there is no pending period (`for`): a check reports what is over its threshold at this instant.
A rule whose `noDataState` is Alerting fires when its query returns no row at all (e.g. no heartbeat).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from seamline.read.macros import expand
from seamline.read.queries import QueryStore
from seamline.read.rules import RULES, RuleSpec, firing


@dataclass(frozen=True)
class Evaluation:
    """One series of one rule at one instant."""

    uid: str
    title: str
    severity: str
    labels: dict[str, str]
    value: float | None  # None: the query returned no row (no data)
    threshold: float
    op: str
    firing: bool
    window_s: int
    link: str = ""  # a path on the admin listener: the run, the handoff's failed runs, or the overview
    summary: str = field(default="")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_sql(spec: RuleSpec, at: datetime) -> str:
    """The rule's query as the database receives it for an evaluation at `at` (its relative range: window → now)."""
    return expand(spec.sql, frm=at - timedelta(seconds=spec.window_s), to=at)


def link_for(labels: dict[str, str], window_s: int) -> str:
    """Where to look: the run (a loop), the handoff's failed runs over the window, else the overview."""
    if labels.get("run_id"):
        return "/runs/" + quote(labels["run_id"], safe="")
    handoff = labels.get("handoff")
    since = f"{max(window_s // 60, 1)}m"
    if handoff and handoff != "all":
        return "/runs?" + urlencode({"handoff": handoff, "failed": "true", "since": since})
    return "/handoffs?since=" + ("15m" if window_s <= 900 else "1h" if window_s <= 3600 else "24h")


def _summary(spec: RuleSpec, labels: dict[str, str], value: float | None) -> str:
    where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"
    shown = "no data" if value is None else f"{value:g}"
    return f"{spec.title}: {where}: {shown} ({spec.op} {spec.threshold:g} over {spec.window_s // 60} min)"


def evaluate_rows(spec: RuleSpec, rows: list[dict[str, Any]]) -> list[Evaluation]:
    """One Evaluation per returned row (plus the no-data case); labels: the rule's static labels and string columns."""
    out = []
    for row in rows:
        raw = row.get("value")
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            continue  # Grafana's Reduce drops a NaN/NULL series (mode: dropNN is not set, last of none): no alert
        value = float(raw)
        labels = {**spec.static_labels, **{k: str(v) for k, v in row.items() if k != "value"}}
        out.append(_evaluation(spec, labels, value, firing(spec, value)))
    if not rows and spec.no_data == "Alerting":
        out.append(_evaluation(spec, dict(spec.static_labels), None, True))
    return out


def _evaluation(spec: RuleSpec, labels: dict[str, str], value: float | None, fires: bool) -> Evaluation:
    return Evaluation(
        uid=spec.uid,
        title=spec.title,
        severity=spec.severity,
        labels=labels,
        value=value,
        threshold=spec.threshold,
        op=spec.op,
        firing=fires,
        window_s=spec.window_s,
        link=link_for(labels, spec.window_s),
        summary=_summary(spec, labels, value),
    )


async def evaluate(store: QueryStore, *, at: datetime | None = None, rules: tuple[RuleSpec, ...] = RULES) -> list[Evaluation]:
    """Every series of every rule at `at` (default now), firing ones first."""
    at = at or datetime.now(UTC)
    out: list[Evaluation] = []
    for spec in rules:
        out.extend(evaluate_rows(spec, await store.query(rule_sql(spec, at))))
    return sorted(out, key=lambda ev: (not ev.firing, ev.severity != "critical", ev.uid))
