"""Exact mapping of SQL column types to Arrow types, and how each column is selected.

Decimals stay decimals (never float), CHAR keeps its padding, timestamps keep whether
they carry a time zone (stored as UTC), large text and binary use 64-bit offsets so a
batch of big values cannot overflow. A type with no exact Arrow counterpart that every
warehouse holds is read as the database's own text rendering of each value (``TEXT``):
decimals wider than 38 digits, PostgreSQL intervals, arrays, ranges, network and
geometric types, JSON, ``time with time zone``. The README's "Type mapping" table lists
every conversion.

A :class:`ColumnType` says where a column lands and how it is selected; the SQL and ODBC
connectors share the vocabulary (``how``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeEngine

from .._errors import ConfigurationError

# Precision/scale for NUMERIC columns declared without them (PostgreSQL ``numeric``,
# Oracle ``NUMBER``). Values that do not fit fail loudly instead of being rounded.
UNCONSTRAINED_DECIMAL = pa.decimal128(38, 10)
# The widest decimal every warehouse holds (DuckDB's DECIMAL stops at 38 digits).
MAX_DECIMAL_PRECISION = 38
# Unsigned 64-bit integers land as exact decimals: PostgreSQL has no unsigned type, and
# a uint64 column would reach it through a signed 64-bit one (2**64 - 1 became -1).
UNSIGNED_64 = pa.decimal128(20, 0)
TEXT = pa.large_string()

# How a column is selected and converted:
# NATIVE        as it is;
# DECIMAL_TEXT  as text, parsed into an exact decimal (SQLite has no decimal storage;
#               the PostgreSQL fast path parses text faster than binary NUMERIC);
# NUMERIC_TEXT  cast to NUMERIC, then text (PostgreSQL ``money`` prints its currency);
# TEXT          as the database's text rendering: the value lands as text;
# UNKNOWN_TEXT  TEXT, for a type with no mapping at all (a warning names the column);
# TEXT_VALUE    as text, parsed into the column's type (times with fractions of a
#               second over ODBC, PostgreSQL dates beyond a driver's range, SQLite values
#               that the driver would round or coerce);
# FLOAT         as a float, not the Decimal some dialects return (MySQL DOUBLE and REAL);
# UNSIGNED      cast to an unsigned integer (MySQL BIT(n));
# TIMEDELTA     a driver's time-of-day as a ``timedelta`` (MySQL TIME holds -838..838 h).
NATIVE, DECIMAL_TEXT, NUMERIC_TEXT, UNKNOWN_TEXT, TEXT_VALUE = (
    "native", "decimal_text", "numeric_text", "unknown_text", "text_value")
TEXT_RENDERING, FLOAT, UNSIGNED, TIMEDELTA = "text", "float", "unsigned", "timedelta"
AS_TEXT = (TEXT_RENDERING, UNKNOWN_TEXT)


@dataclass(frozen=True)
class ColumnType:
    """Where a column lands (its Arrow type) and how it is selected (``how``)."""

    arrow: pa.DataType
    how: str = NATIVE
    guid: bool = False


_LARGE_TEXT = (sa.Text, sa.UnicodeText, mysql.MEDIUMTEXT, mysql.LONGTEXT, oracle.CLOB,
               oracle.NCLOB)
_RENDERED = (sa.JSON, postgresql.JSONB, postgresql.ARRAY, postgresql.INTERVAL,
             postgresql.BIT, postgresql.INET, postgresql.CIDR, postgresql.MACADDR,
             postgresql.TSVECTOR, postgresql.ranges.AbstractRange, sa.types.NullType,
             mysql.SET)
_MONEY = {mssql.MONEY: pa.decimal128(19, 4), mssql.SMALLMONEY: pa.decimal128(10, 4),
          postgresql.MONEY: pa.decimal128(19, 2)}
_AWARE_TIMESTAMPS = (mssql.DATETIMEOFFSET,)


def _integer_type(sa_type: TypeEngine, dialect_name: str) -> pa.DataType:
    if dialect_name == "sqlite":
        return pa.int64()  # every SQLite integer is 64-bit
    unsigned = getattr(sa_type, "unsigned", False)
    if isinstance(sa_type, mysql.TINYINT):
        if getattr(sa_type, "display_width", None) == 1:
            return pa.bool_()  # MySQL/MariaDB spell BOOLEAN as TINYINT(1)
        return pa.uint8() if unsigned else pa.int8()
    if isinstance(sa_type, sa.BigInteger):
        return UNSIGNED_64 if unsigned else pa.int64()
    if isinstance(sa_type, sa.SmallInteger):
        return pa.int32() if unsigned else pa.int16()
    if unsigned:
        return pa.int64()
    return pa.int32()


def _float_type(sa_type: sa.Float, dialect_name: str) -> pa.DataType:
    if isinstance(sa_type, oracle.BINARY_FLOAT):
        return pa.float32()
    if dialect_name in ("sqlite", "oracle") or isinstance(sa_type, sa.Double):
        return pa.float64()  # SQLite's REAL is 8 bytes; Oracle FLOAT(n) is up to 126 bits
    if isinstance(sa_type, mysql.REAL):
        return pa.float64()  # MySQL's REAL is DOUBLE (unless REAL_AS_FLOAT is set)
    single = isinstance(sa_type, sa.REAL) or type(sa_type).__name__ == "FLOAT"
    precision = getattr(sa_type, "precision", None)
    if (precision is None and single) or (precision is not None and precision <= 24):
        return pa.float32()
    return pa.float64()


def bit_type(length: int) -> pa.DataType:
    """MySQL's ``BIT(n)``: a boolean for one bit, else its value as an unsigned integer."""
    if length == 1:
        return pa.bool_()
    return pa.int64() if length < 64 else UNSIGNED_64


def decimal_type(precision: int | None, scale: int | None) -> ColumnType:
    """A decimal column: exact up to 38 digits, the database's text beyond."""
    if not precision:
        return ColumnType(UNCONSTRAINED_DECIMAL)
    if precision > MAX_DECIMAL_PRECISION:
        return ColumnType(TEXT, TEXT_RENDERING)
    return ColumnType(pa.decimal128(precision, max(scale or 0, 0)))


def column_type(sa_type: TypeEngine, dialect_name: str) -> ColumnType:
    """Where a column of ``sa_type`` lands on the SQL connector, and how it is selected."""
    if isinstance(sa_type, sa.Boolean):
        return ColumnType(pa.bool_())
    if isinstance(sa_type, mysql.BIT):
        return ColumnType(bit_type(sa_type.length or 1), UNSIGNED)
    if isinstance(sa_type, mysql.YEAR):
        return ColumnType(pa.int16())
    if isinstance(sa_type, oracle.NUMBER):
        # Oracle's one numeric type: integers and decimals alike, so always exact.
        return decimal_type(sa_type.precision, sa_type.scale)
    if isinstance(sa_type, sa.Integer):
        return ColumnType(_integer_type(sa_type, dialect_name))
    if isinstance(sa_type, sa.Float):
        return ColumnType(_float_type(sa_type, dialect_name), FLOAT)
    if isinstance(sa_type, sa.Numeric):
        found = decimal_type(sa_type.precision, sa_type.scale)
        if dialect_name == "sqlite" and found.how == NATIVE:
            # SQLite has no decimal storage: NUMERIC values come back as floats. As text
            # (SQLite prints 15 significant digits) they convert to the exact decimal.
            return ColumnType(found.arrow, DECIMAL_TEXT)
        return found
    for money, arrow in _MONEY.items():
        if isinstance(sa_type, money):
            return ColumnType(arrow, NUMERIC_TEXT if money is postgresql.MONEY else NATIVE)
    return _temporal_or_text(sa_type, dialect_name)


def _temporal_or_text(sa_type: TypeEngine, dialect_name: str) -> ColumnType:
    if isinstance(sa_type, _AWARE_TIMESTAMPS):
        return ColumnType(pa.timestamp("us", tz="UTC"))
    if isinstance(sa_type, postgresql.TIME) and sa_type.timezone:
        return ColumnType(TEXT, TEXT_RENDERING)  # no Arrow time of day carries an offset
    if isinstance(sa_type, sa.DateTime):
        aware = bool(getattr(sa_type, "timezone", False))
        return ColumnType(pa.timestamp("us", tz="UTC" if aware else None))
    if isinstance(sa_type, sa.Date):
        return ColumnType(pa.date32())
    if isinstance(sa_type, sa.Time):
        return ColumnType(pa.time64("us"), TIMEDELTA if dialect_name == "mysql" else NATIVE)
    if isinstance(sa_type, _RENDERED):
        return ColumnType(TEXT, TEXT_RENDERING)
    if isinstance(sa_type, sqltypes._AbstractInterval):
        return ColumnType(pa.duration("us"))
    if isinstance(sa_type, sqltypes._Binary):
        return ColumnType(pa.large_binary())
    if isinstance(sa_type, sa.Uuid):
        return ColumnType(pa.string(), TEXT_RENDERING)
    if isinstance(sa_type, sa.Enum):
        if dialect_name == "postgresql":
            return ColumnType(TEXT, TEXT_RENDERING)  # a PostgreSQL type of its own
        return ColumnType(pa.string())
    if isinstance(sa_type, _LARGE_TEXT):
        return ColumnType(pa.large_string())
    if isinstance(sa_type, sa.String):
        return ColumnType(pa.string())
    return ColumnType(TEXT, UNKNOWN_TEXT)


def arrow_type(sa_type: TypeEngine, dialect_name: str) -> pa.DataType:
    """The Arrow type that holds every value of ``sa_type`` exactly."""
    return column_type(sa_type, dialect_name).arrow


def needs_text_cast(sa_type: TypeEngine, dialect_name: str) -> bool:
    """Whether the column must be fetched as text to stay exact (SQLite decimals)."""
    return column_type(sa_type, dialect_name).how == DECIMAL_TEXT


# -- declared overrides (``column_types``) ------------------------------------------------

_NAMED = {
    "text": ColumnType(TEXT, TEXT_RENDERING), "string": ColumnType(TEXT, TEXT_RENDERING),
    "bool": ColumnType(pa.bool_()), "boolean": ColumnType(pa.bool_()),
    "int8": ColumnType(pa.int8()), "int16": ColumnType(pa.int16()),
    "int32": ColumnType(pa.int32()), "int64": ColumnType(pa.int64()),
    "uint8": ColumnType(pa.uint8()), "uint16": ColumnType(pa.uint16()),
    "uint32": ColumnType(pa.uint32()),
    "float32": ColumnType(pa.float32(), FLOAT), "float64": ColumnType(pa.float64(), FLOAT),
    "double": ColumnType(pa.float64(), FLOAT),
    "date": ColumnType(pa.date32(), TEXT_VALUE), "time": ColumnType(pa.time64("us"), TEXT_VALUE),
    "timestamp": ColumnType(pa.timestamp("us"), TEXT_VALUE),
    "timestamptz": ColumnType(pa.timestamp("us", tz="UTC"), TEXT_VALUE),
    "binary": ColumnType(pa.large_binary()),
}
_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$", re.IGNORECASE)
OVERRIDE_NAMES = (*_NAMED, "decimal(p,s)")


def declared_column_type(declared: str | pa.DataType, where: str) -> ColumnType:
    """The column type a ``column_types`` entry declares.

    ``"text"`` lands the database's own text for each value (always exact);
    ``"decimal(p,s)"`` (p up to 38) an exact decimal, the value read as text, failing on a
    value that does not fit; the Arrow names (``int64``, ``float64``, ``date``,
    ``timestamp``, ``timestamptz``, ...) that type, converted value by value. A
    ``pyarrow.DataType`` is taken as it is.
    """
    if isinstance(declared, pa.DataType):
        if pa.types.is_string(declared) or pa.types.is_large_string(declared):
            return ColumnType(declared, TEXT_RENDERING)
        if pa.types.is_decimal(declared) or pa.types.is_temporal(declared):
            return _checked_decimal(declared, where) if pa.types.is_decimal(declared) \
                else ColumnType(declared, TEXT_VALUE)
        return ColumnType(declared, FLOAT if pa.types.is_floating(declared) else NATIVE)
    name = str(declared).strip().lower()
    if name in _NAMED:
        return _NAMED[name]
    match = _DECIMAL.match(name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        return _checked_decimal(pa.decimal128(min(precision, 76), scale)
                                if precision <= 38 else pa.decimal256(min(precision, 76), scale),
                                where)
    raise ConfigurationError(
        f"{where}: unknown column type {declared!r}; use one of {', '.join(OVERRIDE_NAMES)}"
    )


def _checked_decimal(t: pa.DataType, where: str) -> ColumnType:
    if t.precision > MAX_DECIMAL_PRECISION or t.scale > t.precision or t.scale < 0:
        raise ConfigurationError(
            f"{where}: decimal({t.precision},{t.scale}) cannot land in every warehouse "
            f"(DuckDB holds at most {MAX_DECIMAL_PRECISION} digits); declare \"text\" to "
            "keep every digit, or a decimal of at most 38 digits"
        )
    return ColumnType(pa.decimal128(t.precision, t.scale), DECIMAL_TEXT)
