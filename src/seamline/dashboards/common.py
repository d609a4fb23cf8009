"""What every Seamline dashboard shares: UIDs, URLs, the dashboard shell."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as dsb
from grafana_foundation_sdk.models import dashboard as dm

from seamline.dashboards.panels import dashboard_links

OVERVIEW_UID: Final = "seamline-overview"
RUNS_UID: Final = "seamline-runs"
RUN_VIEW_UID: Final = "seamline-run-view"
UPSTREAMS_UID: Final = "seamline-upstreams"
DRIFT_UID: Final = "seamline-drift"
HEALTH_UID: Final = "seamline-health"

# Grafana resolves /d/<uid>/<anything>; the slug is cosmetic.
RUN_VIEW_URL: Final = f"/d/{RUN_VIEW_UID}/run-view"
RUNS_URL: Final = f"/d/{RUNS_UID}/runs"
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
