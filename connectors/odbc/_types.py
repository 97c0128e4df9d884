"""ODBC column types into exact Arrow types, per driver family.

The ODBC catalog reports each column as an SQL type code, a driver type name, a size
and decimal digits. The table here maps them so that nothing is rounded or mangled:
DECIMAL/NUMERIC and MONEY stay exact decimals, GUIDs are canonical text, times keep
microseconds, CHAR and NCHAR keep their padding, binary stays binary. A type not in the
table is read as text, with a warning that names the column; it is never dropped.

Some legacy types pyodbc cannot fetch itself; the output converters here decode them
(SQL Server ``datetimeoffset``, DB2 ``GRAPHIC``), and a user can add more.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from ..sql._types import UNCONSTRAINED_DECIMAL

# ODBC SQL type codes (sql.h, sqlext.h, and vendor headers for the negative extras).
SQL_CHAR, SQL_NUMERIC, SQL_DECIMAL, SQL_INTEGER, SQL_SMALLINT = 1, 2, 3, 4, 5
SQL_FLOAT, SQL_REAL, SQL_DOUBLE, SQL_DATETIME, SQL_VARCHAR = 6, 7, 8, 9, 12
SQL_TYPE_DATE, SQL_TYPE_TIME, SQL_TYPE_TIMESTAMP = 91, 92, 93
SQL_LONGVARCHAR, SQL_BINARY, SQL_VARBINARY, SQL_LONGVARBINARY = -1, -2, -3, -4
SQL_BIGINT, SQL_TINYINT, SQL_BIT = -5, -6, -7
SQL_WCHAR, SQL_WVARCHAR, SQL_WLONGVARCHAR, SQL_GUID = -8, -9, -10, -11
SQL_SS_XML, SQL_SS_TIME2, SQL_SS_TIMESTAMPOFFSET = -152, -154, -155
SQL_GRAPHIC, SQL_VARGRAPHIC, SQL_LONGVARGRAPHIC = -95, -96, -97  # DB2
SQL_BLOB, SQL_CLOB, SQL_DBCLOB = -98, -99, -350  # DB2

_TEXT = {SQL_CHAR, SQL_VARCHAR, SQL_WCHAR, SQL_WVARCHAR, SQL_GRAPHIC, SQL_VARGRAPHIC}
_LARGE_TEXT = {SQL_LONGVARCHAR, SQL_WLONGVARCHAR, SQL_LONGVARGRAPHIC, SQL_CLOB, SQL_DBCLOB,
               SQL_SS_XML}
_BINARY = {SQL_BINARY, SQL_VARBINARY, SQL_LONGVARBINARY, SQL_BLOB}
_INTEGERS = {SQL_TINYINT: (pa.int16(), pa.int16()), SQL_SMALLINT: (pa.int16(), pa.int32()),
             SQL_INTEGER: (pa.int32(), pa.int64()), SQL_BIGINT: (pa.int64(), pa.uint64())}
_MONEY = {"money": pa.decimal128(19, 4), "smallmoney": pa.decimal128(10, 4)}
_SQLITE_DECIMAL = re.compile(r"^\s*(?:numeric|decimal)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?",
                             re.IGNORECASE)

# How a column is selected: as it is; as text parsed into an exact decimal (SQLite has
# no decimal storage); cast to NUMERIC, then text (PostgreSQL ``money``, which prints
# with the locale's currency sign); or cast to text because its type is not in the table.
# TEXT_VALUE: read as text, then parsed: TIME (ODBC's TIME struct has no fractions of a
# second) and SQLite floats (its driver prints them with 15 digits; they come as 17).
NATIVE, DECIMAL_TEXT, NUMERIC_TEXT, UNKNOWN_TEXT, TEXT_VALUE = (
    "native", "decimal_text", "numeric_text", "unknown_text", "text_value")


@dataclass(frozen=True)
class ODBCColumn:
    """One column as the ODBC catalog (``SQLColumns``) describes it."""

    name: str
    sql_type: int
    type_name: str
    size: int | None = None
    digits: int | None = None
    nullable: bool = True


@dataclass(frozen=True)
class ColumnType:
    """Where a column lands: its Arrow type and how it is selected."""

    arrow: pa.DataType
    how: str = NATIVE
    guid: bool = False


def _decimal(precision: int | None, scale: int | None) -> pa.DataType:
    if not precision:
        return UNCONSTRAINED_DECIMAL
    scale = max(scale or 0, 0)
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(min(precision, 76), scale)


def _sqlite_type(column: ODBCColumn) -> ColumnType | None:
    """SQLite's ODBC driver reports declared decimals as DOUBLE: read the declaration."""
    match = _SQLITE_DECIMAL.match(column.type_name)
    if match is None:
        return None
    precision = int(match.group(1)) if match.group(1) else None
    scale = int(match.group(2)) if match.group(2) else 0
    return ColumnType(_decimal(precision, scale), DECIMAL_TEXT)


def column_type(column: ODBCColumn, family: str) -> ColumnType | None:
    """The Arrow type for ``column`` on ``family``; ``None`` if the type is unknown."""
    name = column.type_name.lower()
    if family == "sqlite":
        found = _sqlite_type(column)
        if found is None and column.sql_type in (SQL_REAL, SQL_FLOAT, SQL_DOUBLE):
            found = ColumnType(pa.float64(), TEXT_VALUE)  # SQLite's REAL is 8 bytes
        if found is not None:
            return found
    if name in _MONEY:
        how = {"sqlite": DECIMAL_TEXT, "postgresql": NUMERIC_TEXT}.get(family, NATIVE)
        return ColumnType(_MONEY[name], how)
    return _by_code(column, family)


def _by_code(column: ODBCColumn, family: str) -> ColumnType | None:
    code, name = column.sql_type, column.type_name.lower()
    unsigned = "unsigned" in name
    if family == "postgresql" and name == "timestamptz":
        return ColumnType(pa.timestamp("us", tz="UTC"))
    if code in _INTEGERS:
        if family == "sqlite":
            return ColumnType(pa.int64())  # every SQLite integer is 64-bit
        return ColumnType(_INTEGERS[code][1 if unsigned else 0])
    if code == SQL_BIT:
        return ColumnType(pa.bool_())
    if code in (SQL_NUMERIC, SQL_DECIMAL):
        return ColumnType(_decimal(column.size, column.digits))
    if code == SQL_REAL:
        return ColumnType(pa.float32())
    if code in (SQL_FLOAT, SQL_DOUBLE):
        return ColumnType(pa.float64())  # ODBC's FLOAT is double precision
    if code in (SQL_TYPE_DATE, SQL_DATETIME):
        return ColumnType(pa.date32())
    if code == SQL_SS_TIME2:
        return ColumnType(pa.time64("us"))
    if code == SQL_TYPE_TIME:
        # ODBC's TIME struct has no fractions of a second: read the time as text.
        return ColumnType(pa.time64("us"), TEXT_VALUE)
    if code == SQL_TYPE_TIMESTAMP:
        return ColumnType(pa.timestamp("us"))
    if code == SQL_SS_TIMESTAMPOFFSET:
        return ColumnType(pa.timestamp("us", tz="UTC"))
    if code == SQL_GUID:
        return ColumnType(pa.string(), guid=True)
    if code in _TEXT:
        return ColumnType(pa.string())
    if code in _LARGE_TEXT:
        return ColumnType(pa.large_string())
    if code in _BINARY:
        return ColumnType(pa.large_binary())
    return None


def resolve(column: ODBCColumn, family: str) -> tuple[ColumnType, bool]:
    """The column's type, and whether it fell back to text (an unknown type)."""
    found = column_type(column, family)
    if found is None:
        return ColumnType(pa.large_string(), UNKNOWN_TEXT), True
    return found, False


def parse_text(values: pa.Array, field: pa.Field) -> pa.Array:
    """Text read for a ``TEXT_VALUE`` column into the column's type."""
    if pa.types.is_time(field.type):
        times = [None if v is None else dt.time.fromisoformat(v) for v in values.to_pylist()]
        return pa.array(times, type=field.type)
    return values.cast(field.type)


def sqlalchemy_type(kind: ColumnType) -> sa.types.TypeEngine:
    """A SQLAlchemy type for the column, so the dialect renders its literals."""
    t = kind.arrow
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_integer(t):
        return sa.BigInteger() if t.bit_width == 64 else sa.Integer()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_floating(t):
        return sa.Float()
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=t.tz is not None)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_time(t):
        return sa.Time()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return sa.LargeBinary()
    return sa.String()


# -- output converters: raw driver bytes to Python values -------------------------------

def datetimeoffset(raw: bytes | None) -> dt.datetime | None:
    """SQL Server ``datetimeoffset`` (``SQL_SS_TIMESTAMPOFFSET_STRUCT``) to an aware datetime."""
    if raw is None:
        return None
    year, month, day, hour, minute, second, nanos, tz_hour, tz_minute = struct.unpack(
        "<6hI2h", raw
    )
    offset = dt.timedelta(hours=tz_hour, minutes=tz_minute)
    return dt.datetime(year, month, day, hour, minute, second, nanos // 1000,
                       tzinfo=dt.timezone(offset))


def graphic_decoder(byteorder: str = "big") -> Callable[[bytes | None], str | None]:
    """A decoder for DB2 ``GRAPHIC``/``VARGRAPHIC``/``DBCLOB`` raw data (UTF-16).

    DB2 keeps graphic data as big-endian UTF-16; pass ``byteorder="little"`` for a
    client that hands it over in the machine's order.
    """
    encoding = {"big": "utf-16-be", "little": "utf-16-le"}[byteorder]

    def decode(raw: bytes | None) -> str | None:
        return None if raw is None else raw.decode(encoding)

    return decode


graphic = graphic_decoder("big")


Converter = Callable[[bytes | None], object]

OUTPUT_CONVERTERS: Mapping[str, Mapping[int, Converter]] = {
    "mssql": {SQL_SS_TIMESTAMPOFFSET: datetimeoffset},
    "db2": {SQL_GRAPHIC: graphic, SQL_VARGRAPHIC: graphic, SQL_LONGVARGRAPHIC: graphic,
            SQL_DBCLOB: graphic},
}
