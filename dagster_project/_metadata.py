"""Metadata an analyst reads in the Dagster UI, built from what the lower layers know.

``dagster/column_schema`` comes from the Pandera model (types, descriptions, constraints),
``dagster/column_lineage`` from the mapping; and because open-source Dagster stores
column lineage without drawing it, the same lineage is also published as a table,
``column | from | transform``, which the UI shows on the asset's pages.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from dagster import (
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableColumnDep,
    TableColumnLineage,
    TableRecord,
    TableSchema,
)

from connectors import redact
from normalization import ColumnLineage, EntityMapping, NormalizeResult
from pipelines.openlineage import OpenLineageEmitter, run_event

from ._translator import HeadwaterTranslator

LINEAGE_TABLE = "column lineage"
# Short columns first, so the long list of sources is the one that wraps on a laptop.
LINEAGE_SCHEMA = TableSchema(columns=[
    TableColumn("column", "string", description="this asset's column"),
    TableColumn("transform", "string", description="how it is made from its sources"),
    TableColumn("from", "string", description="source asset.column"),
])


_CHECK_WORDS = {
    "greater_than_or_equal_to": ">= {min_value}", "greater_than": "> {min_value}",
    "less_than_or_equal_to": "<= {max_value}", "less_than": "< {max_value}",
    "equal_to": "= {value}", "not_equal_to": "!= {value}",
    "in_range": "from {min_value} to {max_value}", "isin": "one of {allowed_values}",
    "notin": "none of {forbidden_values}", "str_matches": "matches {pattern}",
    "str_contains": "contains {pattern}", "str_startswith": "starts with {string}",
    "str_endswith": "ends with {string}", "str_length": "length {min_value} to {max_value}",
}


def check_in_words(check: Any) -> str:
    """A Pandera check as an analyst reads it: ``>= 1``, ``one of new, shipped``."""
    statistics = {k: (", ".join(map(str, sorted(v, key=str)))
                      if isinstance(v, list | tuple | set | frozenset) else v)
                  for k, v in dict(getattr(check, "statistics", None) or {}).items()}
    words = _CHECK_WORDS.get(getattr(check, "name", ""), "")
    try:
        text = words.format(**statistics) if words else ""
    except (KeyError, IndexError):
        text = ""
    if text:
        return text.replace("from None to ", "at most ").replace(" to None", " or more")
    arguments = ", ".join(f"{k}={v}" for k, v in statistics.items())
    return f"{getattr(check, 'name', 'check')}({arguments})"


def markdown(text: str | None) -> str | None:
    """A docstring or description as Markdown: dedented, reST ````code```` as `code`."""
    if not text:
        return None
    return inspect.cleandoc(text).replace("``", "`")


def pandera_column_schema(mapping: EntityMapping) -> TableSchema:
    """The entity's columns with their types, descriptions and constraints in words."""
    columns = []
    for name, column in mapping.table_schema.columns.items():
        checks = [check_in_words(check) for check in column.checks]
        columns.append(TableColumn(
            name, str(column.dtype), description=markdown(column.description),
            constraints=TableColumnConstraints(nullable=column.nullable,
                                               unique=bool(column.unique), other=checks),
        ))
    return TableSchema(columns=columns)


def described_schema(schema: pa.Schema, descriptions: Mapping[str, str]) -> TableSchema:
    """An Arrow schema as the asset's Columns table, with what each column holds."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type),
                                            description=descriptions.get(f.name))
                                for f in schema])


def arrow_column_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])


def column_lineage_value(lineage: Iterable[ColumnLineage], translator: HeadwaterTranslator
                         ) -> TableColumnLineage:
    return TableColumnLineage(deps_by_column={
        item.column: [TableColumnDep(translator.asset_key(table), column)
                      for table, column in dict.fromkeys(item.sources)]
        for item in lineage
    })


def lineage_table(lineage: Iterable[ColumnLineage], translator: HeadwaterTranslator
                  ) -> MetadataValue:
    """The lineage as rows the open-source UI renders: column | from | transform."""
    records = []
    for item in lineage:
        sources = item.sources_text(translator.label)
        transform = item.transform
        if item.derived_from:
            transform += f" (derived from {', '.join(item.derived_from)})"
        records.append(TableRecord({"column": item.column, "transform": transform,
                                    "from": sources}))
    return MetadataValue.table(records, schema=LINEAGE_SCHEMA)


def reasons_table(result: NormalizeResult) -> MetadataValue:
    rows = [TableRecord({"column": column, "check": check, "failures": count})
            for (column, check), count in result.reasons().items()]
    return MetadataValue.table(rows, schema=TableSchema(columns=[
        TableColumn("column", "string"), TableColumn("check", "string"),
        TableColumn("failures", "int")]))


def emit_openlineage(run_id: str, warehouse_url: str, table: str,
                     fields: Iterable[tuple[str, str, str]],
                     lineage: Iterable[ColumnLineage]) -> bool:
    """Send the table's OpenLineage event when ``HEADWATER_OPENLINEAGE_FILE`` or ``_URL``
    is set; whether one was sent."""
    emitter = OpenLineageEmitter.from_env()
    if not emitter.enabled:
        return False
    emitter.emit(run_event(job=table, run_id=run_id, namespace=redact(warehouse_url),
                           output=table, fields=list(fields), lineage=lineage))
    return True


def pandera_fields(mapping: EntityMapping) -> list[tuple[str, str, str]]:
    return [(name, str(column.dtype), column.description or "")
            for name, column in mapping.table_schema.columns.items()]


def arrow_fields(schema: pa.Schema) -> list[tuple[str, str, str]]:
    return [(f.name, str(f.type), "") for f in schema]


def phase_seconds(seconds: Mapping[str, float], prefix: str = "seconds") -> dict[str, Any]:
    """Duration per phase as one float entry each (``seconds/clean``), so the UI plots
    them across materializations."""
    return {f"{prefix}/{phase}": MetadataValue.float(round(value, 4))
            for phase, value in seconds.items()}
