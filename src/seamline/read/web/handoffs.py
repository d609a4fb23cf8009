"""The handoff overview page (`/handoffs`): one row per handoff, worst first, no script at all (inline SVG sparklines).

Every value is escaped (handoff names and error classes come from recorded rows).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from seamline.read.overview import WINDOWS
from seamline.read.web.render import e, page, run_href

SPARK_W, SPARK_H = 120, 26
# A change smaller than this many percentage points is shown as steady.
STEADY_PP = 0.5


def runs_href(handoff: str, since: str) -> str:
    return "/runs?" + urlencode({"handoff": handoff, "failed": "true", "since": since})


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}%"


def _ms(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def arrow(delta: float | None, *, higher_is_better: bool | None, unit: str = "pp", steady: float = STEADY_PP) -> str:
    """▲/▼ with the change, coloured good/bad (`higher_is_better=None`: neutral, e.g. volume)."""
    if delta is None:
        return '<span class="chg">new</span>' if unit == "calls" else ""
    if abs(delta) < steady:
        return '<span class="chg">▬</span>'
    up = delta > 0
    tone = "" if higher_is_better is None else " good" if up == higher_is_better else " bad"
    text = f"{delta:+.0f}" if unit == "calls" else f"{delta:+.1f} {unit}" if unit else f"{delta:+.1f}"
    return f'<span class="chg{tone}" title="change against the previous window">{"▲" if up else "▼"} {e(text)}</span>'


def sparkline(points: list[dict[str, Any]]) -> str:
    """Calls per bucket as grey bars, business success as a line (0-100 %) on top."""
    if not points:
        return ""
    n = len(points)
    step = SPARK_W / n
    peak = max((int(p.get("calls") or 0) for p in points), default=0) or 1
    bars = []
    for i, p in enumerate(points):
        h = int(p.get("calls") or 0) / peak * (SPARK_H - 2)
        if h > 0:
            bars.append(f'<rect x="{i * step:.1f}" y="{SPARK_H - h:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}"/>')
    line = []
    for i, p in enumerate(points):
        rate = p.get("business_success_pct")
        if rate is not None:
            y = 1 + (100 - float(rate)) / 100 * (SPARK_H - 2)
            line.append(f"{i * step + step / 2:.1f},{y:.1f}")
    poly = f'<polyline class="rate" points="{" ".join(line)}"/>' if len(line) > 1 else ""
    label = f"calls and business success over {n} intervals"
    return (
        f'<svg class="spark" width="{SPARK_W}" height="{SPARK_H}" viewBox="0 0 {SPARK_W} {SPARK_H}" role="img" '
        f'aria-label="{e(label)}"><g class="vol">{"".join(bars)}</g>{poly}</svg>'
    )


def _tone(rate: Any) -> str:
    if rate is None:
        return ""
    return "good" if rate >= 95 else "warn" if rate >= 80 else "bad"


def _row(r: dict[str, Any], since: str) -> str:
    ch = r.get("change") or {}
    name = r["handoff"] or "(unrouted)"
    last = r.get("last_failed_run") or ""
    last_link = f'<a href="{e(run_href(last))}"><code>{e(last)}</code></a>' if last else "—"
    return (
        f'<tr class="h-{_tone(r.get("business_success_pct"))}" data-handoff="{e(r["handoff"])}">'
        f'<td><a href="{e(runs_href(r["handoff"], since))}">{e(name)}</a></td>'
        f'<td class="num">{e(r["calls"])} {arrow(ch.get("calls"), higher_is_better=None, unit="calls", steady=1)}</td>'
        f'<td class="num">{_pct(r.get("http_success_pct"))} {arrow(ch.get("http_success_pct"), higher_is_better=True)}</td>'
        f'<td class="num biz">{_pct(r.get("business_success_pct"))} '
        f"{arrow(ch.get('business_success_pct'), higher_is_better=True)}</td>"
        f'<td class="num">{e(r["silent_failures"])}</td>'
        f'<td class="num">{_ms(r.get("p50_ms"))}</td>'
        f'<td class="num">{_ms(r.get("p95_ms"))} {arrow(ch.get("p95_ms"), higher_is_better=False, unit="ms", steady=5)}</td>'
        f"<td>{e(r.get('top_error_class') or '—')}</td>"
        f'<td class="num">{e(r["rate_limited"])}</td><td class="num">{e(r["auth_expired"])}</td>'
        f'<td class="num">{e(r["duplicates_prevented"])}</td>'
        f"<td>{sparkline(r.get('sparkline') or [])}</td>"
        f"<td>{last_link}</td>"
        "</tr>"
    )


def handoffs_page(data: dict[str, Any], *, nonce: str) -> str:
    since = str(data["since"])
    tabs = " ".join(f'<a class="tab{" on" if w == since else ""}" href="/handoffs?since={e(w)}">{e(w)}</a>' for w in WINDOWS)
    t = data["totals"]
    summary = (
        f'<p class="summary">{e(t["handoffs"])} handoffs · {e(t["calls"])} calls ({e(t["calls_per_s"])}/s) · '
        f"business success {_pct(t.get('business_success_pct'))} · {e(t['failed'])} failed · "
        f"{e(t['silent_failures'])} silent failures · arrows: change against the previous {e(since)}</p>"
    )
    rows = data.get("handoffs") or []
    if not rows:
        table = f'<p class="empty">No handoffs recorded in the last {e(since)}.</p>'
    else:
        head = "".join(
            f"<th>{e(h)}</th>"
            for h in (
                "handoff",
                "calls",
                "HTTP success",
                "business success",
                "silent failures",
                "p50",
                "p95",
                "top error class",
                "rate-limited",
                "auth expired",
                "duplicates prevented",
                "trend",
                "last failed run",
            )
        )
        body = "".join(_row(r, since) for r in rows)
        table = f'<table class="runs handoffs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    title = "Handoff health"
    return page(title, f'<h1>{e(title)}</h1><nav class="tabs">{tabs}</nav>{summary}{table}', nonce=nonce)
