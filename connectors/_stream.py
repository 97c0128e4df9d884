"""Stream declarations: what a connector can read, keyed how, synced how."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import pyarrow as pa

from ._errors import ConfigurationError
from ._incremental import Incremental

#: What a full-refresh stream does with rows no longer at its source: remove them, mark
#: them (``_hw_deleted_at``), or keep them.
DELETES = ("hard", "soft", "keep")
#: What reconciling an incremental stream does with rows its source no longer holds.
RECONCILE_DELETES = ("hard", "soft")
#: What a change of the source's columns does to the landed table (see the runner).
SCHEMA_CONTRACTS = ("evolve", "freeze", "discard_columns", "discard_rows")


def stream_name_for(label: str) -> str:
    """A stream name derived from a source label: lower case, ``_`` for the rest."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", label).strip("_").lower()
    return name or "stream"


@dataclass(frozen=True)
class Stream:
    """One readable collection of records.

    ``schema`` holds the declared or discovered Arrow types; ``None`` means the
    connector discovers them at read time.

    What the warehouse keeps as the source changes:

    - ``deletes`` (full-refresh streams, those without ``incremental``): rows a complete
      read no longer finds are removed (``"hard"``, the default: the table mirrors its
      source), marked with ``_hw_deleted_at`` (``"soft"``), or kept (``"keep"``);
    - ``reconcile_deletes`` (incremental streams): ``"hard"`` or ``"soft"`` lets a
      key-only scan (``headwater reconcile``) find the rows the source no longer holds;
    - ``schema_contract``: ``"evolve"`` (default: new columns are added, types widen
      where no value changes), ``"freeze"`` (a change fails the stream),
      ``"discard_columns"`` (new columns are dropped), ``"discard_rows"`` (records with a
      value in a new column go to the stream's rejects table).
    """

    name: str
    primary_key: tuple[str, ...] = ()
    incremental: Incremental | None = None
    schema: pa.Schema | None = field(default=None, compare=False)
    deletes: str | None = None
    reconcile_deletes: str | None = None
    schema_contract: str = "evolve"

    def __post_init__(self) -> None:
        if isinstance(self.primary_key, str):
            object.__setattr__(self, "primary_key", (self.primary_key,))
        else:
            object.__setattr__(self, "primary_key", tuple(self.primary_key))
        _check_sync_settings(self)

    @property
    def full_refresh(self) -> bool:
        """Whether every read is the whole source (no cursor)."""
        return self.incremental is None

    @property
    def deletes_mode(self) -> str | None:
        """What a complete read does with rows it no longer finds (``None``: an
        incremental stream, which cannot tell); ``"hard"`` unless declared, for a
        connector whose reads without a cursor read the whole source
        (``Connector.full_reads_mirror_source``; the runner checks it)."""
        return (self.deletes or "hard") if self.full_refresh else None

    @property
    def cursor_field(self) -> str | None:
        return self.incremental.cursor_field if self.incremental else None

    def with_schema(self, schema: pa.Schema) -> Stream:
        return replace(self, schema=schema)


def _check_sync_settings(stream: Stream) -> None:
    """``deletes``, ``reconcile_deletes`` and ``schema_contract`` hold known values, each
    on the kind of stream it applies to."""
    where = f"stream {stream.name!r}"
    for key, value, known in (("deletes", stream.deletes, DELETES),
                              ("reconcile_deletes", stream.reconcile_deletes,
                               RECONCILE_DELETES),
                              ("schema_contract", stream.schema_contract, SCHEMA_CONTRACTS)):
        if value is not None and value not in known:
            raise ConfigurationError(f"{where}: {key} must be one of {', '.join(known)}; "
                                     f"got {value!r}")
    if stream.deletes is not None and not stream.full_refresh:
        raise ConfigurationError(
            f"{where}: deletes applies to full-refresh streams (no cursor); an incremental "
            "stream finds deleted rows by reconciliation: reconcile_deletes = \"hard\" or "
            "\"soft\" and headwater reconcile"
        )
    if stream.reconcile_deletes is not None and stream.full_refresh:
        raise ConfigurationError(
            f"{where}: reconcile_deletes applies to incremental streams; a full-refresh "
            "stream removes rows no longer at the source at every run (deletes = \"hard\" "
            "| \"soft\" | \"keep\")"
        )
