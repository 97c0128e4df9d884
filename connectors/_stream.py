"""Stream declarations: what a connector can read, keyed how, synced how."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import pyarrow as pa

from ._incremental import Incremental


def stream_name_for(label: str) -> str:
    """A stream name derived from a source label: lower case, ``_`` for the rest."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", label).strip("_").lower()
    return name or "stream"


@dataclass(frozen=True)
class Stream:
    """One readable collection of records.

    ``schema`` holds the declared or discovered Arrow types; ``None`` means the
    connector discovers them at read time.
    """

    name: str
    primary_key: tuple[str, ...] = ()
    incremental: Incremental | None = None
    schema: pa.Schema | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.primary_key, str):
            object.__setattr__(self, "primary_key", (self.primary_key,))
        else:
            object.__setattr__(self, "primary_key", tuple(self.primary_key))

    @property
    def cursor_field(self) -> str | None:
        return self.incremental.cursor_field if self.incremental else None

    def with_schema(self, schema: pa.Schema) -> Stream:
        return replace(self, schema=schema)
