"""ODBC column types into exact Arrow types, per driver family.

The ODBC catalog reports each column as an SQL type code, a driver type name, a size
and decimal digits. The table here maps them so that nothing is rounded or mangled:
DECIMAL/NUMERIC and MONEY stay exact decimals, GUIDs are canonical text, times keep
microseconds, CHAR and NCHAR keep their padding, binary stays binary. A type not in the
table is read as text, with a warning that names the column; it is never dropped.

Where drivers lose values, the database's own declaration (``ODBCColumn.declared``,
read from its catalog) decides: on PostgreSQL, psqlODBC reports an unconstrained
``numeric`` as ``numeric(28,6)`` and cuts dates before year 1 or after 32767 through
ODBC's date struct, so numerics follow the declaration and dates are read as text; a
PostgreSQL type with no exact Arrow counterpart lands as its text. On MySQL and MariaDB,
``TINYINT(1)`` (BOOLEAN) is told apart from ``TINYINT`` by the declaration, unsigned
``INT`` is widened by a cast (pyodbc reads it as a signed 32-bit value), and ``BIT(n)``
is cast to an unsigned integer. SQLite integers are read as text, which pyodbc would
truncate to 32 bits and the driver would turn into NULL when a row holds text.

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

from ..sql._types import (
    DECIMAL_TEXT,
    NATIVE,
    NUMERIC_TEXT,
    TEXT,
    TEXT_RENDERING,
    TEXT_VALUE,
    UNKNOWN_TEXT,
    UNSIGNED,
    UNSIGNED_64,
    ColumnType,
    bit_type,
    decimal_type,
)

BOOL_FROM_INT = "bool_from_int"  # 0/1 integers as booleans, any other integer refused

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
             SQL_INTEGER: (pa.int32(), pa.int64()), SQL_BIGINT: (pa.int64(), UNSIGNED_64)}
_MONEY = {"money": pa.decimal128(19, 4), "smallmoney": pa.decimal128(10, 4)}
_SQLITE_DECIMAL = re.compile(r"^\s*(?:numeric|decimal)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?",
                             re.IGNORECASE)

# PostgreSQL declarations (``format_type``) that the type codes map exactly; any other
# PostgreSQL type (arrays, intervals, ranges, enums, network, geometric, JSON, XML,
# ``time with time zone``) lands as its text.
_PG_EXACT = re.compile(
    r"^(smallint|integer|bigint|real|double precision|numeric|money|character|text|name|"
    r'"char"|bytea|boolean|date|uuid|oid|time(\(\d+\))? without time zone|'
    r"timestamp(\(\d+\))? with(out)? time zone)\b(?!.*\[\])"
)
_PG_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")
_MYSQL_AS_TEXT = {"uuid", "inet4", "inet6"}


@dataclass(frozen=True)
class ODBCColumn:
    """One column as the ODBC catalog (``SQLColumns``) describes it; ``declared`` is the
    database's own declaration from its catalog, where one was read."""

    name: str
    sql_type: int
    type_name: str
    size: int | None = None
    digits: int | None = None
    nullable: bool = True
    declared: str = ""


def _sqlite_type(column: ODBCColumn) -> ColumnType | None:
    """SQLite's ODBC driver reports declared decimals as DOUBLE: read the declaration."""
    match = _SQLITE_DECIMAL.match(column.type_name)
    if match is None:
        return None
    precision = int(match.group(1)) if match.group(1) else None
    scale = int(match.group(2)) if match.group(2) else 0
    found = decimal_type(precision, scale)
    return found if found.how != NATIVE else ColumnType(found.arrow, DECIMAL_TEXT)


def column_type(column: ODBCColumn, family: str) -> ColumnType | None:
    """The Arrow type for ``column`` on ``family``; ``None`` if the type is unknown."""
    name = column.type_name.lower()
    if family == "sqlite":
        found = _sqlite_type(column)
        if found is None and column.sql_type in (SQL_REAL, SQL_FLOAT, SQL_DOUBLE):
            found = ColumnType(pa.float64(), TEXT_VALUE)  # SQLite's REAL is 8 bytes
        if found is None and column.sql_type in _INTEGERS:
            found = ColumnType(pa.int64(), TEXT_VALUE)  # every SQLite integer is 64-bit
        if found is not None:
            return found
    if family == "postgresql" and column.declared:
        return _postgresql_type(column)
    if family == "mysql":
        found = _mysql_type(column)
        if found is not None:
            return found
    if name in _MONEY:
        if family == "postgresql":  # 64-bit cents: 17 digits before the point
            return ColumnType(pa.decimal128(19, 2), NUMERIC_TEXT)
        return ColumnType(_MONEY[name], DECIMAL_TEXT if family == "sqlite" else NATIVE)
    return _by_code(column, family)


def _postgresql_type(column: ODBCColumn) -> ColumnType | None:
    declared = column.declared.lower()
    if not _PG_EXACT.match(declared):
        return ColumnType(TEXT, TEXT_RENDERING)
    numeric = _PG_NUMERIC.match(declared)
    if numeric:
        precision, scale = numeric.groups()
        return decimal_type(int(precision) if precision else None, int(scale or 0))
    if declared == "money":
        return ColumnType(pa.decimal128(19, 2), NUMERIC_TEXT)
    if declared == "oid":
        return ColumnType(pa.int64(), TEXT_VALUE)  # unsigned 32-bit
    found = _by_code(column, "postgresql")
    if found is not None and pa.types.is_temporal(found.arrow) and found.how == NATIVE:
        # ODBC's date struct holds years -32768..32767 and no infinity: as text, every
        # PostgreSQL date and timestamp is read exactly or refused.
        return ColumnType(found.arrow, TEXT_VALUE)
    return found


def _mysql_type(column: ODBCColumn) -> ColumnType | None:
    name, declared = column.type_name.lower(), column.declared.lower()
    if name in _MYSQL_AS_TEXT:
        return ColumnType(pa.string(), TEXT_RENDERING)
    if name == "bit":
        width = re.match(r"bit\((\d+)\)", declared)
        length = 1 if column.sql_type == SQL_BIT else int(width.group(1)) if width else 64
        return ColumnType(bit_type(length), UNSIGNED)
    if column.sql_type == SQL_TINYINT:
        if declared.startswith("tinyint(1)"):
            return ColumnType(pa.bool_(), BOOL_FROM_INT)  # BOOLEAN is TINYINT(1)
        return ColumnType(pa.uint8() if "unsigned" in name else pa.int8())
    if column.sql_type == SQL_INTEGER and "unsigned" in name:
        return ColumnType(pa.int64(), TEXT_VALUE)  # pyodbc reads it as a signed int32
    if column.sql_type == SQL_REAL:
        return ColumnType(pa.float32())
    return None


def _by_code(column: ODBCColumn, family: str) -> ColumnType | None:
    code, name = column.sql_type, column.type_name.lower()
    unsigned = "unsigned" in name
    if family == "postgresql" and name == "timestamptz":
        return ColumnType(pa.timestamp("us", tz="UTC"))
    if code in _INTEGERS:
        if family == "sqlite":
            return ColumnType(pa.int64())  # every SQLite integer is 64-bit
        found = _INTEGERS[code][1 if unsigned else 0]
        return ColumnType(found, TEXT_VALUE if found == UNSIGNED_64 else NATIVE)
    if code == SQL_BIT:
        return ColumnType(pa.bool_())
    if code in (SQL_NUMERIC, SQL_DECIMAL):
        return decimal_type(column.size, column.digits)
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
