"""What every connector over a relational source shares: planning, discovery and reads.

``SQLConnector`` (SQLAlchemy) and ``ODBCConnector`` (pyodbc) differ in how they talk to
the database: how a statement runs, how a table is reflected, how chunks are fetched.
Everything else (stream plans, key and cursor checks, keyset reads with checkpoints and
retries) lives here once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from .._base import Connector
from .._errors import ConfigurationError, DataContractError
from .._identity import SourceIdentity
from .._retry import Retrier, RetryPolicy
from .._stream import Stream, stream_name_for
from . import _types
from ._plan import ReadPlan, plan_for_query, widen
from ._read import StreamRead
from ._streams import SQLQuery, SQLTable
from ._types import ColumnType
from ._values import UnfitValue

log = logging.getLogger("headwater.connectors.sql")
ColumnKind = tuple[sa.Column, pa.Field, ColumnType]


# Rows per keyset chunk by default: a DuckDB row group (122,880 rows), which is also the
# runner's commit size, so the first commit comes after one chunk instead of two and the
# last one waits for less (bench/RESULTS.md).
DEFAULT_CHUNK_ROWS = 122_880


class RelationalConnector(Connector):
    """A connector whose streams are tables and read-only queries of one database.

    Subclasses say how to run a statement (:meth:`execute`), list and reflect tables,
    plan a reflected table, and fetch one keyset chunk (:meth:`fetch`).
    """

    full_reads_mirror_source = True

    #: Names the database in messages, never with credentials.
    where: str = ""
    #: The SQLAlchemy dialect name SQL is generated for.
    dialect_name: str = "default"

    def __init__(
        self,
        name: str | None,
        streams: Sequence[Stream] | None,
        *,
        db_schema: str | None,
        chunk_size: int,
        batch_size: int,
        retry: RetryPolicy | Retrier | None,
    ) -> None:
        super().__init__(name, streams)
        if chunk_size < 1 or batch_size < 1:
            raise ConfigurationError(
                f"connector {self.name!r}: chunk_size and batch_size must be at least 1"
            )
        self.db_schema = db_schema
        self.chunk_size = chunk_size
        self.batch_size = min(batch_size, chunk_size)
        self.retrier = retry if isinstance(retry, Retrier) else Retrier(retry or RetryPolicy())
        self._plans: dict[str, ReadPlan] = {}

    # -- what a subclass provides -------------------------------------------------------

    @abc.abstractmethod
    def execute(self, stmt: sa.Executable, what: str) -> tuple[list[str], list[Sequence[Any]]]:
        """Run a small statement (with retries); return its column names and rows."""

    @abc.abstractmethod
    def table_names(self, schema: str | None = None) -> list[str]:
        """Tables and views in ``schema`` (default: the connector's ``db_schema``)."""

    @abc.abstractmethod
    def reflect_table(self, name: str, schema: str | None) -> sa.Table:
        """The table called exactly ``name``, with its columns and primary key."""

    @abc.abstractmethod
    def column_type_of(self, column: sa.Column) -> ColumnType:
        """Where a reflected column lands and how it is selected, before overrides."""

    @abc.abstractmethod
    def plan_table(self, table: sa.Table, primary_key: tuple[str, ...], cursor_field: str | None,
                   kinds: list[ColumnKind]) -> ReadPlan:
        """The read plan for a reflected table's ``kinds`` (see :meth:`column_kinds`)."""

    @abc.abstractmethod
    def fetch(self, stmt: sa.Select, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Run one chunk query and yield its rows as batches of the plan's schema."""

    def reset_after_failure(self) -> None:
        """Drop connections that may be broken before the next attempt."""

    # -- discovery ------------------------------------------------------------------------

    def discover(self) -> list[Stream]:
        """Declared streams with their schemas; every table if none is declared."""
        streams = self.streams or tuple(
            SQLTable(name=stream_name_for(t), table=t, db_schema=self.db_schema)
            for t in self.table_names()
        )
        found = []
        for stream in streams:
            plan = self.plan(stream)
            incremental = stream.incremental and replace(stream.incremental,
                                                         cursor_field=plan.cursor_field)
            found.append(replace(stream, primary_key=plan.primary_key, schema=plan.schema,
                                 incremental=incremental))
        return found

    def stream(self, name: str | Stream) -> Stream:
        if isinstance(name, Stream) or self.streams:
            return super().stream(name)
        for stream in self.discover():
            if stream.name == name:
                return stream
        return super().stream(name)

    @property
    def technology(self) -> str:
        """The database behind the connector, as catalogs name it."""
        return self.kind

    def describe_source(self, stream: str | Stream) -> SourceIdentity:
        """The table (with its schema) or query a declared stream reads."""
        declared = stream if isinstance(stream, Stream) else Connector.stream(self, stream)
        if isinstance(declared, SQLTable):
            schema = declared.db_schema or self.db_schema
            table = f"{schema}.{declared.table}" if schema else declared.table
            return SourceIdentity(self.name, self.technology, self.where, table, "table")
        return SourceIdentity(self.name, self.technology, self.where, declared.name, "query")

    def source_columns(self, stream: str | Stream) -> list[tuple[str, str]]:
        """The columns read, with the database's own type names (``NUMERIC(12, 2)``)."""
        plan = self.plan(self.stream(stream))
        engine = getattr(self, "engine", None)
        dialect = engine.dialect if engine is not None else getattr(self, "dialect", None)
        columns = []
        for column in plan.source.columns:
            try:
                name = column.type.compile(dialect=dialect)
            except Exception:  # a type the dialect cannot render: its generic name
                name = type(column.type).__name__.upper()
            columns.append((column.name, name))
        return columns

    def primary_key(self, stream: str | Stream) -> tuple[str, ...]:
        """The declared key, or the table's own primary key."""
        return self.plan(self.stream(stream)).primary_key

    # -- planning -------------------------------------------------------------------------

    def plan(self, stream: Stream) -> ReadPlan:
        """The read plan for ``stream``: source, columns, Arrow schema, key, cursor."""
        if stream.name not in self._plans:
            if isinstance(stream, SQLQuery):
                plan = self._plan_query(stream)
            elif isinstance(stream, SQLTable):
                plan = self._plan_declared_table(stream)
            else:
                raise ConfigurationError(
                    f"{self.where_stream(stream)}: a {self.kind_label} stream is an SQLTable "
                    "or an SQLQuery"
                )
            self._plans[stream.name] = plan
        return self._plans[stream.name]

    def where_stream(self, stream: Stream) -> str:
        """Names a stream in messages: ``connector 'erp', stream 'orders'``."""
        return f"connector {self.name!r}, stream {stream.name!r}"

    @property
    def kind_label(self) -> str:
        return type(self).__name__.removesuffix("Connector") or "relational"

    def resolve_table_name(self, stream: SQLTable, schema: str | None) -> str:
        """The table's exact name: as declared, or the one table matching it in any case."""
        existing = self.table_names(schema)
        if stream.table in existing:
            return stream.table
        folded = [t for t in existing if t.lower() == stream.table.lower()]
        if len(folded) == 1:
            return folded[0]
        listing = ", ".join(repr(t) for t in sorted(existing)[:50]) or "(none)"
        place = f"schema {schema!r} of {self.where}" if schema else self.where
        raise ConfigurationError(
            f"stream {stream.name!r}: no table {stream.table!r} in {place}; "
            f"tables there: {listing}"
        )

    def resolve_column(self, stream: Stream, name: str, columns: Sequence[str],
                       what: str) -> str:
        """The column called ``name``: exactly, or the one column matching it in any case
        (as table names are matched); otherwise an error listing the columns."""
        if name in columns:
            return name
        folded = [c for c in columns if c.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        why = (f"several columns match it in case: {folded}" if folded else "no such column")
        raise ConfigurationError(
            f"{self.where_stream(stream)}: {what} {name!r}: {why}; columns are: {list(columns)}"
        )

    def _plan_declared_table(self, stream: SQLTable) -> ReadPlan:
        schema = stream.db_schema or self.db_schema
        table = self.reflect_table(self.resolve_table_name(stream, schema), schema)
        names = [c.name for c in table.columns]
        reflected_key = tuple(c.name for c in table.primary_key.columns)
        primary_key = tuple(self.resolve_column(stream, k, names, "primary-key column")
                            for k in stream.primary_key) or reflected_key
        if not primary_key:
            raise ConfigurationError(
                f"{self.where_stream(stream)}: table {table.name!r} has no primary key; "
                "declare primary_key (the columns that identify a row)"
            )
        cursor = stream.cursor_field and self.resolve_column(stream, stream.cursor_field, names,
                                                             "cursor column")
        kinds = self.column_kinds(table, stream)
        _check_key_columns(self, stream, [f for _, f, _ in kinds], primary_key, cursor)
        plan = self.plan_table(table, primary_key, cursor, kinds)
        plan.key_enforced = bool(reflected_key) and set(primary_key) == set(reflected_key)
        return plan

    def column_kinds(self, table: sa.Table, stream: SQLTable) -> list[ColumnKind]:
        """Each column a table stream reads, with its Arrow field and how it is selected:
        the stream's declared schema (or every column), with its ``column_types``."""
        names = [c.name for c in table.columns]
        overrides = self.column_overrides(stream, names)
        if stream.schema is not None:
            declared = {self.resolve_column(stream, f.name, names, "declared column"): f
                        for f in stream.schema}
        else:
            declared = {}
        wanted = list(declared) if stream.schema is not None else names
        kinds = []
        for name in wanted:
            column = table.c[name]
            natural = self.column_type_of(column)
            if name in overrides:
                kind = overrides[name]
                arrow_field = pa.field(name, kind.arrow)
            elif name in declared:
                kind = ColumnType(declared[name].type, natural.how, natural.guid)
                arrow_field = declared[name].with_name(name)
            else:
                kind, arrow_field = natural, pa.field(name, natural.arrow)
            if kind.how == _types.UNKNOWN_TEXT:
                log.warning("%s: column %r of table %r has type %s, which has no exact "
                            "mapping; it is read as the database's text of each value",
                            self.where_stream(stream), name, table.name, column.type)
            kinds.append((column, arrow_field, kind))
        return kinds

    def column_overrides(self, stream: Stream, names: Sequence[str]) -> dict[str, ColumnType]:
        """The stream's ``column_types``, by the exact column names of its source."""
        declared = getattr(stream, "column_types", None) or {}
        return {
            self.resolve_column(stream, name, names, "column_types entry"):
                _types.declared_column_type(value, f"{self.where_stream(stream)}, column "
                                                   f"{name!r}")
            for name, value in declared.items()
        }

    def _plan_query(self, stream: SQLQuery) -> ReadPlan:
        probe = sa.text(f"SELECT * FROM ({stream.sql}) hw_probe WHERE 1 = 0")  # noqa: S608 - declared SQL, checked read-only
        names, _ = self.execute(probe, "describing query")
        source = sa.text(stream.sql).columns(*[sa.column(n) for n in names]).subquery("hw_q")
        overrides = self.column_overrides(stream, names)
        schema = stream.schema
        if schema is None:
            sample = sa.select(*[source.c[n] for n in names]).limit(self.batch_size)
            _, rows = self.execute(sample, "sampling query")
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
            fields = []
            for name, values in zip(names, columns, strict=True):
                sampled = pa.field(name, pa.array(list(values)).type)
                fields.append(widen(sampled))
                if pa.types.is_decimal(sampled.type) and not pa.types.is_decimal(
                        fields[-1].type):
                    overrides.setdefault(name, ColumnType(_types.TEXT, _types.TEXT_RENDERING))
            schema = pa.schema(fields)
        schema = pa.schema([pa.field(f.name, overrides[f.name].arrow) if f.name in overrides
                            else f for f in schema])
        _check_key_columns(self, stream, list(schema), stream.primary_key, stream.cursor_field)
        return self.plan_query(source, schema, stream, overrides)

    def plan_query(self, source: sa.FromClause, schema: pa.Schema, stream: SQLQuery,
                   overrides: dict[str, ColumnType] | None = None) -> ReadPlan:
        """The read plan over a query's subquery with declared or sampled types;
        ``overrides`` are the stream's ``column_types``."""
        return plan_for_query(source, schema, stream.primary_key, stream.cursor_field,
                              overrides)

    # -- reading --------------------------------------------------------------------------

    def read(self, stream: str | Stream, state: dict[str, Any] | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Yield the stream from ``state`` on, in keyset chunks, each batch checkpointed."""
        stream = self.stream(stream)
        plan = self.plan(stream)
        return self._naming_where(stream, StreamRead(self, stream, plan,
                                                     dict(state or {})).batches())

    def read_keys(self, stream: str | Stream, state: dict[str, Any] | None = None
                  ) -> Iterator[pa.RecordBatch]:
        """Yield the stream's primary keys in key order: ``SELECT key ... ORDER BY key`` in
        keyset chunks of ``chunk_size``, each batch checkpointed and retried like a read."""
        stream = self.stream(stream)
        plan = self.plan(stream).keys_only()
        scan = replace(stream, incremental=None, reconcile_deletes=None)
        return self._naming_where(stream, StreamRead(self, scan, plan,
                                                     dict(state or {})).batches())

    def _naming_where(self, stream: Stream, batches: Iterator[pa.RecordBatch]
                      ) -> Iterator[pa.RecordBatch]:
        """The batches of a read; a data error names connector, stream, column and key."""
        try:
            yield from batches
        except UnfitValue as unfit:
            row = ("the row with " + ", ".join(f"{k}={v!r}" for k, v in unfit.key.items())
                   if unfit.key else "a row")
            raise DataContractError(
                f"{self.where_stream(stream)}: column {unfit.column!r} of {row} holds a value "
                f"that does not fit {unfit.arrow_type} ({unfit.reason}); to land it, declare "
                f"column_types = {{{unfit.column!r}: \"text\"}} on the stream (the database's "
                "own text of each value) or a type that holds it, or fix the value at the "
                "source"
            ) from None
        except DataContractError as error:
            if error.message.startswith("connector "):
                raise
            where = (f"connector {self.name!r}, " if error.message.startswith("stream ")
                     else f"{self.where_stream(stream)}: ")
            raise DataContractError(where + error.message) from error

    def latest_cursor(self, stream: str | Stream) -> Any:
        """The largest cursor value the source holds now, ``None`` for a stream without a
        cursor or an empty one: one aggregate query, cheap enough for a sensor to poll."""
        declared = self.stream(stream)
        if declared.cursor_field is None:
            return None
        plan = self.plan(declared)
        stmt = sa.select(sa.func.max(plan.column(plan.cursor_field))).select_from(plan.source)
        _, rows = self.execute(stmt, "reading the latest cursor")
        return rows[0][0] if rows else None

    def key_span(self, stream: str | Stream, column: str) -> tuple[Any, Any]:
        """The lowest and highest value of ``column`` in the stream now (``(None, None)``
        for an empty one): one aggregate query, to split a stream into key ranges."""
        declared = self.stream(stream)
        plan = self.plan(declared)
        name = self.resolve_column(declared, column, [f.name for f in plan.schema],
                                   "partition key column")
        stmt = sa.select(sa.func.min(plan.column(name)), sa.func.max(plan.column(name))
                         ).select_from(plan.source)
        _, rows = self.execute(stmt, "reading the span of the partition key")
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def any_null_cursor(self, plan: ReadPlan) -> bool:
        return self._any_null(plan, [plan.cursor_field], "checking for missing cursors")

    def any_null_key(self, plan: ReadPlan) -> bool:
        return self._any_null(plan, list(plan.primary_key), "checking for null keys")

    def _any_null(self, plan: ReadPlan, columns: list[str], what: str) -> bool:
        nulls = sa.or_(*[plan.column(c).is_(None) for c in columns])
        stmt = sa.select(sa.literal(1)).select_from(plan.source).where(nulls).limit(1)
        _, rows = self.execute(stmt, what)
        return bool(rows)


def _check_key_columns(connector: RelationalConnector, stream: Stream,
                       fields: Sequence[pa.Field], primary_key: Sequence[str],
                       cursor: str | None) -> None:
    """Key and cursor columns must be among the columns read."""
    names = [f.name for f in fields]
    wanted = [*primary_key, *([cursor] if cursor else [])]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ConfigurationError(
            f"{connector.where_stream(stream)}: key or cursor column(s) {missing} not found; "
            f"columns are: {names}"
        )
