"""SQLConnector: any SQLAlchemy dialect, keyset-chunked, resumable, exact types."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from .._base import Connector
from .._errors import ConfigurationError
from .._retry import Retrier, RetryPolicy
from .._stream import Stream, stream_name_for
from . import _arrow_native
from ._plan import ReadPlan, plan_for_query, plan_for_table, widen
from ._read import StreamRead
from ._streams import SQLQuery, SQLTable
from ._translate import translate_error


def describe_url(url: sa.URL) -> str:
    """Name a database for messages: backend, database, host and port; never credentials."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite database {url.database or ':memory:'!r}"
    where = f"{url.host or 'localhost'}:{url.port}" if url.port else (url.host or "localhost")
    return f"{backend} database {url.database!r} at {where}"


def create_source_engine(url: str | sa.URL, connect_timeout: int = 10) -> sa.Engine:
    """An engine with the settings a reader wants: liveness checks, bounded connects.

    On MySQL and MariaDB the session keeps CHAR padding (``PAD_CHAR_TO_FULL_LENGTH``),
    so raw data looks the same as on the other databases.
    """
    url = sa.make_url(url)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = connect_timeout
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if backend in ("mysql", "mariadb"):

        @sa.event.listens_for(engine, "connect")
        def _keep_char_padding(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',PAD_CHAR_TO_FULL_LENGTH')")

    return engine


class SQLConnector(Connector):
    """Reads tables and queries from any database SQLAlchemy speaks.

    Streams are ``SQLTable`` or ``SQLQuery`` declarations; with none declared, every
    table of ``db_schema`` is a stream. Reads go in keyset chunks of ``chunk_size``
    rows ordered by the key, each batch checkpointed, so a killed run resumes mid-table
    and a dropped connection is retried from the last batch delivered.

    ``fast_path`` ("auto", True, False) reads PostgreSQL through ADBC as Arrow.

    Override :meth:`plan` to change what a stream selects (for instance to hide a
    column or add a computed one).
    """

    kind = "sql"
    url: str | None = None

    def __init__(
        self,
        name: str | None = None,
        source: str | sa.URL | sa.Engine | None = None,
        streams: Sequence[Stream] | None = None,
        *,
        db_schema: str | None = None,
        chunk_size: int = 100_000,
        batch_size: int = 50_000,
        retry: RetryPolicy | Retrier | None = None,
        fast_path: bool | str = "auto",
    ) -> None:
        super().__init__(name, streams)
        source = source if source is not None else self.url
        if source is None:
            raise ConfigurationError(f"connector {self.name!r} needs a database URL or engine")
        try:
            self.engine = source if isinstance(source, sa.Engine) else create_source_engine(source)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"connector {self.name!r}: bad database URL ({exc}); expected "
                "dialect+driver://user:password@host:port/database"
            ) from exc
        self.where = describe_url(self.engine.url)
        self.db_schema = db_schema
        self.chunk_size = chunk_size
        self.batch_size = min(batch_size, chunk_size)
        self.retrier = retry if isinstance(retry, Retrier) else Retrier(retry or RetryPolicy())
        self._dialect = self.engine.dialect.name
        use_fast = fast_path is True or (fast_path == "auto" and self._dialect == "postgresql")
        if use_fast and (self._dialect != "postgresql" or not _arrow_native.available()):
            raise ConfigurationError(
                "the Arrow fast path needs PostgreSQL and adbc-driver-postgresql"
            )
        self._native = _arrow_native.ArrowNativeReader(self.engine.url) if use_fast else None
        self._plans: dict[str, ReadPlan] = {}

    # -- probing and discovery -------------------------------------------------------

    def _with_connection(self, fn: Any, what: str) -> Any:
        def attempt() -> Any:
            try:
                with self.engine.connect() as conn:
                    return fn(conn)
            except sa_exc.SQLAlchemyError as exc:
                raise translate_error(exc, self.where) from exc

        return self.retrier.call(attempt, f"{what} on {self.where}")

    def check(self) -> None:
        """Connect, run ``SELECT 1`` and confirm every declared table exists."""
        self._with_connection(lambda conn: conn.execute(sa.text("SELECT 1")).scalar(), "check")
        for stream in self.streams:
            self.plan(stream)

    def table_names(self) -> list[str]:
        """Tables and views in ``db_schema``."""
        def names(conn: sa.Connection) -> list[str]:
            inspector = sa.inspect(conn)
            return sorted({*inspector.get_table_names(schema=self.db_schema),
                           *inspector.get_view_names(schema=self.db_schema)})

        return self._with_connection(names, "listing tables")

    def discover(self) -> list[Stream]:
        """Declared streams with their reflected schemas; every table if none is declared."""
        streams = self.streams or tuple(
            SQLTable(name=stream_name_for(t), table=t, db_schema=self.db_schema)
            for t in self.table_names()
        )
        found = []
        for stream in streams:
            plan = self.plan(stream)
            found.append(_with_plan(stream, plan))
        return found

    def stream(self, name: str | Stream) -> Stream:
        if isinstance(name, Stream) or self.streams:
            return super().stream(name)
        for stream in self.discover():
            if stream.name == name:
                return stream
        return super().stream(name)

    def primary_key(self, stream: str | Stream) -> tuple[str, ...]:
        """The declared key, or the table's reflected primary key."""
        return self.plan(self.stream(stream)).primary_key

    # -- planning ---------------------------------------------------------------------

    def plan(self, stream: Stream) -> ReadPlan:
        """The read plan for ``stream``: source, columns, Arrow schema, key, cursor."""
        if stream.name not in self._plans:
            if isinstance(stream, SQLQuery):
                plan = self._plan_query(stream)
            elif isinstance(stream, SQLTable):
                plan = self._plan_table(stream)
            else:
                raise ConfigurationError(
                    f"stream {stream.name!r}: a SQL stream is an SQLTable or an SQLQuery"
                )
            self._check_key_columns(stream, plan)
            self._plans[stream.name] = plan
        return self._plans[stream.name]

    def _reflect(self, stream: SQLTable) -> sa.Table:
        schema = stream.db_schema or self.db_schema

        def reflect(conn: sa.Connection) -> sa.Table:
            inspector = sa.inspect(conn)
            existing = {*inspector.get_table_names(schema=schema),
                        *inspector.get_view_names(schema=schema)}
            name = stream.table
            if name not in existing:
                folded = [t for t in existing if t.lower() == name.lower()]
                if len(folded) != 1:
                    listing = ", ".join(repr(t) for t in sorted(existing)[:50]) or "(none)"
                    place = f"schema {schema!r} of {self.where}" if schema else self.where
                    raise ConfigurationError(
                        f"stream {stream.name!r}: no table {name!r} in {place}; "
                        f"tables there: {listing}"
                    )
                name = folded[0]
            return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)

        return self._with_connection(reflect, f"reflecting {stream.table!r}")

    def _plan_table(self, stream: SQLTable) -> ReadPlan:
        table = self._reflect(stream)
        if stream.schema is not None:
            unknown = [n for n in stream.schema.names if n not in table.c]
            if unknown:
                raise ConfigurationError(
                    f"stream {stream.name!r}: declared column(s) {unknown} are not in table "
                    f"{table.name!r}; its columns are: {[c.name for c in table.columns]}"
                )
        primary_key = stream.primary_key or tuple(c.name for c in table.primary_key.columns)
        if not primary_key:
            raise ConfigurationError(
                f"stream {stream.name!r}: table {table.name!r} has no primary key; declare "
                "primary_key (the columns that identify a row)"
            )
        reflected_key = tuple(c.name for c in table.primary_key.columns)
        plan = plan_for_table(table, primary_key, stream.cursor_field, self._dialect,
                              decimals_as_text=self._native is not None,
                              declared=stream.schema)
        plan.key_enforced = bool(reflected_key) and set(primary_key) == set(reflected_key)
        return plan

    def _plan_query(self, stream: SQLQuery) -> ReadPlan:
        probe = sa.text(f"SELECT * FROM ({stream.sql}) hw_probe WHERE 1 = 0")  # noqa: S608 - declared SQL, checked read-only
        names = self._with_connection(lambda c: list(c.execute(probe).keys()), "describing query")
        source = sa.text(stream.sql).columns(*[sa.column(n) for n in names]).subquery("hw_q")
        schema = stream.schema
        if schema is None:
            sample = sa.select(*[source.c[n] for n in names]).limit(self.batch_size)
            rows = self._with_connection(lambda c: c.execute(sample).fetchall(), "sampling query")
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
            schema = pa.schema([
                widen(pa.field(n, pa.array(list(v)).type))
                for n, v in zip(names, columns, strict=True)
            ])
        return plan_for_query(source, schema, stream.primary_key, stream.cursor_field)

    @staticmethod
    def _check_key_columns(stream: Stream, plan: ReadPlan) -> None:
        wanted = [*plan.primary_key, *([plan.cursor_field] if plan.cursor_field else [])]
        missing = [c for c in wanted if c not in plan.schema.names]
        if missing:
            raise ConfigurationError(
                f"stream {stream.name!r}: key or cursor column(s) {missing} not found; "
                f"columns are: {plan.schema.names}"
            )

    # -- reading ----------------------------------------------------------------------

    def read(self, stream: str | Stream, state: dict[str, Any] | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Yield the stream from ``state`` on; see the class docstring for the guarantees."""
        stream = self.stream(stream)
        plan = self.plan(stream)
        return StreamRead(self, stream, plan, dict(state or {})).batches()

    def fetch(self, stmt: sa.Select, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Run one chunk query and yield its rows as batches of the plan's schema."""
        if self._native is not None and not plan.has_binary_key():
            yield from self._native.fetch(stmt, plan.schema)
            return
        with self.engine.connect() as conn:
            result = conn.execution_options(
                stream_results=True, yield_per=self.batch_size
            ).execute(stmt)
            try:
                for rows in result.partitions():
                    yield plan.rows_to_batch(rows)
            finally:
                # Close the server-side cursor before the connection goes back to the
                # pool, also when the reader stops early: MySQL drivers otherwise
                # reset a connection that still has an unfinished result on it.
                result.close()

    def reset_after_failure(self) -> None:
        """Drop connections that may be broken before the next attempt."""
        if self._native is not None:
            self._native.reset()

    def any_null_cursor(self, plan: ReadPlan) -> bool:
        return self._any_null(plan, [plan.cursor_field], "checking for missing cursors")

    def any_null_key(self, plan: ReadPlan) -> bool:
        return self._any_null(plan, list(plan.primary_key), "checking for null keys")

    def _any_null(self, plan: ReadPlan, columns: list[str], what: str) -> bool:
        nulls = sa.or_(*[plan.column(c).is_(None) for c in columns])
        stmt = sa.select(sa.literal(1)).select_from(plan.source).where(nulls).limit(1)
        return self._with_connection(lambda c: c.execute(stmt).first() is not None, what)

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
        self.engine.dispose()


def _with_plan(stream: Stream, plan: ReadPlan) -> Stream:
    return replace(stream, primary_key=plan.primary_key, schema=plan.schema)
