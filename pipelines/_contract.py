"""A stream's schema contract, applied to what a commit would change in its table.

The warehouse says what landing a batch would change (:class:`~pipelines.warehouse.SchemaDiff`:
columns added, types widened, types it cannot hold); the stream's ``schema_contract``
decides what happens:

- ``evolve`` (default): new columns are added and types widen where no value changes;
- ``freeze``: any change fails the stream, naming the column and the change;
- ``discard_columns``: new columns are dropped from what lands (their values counted);
- ``discard_rows``: records with a value in a new column go to the stream's rejects
  table with the reason; the rest land without the column.

Under ``freeze`` and both ``discard_*`` contracts the table's types never change, so a
widening fails as under ``freeze``. A type the table cannot hold fails under every
contract, naming the command that rebuilds the table.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors import DataContractError

from .warehouse import SchemaDiff, rebuild_hint

REASON_COLUMN = "_hw_reason"
RECORD_COLUMN = "_hw_record"


@dataclass
class Held:
    """What lands after the contract: ``data``, the ``rejects`` (or ``None``), the values
    of dropped columns by column, and the changes the table takes."""

    data: pa.Table
    rejects: pa.Table | None = None
    discarded: dict[str, int] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)


def hold_to_contract(contract: str, diff: SchemaDiff, data: pa.Table, *, where: str,
                     table: str, primary_key: tuple[str, ...]) -> Held:
    """``data`` as ``contract`` lets it land in ``table`` (``where`` names the stream)."""
    if not diff:
        return Held(data)
    for name, (now, sent) in diff.refused.items():
        raise DataContractError(
            f"{where}: column {name!r} is {now} in {table} but the source now sends {sent}, "
            "which it cannot hold without changing values; nothing was written. Declare the "
            f"column's type on the stream, or {rebuild_hint(table)}"
        )
    if contract == "evolve":
        return Held(data, changes=diff.describe())
    if contract == "freeze" or diff.widened:
        changes = "; ".join(diff.describe())
        raise DataContractError(
            f"{where}: schema_contract = {contract!r} keeps the columns of {table} as they "
            f"are, and the source changed them: {changes}; nothing was written. Set "
            "schema_contract = \"evolve\" to let the table follow the source"
            + ("" if diff.widened else ", or \"discard_columns\" to drop new columns")
        )
    added = [name for name in diff.added if name in data.column_names]
    if contract == "discard_columns":
        discarded = {name: len(data) - data.column(name).null_count for name in added}
        return Held(data.drop_columns(added), discarded=discarded)
    return _reject_rows(data, added, primary_key)


def _reject_rows(data: pa.Table, added: list[str], primary_key: tuple[str, ...]) -> Held:
    """Rows with a value in a new column go to the rejects; the others land without it."""
    offending = pa.array([False] * len(data))
    for name in added:
        offending = pc.or_(offending, pc.is_valid(data.column(name)))
    rejected = data.filter(offending)
    kept = data.filter(pc.invert(offending)).drop_columns(added)
    if not len(rejected):
        return Held(kept)
    return Held(kept, rejects=rejects_of(rejected, added, primary_key))


def rejects_of(rows: pa.Table, added: list[str], primary_key: tuple[str, ...]) -> pa.Table:
    """The rejects table's rows: each record's key, the reason, and the whole record."""
    reasons, records = [], []
    for row in rows.to_pylist():
        names = [name for name in added if row.get(name) is not None]
        reasons.append(f"new column(s) {names} refused by schema_contract = \"discard_rows\"")
        records.append(json.dumps(row, sort_keys=True, default=_text))
    keys = {name: rows.column(name) for name in primary_key}
    return pa.table({**keys, REASON_COLUMN: pa.array(reasons, pa.string()),
                     RECORD_COLUMN: pa.array(records, pa.string())})


def _text(value: Any) -> str:
    """JSON text of what JSON has no type for: dates as ISO 8601, bytes as hex."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
