"""PostgreSQL fast path: rows arrive as Arrow through ADBC (binary COPY), no Python rows.

Chosen by measurement (bench/RESULTS.md): ADBC's libpq driver fetches at about the
speed of the server's own ``COPY TO``; it beats connectorx and the generic path. Keyset
values are rendered as literals by SQLAlchemy's PostgreSQL compiler because ADBC's
bound-parameter path fetches row by row (about 1.6x slower here); the values come from
the database itself and are quoted by the dialect, never formatted by hand.
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
    """Whether the ADBC PostgreSQL driver is installed (imported only when used: its
    DBAPI module loads pyarrow.dataset and pandas, which a plain import should not)."""
    return importlib.util.find_spec("adbc_driver_postgresql") is not None


def adbc_uri(url: sa.URL) -> str:
    """A libpq URI for the same database as a SQLAlchemy PostgreSQL URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ArrowNativeReader:
    """Runs SELECTs on PostgreSQL and yields batches cast to the plan's Arrow schema."""

    def __init__(self, url: sa.URL) -> None:
        self._uri = adbc_uri(url)
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            import adbc_driver_postgresql.dbapi as adbc_pg

            self._conn = adbc_pg.connect(self._uri, autocommit=True)
        return self._conn

    def fetch(self, stmt: sa.Select, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        sql = str(stmt.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))
        cursor = self._connection().cursor()
        try:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            for batch in reader:
                if batch.num_rows:
                    yield conform(batch, schema)
        finally:
            cursor.close()

    def reset(self) -> None:
        """Drop the connection after a failure; the next fetch reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # it is already broken
                conn.close()

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
