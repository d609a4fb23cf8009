"""The Grafana ClickHouse plugin's backend macros, expanded by Seamline so it runs the dashboards' and alert rules'
SQL itself (the `/handoffs` page, `seamline top`, `seamline alerts check`).

The expansions are those of grafana-clickhouse-datasource 4.x (`pkg/macros`): times in whole unix seconds,
`$__timeFilter(c)` inclusive at both ends. Only numbers Seamline computes are written into the SQL; a caller's
text never is (every caller value is a bound `{name:Type}` parameter).
"""

from __future__ import annotations

import re
from datetime import datetime

_TIME_MACROS = ("timeFilter", "timeInterval")


class MacroError(ValueError):
    """The SQL uses a macro or variable Seamline does not expand (e.g. a dashboard variable)."""


def _args(sql: str, open_paren: int) -> tuple[str, int]:
    """The single argument of a macro call starting at `open_paren`; (argument, index after ')')."""
    depth = 0
    for i in range(open_paren, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth == 0:
                return sql[open_paren + 1 : i].strip(), i + 1
    raise MacroError(f"unbalanced macro call: {sql[open_paren : open_paren + 60]!r}")


def expand(sql: str, *, frm: datetime, to: datetime, interval_s: int = 60) -> str:
    """`sql` with the plugin's time macros replaced for the range [frm, to] and buckets of `interval_s` seconds."""
    f, t, n = int(frm.timestamp()), int(to.timestamp()), max(int(interval_s), 1)
    render = {
        "timeFilter": lambda c: f"{c} >= toDateTime({f}) AND {c} <= toDateTime({t})",
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {n} second)",
    }
    out = sql
    for name in _TIME_MACROS:
        macro = f"$__{name}("
        idx = out.find(macro)
        while idx != -1:
            arg, end = _args(out, idx + len(macro) - 1)
            out = out[:idx] + render[name](arg) + out[end:]
            idx = out.find(macro)
    out = re.sub(r"\$__fromTime\b", f"toDateTime({f})", out)
    out = re.sub(r"\$__toTime\b", f"toDateTime({t})", out)
    out = re.sub(r"\$__interval_s\b", str(n), out)
    left = re.search(r"\$\{?[\w:]+\}?", out)
    if left:
        raise MacroError(f"unexpanded macro or variable {left.group()!r}")
    return out
