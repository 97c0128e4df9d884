"""The embedded default warehouse: one DuckDB file, nothing to install."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from connectors import ConfigurationError, dumps_state, loads_state

from ._base import (
    DELETED_AT,
    PROVENANCE_COLUMNS,
    STATE_TABLE,
    KeyedRows,
    Provenance,
    RowsGone,
    SchemaDiff,
    Settled,
    TypeCheck,
    Warehouse,
    prepare_batch,
    quote,
)
from ._locks import DEFAULT_LOCK_WAIT

_INTEGERS = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"]
_TYPES = TypeCheck({
    **{small: set(_INTEGERS[i + 1:]) | {"DOUBLE"} for i, small in enumerate(_INTEGERS)},
    "UTINYINT": {"SMALLINT", "INTEGER", "BIGINT", "USMALLINT", "UINTEGER", "UBIGINT"},
    "FLOAT": {"DOUBLE"},
}, chains=[_INTEGERS, ["FLOAT", "DOUBLE"]])
_PROVENANCE_DDL = {
    "_hw_source": "VARCHAR",
    "_hw_stream": "VARCHAR",
    "_hw_extracted_at": "TIMESTAMP WITH TIME ZONE",
    "_hw_run_id": "VARCHAR",
}
_BATCH_VIEW = "_hw_batch"
_KEYS_VIEW = "_hw_keys"
# DuckDB's buffer pool otherwise grows to 80% of RAM, keeping every block a load wrote:
# memory would grow with the table. Landing needs little (64 MB lands as fast as 128 MB
# and keeps a 5M-row load 60 MB smaller); queries spill beyond it.
DEFAULT_MEMORY_LIMIT = "64MB"
# A merge inserts one batch through one pipeline while the runner reads the next batch in
# another thread: more DuckDB threads compete with the reader (and the source database)
# for the cores. One thread lands a million rows 7% faster, in 36 MB less (bench/RESULTS.md).
DEFAULT_MERGE_THREADS = 1


def _orders_like_duckdb(t: pa.DataType) -> bool:
    """Types whose Arrow min/max bound exactly what DuckDB's ``BETWEEN`` matches (no NaN,
    no sub-microsecond time DuckDB would truncate)."""
    if pa.types.is_timestamp(t):
        return t.unit in ("s", "ms", "us")
    return (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_date(t) or pa.types.is_decimal(t))


_DATABASE_LOCKS: dict[str, threading.Lock] = {}
_DATABASE_LOCKS_GUARD = threading.Lock()


def _database_lock(scope: str) -> threading.Lock:
    """The one lock of a DuckDB database in this process.

    Every connection this process opens on one file shares one database, whose
    transactions conflict instead of waiting (two threads creating the state table, or
    merging into one table, fail with "write-write conflict"). Statements of every
    warehouse object on the file take turns on this lock, as those of one object always
    did.
    """
    with _DATABASE_LOCKS_GUARD:
        return _DATABASE_LOCKS.setdefault(scope, threading.Lock())


class DuckDBWarehouse(Warehouse):
    """A warehouse in one DuckDB file (``:memory:`` for a throwaway one)."""

    def __init__(self, path: str | Path = ":memory:", memory_limit: str = DEFAULT_MEMORY_LIMIT,
                 merge_threads: int | None = DEFAULT_MERGE_THREADS,
                 lock_wait: float = DEFAULT_LOCK_WAIT) -> None:
        self.path = str(path)
        self.url = f"duckdb:///{self.path}"
        self.lock_wait = float(lock_wait)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, config={"memory_limit": memory_limit})
        except duckdb.IOException as exc:
            # DuckDB names the holding process: "Conflicting lock is held in <exe> (PID n)".
            raise ConfigurationError(
                f"cannot open the DuckDB warehouse {self.path!r} ({exc}); another process may "
                "hold it open: stop it or point the warehouse elsewhere"
            ) from exc
        except duckdb.ConnectionException as exc:
            raise ConfigurationError(
                f"cannot open the DuckDB warehouse {self.path!r} ({exc}); this process "
                "already has it open with other settings: open it with the same memory_limit"
            ) from exc
        self._lock = threading.Lock() if self.path == ":memory:" else \
            _database_lock(self._lock_scope())
        self._columns: dict[str, dict[str, str]] = {}
        with self._lock:
            # Queries keep DuckDB's own thread count; merges run on ``merge_threads``
            # (None: the same as queries).
            self._threads = self._con.execute(
                "SELECT current_setting('threads')").fetchall()[0][0]
            self._merge_threads = merge_threads or self._threads
            self._con.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(STATE_TABLE)} (stream VARCHAR PRIMARY "
                "KEY, state VARCHAR NOT NULL, run_id VARCHAR, updated_at TIMESTAMP WITH TIME "
                "ZONE)"
            )

    def _lock_scope(self) -> str:
        # Every connection of this process to one file shares one database; each
        # ``:memory:`` connection is a database of its own.
        if self.path == ":memory:":
            return f"duckdb:memory:{id(self)}"
        return f"duckdb:{Path(self.path).resolve()}"

    # -- tables -------------------------------------------------------------------

    def _existing_columns(self, table: str) -> dict[str, str]:
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema() ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return dict(rows)

    def _incoming_columns(self) -> dict[str, str]:
        rows = self._con.execute(f"DESCRIBE SELECT * FROM {_BATCH_VIEW}").fetchall()  # noqa: S608 - a constant name
        return {name: type_ for name, type_, *_ in rows}

    def _ensure_table(self, table: str, provenance: bool) -> tuple[list[str], bool]:
        """Create or evolve ``table`` for the registered batch: new columns are added and
        types widened where no value changes.

        Returns the batch's columns and whether the table was created just now.
        """
        incoming = self._incoming_columns()
        existing = self._columns.get(table) or self._existing_columns(table)
        if not existing:
            columns = [f"{quote(n)} {t}" for n, t in incoming.items()]
            if provenance:
                columns += [f"{quote(n)} {t}" for n, t in _PROVENANCE_DDL.items()]
            self._con.execute(f"CREATE TABLE {quote(table)} ({', '.join(columns)})")
            self._columns[table] = {**incoming, **(_PROVENANCE_DDL if provenance else {})}
            return list(incoming), True
        for name, type_ in _TYPES.new_columns(table, existing, incoming).items():
            self._con.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {type_}")
        widened = _TYPES.diff(existing, incoming).widened
        for name, (_, wider) in widened.items():
            self._con.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(name)} "
                              f"SET DATA TYPE {wider}")
        # A column keeps its type unless it was widened: a narrower batch changes nothing.
        self._columns[table] = {**existing, **{n: t for n, t in incoming.items()
                                               if n not in existing or n in widened}}
        return list(incoming), False

    def schema_changes(self, table: str, schema: pa.Schema) -> SchemaDiff:
        with self._lock:
            existing = self._columns.get(table) or self._existing_columns(table)
            if not existing:
                return SchemaDiff()
            self._con.register(_BATCH_VIEW, pa.table({f.name: pa.nulls(0, f.type)
                                                      for f in schema}))
            try:
                incoming = self._incoming_columns()
            finally:
                self._con.unregister(_BATCH_VIEW)
        return _TYPES.diff(existing, incoming)

    def merge(self, table, batch, primary_key, *, provenance=None, state_key=None, state=None):
        return self._write(table, batch, tuple(primary_key), provenance, state_key, state,
                           None).written

    def remove_gone(self, table, gone, *, batch=None, primary_key=(), provenance=None,
                    state_key=None, state=None):
        return self._write(table, batch, tuple(primary_key), provenance, state_key, state,
                           gone)

    def _write(self, table: str, batch: pa.RecordBatch | pa.Table | None,
               primary_key: tuple[str, ...], provenance: Provenance | None,
               state_key: str | None, state: dict[str, Any] | None,
               gone: RowsGone | None) -> Settled:
        if batch is not None:
            batch = prepare_batch(batch, primary_key, table)
        with self._lock, self._threads_for_merge():
            self._con.begin()
            try:
                if batch is not None:
                    self._con.register(_BATCH_VIEW, batch)
                    try:
                        self._merge_registered(table, batch, primary_key, provenance)
                    finally:
                        self._con.unregister(_BATCH_VIEW)
                removed = self._remove(table, gone) if gone is not None else 0
                if state_key is not None:
                    self._write_state(state_key, state or {},
                                      provenance.run_id if provenance else None)
                self._before_commit(table)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                self._columns.pop(table, None)
                raise
        return Settled(batch.num_rows if batch is not None else 0, removed)

    def _remove(self, table: str, gone: RowsGone) -> int:
        """Remove or mark the rows ``gone`` describes; how many."""
        removed = 0
        existing = self._columns.get(table) or self._existing_columns(table)
        if existing:
            target = quote(table)
            condition, params = self._gone_condition(target, gone)
            for seen in gone.seen_in:
                if gone.keys_table is None and self._existing_columns(seen):
                    runs = ", ".join("?" for _ in gone.runs)
                    match = " AND ".join(f"s.{quote(c)} = {target}.{quote(c)}"
                                         for c in gone.primary_key)
                    condition += (f" AND NOT EXISTS (SELECT 1 FROM {quote(seen)} AS s "  # noqa: S608
                                  f"WHERE {match} AND s.{quote('_hw_run_id')} IN ({runs}))")
                    params += list(gone.runs)
            if gone.deletes == "soft":
                if DELETED_AT not in existing:
                    self._con.execute(f"ALTER TABLE {target} ADD COLUMN {quote(DELETED_AT)} "
                                      "TIMESTAMP WITH TIME ZONE")
                    self._columns[table] = {**existing, DELETED_AT: "TIMESTAMP WITH TIME ZONE"}
                sql = (f"UPDATE {target} SET {quote(DELETED_AT)} = ? "  # noqa: S608
                       f"WHERE {quote(DELETED_AT)} IS NULL AND {condition}")
                params = [gone.at, *params]
            else:
                sql = f"DELETE FROM {target} WHERE {condition}"  # noqa: S608
            removed = self._con.execute(sql, params).fetchall()[0][0]
            if gone.deletes == "soft" and gone.keys_table is not None:
                # A key the scan found again is at the source: no longer deleted.
                match = " AND ".join(f"k.{quote(c)} = {target}.{quote(c)}"
                                     for c in gone.primary_key)
                self._con.execute(
                    f"UPDATE {target} SET {quote(DELETED_AT)} = NULL "  # noqa: S608
                    f"WHERE {quote(DELETED_AT)} IS NOT NULL AND EXISTS (SELECT 1 FROM "
                    f"{quote(gone.keys_table)} AS k WHERE {match})")
        for dropped in gone.drop:
            self._con.execute(f"DROP TABLE IF EXISTS {quote(dropped)}")
            self._columns.pop(dropped, None)
        for key in gone.forget:
            self._con.execute(f"DELETE FROM {quote(STATE_TABLE)} WHERE stream = ?", [key])  # noqa: S608
        return int(removed)

    @staticmethod
    def _gone_condition(target: str, gone: RowsGone) -> tuple[str, list[Any]]:
        if gone.keys_table is None:
            runs = ", ".join("?" for _ in gone.runs) or "NULL"
            run_id = f"{target}.{quote('_hw_run_id')}"
            return f"({run_id} IS NULL OR {run_id} NOT IN ({runs}))", list(gone.runs)
        match = " AND ".join(f"k.{quote(c)} = {target}.{quote(c)}" for c in gone.primary_key)
        condition = (f"NOT EXISTS (SELECT 1 FROM {quote(gone.keys_table)} AS k "  # noqa: S608
                     f"WHERE {match})")
        if gone.before is None:
            return condition, []
        extracted = f"{target}.{quote('_hw_extracted_at')}"
        return f"{condition} AND ({extracted} IS NULL OR {extracted} < ?)", [gone.before]

    def drop_table(self, table: str) -> bool:
        with self._lock:
            existed = bool(self._existing_columns(table))
            self._con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            self._columns.pop(table, None)
        return existed

    @contextlib.contextmanager
    def _threads_for_merge(self) -> Iterator[None]:
        if self._merge_threads == self._threads:
            yield
            return
        self._con.execute(f"SET threads = {int(self._merge_threads)}")
        try:
            yield
        finally:
            self._con.execute(f"SET threads = {int(self._threads)}")

    def _merge_registered(self, table: str, batch: pa.RecordBatch | pa.Table,
                          primary_key: tuple[str, ...], provenance: Provenance | None) -> None:
        columns, created = self._ensure_table(table, provenance is not None)
        if batch.num_rows == 0:
            return
        target = quote(table)
        if primary_key and not created:
            self._delete_matching(target, batch, primary_key)
        names = [quote(c) for c in columns]
        values = list(names)
        params: list[Any] = []
        if provenance is not None:
            names += [quote(c) for c in PROVENANCE_COLUMNS]
            values += ["?"] * len(PROVENANCE_COLUMNS)
            params = provenance.values()
        self._con.execute(
            f"INSERT INTO {target} ({', '.join(names)}) "  # noqa: S608
            f"SELECT {', '.join(values)} FROM {_BATCH_VIEW}",
            params,
        )

    def _delete_matching(self, target: str, batch: pa.RecordBatch | pa.Table,
                         primary_key: tuple[str, ...]) -> None:
        """Delete the rows the batch replaces.

        The range of the first key column lets DuckDB skip, by its zone maps, every row
        group the batch cannot touch: a keyset load appends beyond all existing keys,
        so the delete reads almost nothing however large the table grows.
        """
        match = " AND ".join(f"{target}.{quote(k)} = b.{quote(k)}" for k in primary_key)
        params: list[Any] = []
        first = batch.column(primary_key[0])
        bounds = pc.min_max(first) if _orders_like_duckdb(first.type) else None
        if bounds is not None and bounds["min"].is_valid:
            in_range = f"{target}.{quote(primary_key[0])} BETWEEN ? AND ?"
            params = [bounds["min"].as_py(), bounds["max"].as_py()]
            # No row in the key range (an append): skip the join, which would hash
            # every key of the batch to match nothing.
            if not self._con.execute(f"SELECT 1 FROM {target} WHERE {in_range} LIMIT 1",  # noqa: S608
                                     params).fetchall():
                return
            match += f" AND {in_range}"
        self._con.execute(
            f"DELETE FROM {target} USING {_BATCH_VIEW} AS b WHERE {match}",  # noqa: S608
            params,
        )

    def replace_tables(self, tables):
        with self._lock:
            self._con.begin()
            try:
                for table, data in tables.items():
                    self._con.register(_BATCH_VIEW, data)
                    try:
                        self._con.execute(f"CREATE OR REPLACE TABLE {quote(table)} AS "  # noqa: S608
                                          f"SELECT * FROM {_BATCH_VIEW}")
                    finally:
                        self._con.unregister(_BATCH_VIEW)
                    self._columns.pop(table, None)
                    self._before_commit(table)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def replace_keyed(self, changes, *, state_key=None, state=None, run_id=None):
        with self._lock, self._threads_for_merge():
            self._con.begin()
            try:
                for table, change in changes.items():
                    self._replace_keyed(table, change)
                    self._before_commit(table)
                if state_key is not None:
                    self._write_state(state_key, state or {}, run_id)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                for table in changes:
                    self._columns.pop(table, None)
                raise

    def _replace_keyed(self, table: str, change: KeyedRows) -> None:
        self._con.register(_BATCH_VIEW, change.rows)
        try:
            columns, created = self._ensure_table(table, provenance=False)
            if not created and change.keys.num_rows:
                self._con.register(_KEYS_VIEW, change.keys)
                try:
                    match = " AND ".join(f"{quote(table)}.{quote(k)} = k.{quote(k)}"
                                         for k in change.key)
                    self._con.execute(f"DELETE FROM {quote(table)} USING {_KEYS_VIEW} AS k "  # noqa: S608
                                      f"WHERE {match}")
                finally:
                    self._con.unregister(_KEYS_VIEW)
            if change.rows.num_rows:
                names = ", ".join(quote(c) for c in columns)
                self._con.execute(f"INSERT INTO {quote(table)} ({names}) "  # noqa: S608
                                  f"SELECT {names} FROM {_BATCH_VIEW}")
        finally:
            self._con.unregister(_BATCH_VIEW)

    def rename_tables(self, renames, *, state_key=None, state=None, run_id=None):
        with self._lock:
            self._con.begin()
            try:
                for built, target in renames.items():
                    self._con.execute(f"DROP TABLE IF EXISTS {quote(target)}")
                    self._con.execute(f"ALTER TABLE {quote(built)} RENAME TO {quote(target)}")
                    self._columns.pop(built, None)
                    self._columns.pop(target, None)
                    self._before_commit(target)
                if state_key is not None:
                    self._write_state(state_key, state or {}, run_id)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def drop_tables(self, tables):
        with self._lock:
            for table in tables:
                self._con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
                self._columns.pop(table, None)

    def approx_quantiles(self, table, column, fractions, where=""):
        clause = f" WHERE {where}" if where else ""
        found = self.query(f"SELECT approx_quantile({quote(column)}, "  # noqa: S608
                           f"{[float(f) for f in fractions]}) FROM {quote(table)}{clause}")
        return found.column(0)[0].as_py() or []

    def bucket_expression(self, columns, buckets):
        return f"(hash({', '.join(quote(c) for c in columns)}) % {int(buckets)})"

    # -- state --------------------------------------------------------------------

    def _write_state(self, key: str, state: dict[str, Any], run_id: str | None) -> None:
        self._con.execute(
            f"INSERT OR REPLACE INTO {quote(STATE_TABLE)} VALUES (?, ?, ?, ?)",  # noqa: S608
            [key, dumps_state(state), run_id, dt.datetime.now(dt.UTC)],
        )

    def save_state(self, key, state, run_id=None):
        with self._lock:
            self._con.begin()
            try:
                self._write_state(key, state, run_id)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def load_state(self, key):
        with self._lock:
            rows = self._con.execute(
                f"SELECT state FROM {quote(STATE_TABLE)} WHERE stream = ?", [key]  # noqa: S608
            ).fetchall()
        return loads_state(rows[0][0]) if rows else None

    def delete_state(self, key):
        with self._lock:
            found = self._con.execute(
                f"DELETE FROM {quote(STATE_TABLE)} WHERE stream = ? RETURNING stream", [key]  # noqa: S608
            ).fetchall()
        return bool(found)

    def states(self):
        with self._lock:
            rows = self._con.execute(
                f"SELECT stream, state, run_id, updated_at FROM {quote(STATE_TABLE)} "  # noqa: S608
                "ORDER BY stream"
            ).fetchall()
        return {k: {"state": loads_state(s), "run_id": r, "updated_at": u} for k, s, r, u in rows}

    # -- reading ------------------------------------------------------------------

    def query(self, sql: str) -> pa.Table:
        with self._lock:
            return self._con.sql(sql).to_arrow_table()

    def tables(self) -> list[str]:
        with self._lock:
            rows = self._con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name"
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self._con.close()
