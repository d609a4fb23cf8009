"""The Grafana dashboards' UIDs and URLs, shared by the dashboard generator and the alert rules (no SDK needed)."""

from __future__ import annotations

from typing import Final

OVERVIEW_UID: Final = "seamline-overview"
RUNS_UID: Final = "seamline-runs"
RUN_VIEW_UID: Final = "seamline-run-view"
UPSTREAMS_UID: Final = "seamline-upstreams"
DRIFT_UID: Final = "seamline-drift"
HEALTH_UID: Final = "seamline-health"

# Grafana resolves /d/<uid>/<anything>; the slug is cosmetic.
RUN_VIEW_URL: Final = f"/d/{RUN_VIEW_UID}/run-view"
RUNS_URL: Final = f"/d/{RUNS_UID}/runs"
