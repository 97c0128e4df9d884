"""What every connector over a relational source shares: planning, discovery and reads.

``SQLConnector`` (SQLAlchemy) and ``ODBCConnector`` (pyodbc) differ in how they talk to
the database: how a statement runs, how a table is reflected, how chunks are fetched.
Everything else (stream plans, key and cursor checks, keyset reads with checkpoints and
retries) lives here once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from .._base import Connector
from .._errors import ConfigurationError
from .._identity import SourceIdentity
from .._retry import Retrier, RetryPolicy
from .._stream import Stream, stream_name_for
from ._plan import ReadPlan, plan_for_query, widen
from ._read import StreamRead
from ._streams import SQLQuery, SQLTable


class RelationalConnector(Connector):
    """A connector whose streams are tables and read-only queries of one database.

    Subclasses say how to run a statement (:meth:`execute`), list and reflect tables,
    plan a reflected table, and fetch one keyset chunk (:meth:`fetch`).
    """

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
    def plan_table(self, table: sa.Table, stream: SQLTable,
                   primary_key: tuple[str, ...]) -> ReadPlan:
        """The read plan for a reflected table."""

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
            found.append(replace(stream, primary_key=plan.primary_key, schema=plan.schema))
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
                    f"stream {stream.name!r}: a {self.kind_label} stream is an SQLTable "
                    "or an SQLQuery"
                )
            _check_key_columns(stream, plan)
            self._plans[stream.name] = plan
        return self._plans[stream.name]

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

    def _plan_declared_table(self, stream: SQLTable) -> ReadPlan:
        schema = stream.db_schema or self.db_schema
        table = self.reflect_table(self.resolve_table_name(stream, schema), schema)
        if stream.schema is not None:
            unknown = [n for n in stream.schema.names if n not in table.c]
            if unknown:
                raise ConfigurationError(
                    f"stream {stream.name!r}: declared column(s) {unknown} are not in table "
                    f"{table.name!r}; its columns are: {[c.name for c in table.columns]}"
                )
        reflected_key = tuple(c.name for c in table.primary_key.columns)
        primary_key = stream.primary_key or reflected_key
        if not primary_key:
            raise ConfigurationError(
                f"stream {stream.name!r}: table {table.name!r} has no primary key; declare "
                "primary_key (the columns that identify a row)"
            )
        plan = self.plan_table(table, stream, primary_key)
        plan.key_enforced = bool(reflected_key) and set(primary_key) == set(reflected_key)
        return plan

    def _plan_query(self, stream: SQLQuery) -> ReadPlan:
        probe = sa.text(f"SELECT * FROM ({stream.sql}) hw_probe WHERE 1 = 0")  # noqa: S608 - declared SQL, checked read-only
        names, _ = self.execute(probe, "describing query")
        source = sa.text(stream.sql).columns(*[sa.column(n) for n in names]).subquery("hw_q")
        schema = stream.schema
        if schema is None:
            sample = sa.select(*[source.c[n] for n in names]).limit(self.batch_size)
            _, rows = self.execute(sample, "sampling query")
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
            schema = pa.schema([
                widen(pa.field(n, pa.array(list(v)).type))
                for n, v in zip(names, columns, strict=True)
            ])
        return self.plan_query(source, schema, stream)

    def plan_query(self, source: sa.FromClause, schema: pa.Schema,
                   stream: SQLQuery) -> ReadPlan:
        """The read plan over a query's subquery with declared or sampled types."""
        return plan_for_query(source, schema, stream.primary_key, stream.cursor_field)

    # -- reading --------------------------------------------------------------------------

    def read(self, stream: str | Stream, state: dict[str, Any] | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Yield the stream from ``state`` on, in keyset chunks, each batch checkpointed."""
        stream = self.stream(stream)
        plan = self.plan(stream)
        return StreamRead(self, stream, plan, dict(state or {})).batches()

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

    def any_null_cursor(self, plan: ReadPlan) -> bool:
        return self._any_null(plan, [plan.cursor_field], "checking for missing cursors")

    def any_null_key(self, plan: ReadPlan) -> bool:
        return self._any_null(plan, list(plan.primary_key), "checking for null keys")

    def _any_null(self, plan: ReadPlan, columns: list[str], what: str) -> bool:
        nulls = sa.or_(*[plan.column(c).is_(None) for c in columns])
        stmt = sa.select(sa.literal(1)).select_from(plan.source).where(nulls).limit(1)
        _, rows = self.execute(stmt, what)
        return bool(rows)


def _check_key_columns(stream: Stream, plan: ReadPlan) -> None:
    wanted = [*plan.primary_key, *([plan.cursor_field] if plan.cursor_field else [])]
    missing = [c for c in wanted if c not in plan.schema.names]
    if missing:
        raise ConfigurationError(
            f"stream {stream.name!r}: key or cursor column(s) {missing} not found; "
            f"columns are: {plan.schema.names}"
        )
