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

The driver shifts PostgreSQL's dates and timestamps from its 2000 epoch to 1970 without
checking for overflow: ``infinity`` and timestamps after the year 294246 arrive as
wrapped values before PostgreSQL's earliest date. Those are refused here, naming the row.
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

from ._values import UnfitValue, cast_array

_DIALECT = postgresql.dialect()
# PostgreSQL's earliest date, 4714-11-24 BC, in days and microseconds since 1970: any
# earlier value from the driver is a wrapped infinity or out-of-range timestamp.
_PG_FIRST_DAY = -2_440_588
_PG_FIRST_MICRO = _PG_FIRST_DAY * 86_400_000_000


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

    def fetch(self, stmt: sa.Select, schema: pa.Schema, primary_key: tuple[str, ...] = ()
              ) -> Iterator[pa.RecordBatch]:
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
                    yield _within_postgresql_range(conform(batch, schema, primary_key),
                                                   primary_key)
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


def conform(batch: pa.RecordBatch, schema: pa.Schema, primary_key: tuple[str, ...] = ()
            ) -> pa.RecordBatch:
    """Cast a fast path's batch to ``schema``: text parsed exactly (decimals, dates),
    other types cast, metadata dropped. A value that does not fit raises
    :class:`UnfitValue` with the primary key of its row."""
    arrays = []
    for field, column in zip(schema, batch.columns, strict=True):
        if isinstance(column.type, pa.ExtensionType) or isinstance(column, pa.ExtensionArray):
            column = column.storage
        try:
            arrays.append(cast_array(column, field))
        except UnfitValue as unfit:
            raise _keyed(unfit, batch, primary_key, schema) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _keyed(unfit: UnfitValue, batch: pa.RecordBatch, primary_key: tuple[str, ...],
           schema: pa.Schema | None = None) -> UnfitValue:
    """``unfit`` with the primary key of its row (converted to the key's type, when
    ``schema`` is given and the value converts)."""
    if unfit.row is None or not all(k in batch.schema.names for k in primary_key):
        return unfit
    key = {}
    for name in primary_key:
        value = batch.column(name).slice(unfit.row, 1)
        if schema is not None:
            with contextlib.suppress(UnfitValue):  # then the raw value names the row
                value = cast_array(value, schema.field(name))
        key[name] = value[0].as_py()
    unfit.key = key
    return unfit


def _within_postgresql_range(batch: pa.RecordBatch, primary_key: tuple[str, ...]
                             ) -> pa.RecordBatch:
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_date32(field.type):
            first, storage = _PG_FIRST_DAY, pa.int32()
        elif pa.types.is_timestamp(field.type):
            first, storage = _PG_FIRST_MICRO, pa.int64()
        else:
            continue
        values = column.cast(storage)
        lowest = pc.min(values).as_py()
        if lowest is not None and lowest < first:
            row = pc.index(pc.less(values, first), True).as_py()
            unfit = UnfitValue(field.name, field.type,
                               "infinity, or a timestamp after 294246, which no Arrow "
                               "value holds", row)
            raise _keyed(unfit, batch, primary_key)
    return batch
