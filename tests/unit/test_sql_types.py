"""arrow_type maps SQL column types to Arrow types that hold every value exactly."""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

from connectors import ConfigurationError
from connectors.sql._types import (
    DECIMAL_TEXT,
    FLOAT,
    NATIVE,
    NUMERIC_TEXT,
    TEXT,
    TEXT_RENDERING,
    TEXT_VALUE,
    TIMEDELTA,
    UNCONSTRAINED_DECIMAL,
    UNKNOWN_TEXT,
    UNSIGNED,
    ColumnType,
    arrow_type,
    column_type,
    declared_column_type,
    needs_text_cast,
)

SERVER_DIALECTS = ["postgresql", "mysql", "mssql", "oracle"]


@pytest.mark.parametrize(
    ("sa_type", "dialect_name", "expected"),
    [
        # Decimals stay decimals at their declared precision.
        (postgresql.NUMERIC(12, 2), "postgresql", pa.decimal128(12, 2)),
        (postgresql.NUMERIC(), "postgresql", UNCONSTRAINED_DECIMAL),
        (postgresql.NUMERIC(38, 0), "postgresql", pa.decimal128(38, 0)),
        # Wider than DuckDB holds: the database's text, every digit kept.
        (postgresql.NUMERIC(39, 0), "postgresql", TEXT),
        (postgresql.NUMERIC(50, 4), "postgresql", TEXT),
        (postgresql.NUMERIC(100, 4), "postgresql", TEXT),
        (sa.Numeric(10), "postgresql", pa.decimal128(10, 0)),
        (sa.DECIMAL(18, 6), "mssql", pa.decimal128(18, 6)),
        (mysql.DECIMAL(65, 30), "mysql", TEXT),
        (sa.Numeric(12, 2), "sqlite", pa.decimal128(12, 2)),
        # Floats keep their width; SQLite's REAL is 8 bytes.
        (postgresql.DOUBLE_PRECISION(), "postgresql", pa.float64()),
        (postgresql.REAL(), "postgresql", pa.float32()),
        (postgresql.REAL(), "sqlite", pa.float64()),
        (sqlite.REAL(), "sqlite", pa.float64()),
        (sa.Float(), "postgresql", pa.float64()),
        (sa.Float(24), "postgresql", pa.float32()),
        (sa.Float(53), "mssql", pa.float64()),
        (sa.Double(), "mysql", pa.float64()),
        (mysql.FLOAT(), "mysql", pa.float32()),
        (mysql.DOUBLE(), "mysql", pa.float64()),
        (mssql.REAL(), "mssql", pa.float32()),
        (oracle.BINARY_DOUBLE(), "oracle", pa.float64()),
        # Text: CHAR keeps its padding as a plain string; large text has 64-bit offsets.
        (sa.CHAR(3), "postgresql", pa.string()),
        (sa.String(40), "mysql", pa.string()),
        (sa.Unicode(40), "mssql", pa.string()),
        (sa.Text(), "postgresql", pa.large_string()),
        (sa.UnicodeText(), "mssql", pa.large_string()),
        (mssql.NTEXT(), "mssql", pa.large_string()),
        (oracle.CLOB(), "oracle", pa.large_string()),
        (postgresql.JSONB(), "postgresql", pa.large_string()),
        (sa.JSON(), "mysql", pa.large_string()),
        # Date and time.
        (postgresql.TIMESTAMP(timezone=True), "postgresql", pa.timestamp("us", tz="UTC")),
        (oracle.TIMESTAMP(timezone=True), "oracle", pa.timestamp("us", tz="UTC")),
        (sa.DateTime(timezone=True), "mssql", pa.timestamp("us", tz="UTC")),
        (sa.DateTime(), "postgresql", pa.timestamp("us")),
        (postgresql.TIMESTAMP(), "postgresql", pa.timestamp("us")),
        (mssql.DATETIME2(), "mssql", pa.timestamp("us")),
        (oracle.DATE(), "oracle", pa.timestamp("us")),  # Oracle DATE has a time part
        (sa.Date(), "postgresql", pa.date32()),
        (sa.Time(), "postgresql", pa.time64("us")),
        (sa.Interval(), "mssql", pa.duration("us")),
        # Booleans and binary.
        (sa.Boolean(), "postgresql", pa.bool_()),
        (mssql.BIT(), "mssql", pa.bool_()),
        (mysql.TINYINT(1), "mysql", pa.bool_()),
        (sa.LargeBinary(), "postgresql", pa.large_binary()),
        (postgresql.BYTEA(), "postgresql", pa.large_binary()),
        (mysql.LONGBLOB(), "mysql", pa.large_binary()),
        (oracle.RAW(16), "oracle", pa.large_binary()),
        (mssql.TIMESTAMP(), "mssql", pa.large_binary()),  # rowversion: 8 bytes
        # Integers at their width; every SQLite integer is 64-bit.
        (sa.SmallInteger(), "postgresql", pa.int16()),
        (sa.Integer(), "postgresql", pa.int32()),
        (sa.BigInteger(), "postgresql", pa.int64()),
        (sa.SmallInteger(), "sqlite", pa.int64()),
        (sa.Integer(), "sqlite", pa.int64()),
        (sa.BigInteger(), "sqlite", pa.int64()),
        (mysql.TINYINT(), "mysql", pa.int8()),
        (mysql.TINYINT(unsigned=True), "mysql", pa.uint8()),
        (mysql.TINYINT(4), "mysql", pa.int8()),
        (mysql.INTEGER(unsigned=True), "mysql", pa.int64()),
        # Unsigned 64-bit: an exact decimal, which every warehouse holds.
        (mysql.BIGINT(unsigned=True), "mysql", pa.decimal128(20, 0)),
        (mssql.TINYINT(), "mssql", pa.int32()),  # 0..255 fits
        # Anything else is read as text.
        (mssql.UNIQUEIDENTIFIER(), "mssql", pa.string()),
        (sa.Enum("a", "b"), "mysql", pa.string()),
        (sa.Enum("a", "b"), "postgresql", TEXT),
    ],
    ids=lambda v: repr(v) if isinstance(v, sa.types.TypeEngine) else None,
)
def test_arrow_type(sa_type, dialect_name, expected):
    assert arrow_type(sa_type, dialect_name) == expected


@pytest.mark.parametrize("dialect_name", SERVER_DIALECTS)
def test_tinyint_one_is_boolean_only_for_the_mysql_type(dialect_name):
    assert arrow_type(mysql.TINYINT(1), dialect_name) == pa.bool_()
    assert arrow_type(mssql.TINYINT(), dialect_name) == pa.int32()


@pytest.mark.parametrize(
    ("sa_type", "dialect_name", "expected"),
    [
        (sa.Numeric(12, 2), "sqlite", True),
        (sa.Numeric(), "sqlite", True),
        (sa.DECIMAL(10, 3), "sqlite", True),
        (sa.Float(), "sqlite", False),  # Float is a Numeric, but not a decimal
        (sa.REAL(), "sqlite", False),
        (sa.Integer(), "sqlite", False),
        (sa.Text(), "sqlite", False),
        *[(sa.Numeric(12, 2), name, False) for name in SERVER_DIALECTS],
    ],
)
def test_needs_text_cast_only_for_sqlite_decimals(sa_type, dialect_name, expected):
    assert needs_text_cast(sa_type, dialect_name) is expected


# Dialect types that need more than the generic SQLAlchemy hierarchy to map exactly.


@pytest.mark.parametrize(
    ("sa_type", "expected"),
    [
        (oracle.NUMBER(12, 2), pa.decimal128(12, 2)),
        (oracle.NUMBER(18, 0), pa.decimal128(18, 0)),
        (oracle.NUMBER(), UNCONSTRAINED_DECIMAL),
    ],
    ids=["NUMBER(12,2)", "NUMBER(18,0)", "NUMBER"],
)
def test_oracle_number_is_a_decimal(sa_type, expected):
    assert arrow_type(sa_type, "oracle") == expected


def test_oracle_interval_is_a_duration():
    assert arrow_type(oracle.INTERVAL(), "oracle") == pa.duration("us")


def test_postgresql_interval_is_its_text():
    # '1 mon' is no fixed number of microseconds: a duration would have to guess.
    assert column_type(postgresql.INTERVAL(), "postgresql") == ColumnType(TEXT, TEXT_RENDERING)


def test_mssql_datetimeoffset_is_time_zone_aware():
    assert arrow_type(mssql.DATETIMEOFFSET(), "mssql") == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(
    "sa_type",
    [oracle.FLOAT(binary_precision=53), oracle.FLOAT(), sa.REAL()],
    ids=["FLOAT(53)", "FLOAT", "REAL"],
)
def test_oracle_floats_are_not_narrowed_to_float32(sa_type):
    assert arrow_type(sa_type, "oracle") != pa.float32()


@pytest.mark.parametrize(
    ("sa_type", "expected"),
    [(mssql.MONEY(), pa.decimal128(19, 4)), (mssql.SMALLMONEY(), pa.decimal128(10, 4))],
    ids=["MONEY", "SMALLMONEY"],
)
def test_mssql_money_is_an_exact_decimal(sa_type, expected):
    assert arrow_type(sa_type, "mssql") == expected


@pytest.mark.parametrize(
    "sa_type", [mysql.MEDIUMTEXT(), mysql.LONGTEXT()], ids=["MEDIUMTEXT", "LONGTEXT"]
)
def test_mysql_large_text_has_64_bit_offsets(sa_type):
    assert arrow_type(sa_type, "mysql") == pa.large_string()


@pytest.mark.parametrize(
    ("sa_type", "dialect_name", "expected"),
    [
        # MySQL's DOUBLE and REAL are read as floats, not the Decimal SQLAlchemy returns.
        (mysql.DOUBLE(), "mysql", ColumnType(pa.float64(), FLOAT)),
        (mysql.REAL(), "mysql", ColumnType(pa.float64(), FLOAT)),
        (mysql.FLOAT(), "mysql", ColumnType(pa.float32(), FLOAT)),
        (mysql.SMALLINT(unsigned=True), "mysql", ColumnType(pa.int32())),
        (mysql.YEAR(), "mysql", ColumnType(pa.int16())),
        (mysql.BIT(1), "mysql", ColumnType(pa.bool_(), UNSIGNED)),
        (mysql.BIT(8), "mysql", ColumnType(pa.int64(), UNSIGNED)),
        (mysql.BIT(64), "mysql", ColumnType(pa.decimal128(20, 0), UNSIGNED)),
        (mysql.TIME(fsp=6), "mysql", ColumnType(pa.time64("us"), TIMEDELTA)),
        (mysql.SET("a", "b"), "mysql", ColumnType(TEXT, TEXT_RENDERING)),
        (mysql.JSON(), "mysql", ColumnType(TEXT, TEXT_RENDERING)),
        (postgresql.MONEY(), "postgresql", ColumnType(pa.decimal128(19, 2), NUMERIC_TEXT)),
        (postgresql.TIME(timezone=True), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (postgresql.UUID(), "postgresql", ColumnType(pa.string(), TEXT_RENDERING)),
        (postgresql.ARRAY(sa.Integer), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (postgresql.JSONB(), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (postgresql.INET(), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (postgresql.INT4RANGE(), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (sa.types.NullType(), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (sa.Numeric(12, 2), "sqlite", ColumnType(pa.decimal128(12, 2), DECIMAL_TEXT)),
        (sa.Numeric(12, 2), "postgresql", ColumnType(pa.decimal128(12, 2), NATIVE)),
    ],
    ids=lambda v: repr(v) if isinstance(v, sa.types.TypeEngine) else None,
)
def test_column_type_says_how_a_column_is_selected(sa_type, dialect_name, expected):
    assert column_type(sa_type, dialect_name) == expected


def test_a_type_sqlalchemy_cannot_name_is_read_as_text():
    class Opaque(sa.types.UserDefinedType):
        cache_ok = True

        def get_col_spec(self):
            return "OPAQUE"

    assert column_type(Opaque(), "postgresql") == ColumnType(TEXT, UNKNOWN_TEXT)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("text", ColumnType(TEXT, TEXT_RENDERING)),
        ("TEXT", ColumnType(TEXT, TEXT_RENDERING)),
        ("decimal(38,30)", ColumnType(pa.decimal128(38, 30), DECIMAL_TEXT)),
        ("numeric( 12 , 2 )", ColumnType(pa.decimal128(12, 2), DECIMAL_TEXT)),
        ("decimal(10)", ColumnType(pa.decimal128(10, 0), DECIMAL_TEXT)),
        ("int8", ColumnType(pa.int8())),
        ("float64", ColumnType(pa.float64(), FLOAT)),
        ("timestamptz", ColumnType(pa.timestamp("us", tz="UTC"), TEXT_VALUE)),
        (pa.int64(), ColumnType(pa.int64())),
        (pa.string(), ColumnType(pa.string(), TEXT_RENDERING)),
        (pa.decimal128(20, 4), ColumnType(pa.decimal128(20, 4), DECIMAL_TEXT)),
    ],
)
def test_declared_column_types(declared, expected):
    assert declared_column_type(declared, "stream 's'") == expected


@pytest.mark.parametrize(
    ("declared", "says"),
    [
        ("decimal(65,30)", "at most 38 digits"),
        (pa.decimal256(50, 2), "at most 38 digits"),
        ("decimal(5,6)", "decimal(5,6)"),
        ("varchar", "unknown column type 'varchar'"),
        ("decimal", "unknown column type"),
    ],
)
def test_a_declared_type_that_cannot_land_everywhere_is_refused(declared, says):
    with pytest.raises(ConfigurationError) as failure:
        declared_column_type(declared, "connector 'c', stream 's', column 'v'")
    assert says in str(failure.value) and "column 'v'" in str(failure.value)
