"""ODBC catalog types into exact Arrow types, and the converters for legacy types."""

from __future__ import annotations

import datetime as dt
import struct
import uuid

import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors.odbc import _types
from connectors.odbc._connector import _guid_converter, _transport_field
from connectors.odbc._types import (
    DECIMAL_TEXT,
    NATIVE,
    NUMERIC_TEXT,
    OUTPUT_CONVERTERS,
    TEXT_VALUE,
    UNKNOWN_TEXT,
    ColumnType,
    ODBCColumn,
    column_type,
    datetimeoffset,
    graphic,
    graphic_decoder,
    resolve,
    sqlalchemy_type,
)
from connectors.sql._types import TEXT, TEXT_RENDERING, UNCONSTRAINED_DECIMAL, UNSIGNED

UTC = dt.UTC


def col(sql_type, type_name, size=None, digits=None):
    return ODBCColumn("c", sql_type, type_name, size, digits)


@pytest.mark.parametrize(
    ("column", "family", "expected"),
    [
        # Decimals stay exact at their declared precision.
        (col(3, "decimal", 12, 2), "mssql", ColumnType(pa.decimal128(12, 2))),
        (col(2, "numeric", 12, 2), "postgresql", ColumnType(pa.decimal128(12, 2))),
        (col(3, "DECIMAL", 31, 5), "db2", ColumnType(pa.decimal128(31, 5))),
        (col(2, "numeric", 38, 0), "postgresql", ColumnType(pa.decimal128(38, 0))),
        (col(2, "numeric", 10, None), "mysql", ColumnType(pa.decimal128(10, 0))),
        (col(3, "NUMBER", 10, -2), "oracle", ColumnType(pa.decimal128(10, 0))),
        # Wider than 38 digits (more than DuckDB holds): the database's text.
        (col(2, "numeric", 39, 4), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (col(3, "decimal", 65, 30), "mysql", ColumnType(TEXT, TEXT_RENDERING)),
        (col(2, "numeric", 1000, 4), "postgresql", ColumnType(TEXT, TEXT_RENDERING)),
        (col(2, "numeric"), "postgresql", ColumnType(UNCONSTRAINED_DECIMAL)),
        (col(3, "DECFLOAT", 0, 0), "ansi", ColumnType(UNCONSTRAINED_DECIMAL)),
        # Money is an exact decimal, however the driver reports it.
        (col(3, "money", 19, 4), "mssql", ColumnType(pa.decimal128(19, 4), NATIVE)),
        (col(3, "smallmoney", 10, 4), "mssql", ColumnType(pa.decimal128(10, 4), NATIVE)),
        (col(3, "MONEY", 19, 4), "mssql", ColumnType(pa.decimal128(19, 4), NATIVE)),
        (col(12, "money"), "sqlite", ColumnType(pa.decimal128(19, 4), DECIMAL_TEXT)),
        (col(12, "smallmoney"), "sqlite", ColumnType(pa.decimal128(10, 4), DECIMAL_TEXT)),
        (col(8, "money", 15), "postgresql", ColumnType(pa.decimal128(19, 2), NUMERIC_TEXT)),
        (col(12, "money"), "postgresql", ColumnType(pa.decimal128(19, 2), NUMERIC_TEXT)),
        # GUIDs are canonical text.
        (col(-11, "uniqueidentifier", 36), "mssql", ColumnType(pa.string(), guid=True)),
        # Date and time, microseconds kept.
        (col(-155, "datetimeoffset", 34, 7), "mssql", ColumnType(pa.timestamp("us", tz="UTC"))),
        (col(93, "datetime2", 27, 7), "mssql", ColumnType(pa.timestamp("us"))),
        (col(93, "TIMESTAMP", 26, 6), "db2", ColumnType(pa.timestamp("us"))),
        (col(93, "timestamp", 26, 6), "postgresql", ColumnType(pa.timestamp("us"))),
        (col(93, "timestamptz", 35, 6), "postgresql", ColumnType(pa.timestamp("us", tz="UTC"))),
        (col(92, "time", 8), "postgresql", ColumnType(pa.time64("us"), TEXT_VALUE)),
        (col(-154, "time", 16, 7), "mssql", ColumnType(pa.time64("us"))),
        (col(91, "date", 10), "postgresql", ColumnType(pa.date32())),
        (col(9, "DATE", 10), "ansi", ColumnType(pa.date32())),
        # Floating point: ODBC's FLOAT is double precision.
        (col(8, "double precision", 15), "postgresql", ColumnType(pa.float64())),
        (col(8, "DOUBLE", 53), "db2", ColumnType(pa.float64())),
        (col(6, "float", 53), "mssql", ColumnType(pa.float64())),
        (col(7, "real", 24), "mssql", ColumnType(pa.float32())),
        (col(7, "REAL"), "db2", ColumnType(pa.float32())),
        # Text: CHAR, NCHAR and DB2 GRAPHIC are plain strings; long text is large.
        (col(1, "char", 10), "postgresql", ColumnType(pa.string())),
        (col(12, "varchar", 255), "mysql", ColumnType(pa.string())),
        (col(-8, "nchar", 10), "mssql", ColumnType(pa.string())),
        (col(-9, "nvarchar", 100), "mssql", ColumnType(pa.string())),
        (col(-95, "GRAPHIC", 10), "db2", ColumnType(pa.string())),
        (col(-96, "VARGRAPHIC", 100), "db2", ColumnType(pa.string())),
        (col(-1, "text"), "postgresql", ColumnType(pa.large_string())),
        (col(-10, "ntext"), "mssql", ColumnType(pa.large_string())),
        (col(-152, "xml"), "mssql", ColumnType(pa.large_string())),
        (col(-97, "LONG VARGRAPHIC"), "db2", ColumnType(pa.large_string())),
        (col(-99, "CLOB", 1048576), "db2", ColumnType(pa.large_string())),
        (col(-350, "DBCLOB", 1048576), "db2", ColumnType(pa.large_string())),
        # Binary stays binary, including DB2 CHAR FOR BIT DATA.
        (col(-2, "CHAR () FOR BIT DATA", 16), "db2", ColumnType(pa.large_binary())),
        (col(-2, "binary", 16), "mssql", ColumnType(pa.large_binary())),
        (col(-3, "varbinary", 100), "mssql", ColumnType(pa.large_binary())),
        (col(-4, "bytea"), "postgresql", ColumnType(pa.large_binary())),
        (col(-4, "image"), "mssql", ColumnType(pa.large_binary())),
        (col(-98, "BLOB", 1048576), "db2", ColumnType(pa.large_binary())),
        # Integers at their width; unsigned ones one size up.
        (col(-6, "tinyint", 3), "mssql", ColumnType(pa.int16())),
        (col(-6, "tinyint unsigned", 3), "mysql", ColumnType(pa.uint8())),
        (col(-6, "tinyint", 3), "mysql", ColumnType(pa.int8())),
        (col(5, "smallint", 5), "postgresql", ColumnType(pa.int16())),
        (col(5, "smallint unsigned", 5), "mysql", ColumnType(pa.int32())),
        (col(4, "integer", 10), "postgresql", ColumnType(pa.int32())),
        (col(4, "int", 10), "mysql", ColumnType(pa.int32())),
        (col(4, "int unsigned", 10), "mysql", ColumnType(pa.int64(), TEXT_VALUE)),
        (col(-5, "bigint", 19), "mssql", ColumnType(pa.int64())),
        (col(-5, "BIGINT UNSIGNED", 20), "mysql",
         ColumnType(pa.decimal128(20, 0), TEXT_VALUE)),
        # Every SQLite integer is 64-bit, read as text: pyodbc would cut it to 32 bits,
        # and the driver turns text stored in an INTEGER column into NULL.
        (col(-6, "tinyint"), "sqlite", ColumnType(pa.int64(), TEXT_VALUE)),
        (col(5, "smallint"), "sqlite", ColumnType(pa.int64(), TEXT_VALUE)),
        (col(4, "integer"), "sqlite", ColumnType(pa.int64(), TEXT_VALUE)),
        (col(-5, "bigint"), "sqlite", ColumnType(pa.int64(), TEXT_VALUE)),
        # Booleans.
        (col(-7, "bit", 1), "mssql", ColumnType(pa.bool_())),
        (col(-7, "bool", 1), "postgresql", ColumnType(pa.bool_())),
        # SQLite declarations: decimals are read as text and parsed exactly.
        (col(8, "numeric(12,2)"), "sqlite", ColumnType(pa.decimal128(12, 2), DECIMAL_TEXT)),
        (col(8, "NUMERIC ( 12 , 2 )"), "sqlite",
         ColumnType(pa.decimal128(12, 2), DECIMAL_TEXT)),
        (col(8, "DECIMAL(10)"), "sqlite", ColumnType(pa.decimal128(10, 0), DECIMAL_TEXT)),
        (col(8, "decimal(50,10)"), "sqlite", ColumnType(TEXT, TEXT_RENDERING)),
        (col(8, "NUMERIC"), "sqlite", ColumnType(UNCONSTRAINED_DECIMAL, DECIMAL_TEXT)),
        # SQLite floats and times are read as their text.
        (col(8, "REAL", 53), "sqlite", ColumnType(pa.float64(), TEXT_VALUE)),
        (col(8, "double", 53), "sqlite", ColumnType(pa.float64(), TEXT_VALUE)),
        (col(7, "real"), "sqlite", ColumnType(pa.float64(), TEXT_VALUE)),
        (col(92, "time"), "sqlite", ColumnType(pa.time64("us"), TEXT_VALUE)),
        (col(12, "varchar(20)"), "sqlite", ColumnType(pa.string())),
        # The SQLite declaration is read only on SQLite.
        (col(8, "numeric(12,2)"), "ansi", ColumnType(pa.float64())),
    ],
)
def test_column_type(column, family, expected):
    assert column_type(column, family) == expected
    assert resolve(column, family) == (expected, False)


@pytest.mark.parametrize(
    ("column", "family"),
    [
        (col(-150, "sql_variant", 8000), "mssql"),
        (col(-360, "DECFLOAT", 34), "db2"),
        (col(-151, "geometry"), "mssql"),
        (col(1111, "interval"), "ansi"),
    ],
)
def test_unknown_types_fall_back_to_text(column, family):
    assert column_type(column, family) is None
    assert resolve(column, family) == (ColumnType(pa.large_string(), UNKNOWN_TEXT), True)


def declared(sql_type, type_name, declaration, size=None, digits=None):
    return ODBCColumn("c", sql_type, type_name, size, digits, declared=declaration)


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        # psqlODBC reports an unconstrained numeric as numeric(28,6): the declaration wins.
        (declared(2, "numeric", "numeric", 28, 6), ColumnType(UNCONSTRAINED_DECIMAL)),
        (declared(2, "numeric", "numeric(28,6)", 28, 6), ColumnType(pa.decimal128(28, 6))),
        (declared(2, "numeric", "numeric(50,20)", 50, 20), ColumnType(TEXT, TEXT_RENDERING)),
        (declared(8, "money", "money"), ColumnType(pa.decimal128(19, 2), NUMERIC_TEXT)),
        # Dates and timestamps as text: ODBC's date struct cuts years and infinity.
        (declared(91, "date", "date"), ColumnType(pa.date32(), TEXT_VALUE)),
        (declared(93, "timestamp", "timestamp(3) without time zone"),
         ColumnType(pa.timestamp("us"), TEXT_VALUE)),
        (declared(93, "timestamptz", "timestamp with time zone"),
         ColumnType(pa.timestamp("us", tz="UTC"), TEXT_VALUE)),
        (declared(92, "time", "time without time zone"), ColumnType(pa.time64("us"),
                                                                    TEXT_VALUE)),
        (declared(4, "int4", "integer"), ColumnType(pa.int32())),
        (declared(12, "varchar", "character varying(10)"), ColumnType(pa.string())),
        (declared(-11, "uuid", "uuid"), ColumnType(pa.string(), guid=True)),
        (declared(4, "oid", "oid"), ColumnType(pa.int64(), TEXT_VALUE)),
        # No exact Arrow type: the database's own text.
        *[(declared(12, name, name), ColumnType(TEXT, TEXT_RENDERING))
          for name in ("interval", "integer[]", "text[]", "time with time zone", "json",
                       "jsonb", "inet", "bit(3)", "int4range", "point", "mood", "xml")],
    ],
)
def test_postgresql_types_follow_the_declaration(column, expected):
    assert column_type(column, "postgresql") == expected


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (declared(-6, "TINYINT", "tinyint(1)", 3), ColumnType(pa.bool_(), _types.BOOL_FROM_INT)),
        (declared(-6, "TINYINT", "tinyint(4)", 3), ColumnType(pa.int8())),
        (declared(-6, "TINYINT UNSIGNED", "tinyint(3) unsigned", 3), ColumnType(pa.uint8())),
        (declared(-7, "BIT", "bit(1)", 1), ColumnType(pa.bool_(), UNSIGNED)),
        (declared(-2, "BIT", "bit(64)", 9), ColumnType(pa.decimal128(20, 0), UNSIGNED)),
        (declared(-2, "BIT", "bit(8)", 2), ColumnType(pa.int64(), UNSIGNED)),
        (declared(-4, "UUID", "uuid"), ColumnType(pa.string(), TEXT_RENDERING)),
        (declared(-4, "INET6", "inet6"), ColumnType(pa.string(), TEXT_RENDERING)),
        (declared(7, "FLOAT", "float", 7), ColumnType(pa.float32())),
        (declared(3, "DECIMAL", "decimal(65,30)", 65, 30), ColumnType(TEXT, TEXT_RENDERING)),
    ],
)
def test_mysql_types(column, expected):
    assert column_type(column, "mysql") == expected


def test_timestamptz_by_name_only_on_postgresql():
    assert column_type(col(93, "timestamptz"), "mysql") == ColumnType(pa.timestamp("us"))


@pytest.mark.parametrize(
    ("kind", "sa_class", "attributes"),
    [
        (ColumnType(pa.bool_()), sa.Boolean, {}),
        (ColumnType(pa.int16()), sa.Integer, {}),
        (ColumnType(pa.int32()), sa.Integer, {}),
        (ColumnType(pa.int64()), sa.BigInteger, {}),
        (ColumnType(pa.uint64()), sa.BigInteger, {}),
        (ColumnType(pa.decimal128(12, 2)), sa.Numeric, {"precision": 12, "scale": 2}),
        (ColumnType(pa.decimal256(50, 4)), sa.Numeric, {"precision": 50, "scale": 4}),
        (ColumnType(pa.float32()), sa.Float, {}),
        (ColumnType(pa.float64()), sa.Float, {}),
        (ColumnType(pa.timestamp("us")), sa.DateTime, {"timezone": False}),
        (ColumnType(pa.timestamp("us", tz="UTC")), sa.DateTime, {"timezone": True}),
        (ColumnType(pa.date32()), sa.Date, {}),
        (ColumnType(pa.time64("us")), sa.Time, {}),
        (ColumnType(pa.large_binary()), sa.LargeBinary, {}),
        (ColumnType(pa.binary()), sa.LargeBinary, {}),
        (ColumnType(pa.string(), guid=True), sa.String, {}),
        (ColumnType(pa.large_string(), UNKNOWN_TEXT), sa.String, {}),
    ],
)
def test_sqlalchemy_type(kind, sa_class, attributes):
    result = sqlalchemy_type(kind)
    assert type(result) is sa_class
    for name, value in attributes.items():
        assert getattr(result, name) == value


def offset_bytes(*fields):
    return struct.pack("<6hI2h", *fields)


@pytest.mark.parametrize(
    ("fields", "expected_utc"),
    [
        ((2024, 1, 2, 3, 4, 5, 123456000, 2, 0), dt.datetime(2024, 1, 2, 1, 4, 5, 123456)),
        ((2024, 1, 2, 3, 4, 5, 0, 0, 0), dt.datetime(2024, 1, 2, 3, 4, 5)),
        ((2024, 1, 2, 3, 4, 5, 999, -5, 0), dt.datetime(2024, 1, 2, 8, 4, 5)),
        ((2024, 1, 2, 3, 4, 5, 1000, -5, -30), dt.datetime(2024, 1, 2, 8, 34, 5, 1)),
        ((2024, 12, 31, 23, 30, 0, 0, -3, -30), dt.datetime(2025, 1, 1, 3, 0, 0)),
        ((2024, 3, 1, 0, 15, 0, 0, 5, 45), dt.datetime(2024, 2, 29, 18, 30, 0)),
        ((1, 1, 1, 0, 0, 0, 0, 0, 0), dt.datetime(1, 1, 1)),
        (
            (9999, 12, 31, 23, 59, 59, 999999900, 0, 0),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        ),
    ],
)
def test_datetimeoffset_decodes_the_odbc_struct(fields, expected_utc):
    value = datetimeoffset(offset_bytes(*fields))
    assert value == expected_utc.replace(tzinfo=UTC)
    assert value.utcoffset() == dt.timedelta(hours=fields[7], minutes=fields[8])
    assert value.replace(tzinfo=None) == dt.datetime(*fields[:6], fields[6] // 1000)


def test_datetimeoffset_keeps_the_sources_offset():
    value = datetimeoffset(offset_bytes(2024, 6, 1, 12, 0, 0, 0, -5, -30))
    assert value.tzinfo == dt.timezone(-dt.timedelta(hours=5, minutes=30))
    assert value.isoformat() == "2024-06-01T12:00:00-05:30"


def test_datetimeoffset_passes_none_through():
    assert datetimeoffset(None) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ABC ü".encode("utf-16-be"), "ABC ü"),
        ("A".encode("utf-16-be"), "A"),
        ("日本語".encode("utf-16-be"), "日本語"),
        ("東京都 千代田区".encode("utf-16-be"), "東京都 千代田区"),
        ("Grüße 日本".encode("utf-16-be"), "Grüße 日本"),
        (b"", ""),
    ],
)
def test_graphic_decodes_big_endian_utf16(raw, expected):
    assert graphic(raw) == expected


@pytest.mark.parametrize("text", ["ABC ü", "A", "Grüße 日本", "一月"])
def test_graphic_decoder_for_little_endian_clients(text):
    assert graphic_decoder("little")(text.encode("utf-16-le")) == text


@pytest.mark.parametrize("text", ["一", "一月", "第一"])
def test_graphic_decodes_big_endian_cjk_with_low_zero_bytes(text):
    assert graphic(text.encode("utf-16-be")) == text


def test_graphic_passes_none_through():
    assert graphic(None) is None


def test_output_converters_per_family():
    assert OUTPUT_CONVERTERS["mssql"] == {-155: datetimeoffset}
    assert OUTPUT_CONVERTERS["db2"] == {-95: graphic, -96: graphic, -97: graphic,
                                        -350: graphic}
    assert set(OUTPUT_CONVERTERS) == {"mssql", "db2"}
    assert OUTPUT_CONVERTERS["mssql"][_types.SQL_SS_TIMESTAMPOFFSET] is datetimeoffset
    assert OUTPUT_CONVERTERS["db2"][_types.SQL_DBCLOB] is graphic


@pytest.mark.parametrize(
    ("arrow_type", "how", "expected"),
    [
        (pa.large_string(), NATIVE, pa.string()),
        (pa.large_binary(), NATIVE, pa.binary()),
        (pa.decimal256(50, 4), NATIVE, pa.string()),
        (pa.decimal128(12, 2), DECIMAL_TEXT, pa.string()),
        (pa.float64(), TEXT_VALUE, pa.string()),
        (pa.large_string(), TEXT_RENDERING, pa.string()),
        (pa.uint64(), UNSIGNED, pa.string()),
        (pa.bool_(), _types.BOOL_FROM_INT, pa.int64()),
        (pa.timestamp("us", tz="UTC"), NATIVE, pa.timestamp("us")),
        (pa.timestamp("ns", tz="Europe/Paris"), NATIVE, pa.timestamp("ns")),
        (pa.timestamp("ms", tz="+02:00"), NATIVE, pa.timestamp("ms")),
        (pa.timestamp("us"), NATIVE, pa.timestamp("us")),
        (pa.decimal128(12, 2), NATIVE, pa.decimal128(12, 2)),
        (pa.string(), NATIVE, pa.string()),
        (pa.binary(), NATIVE, pa.binary()),
        (pa.int16(), NATIVE, pa.int16()),
        (pa.uint64(), NATIVE, pa.string()),
        # MariaDB's driver fills single-precision buffers with zeros for some values.
        (pa.float32(), NATIVE, pa.float64()),
        (pa.bool_(), NATIVE, pa.bool_()),
        (pa.date32(), NATIVE, pa.date32()),
        (pa.time64("us"), NATIVE, pa.time64("us")),
    ],
)
def test_transport_field(arrow_type, how, expected):
    field = pa.field("Order Total", arrow_type, nullable=False, metadata={b"k": b"v"})
    out = _transport_field(field, how)
    assert out.type == expected
    assert out.name == "Order Total"
    assert out.nullable is False
    assert out.metadata == {b"k": b"v"}


def test_transport_field_leaves_native_types_untouched():
    field = pa.field("id", pa.int64())
    assert _transport_field(field) is field


def test_guid_converter_lowercases_strings_and_uuids():
    convert = _guid_converter(pa.field("id", pa.string()))
    values = [
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
        None,
        "already-lower-0000",
    ]
    out = convert(values)
    assert out.type == pa.string()
    assert out.to_pylist() == [
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        None,
        "already-lower-0000",
    ]


def test_guid_converter_on_an_empty_chunk():
    out = _guid_converter(pa.field("id", pa.string()))([])
    assert out.to_pylist() == []
    assert out.type == pa.string()
