"""Grafana as code for Seamline: dashboards (grafana-foundation-sdk), alert rules and provisioning files.

`generate(out_dir)` writes everything under `out_dir` (the repo's `grafana/` directory):

- `dashboards/*.json`: Handoff overview, Runs, Run view, Upstream health, Contract drift, Seamline health;
- `provisioning/datasources/clickhouse.yaml`, `provisioning/dashboards/provider.yaml`;
- `provisioning/alerting/{rules,contact-points,policies}.yaml`.

Regenerate with `python -m seamline.dashboards` (tests fail when the committed files differ).
"""

from seamline.dashboards.generate import generate

__all__ = ["generate"]
