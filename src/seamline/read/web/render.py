"""HTML for the run page and the run list: self-contained (inline CSS/JS, nothing fetched), every value escaped.

Payloads are untrusted: text goes through `html.escape`; the run's data for the click-to-show
panel travels as JSON inside a `<script type="application/json">` with `<`, `>`, `&` escaped,
and the script only ever writes it with `textContent`.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from html import escape
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlsplit

from seamline import outcomes as o
from seamline.read.queries import FAILED_OUTCOMES, KNOWN_OUTCOMES

REFUSED_TITLE = "Seamline answered this call itself (see the error class): not a failure of the upstream"


@cache
def _asset(name: str) -> str:
    return files("seamline.read.web").joinpath(name).read_text(encoding="utf-8")


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def script_json(data_json: str) -> str:
    """JSON made safe to sit inside a <script> element (no `</script>`, no HTML comment openers)."""
    return (
        data_json.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def run_href(run_id: str) -> str:
    return "/runs/" + quote(run_id, safe="")


def _ts(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return str(value or "")


def _ms(value: Any) -> str:
    v = float(value or 0)
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms"


def outcome_class(outcome: str) -> str:
    return f"o-{outcome}" if outcome in KNOWN_OUTCOMES else "o-other"


def _badge(outcome: str, *, empty: str = "—", coloured: bool = True) -> str:
    """The outcome as a badge (`coloured=False` inside a row that carries the outcome class itself)."""
    cls = f"badge {outcome_class(outcome)}" if coloured else "badge"
    title = f' title="{e(REFUSED_TITLE)}"' if outcome == o.REFUSED else ""
    return f'<span class="{cls}"{title}>{e(outcome or empty)}</span>'


def _failed(summary: dict[str, Any]) -> str:
    """`3 (1 refused)`: Seamline's own refusals count as failed steps but are told apart."""
    failed, refused = int(summary.get("failed") or 0), int(summary.get("refused") or 0)
    return f"{failed} ({refused} refused)" if refused else str(failed)


def page(title: str, body: str, *, nonce: str, script: str = "") -> str:
    js = f'<script nonce="{e(nonce)}">{script}</script>' if script else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · Seamline</title><style>{_asset('run.css')}</style></head>"
        '<body><header class="top"><a href="/runs">Seamline runs</a> <a href="/handoffs">Handoffs</a></header>'
        f"<main>{body}</main>{js}</body></html>"
    )


def _path(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else url


def waterfall(rows: list[dict[str, Any]], total_ms: float) -> str:
    """One row per handoff; the bar starts at its offset and spans its duration, both as % of the run."""
    total = max(float(total_ms or 0), 1.0)
    out = ['<div class="wf" role="list">']
    out.append(
        '<div class="wf-row wf-head"><span>offset</span><span>handoff</span><span>request</span>'
        "<span>status</span><span>timeline</span><span>duration</span><span>outcome</span><span>error</span></div>"
    )
    for i, row in enumerate(rows):
        offset = float(row.get("offset_ms") or 0)
        dur = float(row.get("duration_ms") or 0)
        left = min(offset / total * 100, 100.0)
        width = max(min(dur / total * 100, 100.0 - left), 0.4)
        outcome = str(row.get("outcome") or "")
        status = int(row.get("status") or 0)
        attempt = int(row.get("attempt") or 1)
        err = str(row.get("error_class") or "")
        err = "" if err == o.NONE else err
        # data-failed marks the rows `#first-failure` may open (run.js keeps no outcome list of its own).
        failed = " data-failed" if outcome in FAILED_OUTCOMES else ""
        retry = f" <small>(attempt {attempt})</small>" if attempt > 1 else ""
        out.append(
            f'<div class="wf-row {outcome_class(outcome)}" role="listitem" tabindex="0" data-index="{i}"{failed}>'
            f'<span class="num">+{_ms(offset)}</span>'
            f'<span class="name">{e(row.get("handoff") or "—")}{retry}</span>'
            f'<span class="req"><b>{e(row.get("method"))}</b> {e(_path(str(row.get("url") or "")))}</span>'
            f'<span class="num">{status or "—"}</span>'
            f'<span class="track"><span class="bar" style="left:{left:.3f}%;width:{width:.3f}%"></span></span>'
            f'<span class="num">{_ms(dur)}</span>'
            f"{_badge(outcome, coloured=False)}"
            f'<span class="err">{e(err)}</span>'
            "</div>"
        )
    out.append("</div>")
    return "".join(out)


def run_page(run: dict[str, Any], *, data_json: str, nonce: str) -> str:
    s = run["summary"]
    rows = run["handoffs"]
    worst = str(s.get("worst_outcome") or "")
    violations = sorted({v for r in rows for v in (r.get("violations") or [])})
    facts = [
        ("started", _ts(s.get("first_ts"))),
        ("duration", _ms(s.get("duration_ms"))),
        ("handoffs", s.get("handoffs")),
        ("failed", _failed(s)),
        ("error classes", ", ".join(s.get("error_classes") or []) or "—"),
        ("violations", ", ".join(violations) or "—"),
        ("trace", ", ".join(s.get("trace_ids") or []) or "—"),
    ]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
    body = (
        f"<h1>Run <code>{e(run['run_id'])}</code> {_badge(worst)}</h1>"
        f'<dl class="facts">{dl}</dl>'
        f"<h2>Timeline</h2>{waterfall(rows, float(s.get('duration_ms') or 0))}"
        '<p class="hint">Click a handoff to see its redacted request and response.</p>'
        '<section id="detail" class="detail" hidden></section>'
        f'<script type="application/json" id="run-data">{script_json(data_json)}</script>'
    )
    return page(f"Run {run['run_id']}", body, nonce=nonce, script=_asset("run.js"))


def runs_page(rows: list[dict[str, Any]], *, form: dict[str, Any], nonce: str) -> str:
    options = "".join(
        f'<option value="{e(x)}"{" selected" if x == form.get("outcome") else ""}>{e(x or "any outcome")}</option>'
        for x in ("", *KNOWN_OUTCOMES)
    )
    checked = " checked" if form.get("failed") else ""
    filters = (
        '<form class="filters" method="get" action="/runs">'
        f'<label>since <input name="since" value="{e(form.get("since"))}" size="6"></label>'
        f'<label>outcome <select name="outcome">{options}</select></label>'
        f'<label>handoff <input name="handoff" value="{e(form.get("handoff"))}"></label>'
        '<label><input type="hidden" name="failed" value="false">'
        f'<input type="checkbox" name="failed" value="true"{checked}> failed only</label>'
        f'<label>limit <input name="limit" value="{e(form.get("limit"))}" size="4"></label>'
        "<button>Show</button></form>"
    )
    if not rows:
        table = '<p class="empty">No runs match.</p>'
    else:
        trs = []
        for r in rows:
            worst = str(r.get("worst_outcome") or "")
            trs.append(
                "<tr>"
                f"<td>{e(_ts(r.get('last_ts')))}</td>"
                f'<td><a href="{e(run_href(str(r["run_id"])))}"><code>{e(r["run_id"])}</code></a></td>'
                f'<td class="num">{e(r.get("handoffs"))}</td><td class="num">{e(_failed(r))}</td>'
                f"<td>{_badge(worst, empty='')}</td>"
                f"<td>{e(', '.join(r.get('error_classes') or []))}</td>"
                f"<td>{e(', '.join(r.get('failed_handoffs') or []))}</td>"
                f'<td class="num">{e(_ms(r.get("duration_ms")))}</td>'
                "</tr>"
            )
        table = (
            '<table class="runs"><thead><tr><th>last activity</th><th>run</th><th>handoffs</th><th>failed</th>'
            "<th>worst outcome</th><th>error classes</th><th>failed handoffs</th><th>duration</th></tr></thead>"
            f"<tbody>{''.join(trs)}</tbody></table>"
        )
    title = "Recent failed runs" if form.get("failed") else "Recent runs"
    return page(title, f"<h1>{e(title)}</h1>{filters}{table}", nonce=nonce)


def not_found_page(run_id: str) -> str:
    body = f"<h1>Run not found</h1><p>No handoffs are recorded for run <code>{e(run_id)}</code>.</p>"
    return page("Run not found", body, nonce="")


def error_page(message: str) -> str:
    return page("Error", f"<h1>Cannot show this page</h1><p>{e(message)}</p>", nonce="")


def login_page(*, next_path: str, wrong: bool) -> str:
    """The admin token form a browser gets with a 401 on a run page (posted to /login, never put in the URL)."""
    note = '<p class="error">That token was not accepted.</p>' if wrong else ""
    body = (
        "<h1>Admin token required</h1>"
        "<p>This Seamline's run pages need its admin token (<code>admin.token</code> or "
        "<code>SEAMLINE_ADMIN_TOKEN</code>).</p>"
        f'{note}<form class="filters" method="post" action="/login">'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<label>token <input type="password" name="token" autocomplete="current-password" required autofocus></label>'
        "<button>Sign in</button></form>"
    )
    return page("Admin token required", body, nonce="")
