"""Grafana as code for Seamline: dashboards (grafana-foundation-sdk), alert rules and provisioning files.

`generate(out_dir)` writes everything under `out_dir` (the repo's `grafana/` directory):

- `dashboards/*.json`: Handoff overview, Runs, Run view, Upstream health, Contract drift, Seamline health;
- `provisioning/datasources/clickhouse.yaml`, `provisioning/dashboards/provider.yaml`;
- `provisioning/alerting/{rules,contact-points,policies}.yaml`.

Regenerate with `python -m seamline.dashboards` (tests fail when the committed files differ). The SDK is an
optional extra, `pip install 'seamline[dashboards]'`: the sidecar itself never imports this package.
"""

EXTRA_HINT = "seamline.dashboards needs the Grafana Foundation SDK, an optional extra: pip install 'seamline[dashboards]'"

try:
    from seamline.dashboards.generate import generate
except ModuleNotFoundError as e:
    # Every submodule is imported through this package, so this one check names the extra for all of them. The
    # package itself is what is missing (name=__name__): `python -m seamline.dashboards` says so in one line.
    if e.name is None or e.name.partition(".")[0] != "grafana_foundation_sdk":
        raise
    raise ModuleNotFoundError(EXTRA_HINT, name=__name__) from None

__all__ = ["EXTRA_HINT", "generate"]
