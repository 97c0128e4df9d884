"""Stream declarations for SQL sources: a table, or a read-only query."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from .._errors import ConfigurationError
from .._incremental import KeyRange
from .._stream import Stream

_READ_ONLY = re.compile(r"^\s*(?:select|with)\b", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class _Typed(Stream):
    """``column_types`` overrides where columns land, by column name (any case):
    ``"text"`` (the database's own text for each value, always exact), ``"decimal(p,s)"``
    (p up to 38), or an Arrow type name (``int64``, ``float64``, ``date``, ``timestamp``,
    ``timestamptz``, ...). Use it for a column whose values do not fit the type it is
    mapped to; the error such a value raises names the declaration to add.
    """

    column_types: Mapping[str, str | pa.DataType] = field(default_factory=dict, compare=False)
    #: Read only the rows of one key range (a partition); set by the runner.
    key_range: KeyRange | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "column_types", dict(self.column_types))


@dataclass(frozen=True, kw_only=True)
class SQLTable(_Typed):
    """A table or view, by its exact name (any case, spaces, quotes, reserved words).

    ``primary_key`` defaults to the table's reflected primary key; key, cursor and
    ``column_types`` names match the table's columns in any case when that is unambiguous.
    """

    table: str
    db_schema: str | None = None


@dataclass(frozen=True, kw_only=True)
class SQLQuery(_Typed):
    """A read-only query (``SELECT`` or ``WITH``); needs a declared ``primary_key``."""

    sql: str

    def __post_init__(self) -> None:
        super().__post_init__()
        body = self.sql.strip().rstrip(";").strip()
        if not _READ_ONLY.match(body) or ";" in body:
            raise ConfigurationError(
                f"stream {self.name!r}: a query stream must be a single SELECT or WITH "
                "statement; use a table stream or a view for anything else"
            )
        if not self.primary_key:
            raise ConfigurationError(
                f"stream {self.name!r}: declare primary_key (the columns that identify a row) "
                "so the query can be read in resumable chunks and merged without duplicates"
            )
        object.__setattr__(self, "sql", body)
