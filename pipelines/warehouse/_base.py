"""The warehouse interface: tables from Arrow, merges by primary key, atomic state.

A merge writes one batch and the stream state that holds once the batch is stored in a
single transaction. Either both land or neither does, so a crash at any point leaves
data and state consistent, and a rerun from the saved state neither loses nor
duplicates rows.

Each stream has one writer at a time: a run holds :meth:`Warehouse.stream_lock` for
its stream while it lands it (see ``_locks``).
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.dialects import postgresql

from connectors import DataContractError, without_checkpoint

from ._locks import DEFAULT_LOCK_WAIT, PROCESS_LOCKS, LockHolder, stream_locked

STATE_TABLE = "_headwater_state"
PROVENANCE_COLUMNS = ("_hw_source", "_hw_stream", "_hw_extracted_at", "_hw_run_id")

# DuckDB and PostgreSQL share the SQL standard's quoting rules; SQLAlchemy's PostgreSQL
# preparer implements them (doubling embedded quotes), so no name is quoted by hand.
_PREPARER = postgresql.dialect().identifier_preparer


def quote(name: str) -> str:
    """Quote an identifier, always, the way the engine itself does."""
    return _PREPARER.quote_identifier(name)


def raw_table_name(source: str, stream: str) -> str:
    return f"raw_{source}__{stream}"


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


class TypeCheck:
    """Decides whether an incoming column type may be written into an existing one."""

    def __init__(self, widenings: dict[str, set[str]]) -> None:
        self._widenings = widenings

    def compatible(self, existing: str, incoming: str) -> bool:
        existing, incoming = existing.upper(), incoming.upper()
        if existing == incoming:
            return True
        return existing in self._widenings.get(incoming, set())

    def new_columns(self, table: str, existing: dict[str, str], incoming: dict[str, str]
                    ) -> dict[str, str]:
        """Columns to add to ``table``; raises ``DataContractError`` on a type change that
        the existing column cannot hold (before anything is written)."""
        for name, type_ in incoming.items():
            if name in existing and not self.compatible(existing[name], type_):
                raise DataContractError(
                    f"{table}: column {name!r} is {existing[name]} in the warehouse but the "
                    f"source now sends {type_}; nothing was written. Migrate the column (or "
                    "drop the table and reset the stream's state) to accept the new type"
                )
        return {name: type_ for name, type_ in incoming.items() if name not in existing}
