"""What every Seamline dashboard shares: UIDs, URLs, the dashboard shell."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as dsb
from grafana_foundation_sdk.models import dashboard as dm

from seamline.dashboards.panels import dashboard_links
from seamline.read.grafana_ids import (
    DRIFT_UID,
    HEALTH_UID,
    OVERVIEW_UID,
    RUN_VIEW_UID,
    RUN_VIEW_URL,
    RUNS_UID,
    RUNS_URL,
    UPSTREAMS_UID,
)

__all__ = [
    "DRIFT_UID",
    "HEALTH_UID",
    "OVERVIEW_UID",
    "RUNS_UID",
    "RUNS_URL",
    "RUN_LINK",
    "RUN_VIEW_UID",
    "RUN_VIEW_URL",
    "UPSTREAMS_UID",
    "shell",
]

# A data link from a run_id cell to the run view, keeping the time range.
RUN_LINK: Final = f"{RUN_VIEW_URL}?var-run_id=${{__value.raw}}&${{__url_time_range}}"


def shell(uid: str, title: str, description: str, *, time_from: str = "now-6h", refresh: str = "1m") -> dsb.Dashboard:
    """An empty dashboard with Seamline's conventions (tag, links, UTC, refresh)."""
    return (
        dsb.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["seamline"])
        .timezone("utc")
        .time(time_from, "now")
        .refresh(refresh)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .links(dashboard_links())
    )
