"""Exact mapping of SQL column types to Arrow types.

Decimals stay decimals (never float), CHAR keeps its padding, timestamps keep whether
they carry a time zone (stored as UTC), large text and binary use 64-bit offsets so a
batch of big values cannot overflow.
"""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeEngine

# Precision/scale for NUMERIC columns declared without them (PostgreSQL ``numeric``,
# Oracle ``NUMBER``). Values that do not fit fail loudly instead of being rounded.
UNCONSTRAINED_DECIMAL = pa.decimal128(38, 10)

_LARGE_TEXT = (sa.Text, sa.UnicodeText, sa.JSON, postgresql.JSONB, mysql.MEDIUMTEXT,
               mysql.LONGTEXT, oracle.CLOB, oracle.NCLOB)
_MONEY = {mssql.MONEY: pa.decimal128(19, 4), mssql.SMALLMONEY: pa.decimal128(10, 4)}
_AWARE_TIMESTAMPS = (mssql.DATETIMEOFFSET,)


def _integer_type(sa_type: TypeEngine, dialect_name: str) -> pa.DataType:
    if dialect_name == "sqlite":
        return pa.int64()  # every SQLite integer is 64-bit
    if isinstance(sa_type, mysql.TINYINT):
        if getattr(sa_type, "display_width", None) == 1:
            return pa.bool_()  # MySQL/MariaDB spell BOOLEAN as TINYINT(1)
        return pa.uint8() if getattr(sa_type, "unsigned", False) else pa.int8()
    if isinstance(sa_type, sa.BigInteger):
        return pa.uint64() if getattr(sa_type, "unsigned", False) else pa.int64()
    if isinstance(sa_type, sa.SmallInteger):
        return pa.int16()
    if getattr(sa_type, "unsigned", False):
        return pa.int64()
    return pa.int32()


def _float_type(sa_type: sa.Float, dialect_name: str) -> pa.DataType:
    if isinstance(sa_type, oracle.BINARY_FLOAT):
        return pa.float32()
    if dialect_name in ("sqlite", "oracle") or isinstance(sa_type, sa.Double):
        return pa.float64()  # SQLite's REAL is 8 bytes; Oracle FLOAT(n) is up to 126 bits
    single = isinstance(sa_type, sa.REAL) or type(sa_type).__name__ == "FLOAT"
    precision = getattr(sa_type, "precision", None)
    if (precision is None and single) or (precision is not None and precision <= 24):
        return pa.float32()
    return pa.float64()


def _decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    if precision is None:
        return UNCONSTRAINED_DECIMAL
    scale = scale or 0
    if precision <= 38:
        return pa.decimal128(precision, scale)
    return pa.decimal256(min(precision, 76), scale)


def arrow_type(sa_type: TypeEngine, dialect_name: str) -> pa.DataType:
    """The Arrow type that holds every value of ``sa_type`` exactly."""
    if isinstance(sa_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sa_type, oracle.NUMBER):
        # Oracle's one numeric type: integers and decimals alike, so always exact.
        return _decimal_type(sa_type.precision, sa_type.scale)
    if isinstance(sa_type, sa.Integer):
        return _integer_type(sa_type, dialect_name)
    if isinstance(sa_type, sa.Float):
        return _float_type(sa_type, dialect_name)
    if isinstance(sa_type, sa.Numeric):
        return _decimal_type(sa_type.precision, sa_type.scale)
    for money, arrow in _MONEY.items():
        if isinstance(sa_type, money):
            return arrow
    if isinstance(sa_type, _AWARE_TIMESTAMPS):
        return pa.timestamp("us", tz="UTC")
    if isinstance(sa_type, sa.DateTime):
        aware = bool(getattr(sa_type, "timezone", False))
        return pa.timestamp("us", tz="UTC" if aware else None)
    if isinstance(sa_type, sa.Date):
        return pa.date32()
    if isinstance(sa_type, sa.Time):
        return pa.time64("us")
    if isinstance(sa_type, sqltypes._AbstractInterval):
        return pa.duration("us")
    if isinstance(sa_type, sqltypes._Binary):
        return pa.large_binary()
    if isinstance(sa_type, _LARGE_TEXT):
        return pa.large_string()
    return pa.string()


def needs_text_cast(sa_type: TypeEngine, dialect_name: str) -> bool:
    """Whether the column must be fetched as text to stay exact.

    SQLite has no decimal storage: NUMERIC values come back as floats. Fetched as text
    (SQLite prints 15 significant digits) they convert to the exact declared decimal.
    """
    return (
        dialect_name == "sqlite"
        and isinstance(sa_type, sa.Numeric)
        and pa.types.is_decimal(arrow_type(sa_type, dialect_name))
    )
