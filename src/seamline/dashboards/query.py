"""A typed ClickHouse query for grafana-foundation-sdk (the SDK ships none).

The JSON shape is the `grafana-clickhouse-datasource` 4.x SQL-editor query:
`{refId, datasource, editorType: "sql", queryType, rawSql, format}`.
"""

from __future__ import annotations

import enum
import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

PLUGIN_ID: typing.Final = "grafana-clickhouse-datasource"
# Provisioned in grafana/provisioning/datasources/clickhouse.yaml; every panel and rule refers to it.
DATASOURCE_UID: typing.Final = "seamline-clickhouse"
DATASOURCE = dashboard.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)


class Format(enum.IntEnum):
    """The plugin's result formats."""

    TIME_SERIES = 0
    TABLE = 1
    LOGS = 2
    TRACES = 3


_QUERY_TYPE = {
    Format.TIME_SERIES: "timeseries",
    Format.TABLE: "table",
    Format.LOGS: "logs",
    Format.TRACES: "traces",
}


class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL query of the ClickHouse plugin."""

    ref_id: str
    raw_sql: str
    format: Format
    hide: bool | None
    datasource: dashboard.DataSourceRef

    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        format: Format = Format.TABLE,
        hide: bool | None = None,
        datasource: dashboard.DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = Format(format)
        self.hide = hide
        self.datasource = datasource or dashboard.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": self.datasource,
            "editorType": "sql",
            "queryType": _QUERY_TYPE[self.format],
            "format": int(self.format),
            "rawSql": self.raw_sql,
        }
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        ds = data.get("datasource")
        return cls(
            ref_id=data.get("refId", "A"),
            raw_sql=data.get("rawSql", ""),
            format=Format(data.get("format", Format.TABLE)),
            hide=data.get("hide"),
            datasource=dashboard.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
        )


class Query(cogbuilder.Builder[ClickHouseQuery]):
    """Builder: `Query(sql).format(Format.TIME_SERIES).ref_id("B")`."""

    def __init__(self, raw_sql: str, format: Format = Format.TABLE) -> None:
        self._internal = ClickHouseQuery(raw_sql=raw_sql, format=format)

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def format(self, format: Format) -> typing.Self:
        self._internal.format = Format(format)
        return self

    def hide(self, hide: bool) -> typing.Self:
        self._internal.hide = hide
        return self


def register() -> None:
    """Teach the SDK's `from_json` to decode ClickHouse targets into `ClickHouseQuery`."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=PLUGIN_ID, from_json_hook=ClickHouseQuery.from_json)
    )
