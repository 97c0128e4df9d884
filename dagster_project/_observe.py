"""What a step saw beyond its own output: the source it read, and the retries it survived.

A raw asset's step observes its source node (the table, endpoint or operation, with the
columns and types the source names), publishes column lineage from each landed column
to the source column it came from, and turns every connector-level retry into a run
event, metadata and a run tag, so a run that needed retries shows it in the runs list.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableRecord,
    TableSchema,
)

from connectors import SourceIdentity, redact

from ._metadata import LINEAGE_SCHEMA, LINEAGE_TABLE
from ._translator import HeadwaterTranslator

RETRIED_TAG = "headwater/retried"
# Connectors report every retry of a source call to this logger (connectors._retry).
RETRY_LOG = logging.getLogger("headwater.retries")


@dataclass
class Retries:
    """The connector-level retries of one step."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        last = self.events[-1]["error"] if self.events else "none"
        return {"source retries": len(self.events), "last transient error": last}


class _Forward(logging.Handler):
    def __init__(self, context: AssetExecutionContext, retries: Retries) -> None:
        super().__init__(logging.WARNING)
        self.context, self.retries = context, retries

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "headwater_retry", None)
        if event is None:
            return
        self.retries.events.append(event)
        self.context.log.warning(f"source retry: {redact(record.getMessage())}")


@contextlib.contextmanager
def retries_seen(context: AssetExecutionContext) -> Iterator[Retries]:
    """Retries of source calls made while the block runs, forwarded to the run's log;
    the run is tagged ``headwater/retried`` when there was any."""
    retries = Retries()
    handler = _Forward(context, retries)
    RETRY_LOG.addHandler(handler)
    try:
        yield retries
    finally:
        RETRY_LOG.removeHandler(handler)
        if retries.events:
            context.instance.add_run_tags(context.run.run_id, {
                RETRIED_TAG: str(len(retries.events))})


def source_observation(identity: SourceIdentity, columns: list[tuple[str, str]],
                       translator: HeadwaterTranslator, reader: str) -> AssetMaterialization:
    """The source node as the step found it, reported as an event of the external
    asset: where, what, and its columns with the source's own type names. It shows as
    the source's latest state (and its Columns), instead of "never materialized"."""
    return AssetMaterialization(
        asset_key=translator.source_key(identity),
        description=f"read by {reader}",
        metadata={
            **{k: str(v) for k, v in translator.source_metadata(identity).items()},
            "dagster/column_schema": TableSchema(columns=[TableColumn(name, kind)
                                                          for name, kind in columns]),
        })


def raw_lineage(schema: pa.Schema, identity: SourceIdentity,
                translator: HeadwaterTranslator) -> dict[str, Any]:
    """Column lineage of a raw table: each landed column from its source column (a
    flattened ``address__city`` from ``address.city``), as Dagster's column lineage and
    as the readable table."""
    source = translator.source_key(identity)
    pairs = [(f.name, f.name.replace("__", ".")) for f in schema
             if not f.name.startswith("_hw_")]
    deps = TableColumnLineage(deps_by_column={
        column: [TableColumnDep(source, origin)] for column, origin in pairs})
    records = [TableRecord({"column": column, "transform": "landed by the connector",
                            "from": f"{source.to_user_string()}.{origin}"})
               for column, origin in pairs]
    return {"dagster/column_lineage": deps,
            LINEAGE_TABLE: MetadataValue.table(records, schema=LINEAGE_SCHEMA)}
