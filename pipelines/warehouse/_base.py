"""The warehouse interface: tables from Arrow, merges by primary key, atomic state.

A merge writes one batch and the stream state that holds once the batch is stored in a
single transaction. Either both land or neither does, so a crash at any point leaves
data and state consistent, and a rerun from the saved state neither loses nor
duplicates rows.

Each stream has one writer at a time: a run holds :meth:`Warehouse.stream_lock` for
its stream while it lands it (see ``_locks``).

A table follows its source's columns: new ones are added, a type widens where no value
changes (int32 to int64, a decimal with more digits), any other change is refused before
anything is written (:meth:`Warehouse.schema_changes` tells the runner what a batch would
change, so it can hold the stream to its contract first). Rows its source no longer
holds are removed or marked (``_hw_deleted_at``) by :meth:`Warehouse.remove_gone`, in
the transaction that ends the read which found them gone.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.dialects import postgresql

from connectors import DataContractError, without_checkpoint

from ._locks import DEFAULT_LOCK_WAIT, PROCESS_LOCKS, LockHolder, stream_locked

STATE_TABLE = "_headwater_state"
PROVENANCE_COLUMNS = ("_hw_source", "_hw_stream", "_hw_extracted_at", "_hw_run_id")
#: When a soft-deleted row was found gone from its source (null while it is there).
DELETED_AT = "_hw_deleted_at"

# DuckDB and PostgreSQL share the SQL standard's quoting rules; SQLAlchemy's PostgreSQL
# preparer implements them (doubling embedded quotes), so no name is quoted by hand.
_PREPARER = postgresql.dialect().identifier_preparer


def quote(name: str) -> str:
    """Quote an identifier, always, the way the engine itself does."""
    return _PREPARER.quote_identifier(name)


def raw_table_name(source: str, stream: str) -> str:
    return f"raw_{source}__{stream}"


def rejects_table_name(source: str, stream: str) -> str:
    """Where records refused by ``schema_contract = "discard_rows"`` go."""
    return f"rejects_{source}__{stream}"


def rebuild_hint(table: str) -> str:
    """The command that rebuilds a raw table from scratch, for messages."""
    if table.startswith("raw_") and "__" in table:
        connector, _, stream = table.removeprefix("raw_").partition("__")
        return (f"rebuild the table with `headwater state reset --drop {connector}.{stream}` "
                "(drops it and its state; the next run lands the stream again)")
    return "drop the table and reset the stream's state to land it again"


@dataclass(frozen=True)
class SchemaDiff:
    """What landing a batch would change in its table's columns: columns ``added``
    (name: type), types ``widened`` without changing a value and types ``refused`` (name:
    (type now, type sent)). Empty for a table that does not exist yet."""

    added: dict[str, str] = field(default_factory=dict)
    widened: dict[str, tuple[str, str]] = field(default_factory=dict)
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.widened or self.refused)

    def describe(self) -> list[str]:
        """One phrase per change: ``new column 'discount' (BIGINT)``, ..."""
        return ([f"new column {n!r} ({t})" for n, t in self.added.items()]
                + [f"column {n!r} {old} -> {new}" for n, (old, new) in self.widened.items()]
                + [f"column {n!r} {old} -> {new}" for n, (old, new) in self.refused.items()])


@dataclass(frozen=True)
class RowsGone:
    """Rows of a table that its source no longer holds, and what to do with them.

    A complete full read finds them as the rows landed by none of its ``runs`` (and whose
    key none of them sent to a table of ``seen_in``, such as the stream's rejects); a
    reconciliation as the rows whose key is not in ``keys_table`` and that were landed
    before it started (``before``). ``deletes`` is ``"hard"`` (removed) or ``"soft"``
    (``_hw_deleted_at`` set, once). In the same transaction, ``forget`` lists state keys
    to delete and ``drop`` tables to drop (the read's bookkeeping).
    """

    deletes: str
    runs: tuple[str, ...] = ()
    seen_in: tuple[str, ...] = ()
    keys_table: str | None = None
    primary_key: tuple[str, ...] = ()
    before: dt.datetime | None = None
    forget: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class Settled(NamedTuple):
    """What :meth:`Warehouse.remove_gone` did: rows written, rows removed or marked."""

    written: int
    removed: int


@dataclass(frozen=True)
class KeyedRows:
    """Rows replacing others by key: delete where ``key`` equals a row of ``keys``, then
    insert ``rows`` (see :meth:`Warehouse.replace_keyed`)."""

    key: tuple[str, ...]
    keys: pa.Table
    rows: pa.Table


@dataclass(frozen=True)
class Provenance:
    """Where a batch came from; written on every raw row."""

    source: str
    stream: str
    run_id: str
    extracted_at: dt.datetime

    def values(self) -> list[Any]:
        return [self.source, self.stream, self.extracted_at, self.run_id]


def prepare_batch(batch: pa.RecordBatch | pa.Table, primary_key: tuple[str, ...], table: str
                  ) -> pa.RecordBatch | pa.Table:
    """Check keys, drop checkpoint metadata, keep the last of repeated keys."""
    batch = batch.replace_schema_metadata(without_checkpoint(batch.schema).metadata)
    missing = [k for k in primary_key if k not in batch.schema.names]
    if missing:
        raise DataContractError(f"{table}: batch lacks primary-key column(s) {missing}")
    for key in primary_key:
        if batch.column(key).null_count:
            raise DataContractError(
                f"{table}: primary-key column {key!r} has nulls; nothing was written. "
                "Fix the source or declare a primary key that identifies every row"
            )
    if not primary_key or batch.num_rows < 2:
        return batch
    data = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    keys = data.select(list(primary_key))
    if len(primary_key) == 1 and _strictly_increasing(keys.column(0)):
        return batch  # a keyset read delivers keys in order: unique without hashing
    if len(primary_key) == 1:
        distinct = pc.count_distinct(keys.column(0)).as_py()
    else:
        distinct = keys.group_by(list(primary_key)).aggregate([]).num_rows
    if distinct == batch.num_rows:
        return batch
    indexed = keys.append_column("_hw_row", pa.array(range(batch.num_rows), pa.int64()))
    last = indexed.group_by(list(primary_key)).aggregate([("_hw_row", "max")])
    rows = last.column("_hw_row_max").combine_chunks()
    return batch.take(pc.take(rows, pc.sort_indices(rows)))


def _strictly_increasing(column: pa.ChunkedArray) -> bool:
    values = column.combine_chunks()
    if not (pa.types.is_integer(values.type) or pa.types.is_string(values.type)
            or pa.types.is_large_string(values.type) or pa.types.is_temporal(values.type)):
        return False
    return bool(pc.all(pc.greater(values[1:], values[:-1])).as_py())


class Warehouse(abc.ABC):
    """Where landed, cleaned and derived tables live, with the stream state table."""

    url: str
    # Seconds a second run of a stream waits for the first before it fails.
    lock_wait: float = DEFAULT_LOCK_WAIT

    @contextlib.contextmanager
    def stream_lock(self, key: str, run_id: str, *, wait: float | None = None
                    ) -> Iterator[None]:
        """Hold stream ``key`` for run ``run_id``: the one writer of its rows and state.

        Another run of the same stream, in this process or (where the engine can tell)
        in another, waits up to ``wait`` seconds (default :attr:`lock_wait`) and then
        raises :class:`StreamLocked` naming the holder. Other streams are not affected.
        """
        wait = self.lock_wait if wait is None else max(wait, 0.0)
        deadline = time.monotonic() + wait
        scope = self._lock_scope()
        me = LockHolder(run_id, dt.datetime.now(dt.UTC), "in this process")
        holder = PROCESS_LOCKS.acquire(scope, key, me, deadline)
        if holder is not None:
            raise stream_locked(key, holder, wait)
        try:
            holder = self._acquire_stream_lock(key, run_id, deadline)
            if holder is not None:
                raise stream_locked(key, holder, wait)
            try:
                yield
            finally:
                self._release_stream_lock(key)
        finally:
            PROCESS_LOCKS.release(scope, key)

    def _lock_scope(self) -> str:
        """What two warehouse objects share when they write the same tables."""
        return self.url

    def _acquire_stream_lock(self, key: str, run_id: str, deadline: float
                             ) -> LockHolder | None:
        """Take the engine's own lock on ``key`` (other processes), waiting until
        ``deadline``; the holder if it could not. Override for a shared engine."""
        return None

    def _release_stream_lock(self, key: str) -> None:
        """Let go of what :meth:`_acquire_stream_lock` took."""

    @abc.abstractmethod
    def merge(
        self,
        table: str,
        batch: pa.RecordBatch,
        primary_key: tuple[str, ...],
        *,
        provenance: Provenance | None = None,
        state_key: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> int:
        """Upsert ``batch`` into ``table`` by primary key and save ``state`` atomically.

        Creates the table from the batch's Arrow schema, adds new columns, and refuses
        (``DataContractError``, nothing written) a column whose type changed
        incompatibly. Returns the number of rows written.
        """

    @abc.abstractmethod
    def remove_gone(
        self,
        table: str,
        gone: RowsGone,
        *,
        batch: pa.RecordBatch | pa.Table | None = None,
        primary_key: tuple[str, ...] = (),
        provenance: Provenance | None = None,
        state_key: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> Settled:
        """Merge ``batch`` (if any), remove or mark the rows ``gone`` describes, and save
        ``state``, all in one transaction: a read ends with its deletes or not at all."""

    @abc.abstractmethod
    def schema_changes(self, table: str, schema: pa.Schema) -> SchemaDiff:
        """What merging a batch of ``schema`` into ``table`` would change (nothing is
        written)."""

    @abc.abstractmethod
    def drop_table(self, table: str) -> bool:
        """Drop ``table`` if it exists; whether it did."""

    @abc.abstractmethod
    def replace_keyed(self, changes: Mapping[str, KeyedRows], *, state_key: str | None = None,
                      state: dict[str, Any] | None = None, run_id: str | None = None) -> None:
        """For each table: delete the rows whose ``key`` columns equal a row of ``keys``,
        then insert ``rows``; all tables (created from ``rows`` if missing, new columns
        added) and ``state`` in one transaction. For derived tables updated by key
        (incremental clean and quarantine tables, context documents)."""

    @abc.abstractmethod
    def rename_tables(self, renames: Mapping[str, str], *, state_key: str | None = None,
                      state: dict[str, Any] | None = None, run_id: str | None = None) -> None:
        """Replace each target table with a table built beside it (``{built: target}``),
        together with ``state``, in one transaction: readers see the old tables or the
        new ones, never a mix."""

    @abc.abstractmethod
    def drop_tables(self, tables: Sequence[str]) -> None:
        """Drop the tables that exist among ``tables``."""

    def approx_quantiles(self, table: str, column: str, fractions: Sequence[float],
                         where: str = "") -> list[Any]:
        """Values of ``column`` near each fraction of its distribution (cheap: the cut
        points of batches, which need not be exact)."""
        raise NotImplementedError

    def bucket_expression(self, columns: Sequence[str], buckets: int) -> str:
        """SQL for ``0 <= bucket < buckets`` of a row by a hash of ``columns``: batches
        that keep every row of one key together."""
        raise NotImplementedError

    def landings_in_flight(self) -> dict[str, LockHolder]:
        """Stream key -> the run landing it now (in this process; engines that can tell
        add other processes)."""
        return PROCESS_LOCKS.holders(self._lock_scope())

    @abc.abstractmethod
    def replace_tables(self, tables: dict[str, pa.Table]) -> None:
        """Replace each named table with the given rows, all in one transaction.

        For derived tables (clean, quarantine, context) that are rebuilt whole: readers
        see the old set of tables or the new one, never a mix.
        """

    def read_table(self, table: str) -> pa.Table:
        """Every row of ``table`` as Arrow."""
        return self.query(f"SELECT * FROM {quote(table)}")  # noqa: S608

    @abc.abstractmethod
    def save_state(self, key: str, state: dict[str, Any], run_id: str | None = None) -> None:
        """Save a stream's state on its own (a batch-less checkpoint)."""

    @abc.abstractmethod
    def load_state(self, key: str) -> dict[str, Any] | None:
        """The saved state of a stream, ``None`` if it never ran."""

    @abc.abstractmethod
    def delete_state(self, key: str) -> bool:
        """Forget a stream's state; the next run starts from scratch."""

    @abc.abstractmethod
    def states(self) -> dict[str, dict[str, Any]]:
        """Every saved state, with when and by which run it was written."""

    @abc.abstractmethod
    def query(self, sql: str) -> pa.Table:
        """Run a read query and return the result as Arrow (tests, CLI, checks)."""

    @abc.abstractmethod
    def tables(self) -> list[str]:
        """Table names in the warehouse."""

    def row_count(self, table: str) -> int:
        return self.query(f"SELECT count(*) AS n FROM {quote(table)}").column(0)[0].as_py()  # noqa: S608

    def _before_commit(self, table: str) -> None:
        """Called inside a merge's transaction just before it commits; a seam for
        instrumentation and fault-injection tests. Raising here rolls the merge back."""

    def close(self) -> None:
        """Close the connection."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC)\((\d+),\s*(\d+)\)$")


def _decimal(type_: str) -> tuple[int, int] | None:
    """(integer digits, scale) of a DECIMAL(p,s) or NUMERIC(p,s) type."""
    found = _DECIMAL.match(type_)
    if found is None:
        return None
    precision, scale = int(found[1]), int(found[2])
    return precision - scale, scale


class TypeCheck:
    """Decides whether an incoming column type may be written into an existing one.

    ``holds`` maps a type to the types that hold every value of it (a BIGINT column
    holds an INTEGER); ``chains`` lists the exact widenings, narrowest first (INTEGER
    to BIGINT changes no value). A decimal holds another with as many integer digits
    and as many decimals.
    """

    def __init__(self, holds: dict[str, set[str]], chains: Sequence[Sequence[str]] = ()) -> None:
        self._holds = holds
        self._chains = [list(chain) for chain in chains]

    def compatible(self, existing: str, incoming: str) -> bool:
        """Whether a column of type ``existing`` holds every ``incoming`` value as is."""
        existing, incoming = existing.upper(), incoming.upper()
        if existing == incoming or existing in self._holds.get(incoming, set()):
            return True
        wide, narrow = _decimal(existing), _decimal(incoming)
        return bool(wide and narrow and wide[0] >= narrow[0] and wide[1] >= narrow[1])

    def widens(self, existing: str, incoming: str) -> bool:
        """Whether changing a column from ``existing`` to ``incoming`` changes no value."""
        existing, incoming = existing.upper(), incoming.upper()
        if _decimal(existing) and _decimal(incoming):
            return self.compatible(incoming, existing)
        return any(existing in chain and incoming in chain
                   and chain.index(existing) < chain.index(incoming) for chain in self._chains)

    def diff(self, existing: dict[str, str], incoming: dict[str, str]) -> SchemaDiff:
        """What writing ``incoming`` columns into a table of ``existing`` ones changes."""
        if not existing:
            return SchemaDiff()
        added, widened, refused = {}, {}, {}
        for name, type_ in incoming.items():
            if name not in existing:
                added[name] = type_
            elif self.compatible(existing[name], type_):
                continue
            elif self.widens(existing[name], type_):
                widened[name] = (existing[name], type_)
            else:
                refused[name] = (existing[name], type_)
        return SchemaDiff(added, widened, refused)

    def new_columns(self, table: str, existing: dict[str, str], incoming: dict[str, str]
                    ) -> dict[str, str]:
        """Columns to add to ``table``; raises ``DataContractError`` on a type change that
        does not widen (before anything is written)."""
        refused = self.diff(existing, incoming).refused
        for name, (now, sent) in refused.items():
            raise DataContractError(
                f"{table}: column {name!r} is {now} in the warehouse but the source now "
                f"sends {sent}, which it cannot hold without changing values; nothing was "
                f"written. Declare the column's type on the stream, or {rebuild_hint(table)}"
            )
        return {name: type_ for name, type_ in incoming.items() if name not in existing}
