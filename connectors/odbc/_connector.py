"""ODBCConnector: any ODBC driver through pyodbc, with an Arrow fast path (arrow-odbc)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from .._errors import ConfigurationError, HeadwaterError, RetriableSourceError
from .._redaction import redact
from .._retry import Retrier, RetryPolicy
from .._stream import Stream
from ..sql import _types as sql_types
from ..sql._arrow_native import conform
from ..sql._plan import ReadPlan, column_reader
from ..sql._relational import DEFAULT_CHUNK_ROWS, ColumnKind, RelationalConnector
from ..sql._streams import SQLQuery
from ..sql._translate import translate_error
from ..sql._types import ColumnType
from ..sql._values import python_array, strict_bool_array, text_array
from . import _types
from ._connection import SESSION_SQL, ConnectionString, check_driver, family_options
from ._dialects import compile_sql, dialect_for, family_of
from ._driver import pyodbc_module

log = logging.getLogger("headwater.connectors.odbc")

# Families whose drivers were checked to give identical results on both read paths.
FAST_PATH_FAMILIES = ("postgresql", "mysql", "sqlite")
# Families sent literal SQL unless told otherwise.
LITERAL_FAMILIES = ("sqlite",)
# SQL that names the schema (or, on MySQL, the database) unqualified names resolve to.
_DEFAULT_SCHEMA_SQL = {
    "postgresql": "SELECT current_schema()",
    "mysql": "SELECT DATABASE()",
    "mssql": "SELECT SCHEMA_NAME()",
}
_TRUNCATED = "too large to be written into the allocated buffer"
_NEEDED = re.compile(r"indicated by ODBC driver: Some\((\d+)\)")
# Per-row buffer of unbounded text and binary columns on the fast path until a longer
# value shows up: the transfer buffer is rows x row width, so small is fast.
INITIAL_BUFFER_BYTES = 256
# ODBC states meaning the driver could not be loaded or the data source is unknown.
_DRIVER_MISSING = ("IM002", "IM003", "01000")
# Each column's own declaration, for the families whose driver catalog loses some.
_DECLARED_TYPES_SQL = {
    "postgresql": (
        "SELECT CAST(a.attname AS text), format_type(a.atttypid, a.atttypmod) "
        "FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 "
        "AND NOT a.attisdropped"
    ),
    "mysql": (
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :table"
    ),
}


def fast_path_available() -> bool:
    """Whether arrow-odbc is installed."""
    return importlib.util.find_spec("arrow_odbc") is not None


@dataclass
class ODBCReadPlan(ReadPlan):
    """A read plan with what the Arrow fast path needs to give the same batches."""

    transport: pa.Schema | None = None  # the types arrow-odbc binds buffers for
    guid_columns: frozenset[str] = field(default_factory=frozenset)
    fast: bool = False
    text_size: int = 0  # fast-path text buffer per value, once grown (bytes)
    binary_size: int = 0

    def keys_only(self) -> ODBCReadPlan:
        plan = super().keys_only()
        if self.transport is not None:
            plan.transport = pa.schema([self.transport.field(k) for k in self.primary_key])
        plan.guid_columns = self.guid_columns & frozenset(self.primary_key)
        return plan


class ODBCConnector(RelationalConnector):
    """Reads tables and queries through any ODBC driver.

    ``connection_string`` is an ODBC connection string (``DRIVER={...};SERVER=...`` or
    ``DSN=...``); put secrets in it from the environment (the configuration file's
    ``${VAR}``), and they are masked in every message, including driver errors that
    echo the string. Streams, keyset chunking, checkpoints, incremental windows and
    retries are exactly those of :class:`~connectors.SQLConnector`.

    SQL is generated for the database family behind the driver (found from the driver's
    ``SQL_DBMS_NAME``, or set with ``dialect``): ``postgresql``, ``mysql``, ``sqlite``,
    ``mssql``, ``oracle``, ``db2`` or ``ansi``. Values go as ``?`` parameters, or as
    literals in the SQL text with ``literal_sql=True`` for drivers that need it. SQLite
    gets literals by default: it stores timestamps as text, and its driver binds them
    in another format than the one stored.

    ``fast_path`` ("auto", True, False) reads through arrow-odbc straight into Arrow
    buffers; "auto" uses it for the families it was checked on (PostgreSQL,
    MySQL/MariaDB, SQLite). Its transfer buffers are bounded by
    ``arrow_buffer_bytes``; buffers for unbounded text and binary columns start small
    and grow when a longer value arrives, up to ``max_text_size`` and
    ``max_binary_size`` bytes per value; a longer value still moves that read to
    pyodbc, losing nothing. ``output_converters`` maps ODBC SQL type codes to functions decoding the
    driver's raw bytes, for driver-specific types.
    """

    kind = "odbc"
    connection_string: str | None = None

    def __init__(
        self,
        name: str | None = None,
        connection_string: str | None = None,
        streams: Sequence[Stream] | None = None,
        *,
        db_schema: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_ROWS,
        batch_size: int = 50_000,
        retry: RetryPolicy | Retrier | None = None,
        fast_path: bool | str = "auto",
        dialect: str | None = None,
        literal_sql: bool | None = None,
        max_text_size: int = 2**20,
        max_binary_size: int = 2**20,
        arrow_buffer_bytes: int = 64 * 2**20,
        login_timeout: int = 10,
        query_timeout: int = 0,
        output_converters: Mapping[int, Any] | None = None,
    ) -> None:
        super().__init__(name, streams, db_schema=db_schema, chunk_size=chunk_size,
                         batch_size=batch_size, retry=retry)
        text = connection_string if connection_string is not None else self.connection_string
        if not text:
            raise ConfigurationError(
                f"connector {self.name!r} needs an ODBC connection string "
                "(DRIVER={...};SERVER=...;DATABASE=... or DSN=...)"
            )
        conn_str = ConnectionString(text)
        data_sources = pyodbc_module().dataSources()
        check_driver(conn_str, pyodbc_module().drivers(), data_sources)
        guessed = conn_str.family_guess(data_sources)
        self.conn_str = conn_str.with_defaults(family_options(dialect or guessed, max_text_size))
        self.where = conn_str.describe()
        self._family = dialect
        if dialect is not None:
            dialect_for(dialect)  # fails early on an unknown family
        if fast_path not in (True, False, "auto"):
            raise ConfigurationError(f"fast_path must be true, false or 'auto', not {fast_path!r}")
        if fast_path is True and not fast_path_available():
            raise ConfigurationError("the ODBC Arrow fast path needs the arrow-odbc package")
        self.fast_path = fast_path
        self.literal_sql = literal_sql
        self.max_text_size = max_text_size
        self.max_binary_size = max_binary_size
        self.arrow_buffer_bytes = arrow_buffer_bytes
        self.login_timeout = login_timeout
        self.query_timeout = query_timeout
        self.output_converters = dict(output_converters or {})
        self._conn: Any = None
        self._arrow_conn: Any = None
        self._converters: dict[int, Any] = {}
        self._converting = False

    # -- connections --------------------------------------------------------------------

    @property
    def family(self) -> str:
        """The database family behind the driver (connects once to ask, unless set)."""
        if self._family is None:
            info = self._connection().getinfo(pyodbc_module().SQL_DBMS_NAME)
            self._family = family_of(info)
        return self._family

    @functools.cached_property
    def dialect(self) -> sa.Dialect:
        """The SQLAlchemy dialect statements are compiled with; built once."""
        return dialect_for(self.family)

    @property
    def dialect_name(self) -> str:  # type: ignore[override]
        return self.dialect.name

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                conn = pyodbc_module().connect(str(self.conn_str), autocommit=True,
                                      timeout=self.login_timeout)
            except pyodbc_module().Error as exc:
                raise self._connect_error(exc) from None
            family = self._family or family_of(conn.getinfo(pyodbc_module().SQL_DBMS_NAME))
            self._converters = {**_types.OUTPUT_CONVERTERS.get(family, {}),
                                **self.output_converters}
            self._converting = False
            if self.query_timeout:
                try:
                    conn.timeout = self.query_timeout
                except pyodbc_module().Error as exc:
                    log.warning("%s: the driver has no query timeout (%s); queries run "
                                "without one", self.where, redact(exc.args[-1]))
            cursor = conn.cursor()
            for statement in SESSION_SQL.get(family, ()):
                cursor.execute(statement)
            cursor.close()
            self._conn = conn
        return self._conn

    def _cursor(self, *, data: bool) -> Any:
        """A cursor for data (output converters on) or for the catalog (off, so that a
        converter never rewrites the names of tables and columns)."""
        conn = self._connection()
        if data != self._converting and self._converters:
            conn.clear_output_converters()
            if data:
                for sql_type, convert in self._converters.items():
                    conn.add_output_converter(sql_type, convert)
        self._converting = data
        return conn.cursor()

    def _connect_error(self, exc: Exception) -> HeadwaterError:
        state = exc.args[0] if exc.args else ""
        if state in _DRIVER_MISSING and "driver" in str(exc).lower():
            listing = ", ".join(repr(d) for d in pyodbc_module().drivers()) or "(none)"
            return ConfigurationError(
                f"{self.where}: the driver cannot be loaded ({redact(exc.args[-1])}); "
                f"installed drivers: {listing}"
            )
        return translate_error(exc, self.where)

    def _arrow_connection(self) -> Any:
        if self._arrow_conn is None:
            import arrow_odbc

            try:
                conn = arrow_odbc.connect(str(self.conn_str),
                                          login_timeout_sec=self.login_timeout)
                for statement in SESSION_SQL.get(self.family, ()):
                    conn.execute(statement)
            except arrow_odbc.Error as exc:
                raise translate_error(exc, self.where) from None
            self._arrow_conn = conn
        return self._arrow_conn

    def reset_after_failure(self) -> None:
        """Drop both connections; the next statement reconnects."""
        conn, self._conn, self._arrow_conn = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):  # it may already be broken
                conn.close()

    def close(self) -> None:
        self.reset_after_failure()

    def _attempt(self, fn: Any, what: str) -> Any:
        def attempt() -> Any:
            try:
                return fn()
            except pyodbc_module().Error as exc:
                error = translate_error(exc, self.where)
                if isinstance(error, RetriableSourceError):
                    self.reset_after_failure()
                raise error from None

        return self.retrier.call(attempt, f"{what} on {self.where}")

    # -- statements and the catalog -----------------------------------------------------

    def sql_for(self, stmt: sa.Executable, *, literal: bool | None = None
                ) -> tuple[str, list[Any]]:
        """The SQL text and parameters this connector sends for ``stmt``."""
        if literal is None:
            literal = self.literal_sql
        if literal is None:
            literal = self.family in LITERAL_FAMILIES
        return compile_sql(stmt, self.dialect, literal=literal)

    def execute(self, stmt: sa.Executable, what: str) -> tuple[list[str], list[Sequence[Any]]]:
        sql, params = self.sql_for(stmt)

        def run() -> tuple[list[str], list[Sequence[Any]]]:
            cursor = self._cursor(data=True)
            try:
                cursor.execute(sql, params)
                names = [d[0] for d in cursor.description or ()]
                return names, cursor.fetchall() if names else []
            finally:
                cursor.close()

        return self._attempt(run, what)

    def check(self) -> None:
        """Connect (credentials, driver, server) and confirm every declared table exists."""
        self._attempt(lambda: self._connection().getinfo(pyodbc_module().SQL_DBMS_NAME), "check")
        for stream in self.streams:
            self.plan(stream)

    def _catalog_args(self, schema: str | None) -> dict[str, str]:
        schema = schema or self.default_schema()
        if not schema:
            return {}
        # MySQL and MariaDB call a database a catalog, and have no schemas in it.
        return {"catalog": schema} if self.family == "mysql" else {"schema": schema}

    def default_schema(self) -> str | None:
        """The schema unqualified names resolve to, where the family has one."""
        sql = _DEFAULT_SCHEMA_SQL.get(self.family)
        if sql is None:
            return self.db_schema
        if self.db_schema:
            return self.db_schema
        _, rows = self.execute(sa.text(sql), "finding the default schema")
        return rows[0][0] if rows else None

    def table_names(self, schema: str | None = None) -> list[str]:
        """Tables and views in ``schema`` (default: ``db_schema`` or the session's)."""
        args = self._catalog_args(schema)

        def names() -> list[str]:
            cursor = self._cursor(data=False)
            try:
                found = {r.table_name for r in cursor.tables(tableType="TABLE,VIEW", **args)}
            finally:
                cursor.close()
            return sorted(found)

        return self._attempt(names, "listing tables")

    def odbc_columns(self, name: str, schema: str | None) -> tuple[list[_types.ODBCColumn],
                                                                      list[str]]:
        """The catalog's columns of table ``name`` and its primary key, in key order."""
        args = self._catalog_args(schema)

        def catalog() -> tuple[list[_types.ODBCColumn], list[str]]:
            cursor = self._cursor(data=False)
            try:
                # Catalog arguments are search patterns ("_" matches any character):
                # keep exact matches only.
                rows = [r for r in cursor.columns(table=name, **args) if r.table_name == name]
                keys = [r for r in cursor.primaryKeys(table=name, **args)
                        if r.table_name == name]
            finally:
                cursor.close()
            rows.sort(key=lambda r: r.ordinal_position)
            columns = [
                _types.ODBCColumn(r.column_name, int(r.data_type), str(r.type_name or ""),
                                  r.column_size, r.decimal_digits, bool(r.nullable))
                for r in rows
            ]
            return columns, [r.column_name for r in sorted(keys, key=lambda r: r.key_seq)]

        return self._attempt(catalog, f"reading the catalog for {name!r}")

    def declared_types(self, name: str, schema: str | None) -> dict[str, str]:
        """The database's own declaration of each column, where the driver's catalog
        loses something that matters (see ``_types``): PostgreSQL's ``format_type`` and
        MySQL's ``COLUMN_TYPE``. Empty for other families."""
        schema = schema or self.default_schema()
        sql = _DECLARED_TYPES_SQL.get(self.family)
        if sql is None or not schema:
            return {}
        text, params = self.sql_for(sa.text(sql).bindparams(schema=schema, table=name))

        def declared() -> dict[str, str]:
            cursor = self._cursor(data=False)  # catalog text, not data to convert
            try:
                return {str(c): str(t) for c, t in cursor.execute(text, params).fetchall()}
            finally:
                cursor.close()

        return self._attempt(declared, f"reading the declared types of {name!r}")

    def reflect_table(self, name: str, schema: str | None) -> sa.Table:
        columns, key = self.odbc_columns(name, schema)
        declared = self.declared_types(name, schema)
        family = self.family
        sa_columns = []
        for column in columns:
            column = replace(column, declared=declared.get(column.name, ""))
            kind, unknown = _types.resolve(column, family)
            if unknown:
                log.warning(
                    "table %r, column %r: type %r (ODBC type %s) has no exact mapping; "
                    "it is read as text", name, column.name, column.type_name, column.sql_type,
                )
            sa_columns.append(sa.Column(column.name, _types.sqlalchemy_type(kind),
                                        key=column.name, info={"kind": kind}))
        constraint = [sa.PrimaryKeyConstraint(*key)] if key else []
        return sa.Table(name, sa.MetaData(), *sa_columns, *constraint, schema=schema)

    # -- plans --------------------------------------------------------------------------

    def column_type_of(self, column: sa.Column) -> ColumnType:
        """The mapping ``reflect_table`` found for the column (``_types``)."""
        return column.info["kind"]

    def plan_table(self, table: sa.Table, primary_key: tuple[str, ...], cursor_field: str | None,
                   kinds: list[ColumnKind]) -> ReadPlan:
        return self._plan(table, primary_key, cursor_field, kinds)

    def plan_query(self, source: sa.FromClause, schema: pa.Schema, stream: SQLQuery,
                   overrides: dict[str, ColumnType] | None = None) -> ReadPlan:
        overrides = overrides or {}
        kinds = [(source.c[f.name], f, overrides.get(f.name, ColumnType(f.type)))
                 for f in schema]
        return self._plan(source, stream.primary_key, stream.cursor_field, kinds)

    def _plan(self, source: sa.FromClause, primary_key: tuple[str, ...],
              cursor_field: str | None, kinds: list[ColumnKind]) -> ODBCReadPlan:
        columns, converters, transport, guids = [], [], [], set()
        for column, arrow_field, kind in kinds:
            if kind.how == sql_types.TEXT_VALUE and pa.types.is_floating(kind.arrow):
                # SQLite's driver prints floats with 15 digits; printf gives 17. SQLite
                # prints a null as "0": keep nulls out of printf.
                text = sa.case((column.is_(None), sa.null()),
                               else_=sa.func.printf("%!.17g", column))
                columns.append(text.label(column.name))
                converters.append(_text_value_converter(arrow_field))
            elif kind.how == _types.BOOL_FROM_INT:
                columns.append(column)
                converters.append(_strict_bool_converter(arrow_field))
            elif kind.guid:
                columns.append(column)
                converters.append(_guid_converter(arrow_field))
                guids.add(column.name)
            else:
                expr, convert = column_reader(column, arrow_field, kind)
                columns.append(expr)
                converters.append(convert)
            transport.append(_transport_field(arrow_field, kind.how))
        plan = ODBCReadPlan(
            source, columns, pa.schema([f for _, f, _ in kinds]), tuple(primary_key),
            cursor_field, converters, transport=pa.schema(transport),
            guid_columns=frozenset(guids),
        )
        plan.fast = self._fast_path_for(plan)
        return plan

    def _fast_path_for(self, plan: ReadPlan) -> bool:
        if self.fast_path is False or (self.fast_path == "auto" and not fast_path_available()):
            return False
        if self.fast_path == "auto" and self.family not in FAST_PATH_FAMILIES:
            return False
        # Keyset values go into the fast path's SQL as literals; binary ones are
        # read on pyodbc, where they are bound as parameters.
        return not plan.has_binary_key()

    # -- reading ------------------------------------------------------------------------

    def fetch(self, stmt: sa.Select, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Run one chunk query and yield its rows as batches of the plan's schema."""
        if isinstance(plan, ODBCReadPlan) and plan.fast:
            yield from self._fetch_arrow(stmt, plan)
        else:
            yield from self._fetch_rows(stmt, plan)

    def _fetch_rows(self, stmt: sa.Select, plan: ReadPlan, skip: int = 0
                    ) -> Iterator[pa.RecordBatch]:
        sql, params = self.sql_for(stmt)
        try:
            cursor = self._cursor(data=True)
        except pyodbc_module().Error as exc:
            raise translate_error(exc, self.where) from None
        try:
            cursor.execute(sql, params)
            if skip:
                cursor.fetchmany(skip)
            while rows := cursor.fetchmany(self.batch_size):
                yield plan.rows_to_batch(rows)
        finally:
            with contextlib.suppress(pyodbc_module().Error):
                cursor.close()

    def _fetch_arrow(self, stmt: sa.Select, plan: ODBCReadPlan) -> Iterator[pa.RecordBatch]:
        """One chunk through arrow-odbc; buffers grow when a value does not fit.

        Transfer buffers are sized per row from the column sizes, with unbounded text
        and binary columns starting small: a value that does not fit fails the chunk,
        the plan's buffers grow to hold it, and the chunk runs again from the first
        row not yet delivered. Past ``max_text_size``/``max_binary_size`` the stream
        moves to pyodbc.
        """
        sql, _ = self.sql_for(stmt, literal=True)
        delivered = 0
        while True:
            try:
                yield from self._arrow_batches(sql, plan, skip=delivered,
                                               count=_Counter(delivered))
                return
            except _Truncated as truncated:
                delivered = truncated.delivered
                if self._grow_buffers(plan, truncated.needed):
                    continue
            log.warning(
                "%s: a value is longer than the fast path's largest buffers "
                "(max_text_size=%d, max_binary_size=%d bytes); reading this stream "
                "through pyodbc instead", self.where, self.max_text_size, self.max_binary_size,
            )
            plan.fast = False
            yield from self._fetch_rows(stmt, plan, skip=delivered)
            return

    def _arrow_batches(self, sql: str, plan: ODBCReadPlan, *, skip: int, count: _Counter
                       ) -> Iterator[pa.RecordBatch]:
        import arrow_odbc

        try:
            reader = self._arrow_connection().read_arrow_batches(
                sql, batch_size=self.batch_size, schema=plan.transport,
                max_text_size=self._buffer_sizes(plan)[0],
                max_binary_size=self._buffer_sizes(plan)[1],
                max_bytes_per_batch=self.arrow_buffer_bytes, fetch_concurrently=False,
                query_timeout_sec=self.query_timeout or None,
            )
            seen = 0
            text_size, binary_size = self._buffer_sizes(plan)
            for batch in reader:
                rows = batch.num_rows
                if _fills_a_buffer(batch, text_size, binary_size):
                    raise _Truncated(count.delivered, None)
                if seen + rows > skip and rows:
                    part = batch.slice(skip - seen) if seen < skip else batch
                    out = self._conform(part, plan)
                    count.delivered += part.num_rows
                    yield out
                seen += rows
        except arrow_odbc.Error as exc:
            if _TRUNCATED not in str(exc):
                raise
            found = _NEEDED.search(str(exc))
            raise _Truncated(count.delivered, int(found.group(1)) if found else None) from None

    def _buffer_sizes(self, plan: ODBCReadPlan) -> tuple[int, int]:
        """The fast path's text and binary buffer per value for ``plan`` (bytes)."""
        return (plan.text_size or min(INITIAL_BUFFER_BYTES, self.max_text_size),
                plan.binary_size or min(INITIAL_BUFFER_BYTES, self.max_binary_size))

    def _grow_buffers(self, plan: ODBCReadPlan, needed: int | None) -> bool:
        """Grow the plan's text and binary buffers to hold ``needed`` bytes (or twice
        as much, if the driver did not say); False if the ceiling does not allow it."""
        text, binary = self._buffer_sizes(plan)
        want = max(needed or 0, 2 * max(text, binary))
        want = 1 << (want - 1).bit_length()  # the next power of two
        if needed is not None and needed > max(self.max_text_size, self.max_binary_size):
            return False
        grown = (min(max(text, want), self.max_text_size),
                 min(max(binary, want), self.max_binary_size))
        if grown == (text, binary):
            return False
        plan.text_size, plan.binary_size = grown
        log.info("%s: fast-path buffers grown to %d bytes of text and %d of binary",
                 self.where, plan.text_size, plan.binary_size)
        return True

    @staticmethod
    def _conform(batch: pa.RecordBatch, plan: ODBCReadPlan) -> pa.RecordBatch:
        if plan.guid_columns:
            arrays = [pc.utf8_lower(column) if target.name in plan.guid_columns else column
                      for target, column in zip(plan.schema, batch.columns, strict=True)]
            batch = pa.RecordBatch.from_arrays(arrays, names=plan.schema.names)
        return conform(batch, plan.schema, plan.primary_key)


class _Truncated(Exception):
    """A value did not fit the fast path's buffers after ``delivered`` rows of a chunk."""

    def __init__(self, delivered: int, needed: int | None) -> None:
        super().__init__(delivered, needed)
        self.delivered = delivered
        self.needed = needed


@dataclass
class _Counter:
    delivered: int


def _fills_a_buffer(batch: pa.RecordBatch, text_size: int, binary_size: int) -> bool:
    """Whether a text or binary value is as long as its buffer: cut short, perhaps.

    Drivers that report no size for a column (MariaDB's LONGTEXT says -1) cut long
    values to the buffer without saying so. A value within a few bytes of the buffer
    (a cut may drop a partial UTF-8 character) counts as cut; the chunk runs again
    with larger buffers.
    """
    for column in batch.columns:
        t = column.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            limit = text_size - 4
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            limit = binary_size
        else:
            continue
        longest = pc.max(pc.binary_length(column)).as_py()
        if longest is not None and longest >= limit:
            return True
    return False


def _transport_field(arrow_field: pa.Field, how: str = sql_types.NATIVE) -> pa.Field:
    """The type arrow-odbc binds for a column.

    It has no large, zoned or uint64 types; columns selected as text come as text;
    integers read as booleans come as integers (then checked to be 0 or 1); floats are
    bound as doubles, because the MariaDB driver fills single-precision buffers with
    zeros for some values (2.5 arrived as 0.0), and every float is exact as a double.
    """
    t = arrow_field.type
    if how == _types.BOOL_FROM_INT:
        return arrow_field.with_type(pa.int64())
    if (how != sql_types.NATIVE or pa.types.is_large_string(t) or pa.types.is_decimal256(t)
            or pa.types.is_uint64(t)):
        return arrow_field.with_type(pa.string())
    if pa.types.is_large_binary(t):
        return arrow_field.with_type(pa.binary())
    if pa.types.is_timestamp(t) and t.tz is not None:
        return arrow_field.with_type(pa.timestamp(t.unit))
    if pa.types.is_float32(t):
        return arrow_field.with_type(pa.float64())
    return arrow_field


def _text_value_converter(arrow_field: pa.Field) -> Any:
    return lambda values: text_array(values, arrow_field)


def _strict_bool_converter(arrow_field: pa.Field) -> Any:
    return lambda values: strict_bool_array(values, arrow_field)


def _guid_converter(arrow_field: pa.Field) -> Any:
    def convert(values: Sequence[Any]) -> pa.Array:
        return python_array([None if v is None else str(v).lower() for v in values],
                            arrow_field)

    return convert
