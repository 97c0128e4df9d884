"""Which clean rows changed since a downstream step last read them.

Party resolution and context builds follow the clean tables incrementally. Clean rows
carry the landing time of their raw row (``_hw_extracted_at``), not the time they were
cleaned, so a step cannot use its own start time as its watermark: a row landed before
the step ran but cleaned after it would be missed for good. Instead a step records, before
it reads the clean tables, each entity's **mark** from the normalization state
``clean.<entity>``:

- ``since``: where the entity's next normalization starts reading. Every raw row landed
  before it was already cleaned, so the next step only needs the clean rows landed at or
  after it;
- ``epoch``: the run that last rebuilt the entity (a full normalization, or quarantined
  rows re-processed). Rows of a rebuilt entity may have changed whatever their landing
  time, so a step that finds the epoch moved treats every row of the entity as changed.

A clean table that normalization does not keep (no state entry) falls back on the step's
own start time less :data:`CLEAN_LAG`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from .warehouse import Warehouse

# For clean tables written outside normalization: a step re-reads the changes of this long
# before its own start (clocks of machines may disagree; at worst a row is read twice).
CLEAN_LAG = dt.timedelta(seconds=60)
EXTRACTED_AT = "_hw_extracted_at"


def clean_table(entity: str) -> str:
    return f"clean_{entity}"


def crosswalk_table(resolution: str) -> str:
    """The party crosswalk a resolution writes: ``clean_<name>_xref``."""
    return clean_table(f"{resolution}_xref")


def clean_state_key(entity: str) -> str:
    """The state entry of an entity's incremental normalization."""
    return f"clean.{entity}"


Marks = dict[str, dict[str, Any]]


def clean_marks(warehouse: Warehouse, entities: Iterable[str]) -> Marks:
    """Each entity's mark (``since``, ``epoch``) from its normalization state; entities
    normalization does not keep are left out. Read these before the clean tables."""
    marks: Marks = {}
    for entity in dict.fromkeys(entities):
        saved = warehouse.load_state(clean_state_key(entity)) or {}
        if "since" in saved:
            marks[entity] = {"since": saved["since"], "epoch": saved.get("epoch")}
    return marks


def changed_since(saved: Mapping[str, Mapping[str, Any]] | None, now: Marks,
                  entities: Iterable[str], fallback: dt.datetime | None
                  ) -> dict[str, dt.datetime | None]:
    """Per entity, the landing time from which its clean rows count as changed since the
    step that saved ``saved``; ``None``: every row (the entity was rebuilt, or is new to
    the step). ``fallback`` (the last step's start less :data:`CLEAN_LAG`) serves
    entities without marks."""
    result: dict[str, dt.datetime | None] = {}
    for entity in dict.fromkeys(entities):
        before, current = (saved or {}).get(entity), now.get(entity)
        if current is None:
            result[entity] = fallback
        elif before is None or before.get("epoch") != current.get("epoch"):
            result[entity] = None
        else:
            result[entity] = before["since"]
    return result


def changed_rows(frame: pl.DataFrame, since: dt.datetime | None) -> pl.DataFrame:
    """The rows of a clean frame landed at or after ``since`` (all of them for ``None``
    or a frame without landing times)."""
    if since is None or EXTRACTED_AT not in frame.columns:
        return frame
    return frame.filter(pl.col(EXTRACTED_AT) >= since)


def in_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Aware timestamps named as UTC, whatever the warehouse calls it (DuckDB says
    ``Etc/UTC``), so they compare with each other and with Python datetimes."""
    aware = [name for name, dtype in frame.schema.items()
             if isinstance(dtype, pl.Datetime) and dtype.time_zone not in (None, "UTC")]
    return frame.with_columns(pl.col(aware).dt.convert_time_zone("UTC")) if aware else frame
