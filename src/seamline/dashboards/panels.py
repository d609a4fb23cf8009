"""Small panel factories so each dashboard module reads as a list of questions and their SQL."""

from __future__ import annotations

from collections.abc import Iterable

from grafana_foundation_sdk.builders import dashboard as dsb
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig, VizLegendOptions
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from seamline.dashboards.query import DATASOURCE, Format, Query
from seamline.dashboards.sql import VARIABLE_COLUMNS, values_query


class PanelIds:
    """Hands out stable panel ids in declaration order (alert rules link to them)."""

    def __init__(self) -> None:
        self._next = 1

    def __call__(self) -> int:
        n, self._next = self._next, self._next + 1
        return n


def _targets(queries: Iterable[str | Query], fmt: Format) -> list[Query]:
    out: list[Query] = []
    for i, q in enumerate(queries):
        query = q if isinstance(q, Query) else Query(q, fmt)
        out.append(query.ref_id(chr(ord("A") + i)))
    return out


def time_series(
    ids: PanelIds,
    title: str,
    *queries: str | Query,
    description: str = "",
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    bars: bool = False,
    stacked: bool = False,
) -> timeseries.Panel:
    p = (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for t in _targets(queries, Format.TIME_SERIES):
        p = p.with_target(t)
    if bars:
        p = p.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    if stacked:
        p = p.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    return p


def table_panel(
    ids: PanelIds,
    title: str,
    *queries: str | Query,
    description: str = "",
    w: int = 24,
    h: int = 9,
    links: dict[str, tuple[str, str]] | None = None,
    units: dict[str, str] | None = None,
) -> table.Panel:
    """A table; `links` maps a column to (link title, URL) using `${__value.raw}` / `${__data.fields.x}`."""
    p = table.Panel().id(ids()).title(title).description(description).datasource(DATASOURCE).span(w).height(h).filterable(True)
    for t in _targets(queries, Format.TABLE):
        p = p.with_target(t)
    for column, (link_title, url) in (links or {}).items():
        p = p.override_by_name(column, [dm.DynamicConfigValue(id_val="links", value=[{"title": link_title, "url": url}])])
    for column, unit in (units or {}).items():
        p = p.override_by_name(column, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    return p


def stat_panel(
    ids: PanelIds,
    title: str,
    sql: str,
    *,
    description: str = "",
    unit: str = "short",
    w: int = 4,
    h: int = 4,
    steps: list[tuple[float | None, str]] | None = None,
) -> stat.Panel:
    """A single number; `steps` are (from value, colour) thresholds, the first from None."""
    p = (
        stat.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .with_target(Query(sql, Format.TABLE).ref_id("A"))
    )
    if steps:
        p = p.thresholds(
            dsb.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(value=v, color=c) for v, c in steps])
        ).color_mode(common.BigValueColorMode.BACKGROUND)
    return p


def raw_panel(
    ids: PanelIds,
    panel_type: str,
    title: str,
    *queries: str | Query,
    fmt: Format,
    description: str = "",
    w: int = 24,
    h: int = 12,
) -> dsb.Panel:
    """A core panel the SDK has no builder for (e.g. `traces`)."""
    p = dsb.Panel().type(panel_type).id(ids()).title(title).description(description).datasource(DATASOURCE).span(w).height(h)
    for t in _targets(queries, fmt):
        p = p.with_target(t)
    return p


def multi_variable(name: str, label: str, column: str | None = None) -> dsb.QueryVariable:
    """A multi-value variable with All, fed by the distinct values of its column."""
    col = column or VARIABLE_COLUMNS[name]
    return (
        dsb.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(values_query(col))
        .multi(True)
        .include_all(True)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def dashboard_links() -> list[cogbuilder.Builder[dm.DashboardLink]]:
    """Every Seamline dashboard links to the others (keeping time range and variables)."""
    return [
        dsb.DashboardLink("Seamline")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(["seamline"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
        .icon("external link")
    ]
