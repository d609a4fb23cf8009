"""Grafana provisioning documents for the datasource and the dashboard provider.

Grafana expands `$VAR` in provisioning files from its environment (docker-compose.yml sets them).
"""

from __future__ import annotations

from typing import Any, Final

from seamline.dashboards.query import DATASOURCE_UID, PLUGIN_ID

DATABASE: Final = "seamline"
# Where docker-compose.yml mounts grafana/dashboards inside the Grafana container.
DASHBOARDS_PATH: Final = "/var/lib/grafana/dashboards/seamline"
DASHBOARD_FOLDER: Final = "Seamline"
DASHBOARD_FOLDER_UID: Final = "seamline"


def datasource() -> dict[str, Any]:
    """The ClickHouse datasource: read-only user, native protocol, trace defaults on otel_traces."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "ClickHouse (Seamline)",
                "uid": DATASOURCE_UID,
                "type": PLUGIN_ID,
                "orgId": 1,
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "host": "$SEAMLINE_CLICKHOUSE_HOST",
                    "port": 9000,
                    "protocol": "native",
                    "secure": False,
                    "username": "$SEAMLINE_CLICKHOUSE_READER_USER",
                    "defaultDatabase": DATABASE,
                    "dialTimeout": "10",
                    "queryTimeout": "60",
                    "traces": {
                        "defaultDatabase": DATABASE,
                        "defaultTable": "otel_traces",
                        "otelEnabled": True,
                        "otelVersion": "latest",
                        "traceIdColumn": "TraceId",
                        "spanIdColumn": "SpanId",
                        "parentSpanIdColumn": "ParentSpanId",
                        "serviceNameColumn": "ServiceName",
                        "operationNameColumn": "SpanName",
                        "startTimeColumn": "Timestamp",
                        "durationColumn": "Duration",
                        "durationUnit": "nanoseconds",
                        "tagsColumn": "SpanAttributes",
                        "serviceTagsColumn": "ResourceAttributes",
                    },
                },
                "secureJsonData": {"password": "$SEAMLINE_CLICKHOUSE_READER_PASSWORD"},
            }
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    """File provider for the generated dashboards (read-only in the UI: the JSON in git is the truth)."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "seamline",
                "orgId": 1,
                "folder": DASHBOARD_FOLDER,
                "folderUid": DASHBOARD_FOLDER_UID,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": DASHBOARDS_PATH, "foldersFromFilesStructure": False},
            }
        ],
    }
