"""The production warehouse: PostgreSQL, written through ADBC (binary COPY) in bulk."""

from __future__ import annotations

import threading
from typing import Any

import adbc_driver_postgresql.dbapi as adbc_pg
import pyarrow as pa
import sqlalchemy as sa

from connectors import dumps_state, loads_state
from connectors.sql import translate_error

from ._base import (
    PROVENANCE_COLUMNS,
    STATE_TABLE,
    Provenance,
    TypeCheck,
    Warehouse,
    prepare_batch,
    quote,
)

_STAGE = "_hw_stage"
_INTEGERS = ["SMALLINT", "INTEGER", "BIGINT"]
_TYPES = TypeCheck({
    **{small: set(_INTEGERS[i + 1:]) for i, small in enumerate(_INTEGERS)},
    "REAL": {"DOUBLE PRECISION"},
})
_PROVENANCE_DDL = {
    "_hw_source": "text",
    "_hw_stream": "text",
    "_hw_extracted_at": "timestamp with time zone",
    "_hw_run_id": "text",
}


def pg_type(t: pa.DataType) -> str:
    """PostgreSQL type that holds every value of an Arrow type exactly."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float32(t):
        return "real"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_duration(t):
        return "interval"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    return "text"


class PostgresWarehouse(Warehouse):
    """A warehouse in a PostgreSQL schema (``public`` unless the URL names another)."""

    def __init__(self, url: str, schema: str = "public") -> None:
        parsed = sa.make_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.schema = schema
        self._where = f"postgresql warehouse {parsed.database!r} at {parsed.host}:{parsed.port}"
        try:
            self._con = adbc_pg.connect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            )
        except Exception as exc:
            raise translate_error(exc, self._where) from exc
        self._lock = threading.Lock()
        self._columns: dict[str, dict[str, str]] = {}
        with self._con.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._name(STATE_TABLE)} (stream text PRIMARY KEY, "
                "state text NOT NULL, run_id text, updated_at timestamptz)"
            )
        self._con.commit()

    def _name(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(table)}"

    def _existing_columns(self, cur: Any, table: str) -> dict[str, str]:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2 "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self.schema, table),
        )
        return {name: type_.upper() for name, type_ in cur.fetchall()}

    def _ensure_table(self, cur: Any, table: str, schema: pa.Schema, provenance: bool) -> None:
        incoming = {f.name: pg_type(f.type).upper() for f in schema}
        existing = self._columns.get(table) or self._existing_columns(cur, table)
        if not existing:
            columns = [f"{quote(n)} {t}" for n, t in incoming.items()]
            if provenance:
                columns += [f"{quote(n)} {t}" for n, t in _PROVENANCE_DDL.items()]
            cur.execute(f"CREATE TABLE {self._name(table)} ({', '.join(columns)})")
        else:
            for name, type_ in _TYPES.new_columns(table, existing, incoming).items():
                cur.execute(f"ALTER TABLE {self._name(table)} ADD COLUMN {quote(name)} {type_}")
        self._columns[table] = {**existing, **incoming}

    def merge(self, table, batch, primary_key, *, provenance=None, state_key=None, state=None):
        batch = prepare_batch(batch, tuple(primary_key), table)
        with self._lock, self._con.cursor() as cur:
            try:
                self._ensure_table(cur, table, batch.schema, provenance is not None)
                if batch.num_rows:
                    self._upsert(cur, table, batch, tuple(primary_key), provenance)
                if state_key is not None:
                    self._write_state(cur, state_key, state or {},
                                      provenance.run_id if provenance else None)
                self._before_commit(table)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                self._columns.pop(table, None)
                raise
        return batch.num_rows

    def _upsert(self, cur: Any, table: str, batch: pa.RecordBatch | pa.Table,
                primary_key: tuple[str, ...], provenance: Provenance | None) -> None:
        cur.adbc_ingest(_STAGE, batch, mode="replace", temporary=True)
        target = self._name(table)
        if primary_key:
            match = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in primary_key)
            cur.execute(f"DELETE FROM {target} AS t USING {quote(_STAGE)} AS s WHERE {match}")  # noqa: S608
        names = [quote(f.name) for f in batch.schema]
        values = [f"s.{n}::{pg_type(f.type)}" for n, f in zip(names, batch.schema, strict=True)]
        params: tuple[Any, ...] | None = None
        if provenance is not None:
            names += [quote(c) for c in PROVENANCE_COLUMNS]
            values += ["$1::text", "$2::text", "$3::timestamptz", "$4::text"]
            params = tuple(provenance.values())
        cur.execute(
            f"INSERT INTO {target} ({', '.join(names)}) "  # noqa: S608
            f"SELECT {', '.join(values)} FROM {quote(_STAGE)} AS s",
            params,
        )

    def replace_tables(self, tables):
        with self._lock, self._con.cursor() as cur:
            try:
                for table, data in tables.items():
                    target = self._name(table)
                    columns = [f"{quote(f.name)} {pg_type(f.type)}" for f in data.schema]
                    cur.execute(f"DROP TABLE IF EXISTS {target}")
                    cur.execute(f"CREATE TABLE {target} ({', '.join(columns)})")
                    self._columns.pop(table, None)
                    if data.num_rows:
                        self._upsert(cur, table, data, (), None)
                    self._before_commit(table)
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

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


def exact_numerics(table: pa.Table) -> pa.Table:
    """Turn ADBC's text-encoded NUMERIC columns into decimals of the column's declared
    precision and scale (read from the type modifier ADBC passes along)."""
    for index, field in enumerate(table.schema):
        meta = field.metadata or {}
        if meta.get(b"POSTGRESQL:type") != b"numeric":
            continue
        typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
        if typmod >= 4:
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
            target = pa.decimal128(precision, scale) if precision <= 38 else \
                pa.decimal256(precision, scale)
        else:
            target = pa.decimal128(38, 10)
        column = table.column(index)
        storage = pa.chunked_array(
            [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks],
            type=pa.string(),
        )
        table = table.set_column(index, pa.field(field.name, target), storage.cast(target))
    return table
