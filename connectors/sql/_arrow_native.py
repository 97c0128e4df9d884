"""PostgreSQL fast path: rows arrive as Arrow through ADBC (binary COPY), no Python rows.

Chosen by measurement: ADBC's libpq driver fetches at about the speed of the server's own
``COPY TO`` (bench/RESULTS.md). Three details matter for speed, each measured there:

- keyset values are rendered as literals by SQLAlchemy's PostgreSQL compiler, because
  ADBC's bound-parameter path fetches row by row (about 1.6x slower); the values come
  from the database itself and are quoted by the dialect, never formatted by hand;
- NUMERIC columns are selected as text and cast to exact decimals in Arrow: the driver's
  binary NUMERIC decoding costs about four times as much;
- the low-level ADBC API is used rather than its DBAPI module, which imports
  ``pyarrow.dataset`` and pandas (half a second and 60 MB).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .._errors import DataContractError

_DIALECT = postgresql.dialect()


def available() -> bool:
    """Whether the ADBC PostgreSQL driver is installed."""
    return importlib.util.find_spec("adbc_driver_postgresql") is not None


def adbc_uri(url: sa.URL) -> str:
    """A libpq URI for the same database as a SQLAlchemy PostgreSQL URL."""
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "10"})
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ArrowNativeReader:
    """Runs SELECTs on PostgreSQL and yields batches cast to the plan's Arrow schema."""

    def __init__(self, url: sa.URL) -> None:
        self._uri = adbc_uri(url)
        self._database: Any = None
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            import adbc_driver_manager
            import adbc_driver_postgresql

            self._database = adbc_driver_postgresql.connect(self._uri)
            self._conn = adbc_driver_manager.AdbcConnection(self._database)
        return self._conn

    def fetch(self, stmt: sa.Select, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager

        sql = str(stmt.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))
        statement = adbc_driver_manager.AdbcStatement(self._connection())
        reader = None
        try:
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            reader = pa.RecordBatchReader._import_from_c(stream.address)
            for batch in reader:
                if batch.num_rows:
                    yield conform(batch, schema)
        finally:
            if reader is not None:
                reader.close()
            statement.close()

    def reset(self) -> None:
        """Drop the connection after a failure; the next fetch reconnects."""
        conn, database = self._conn, self._database
        self._conn = self._database = None
        for handle in (conn, database):
            if handle is not None:
                with contextlib.suppress(Exception):  # it may already be broken
                    handle.close()

    close = reset


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast an ADBC batch to ``schema``: numeric text to exact decimals, metadata dropped."""
    arrays = []
    for field, column in zip(schema, batch.columns, strict=True):
        if isinstance(column.type, pa.ExtensionType) or isinstance(column, pa.ExtensionArray):
            column = column.storage
        if column.type != field.type:
            try:
                column = pc.cast(column, field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataContractError(
                    f"column {field.name!r} holds values that do not fit {field.type} ({exc})"
                ) from exc
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
