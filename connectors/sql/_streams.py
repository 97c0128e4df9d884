"""Stream declarations for SQL sources: a table, or a read-only query."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import ConfigurationError
from .._stream import Stream

_READ_ONLY = re.compile(r"^\s*(?:select|with)\b", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class SQLTable(Stream):
    """A table or view, by its exact name (any case, spaces, quotes, reserved words).

    ``primary_key`` defaults to the table's reflected primary key.
    """

    table: str
    db_schema: str | None = None


@dataclass(frozen=True, kw_only=True)
class SQLQuery(Stream):
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
