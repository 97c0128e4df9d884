"""SQLConnector: any SQLAlchemy dialect, keyset-chunked, resumable, exact types."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from .._errors import ConfigurationError
from .._retry import Retrier, RetryPolicy
from .._stream import Stream
from . import _arrow_native, _types
from ._plan import ReadPlan, plan_for_table
from ._relational import DEFAULT_CHUNK_ROWS, ColumnKind, RelationalConnector
from ._translate import translate_error
from ._types import ColumnType


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
    so raw data looks the same as on the other databases. PostgreSQL sessions print
    dates as ISO text (``DateStyle``), which the generic path parses.
    """
    url = sa.make_url(url)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = connect_timeout
    if backend == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2") \
            and "options" not in url.query:
        connect_args["options"] = "-c DateStyle=ISO"
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if backend in ("mysql", "mariadb"):

        @sa.event.listens_for(engine, "connect")
        def _keep_char_padding(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',PAD_CHAR_TO_FULL_LENGTH')")

    return engine


class SQLConnector(RelationalConnector):
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

    @property
    def technology(self) -> str:
        return self.engine.url.get_backend_name()

    def __init__(
        self,
        name: str | None = None,
        source: str | sa.URL | sa.Engine | None = None,
        streams: Sequence[Stream] | None = None,
        *,
        db_schema: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_ROWS,
        batch_size: int = 50_000,
        retry: RetryPolicy | Retrier | None = None,
        fast_path: bool | str = "auto",
    ) -> None:
        super().__init__(name, streams, db_schema=db_schema, chunk_size=chunk_size,
                         batch_size=batch_size, retry=retry)
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
        self.dialect_name = self.engine.dialect.name
        use_fast = fast_path is True or (fast_path == "auto" and self.dialect_name == "postgresql")
        if use_fast and (self.dialect_name != "postgresql" or not _arrow_native.available()):
            raise ConfigurationError(
                "the Arrow fast path needs PostgreSQL and adbc-driver-postgresql"
            )
        self._native = _arrow_native.ArrowNativeReader(self.engine.url) if use_fast else None

    # -- talking to the database --------------------------------------------------------

    def _with_connection(self, fn: Any, what: str) -> Any:
        def attempt() -> Any:
            try:
                with self.engine.connect() as conn:
                    return fn(conn)
            except sa_exc.SQLAlchemyError as exc:
                raise translate_error(exc, self.where) from exc

        return self.retrier.call(attempt, f"{what} on {self.where}")

    def execute(self, stmt: sa.Executable, what: str) -> tuple[list[str], list[Sequence[Any]]]:
        def run(conn: sa.Connection) -> tuple[list[str], list[Sequence[Any]]]:
            result = conn.execute(stmt)
            return list(result.keys()), list(result.fetchall())

        return self._with_connection(run, what)

    def check(self) -> None:
        """Connect, run ``SELECT 1`` and confirm every declared table exists."""
        self.execute(sa.text("SELECT 1"), "check")
        for stream in self.streams:
            self.plan(stream)

    def table_names(self, schema: str | None = None) -> list[str]:
        """Tables and views in ``schema`` (default: ``db_schema``)."""
        schema = schema or self.db_schema

        def names(conn: sa.Connection) -> list[str]:
            inspector = sa.inspect(conn)
            return sorted({*inspector.get_table_names(schema=schema),
                           *inspector.get_view_names(schema=schema)})

        return self._with_connection(names, "listing tables")

    def reflect_table(self, name: str, schema: str | None) -> sa.Table:
        def reflect(conn: sa.Connection) -> sa.Table:
            with warnings.catch_warnings():
                # A type SQLAlchemy does not know is read as text, with a warning of
                # our own that names the stream (column_kinds).
                warnings.filterwarnings("ignore", "Did not recognize type",
                                        category=sa_exc.SAWarning)
                return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)

        return self._with_connection(reflect, f"reflecting {name!r}")

    def column_type_of(self, column: sa.Column) -> ColumnType:
        """The column's mapping (``connectors.sql._types``), adapted to the read path:
        the Arrow fast path reads decimals as text (its driver decodes binary NUMERIC
        slowly); the generic path reads PostgreSQL dates and times as text, because its
        driver refuses years outside 1-9999 and ``24:00:00``."""
        kind = _types.column_type(column.type, self.dialect_name)
        if kind.how != _types.NATIVE:
            return kind
        if self._native is not None and pa.types.is_decimal(kind.arrow):
            return ColumnType(kind.arrow, _types.DECIMAL_TEXT)
        if (self._native is None and self.dialect_name == "postgresql"
                and pa.types.is_temporal(kind.arrow) and not pa.types.is_duration(kind.arrow)):
            return ColumnType(kind.arrow, _types.TEXT_VALUE)
        return kind

    def plan_table(self, table: sa.Table, primary_key: tuple[str, ...], cursor_field: str | None,
                   kinds: list[ColumnKind]) -> ReadPlan:
        return plan_for_table(table, primary_key, cursor_field, kinds)

    def fetch(self, stmt: sa.Select, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
        """Run one chunk query and yield its rows as batches of the plan's schema."""
        if self._native is not None and not plan.has_binary_key():
            yield from self._native.fetch(stmt, plan.schema, plan.primary_key)
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
        if self._native is not None:
            self._native.reset()

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
        self.engine.dispose()
