"""The production warehouse: PostgreSQL, written through ADBC (binary COPY) in bulk.

Many runs may write one PostgreSQL warehouse at once, so everything here is safe to race:

- each stream has one writer: a run holds a session advisory lock on its stream key and
  records itself in ``_headwater_locks`` (run id, since when, backend pid), so a second
  run of the stream can name the holder when it gives up;
- every raw table with a primary key has it as a constraint, and a merge is an
  ``INSERT ... ON CONFLICT DO UPDATE`` in key order: two writers of one table (daily
  partitions of a stream, model caches) update rows instead of duplicating them;
- schema and table DDL (create, add a column, add the key) runs under a transaction
  advisory lock per schema or table, re-checking the catalog once it holds the lock, so
  racing first runs create each object once instead of failing on catalog indexes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import adbc_driver_postgresql.dbapi as adbc_pg
import pyarrow as pa
import sqlalchemy as sa

from connectors import DataContractError, dumps_state, loads_state
from connectors.sql import translate_error

from ._base import (
    DELETED_AT,
    PROVENANCE_COLUMNS,
    STATE_TABLE,
    Provenance,
    RowsGone,
    SchemaDiff,
    Settled,
    TypeCheck,
    Warehouse,
    prepare_batch,
    quote,
)
from ._locks import DEFAULT_LOCK_WAIT, LockHolder, lock_id
from ._pgtypes import exact_numerics, pg_type

log = logging.getLogger("headwater.warehouse")

LOCK_TABLE = "_headwater_locks"
_STAGE = "_hw_stage"
_KEYS = "_hw_keys"
_INTEGERS = ["SMALLINT", "INTEGER", "BIGINT"]
_TYPES = TypeCheck({
    **{small: set(_INTEGERS[i + 1:]) for i, small in enumerate(_INTEGERS)},
    "REAL": {"DOUBLE PRECISION"},
}, chains=[_INTEGERS, ["REAL", "DOUBLE PRECISION"]])
_PROVENANCE_DDL = {
    "_hw_source": "text",
    "_hw_stream": "text",
    "_hw_extracted_at": "timestamp with time zone",
    "_hw_run_id": "text",
}


class PostgresWarehouse(Warehouse):
    """A warehouse in a PostgreSQL schema (``public`` unless the URL names another)."""

    def __init__(self, url: str, schema: str = "public",
                 lock_wait: float = DEFAULT_LOCK_WAIT) -> None:
        parsed = sa.make_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.schema = schema
        self.lock_wait = float(lock_wait)
        self._where = f"postgresql warehouse {parsed.database!r} at {parsed.host}:{parsed.port}"
        try:
            self._con = adbc_pg.connect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            )
        except Exception as exc:
            raise translate_error(exc, self._where) from exc
        self._lock = threading.Lock()
        self._columns: dict[str, dict[str, str]] = {}
        self._keys: dict[str, frozenset[str]] = {}  # primary keys known to be constraints
        with self._con.cursor() as cur:
            try:
                self._create_schema(cur)
                self._create_table(cur, STATE_TABLE, "stream text PRIMARY KEY, "
                                   "state text NOT NULL, run_id text, updated_at timestamptz")
                self._create_table(cur, LOCK_TABLE, "stream text PRIMARY KEY, run_id text, "
                                   "since timestamptz NOT NULL, pid integer NOT NULL")
                self._con.commit()
            except BaseException:
                self._con.rollback()
                self._con.close()
                raise

    def _name(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(table)}"

    def _lock_scope(self) -> str:
        return f"{self.url}#{self.schema}"

    # -- one writer per stream -----------------------------------------------------

    def _acquire_stream_lock(self, key: str, run_id: str, deadline: float
                             ) -> LockHolder | None:
        lock = lock_id("stream", self.schema, key)
        late_attempts = 0
        while not self._try_stream_lock(key, run_id, lock):
            if time.monotonic() < deadline:
                time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
                continue
            holder = self._stream_holder(key, lock)
            if holder is not None:
                return holder
            # Released between the attempt and the look-up: try again, a few times.
            late_attempts += 1
            if late_attempts > 3:
                return LockHolder(None, None, "another PostgreSQL session")
        return None

    def _try_stream_lock(self, key: str, run_id: str, lock: int) -> bool:
        with self._lock, self._con.cursor() as cur:
            try:
                cur.execute("SELECT pg_try_advisory_lock($1)", (lock,))
                taken = bool(cur.fetchall()[0][0])
                if taken:
                    cur.execute(
                        f"INSERT INTO {self._name(LOCK_TABLE)} "  # noqa: S608
                        "VALUES ($1, $2, now(), pg_backend_pid()) ON CONFLICT (stream) DO "
                        "UPDATE SET run_id = EXCLUDED.run_id, since = EXCLUDED.since, "
                        "pid = EXCLUDED.pid",
                        (key, run_id),
                    )
                self._con.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self._con.rollback()
                    cur.execute("SELECT pg_advisory_unlock($1)", (lock,))
                    cur.fetchall()
                    self._con.commit()
                if not isinstance(exc, Exception):
                    raise
                raise translate_error(exc, self._where) from exc
        return taken

    def _stream_holder(self, key: str, lock: int) -> LockHolder | None:
        """Who holds the advisory lock ``lock`` now (``None`` if nobody does): the run
        it recorded in the lock table, if that record belongs to the holding session."""
        unsigned = lock & 0xFFFF_FFFF_FFFF_FFFF
        with self._lock, self._con.cursor() as cur:
            cur.execute(
                f"SELECT a.pid, l.run_id, l.since FROM pg_locks k "  # noqa: S608
                "JOIN pg_stat_activity a ON a.pid = k.pid "
                f"LEFT JOIN {self._name(LOCK_TABLE)} l ON l.stream = $1 AND l.pid = k.pid "
                "AND l.since >= a.backend_start "
                "WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1 "
                "AND k.classid::bigint = $2 AND k.objid::bigint = $3 "
                "AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (key, unsigned >> 32, unsigned & 0xFFFF_FFFF),
            )
            rows = cur.fetchall()
            self._con.commit()
        if not rows:
            return None
        pid, run_id, since = rows[0]
        return LockHolder(run_id, since, f"PostgreSQL backend pid {pid}")

    def _release_stream_lock(self, key: str) -> None:
        lock = lock_id("stream", self.schema, key)
        with self._lock, self._con.cursor() as cur:
            try:
                cur.execute(
                    f"DELETE FROM {self._name(LOCK_TABLE)} "  # noqa: S608
                    "WHERE stream = $1 AND pid = pg_backend_pid()", (key,),
                )
                cur.execute("SELECT pg_advisory_unlock($1)", (lock,))
                cur.fetchall()
                self._con.commit()
            except Exception as exc:  # the session is gone, and its lock with it
                with contextlib.suppress(Exception):
                    self._con.rollback()
                log.warning("stream %s: could not release its lock in %s (%s); a lock "
                            "ends with its session", key, self._where,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    # -- DDL, safe to race --------------------------------------------------------

    def _ddl_lock(self, cur: Any, *names: str) -> None:
        """Serialize DDL on one object with every other session, until this transaction
        ends; the caller re-reads the catalog after it."""
        cur.execute("SELECT pg_advisory_xact_lock($1)", (lock_id("ddl", *names),))
        cur.fetchall()

    def _create_schema(self, cur: Any) -> None:
        # Only when missing: a user who owns the schema needs no CREATE on the database.
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = $1", (self.schema,))
        if not cur.fetchall():
            self._ddl_lock(cur, self.schema)
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")

    def _create_table(self, cur: Any, table: str, columns: str) -> None:
        cur.execute("SELECT to_regclass($1) IS NOT NULL", (self._name(table),))
        if not cur.fetchall()[0][0]:
            self._ddl_lock(cur, self.schema, table)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self._name(table)} ({columns})")

    def _existing_columns(self, cur: Any, table: str) -> dict[str, str]:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2 "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self.schema, table),
        )
        return {name: type_.upper() for name, type_ in cur.fetchall()}

    def _existing_key(self, cur: Any, table: str) -> tuple[str, ...]:
        """The table's primary-key columns, in key order (empty if it has none)."""
        cur.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord",
            (self.schema, table),
        )
        return tuple(row[0] for row in cur.fetchall())

    def _ensure_table(self, cur: Any, table: str, schema: pa.Schema, provenance: bool,
                      primary_key: tuple[str, ...]) -> dict[str, str]:
        """Create or evolve ``table`` for a batch of ``schema``; its columns afterwards.
        New columns are added and types widened where no value changes.

        Reads the catalog without a lock; only when something must change does it take
        the table's DDL lock, re-read, and change it.
        """
        incoming = self._incoming(schema)
        known = self._columns.get(table)
        if (known is not None and self._keys.get(table) == frozenset(primary_key)
                and not _TYPES.diff(known, incoming)):
            return known
        existing = self._existing_columns(cur, table)
        self._keys[table] = frozenset(primary_key)
        if self._settled(cur, table, existing, incoming, primary_key):
            self._columns[table] = existing
            return existing
        self._ddl_lock(cur, self.schema, table)
        existing = self._existing_columns(cur, table)
        if not existing:
            columns = {**incoming, **(_PROVENANCE_DDL if provenance else {})}
            ddl = [f"{quote(n)} {t}" for n, t in columns.items()]
            if primary_key:
                ddl.append(f"PRIMARY KEY ({', '.join(quote(k) for k in primary_key)})")
            cur.execute(f"CREATE TABLE {self._name(table)} ({', '.join(ddl)})")
            self._columns[table] = {n: t.upper() for n, t in columns.items()}
            return self._columns[table]
        for name, type_ in _TYPES.new_columns(table, existing, incoming).items():
            cur.execute(f"ALTER TABLE {self._name(table)} ADD COLUMN {quote(name)} {type_}")
        widened = _TYPES.diff(existing, incoming).widened
        for name, (_, wider) in widened.items():
            cur.execute(f"ALTER TABLE {self._name(table)} ALTER COLUMN {quote(name)} "
                        f"TYPE {wider}")
        if primary_key:
            self._ensure_key(cur, table, primary_key, existing)
        # A column keeps its type unless it was widened: a narrower batch changes nothing.
        self._columns[table] = {**existing, **{n: t for n, t in incoming.items()
                                               if n not in existing or n in widened}}
        return self._columns[table]

    @staticmethod
    def _incoming(schema: pa.Schema) -> dict[str, str]:
        return {f.name: pg_type(f.type).upper() for f in schema}

    def schema_changes(self, table: str, schema: pa.Schema) -> SchemaDiff:
        with self._lock, self._con.cursor() as cur:
            existing = self._columns.get(table)
            if existing is None:
                existing = self._existing_columns(cur, table)
                self._con.commit()
        return _TYPES.diff(existing, self._incoming(schema))

    def _settled(self, cur: Any, table: str, existing: dict[str, str],
                 incoming: dict[str, str], primary_key: tuple[str, ...]) -> bool:
        """Whether ``table`` exists with every incoming column and the key as its
        primary key already (so the merge needs no DDL)."""
        if not existing or _TYPES.diff(existing, incoming):
            return False
        return not primary_key or set(self._existing_key(cur, table)) == set(primary_key)

    def _ensure_key(self, cur: Any, table: str, primary_key: tuple[str, ...],
                    columns: dict[str, str]) -> None:
        """Give a table landed before keys were constraints its primary key, once.

        Rows repeated by key (two runs of one stream used to land both copies) are
        first reduced to the most recently landed copy, and the count is logged.
        """
        current = self._existing_key(cur, table)
        if set(current) == set(primary_key):
            return
        keys = ", ".join(quote(k) for k in primary_key)
        if current:
            raise DataContractError(
                f"{table}: the table's primary key is {list(current)} but the stream "
                f"declares {list(primary_key)}; nothing was written. Declare the same key, "
                "or drop the table and reset the stream's state to land it again"
            )
        newest = "_hw_extracted_at DESC NULLS LAST, " if "_hw_extracted_at" in columns else ""
        cur.execute(
            f"DELETE FROM {self._name(table)} WHERE ctid IN (SELECT ctid FROM ("  # noqa: S608
            f"SELECT ctid, row_number() OVER (PARTITION BY {keys} ORDER BY {newest}ctid DESC) "
            f"AS n FROM {self._name(table)}) AS ranked WHERE n > 1)"
        )
        removed = cur.rowcount
        if removed and removed > 0:
            log.warning("%s: removed %d rows repeated by primary key %s (kept the most "
                        "recently landed copy of each) before adding the key constraint",
                        table, removed, list(primary_key))
        try:
            cur.execute(f"ALTER TABLE {self._name(table)} ADD PRIMARY KEY ({keys})")
        except Exception as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataContractError(
                f"{table}: cannot make {list(primary_key)} its primary key ({detail}); "
                "nothing was written. Fix the rows with a null key, or drop the table and "
                "reset the stream's state to land it again"
            ) from exc

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
        with self._lock, self._con.cursor() as cur:
            try:
                if batch is not None:
                    columns = self._ensure_table(cur, table, batch.schema,
                                                 provenance is not None, primary_key)
                    if batch.num_rows:
                        self._upsert(cur, table, batch, primary_key, provenance, columns)
                removed = self._remove(cur, table, gone) if gone is not None else 0
                if state_key is not None:
                    self._write_state(cur, state_key, state or {},
                                      provenance.run_id if provenance else None)
                self._before_commit(table)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                self._columns.pop(table, None)
                self._keys.pop(table, None)
                raise
        return Settled(batch.num_rows if batch is not None else 0, removed)

    def _remove(self, cur: Any, table: str, gone: RowsGone) -> int:
        """Remove or mark the rows ``gone`` describes; how many."""
        removed = 0
        existing = self._columns.get(table) or self._existing_columns(cur, table)
        if existing:
            target = self._name(table)
            params: list[Any] = [gone.at] if gone.deletes == "soft" else []
            condition, more = self._gone_condition(target, gone, len(params) + 1)
            params += more
            for seen in gone.seen_in:
                if gone.keys_table is None and self._existing_columns(cur, seen):
                    first = len(params) + 1
                    runs = ", ".join(f"${first + i}::text" for i in range(len(gone.runs)))
                    match = " AND ".join(f"s.{quote(c)} = {target}.{quote(c)}"
                                         for c in gone.primary_key)
                    condition += (f" AND NOT EXISTS (SELECT 1 FROM {self._name(seen)} AS s "  # noqa: S608
                                  f"WHERE {match} AND s._hw_run_id IN ({runs}))")
                    params += list(gone.runs)
            if gone.deletes == "soft":
                if DELETED_AT not in existing:
                    self._ddl_lock(cur, self.schema, table)
                    cur.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS "
                                f"{quote(DELETED_AT)} timestamp with time zone")
                    self._columns[table] = {**existing,
                                            DELETED_AT: "TIMESTAMP WITH TIME ZONE"}
                sql = (f"UPDATE {target} SET {quote(DELETED_AT)} = $1::timestamptz "  # noqa: S608
                       f"WHERE {quote(DELETED_AT)} IS NULL AND {condition}")
            else:
                sql = f"DELETE FROM {target} WHERE {condition}"  # noqa: S608
            cur.execute(f"WITH gone AS ({sql} RETURNING 1) SELECT count(*) FROM gone",  # noqa: S608
                        tuple(params) or None)
            removed = int(cur.fetchall()[0][0])
            if gone.deletes == "soft" and gone.keys_table is not None:
                # A key the scan found again is at the source: no longer deleted.
                match = " AND ".join(f"k.{quote(c)} = {target}.{quote(c)}"
                                     for c in gone.primary_key)
                cur.execute(
                    f"UPDATE {target} SET {quote(DELETED_AT)} = NULL "  # noqa: S608
                    f"WHERE {quote(DELETED_AT)} IS NOT NULL AND EXISTS (SELECT 1 FROM "
                    f"{self._name(gone.keys_table)} AS k WHERE {match})")
        for dropped in gone.drop:
            cur.execute(f"DROP TABLE IF EXISTS {self._name(dropped)}")
            self._columns.pop(dropped, None)
            self._keys.pop(dropped, None)
        for key in gone.forget:
            cur.execute(f"DELETE FROM {self._name(STATE_TABLE)} WHERE stream = $1", (key,))  # noqa: S608
        return removed

    def _gone_condition(self, target: str, gone: RowsGone, first: int
                        ) -> tuple[str, list[Any]]:
        """The SQL condition of the gone rows, with parameters numbered from ``first``."""
        if gone.keys_table is None:
            runs = ", ".join(f"${first + i}::text" for i in range(len(gone.runs))) or "NULL"
            return (f"(_hw_run_id IS NULL OR _hw_run_id NOT IN ({runs}))", list(gone.runs))
        match = " AND ".join(f"k.{quote(c)} = {target}.{quote(c)}" for c in gone.primary_key)
        condition = (f"NOT EXISTS (SELECT 1 FROM {self._name(gone.keys_table)} AS k "  # noqa: S608
                     f"WHERE {match})")
        if gone.before is None:
            return condition, []
        return (f"{condition} AND (_hw_extracted_at IS NULL OR "
                f"_hw_extracted_at < ${first}::timestamptz)", [gone.before])

    def drop_table(self, table: str) -> bool:
        with self._lock, self._con.cursor() as cur:
            try:
                cur.execute("SELECT to_regclass($1) IS NOT NULL", (self._name(table),))
                existed = bool(cur.fetchall()[0][0])
                self._ddl_lock(cur, self.schema, table)
                cur.execute(f"DROP TABLE IF EXISTS {self._name(table)}")
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise
            finally:
                self._columns.pop(table, None)
                self._keys.pop(table, None)
        return existed

    def _upsert(self, cur: Any, table: str, batch: pa.RecordBatch | pa.Table,
                primary_key: tuple[str, ...], provenance: Provenance | None,
                columns: dict[str, str]) -> None:
        """Insert the batch; rows whose key is already there are replaced whole (a column
        the batch lacks becomes null, as if the row were deleted and inserted)."""
        cur.adbc_ingest(_STAGE, batch, mode="replace", temporary=True)
        names = [quote(f.name) for f in batch.schema]
        values = [f"s.{n}::{pg_type(f.type)}" for n, f in zip(names, batch.schema, strict=True)]
        params: tuple[Any, ...] | None = None
        if provenance is not None:
            names += [quote(c) for c in PROVENANCE_COLUMNS]
            values += ["$1::text", "$2::text", "$3::timestamptz", "$4::text"]
            params = tuple(provenance.values())
        upsert = ""
        if primary_key:
            keys = ", ".join(quote(k) for k in primary_key)
            replaced = [quote(c) for c in columns if c not in primary_key]
            action = ("DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in replaced)
                      if replaced else "DO NOTHING")
            # Key order: concurrent writers of one table lock rows in the same order, so
            # they wait for each other instead of deadlocking.
            order = ", ".join(f"s.{quote(k)}" for k in primary_key)
            upsert = f" ORDER BY {order} ON CONFLICT ({keys}) {action}"
        cur.execute(
            f"INSERT INTO {self._name(table)} ({', '.join(names)}) "  # noqa: S608
            f"SELECT {', '.join(values)} FROM {quote(_STAGE)} AS s{upsert}",
            params,
        )

    def replace_tables(self, tables):
        with self._lock, self._con.cursor() as cur:
            try:
                for table, data in tables.items():
                    target = self._name(table)
                    columns = [f"{quote(f.name)} {pg_type(f.type)}" for f in data.schema]
                    self._ddl_lock(cur, self.schema, table)
                    cur.execute(f"DROP TABLE IF EXISTS {target}")
                    cur.execute(f"CREATE TABLE {target} ({', '.join(columns)})")
                    self._columns.pop(table, None)
                    if data.num_rows:
                        self._upsert(cur, table, data, (), None, {})
                    self._before_commit(table)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def replace_keyed(self, changes, *, state_key=None, state=None, run_id=None):
        with self._lock, self._con.cursor() as cur:
            try:
                for table, change in changes.items():
                    columns = self._ensure_table(cur, table, change.rows.schema, False, ())
                    if change.keys.num_rows:
                        cur.adbc_ingest(_KEYS, change.keys, mode="replace", temporary=True)
                        match = " AND ".join(f"t.{quote(k)} = k.{quote(k)}" for k in change.key)
                        cur.execute(f"DELETE FROM {self._name(table)} AS t "  # noqa: S608
                                    f"USING {quote(_KEYS)} AS k WHERE {match}")
                    if change.rows.num_rows:
                        self._upsert(cur, table, change.rows, (), None, columns)
                    self._before_commit(table)
                if state_key is not None:
                    self._write_state(cur, state_key, state or {}, run_id)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                for table in changes:
                    self._columns.pop(table, None)
                    self._keys.pop(table, None)
                raise

    def rename_tables(self, renames, *, state_key=None, state=None, run_id=None):
        with self._lock, self._con.cursor() as cur:
            try:
                for built, target in renames.items():
                    self._ddl_lock(cur, self.schema, target)
                    cur.execute(f"DROP TABLE IF EXISTS {self._name(target)}")
                    cur.execute(f"ALTER TABLE {self._name(built)} RENAME TO {quote(target)}")
                    for name in (built, target):
                        self._columns.pop(name, None)
                        self._keys.pop(name, None)
                    self._before_commit(target)
                if state_key is not None:
                    self._write_state(cur, state_key, state or {}, run_id)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def drop_tables(self, tables):
        with self._lock, self._con.cursor() as cur:
            try:
                for table in tables:
                    cur.execute(f"DROP TABLE IF EXISTS {self._name(table)}")
                    self._columns.pop(table, None)
                    self._keys.pop(table, None)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def approx_quantiles(self, table, column, fractions, where=""):
        clause = f" WHERE {where}" if where else ""
        points = ", ".join(str(float(f)) for f in fractions)
        found = self.query(f"SELECT percentile_disc(ARRAY[{points}]) WITHIN GROUP "  # noqa: S608
                           f"(ORDER BY {quote(column)}) FROM {quote(table)}{clause}")
        return found.column(0)[0].as_py() or []

    def bucket_expression(self, columns, buckets):
        row = ", ".join(f"{quote(c)}::text" for c in columns)
        return f"(abs(hashtextextended(concat_ws('|', {row}), 0)) % {int(buckets)})"

    def landings_in_flight(self):
        """Every run landing a stream of this schema now, in any process: the lock
        table's records whose session still exists."""
        held = super().landings_in_flight()
        with self._lock, self._con.cursor() as cur:
            cur.execute(
                f"SELECT l.stream, l.run_id, l.since, l.pid FROM {self._name(LOCK_TABLE)} l "  # noqa: S608
                "JOIN pg_stat_activity a ON a.pid = l.pid AND l.since >= a.backend_start")
            rows = cur.fetchall()
            self._con.commit()
        for key, run_id, since, pid in rows:
            held.setdefault(key, LockHolder(run_id, since, f"PostgreSQL backend pid {pid}"))
        return held

    def _write_state(self, cur: Any, key: str, state: dict[str, Any], run_id: str | None) -> None:
        cur.execute(
            f"INSERT INTO {self._name(STATE_TABLE)} VALUES ($1, $2, $3, now()) "  # noqa: S608
            "ON CONFLICT (stream) DO UPDATE SET state = EXCLUDED.state, "
            "run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at",
            (key, dumps_state(state), run_id),
        )

    def save_state(self, key, state, run_id=None):
        with self._lock, self._con.cursor() as cur:
            try:
                self._write_state(cur, key, state, run_id)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def load_state(self, key):
        with self._lock, self._con.cursor() as cur:
            cur.execute(f"SELECT state FROM {self._name(STATE_TABLE)} WHERE stream = $1", (key,))  # noqa: S608
            row = cur.fetchone()
            self._con.commit()
        return loads_state(row[0]) if row else None

    def delete_state(self, key):
        with self._lock, self._con.cursor() as cur:
            cur.execute(
                f"DELETE FROM {self._name(STATE_TABLE)} WHERE stream = $1 RETURNING stream", (key,)  # noqa: S608
            )
            found = cur.fetchall()
            self._con.commit()
        return bool(found)

    def states(self):
        with self._lock, self._con.cursor() as cur:
            cur.execute(
                f"SELECT stream, state, run_id, updated_at FROM {self._name(STATE_TABLE)} "  # noqa: S608
                "ORDER BY stream"
            )
            rows = cur.fetchall()
            self._con.commit()
        return {k: {"state": loads_state(s), "run_id": r, "updated_at": u} for k, s, r, u in rows}

    def query(self, sql: str) -> pa.Table:
        with self._lock, self._con.cursor() as cur:
            cur.execute(f"SET search_path TO {quote(self.schema)}")
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            self._con.commit()
        return exact_numerics(table)

    def tables(self) -> list[str]:
        names = self.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        return names.column(0).to_pylist()

    def close(self) -> None:
        self._con.close()
