"""The type matrix's cases: every column type of each database, with edge values.

A case is one table ``tm_<name>`` (``id`` plus one column ``v``) holding the case's values
and a NULL. ``arrow`` is where the column lands on every read path (the README's "Type
mapping" table); ``text`` is the SQL that makes the database print a value (``{}`` is the
column), the reference every landed value is compared with. ``fails`` names the paths
on which a value of the case cannot land in ``arrow``: there the read must stop with a
``DataContractError`` naming connector, stream, column and key; ``override`` is the
``column_types`` declaration that makes those values land exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

ALL = ("sqlalchemy", "adbc", "arrow-odbc", "pyodbc")
TEXT = pa.large_string()


@dataclass(frozen=True)
class Case:
    name: str
    ddl: str
    values: tuple[str, ...]
    arrow: pa.DataType
    text: str | None = None
    fails: tuple[str, ...] = ()
    override: Mapping[str, str] = field(default_factory=dict)
    override_arrow: pa.DataType = TEXT


def _pg_text(column: str) -> str:
    return f"CAST({column} AS TEXT)"


POSTGRESQL = (
    Case("smallint", "smallint", ("-32768", "32767", "0"), pa.int16()),
    Case("integer", "integer", ("-2147483648", "2147483647"), pa.int32()),
    Case("bigint", "bigint", ("-9223372036854775808", "9223372036854775807"), pa.int64()),
    Case("real", "real", ("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "3.4028235e38",
                          "1.4e-45", "0.1", "-1.5", "2.5"), pa.float32()),
    Case("double", "double precision",
         ("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "1e308", "1.7976931348623157e308",
          "5e-324", "0.1", "-1.5"), pa.float64()),
    Case("numeric", "numeric", ("0.1", "-1234567890123456789012345678.0123456789", "0"),
         pa.decimal128(38, 10)),
    Case("numeric_unfit", "numeric", ("'NaN'", "1e40", "0.00000000001"),
         pa.decimal128(38, 10), fails=ALL, override={"v": "text"}),
    Case("numeric_38_10", "numeric(38,10)",
         ("9999999999999999999999999999.9999999999", "-9999999999999999999999999999.9999999999",
          "0.0000000001"), pa.decimal128(38, 10)),
    Case("numeric_5_2", "numeric(5,2)", ("-999.99", "999.99", "0.00"), pa.decimal128(5, 2)),
    Case("numeric_50_20", "numeric(50,20)",
         ("123456789012345678901234567890.12345678901234567890", "-0.00000000000000000001"),
         TEXT),
    Case("numeric_1000", "numeric(1000,0)", ("CAST(repeat('9', 1000) AS numeric)", "1"), TEXT),
    Case("money", "money", ("'-92233720368547758.08'", "'92233720368547758.07'", "0"),
         pa.decimal128(19, 2), text="CAST(CAST({} AS numeric) AS TEXT)"),
    Case("char", "char(5)", ("'ab'", "'😀'", "''", "'abcde'"), pa.string(),
         text="rpad(CAST({} AS TEXT), 5)"),
    Case("varchar", "varchar(10)", ("'ab  '", "'😀😀'", "''", "' '"), pa.string()),
    Case("varchar_unbounded", "varchar", ("'ab  '", "'😀'"), pa.string()),
    Case("text", "text", ("'x'", "'😀 '", "repeat('é', 70000)"), TEXT),
    Case("bytea", "bytea", ("'\\x00ff'", "'\\x'", "CAST(repeat('ab', 5000) AS bytea)"),
         pa.large_binary(), text="encode({}, 'hex')"),
    Case("date", "date", ("'0001-01-01'", "'9999-12-31'", "'1970-01-01'", "'2000-02-29'"),
         pa.date32()),
    Case("date_extreme", "date", ("'4713-01-01 BC'", "'5874897-12-31'"), pa.date32()),
    Case("date_infinity", "date", ("'infinity'", "'-infinity'"), pa.date32(), fails=ALL,
         override={"v": "text"}),
    Case("time", "time", ("'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'"), pa.time64("us")),
    Case("time_24", "time", ("'24:00:00'",), pa.time64("us")),
    Case("timetz", "time with time zone", ("'00:00:00+14'", "'23:59:59.999999-12'"), TEXT),
    Case("timestamp", "timestamp",
         ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2000-02-29 12:00:00.000001'"),
         pa.timestamp("us")),
    Case("timestamp_extreme", "timestamp",
         ("'4713-01-01 00:00:00 BC'", "'294246-12-31 23:59:59.999999'"), pa.timestamp("us")),
    Case("timestamp_beyond", "timestamp", ("'294276-12-31 23:59:59.999999'",),
         pa.timestamp("us"), fails=ALL, override={"v": "text"}),
    Case("timestamp_infinity", "timestamp", ("'infinity'",), pa.timestamp("us"), fails=ALL,
         override={"v": "text"}),
    Case("timestamptz", "timestamp with time zone",
         ("'0001-01-01 00:00:00+00'", "'9999-12-31 23:59:59.999999+00'",
          "'2024-06-01 12:00:00+05:30'"), pa.timestamp("us", tz="UTC")),
    Case("interval", "interval",
         ("'1 year 2 mons 3 days 04:05:06.789'", "'-178000000 years'", "'00:00:00'",
          "'1 mon'", "'-1 day +02:00:00'"), TEXT),
    Case("boolean", "boolean", ("true", "false"), pa.bool_()),
    Case("bit", "bit(3)", ("B'101'", "B'000'"), TEXT),
    Case("varbit", "bit varying", ("B'1'", "B''"), TEXT),
    Case("json", "json", ("'{\"a\": 1,  \"b\": [1, 2]}'", "'null'", "'\"😀\"'"), TEXT),
    Case("jsonb", "jsonb", ("'{\"a\": 1,  \"b\": [1, 2]}'", "'[]'"), TEXT),
    Case("uuid", "uuid", ("'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
                          "'00000000-0000-0000-0000-000000000000'"), pa.string()),
    Case("enum", "{schema}.tm_mood", ("'sad'", "'ok'"), TEXT),
    Case("int_array", "integer[]", ("'{1,2,NULL}'", "'{}'", "'{{1,2},{3,4}}'"), TEXT),
    Case("text_array", "text[]", ("'{\"a b\",NULL,\"😀\"}'",), TEXT),
    Case("xml", "xml", ("'<a>é</a>'",), TEXT),
    Case("inet", "inet", ("'192.168.0.1/24'", "'::1'"), TEXT),
    Case("cidr", "cidr", ("'10.0.0.0/8'",), TEXT),
    Case("macaddr", "macaddr", ("'08:00:2b:01:02:03'",), TEXT),
    Case("point", "point", ("'(1,2)'",), TEXT),
    Case("int4range", "int4range", ("'[1,5)'", "'empty'"), TEXT),
)

MARIADB = (
    Case("tinyint", "TINYINT", ("-128", "127", "0"), pa.int8()),
    Case("tinyint_unsigned", "TINYINT UNSIGNED", ("0", "255"), pa.uint8()),
    Case("smallint", "SMALLINT", ("-32768", "32767"), pa.int16()),
    Case("smallint_unsigned", "SMALLINT UNSIGNED", ("0", "65535"), pa.int32()),
    Case("mediumint", "MEDIUMINT", ("-8388608", "8388607"), pa.int32()),
    Case("mediumint_unsigned", "MEDIUMINT UNSIGNED", ("0", "16777215"), pa.int64()),
    Case("int", "INT", ("-2147483648", "2147483647"), pa.int32()),
    Case("int_unsigned", "INT UNSIGNED", ("0", "4294967295"), pa.int64()),
    Case("bigint", "BIGINT", ("-9223372036854775808", "9223372036854775807"), pa.int64()),
    Case("bigint_unsigned", "BIGINT UNSIGNED", ("0", "18446744073709551615"),
         pa.decimal128(20, 0)),
    Case("boolean", "BOOLEAN", ("1", "0"), pa.bool_()),
    Case("boolean_wide", "BOOLEAN", ("2", "-1"), pa.bool_(), fails=ALL,
         override={"v": "int8"}, override_arrow=pa.int8()),
    Case("float", "FLOAT", ("-1.5", "2.5", "3.40282e38", "-3.40282e38", "1.17549e-38", "0",
                            "0.1"), pa.float32()),
    Case("double", "DOUBLE", ("1e308", "-1.7976931348623157e308", "2.2250738585072014e-308",
                              "0.1", "-1.5", "2.5"), pa.float64()),
    Case("real", "REAL", ("0.1", "-1.5", "2.5", "1e308"), pa.float64()),
    Case("decimal_10_2", "DECIMAL(10,2)", ("-99999999.99", "99999999.99", "0.10"),
         pa.decimal128(10, 2)),
    Case("decimal_38_10", "DECIMAL(38,10)",
         ("9999999999999999999999999999.9999999999", "-0.0000000001"), pa.decimal128(38, 10)),
    Case("decimal_65_30", "DECIMAL(65,30)",
         ("99999999999999999999999999999999999.999999999999999999999999999999", "0.1",
          "-0.000000000000000000000000000001"), TEXT),
    Case("char", "CHAR(5)", ("'ab'", "'😀'", "''", "'abcde'"), pa.string()),
    Case("varchar", "VARCHAR(10)", ("'ab  '", "'😀😀'", "''", "' '"), pa.string()),
    Case("nchar", "NATIONAL CHAR(3)", ("'é'", "'abc'"), pa.string()),
    Case("nvarchar", "NATIONAL VARCHAR(10)", ("'é  '",), pa.string()),
    Case("tinytext", "TINYTEXT", ("'x'", "'😀'"), pa.string()),
    Case("text", "TEXT", ("'x'", "'😀 '", "REPEAT('é', 30000)"), TEXT),
    Case("longtext", "LONGTEXT", ("REPEAT('ab', 70000)", "''"), TEXT),
    Case("binary", "BINARY(4)", ("X'00ff'", "X''"), pa.large_binary(), text="HEX({})"),
    Case("varbinary", "VARBINARY(10)", ("X'00ff'", "X''"), pa.large_binary(), text="HEX({})"),
    Case("blob", "LONGBLOB", ("X'00ff'", "REPEAT(X'ab', 70000)"), pa.large_binary(),
         text="HEX({})"),
    Case("date", "DATE", ("'1000-01-01'", "'9999-12-31'", "'2000-02-29'"), pa.date32()),
    Case("time", "TIME(6)", ("'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'"),
         pa.time64("us")),
    Case("time_range", "TIME(6)", ("'-838:59:59'", "'838:59:59'"), pa.time64("us"),
         fails=ALL, override={"v": "text"}),
    Case("datetime", "DATETIME(6)",
         ("'1000-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2000-02-29 12:00:00.5'"),
         pa.timestamp("us")),
    Case("timestamp", "TIMESTAMP(6) NULL",
         ("'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999999'"), pa.timestamp("us")),
    Case("year", "YEAR", ("1901", "2155", "0"), pa.int16()),
    Case("bit1", "BIT(1)", ("b'1'", "b'0'"), pa.bool_(), text="CAST(CAST({} AS UNSIGNED) AS CHAR)"),
    Case("bit8", "BIT(8)", ("b'1'", "b'11111111'"), pa.int64(),
         text="CAST(CAST({} AS UNSIGNED) AS CHAR)"),
    Case("bit64", "BIT(64)", ("b'1'", "0xFFFFFFFFFFFFFFFF"), pa.decimal128(20, 0),
         text="CAST(CAST({} AS UNSIGNED) AS CHAR)"),
    Case("json", "JSON", ("'{\"a\": 1,  \"b\": [1, 2]}'", "'null'"), TEXT),
    Case("enum", "ENUM('sad','ok')", ("'sad'", "'ok'"), pa.string()),
    Case("set", "SET('a','b','c')", ("'a,c'", "''"), pa.string()),
    Case("uuid", "UUID", ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",), pa.string()),
    Case("inet6", "INET6", ("'::1'", "'2001:db8::ff00:42:8329'"), pa.string()),
)

SQLITE = (
    Case("integer", "INTEGER", ("-9223372036854775808", "9223372036854775807", "0"),
         pa.int64()),
    Case("real", "REAL", ("1e308", "5e-324", "0.1", "9e999", "-9e999", "-1.5", "2.5"),
         pa.float64(), text="quote({})"),
    Case("numeric_10_2", "NUMERIC(10,2)", ("1.10", "-99999999.99", "0"), pa.decimal128(10, 2)),
    Case("numeric", "NUMERIC", ("0.1", "123"), pa.decimal128(38, 10)),
    Case("text", "TEXT", ("'x'", "'😀'", "'ab  '"), TEXT),
    Case("varchar", "VARCHAR(10)", ("'ab  '", "'😀😀'", "''"), pa.string()),
    Case("char", "CHAR(5)", ("'ab'", "'😀'"), pa.string()),
    Case("nchar", "NCHAR(3)", ("'é'",), pa.string()),
    Case("blob", "BLOB", ("X'00ff'", "X''"), pa.large_binary(), text="hex({})"),
    Case("date", "DATE", ("'0001-01-01'", "'9999-12-31'", "'2000-02-29'"), pa.date32()),
    Case("datetime", "DATETIME",
         ("'0001-01-01 00:00:00.000000'", "'9999-12-31 23:59:59.999999'",
          "'2000-02-29 12:00:00.000001'"), pa.timestamp("us")),
    Case("time", "TIME", ("'00:00:00.000000'", "'23:59:59.999999'"), pa.time64("us")),
    Case("boolean", "BOOLEAN", ("1", "0"), pa.bool_()),
    Case("json", "JSON", ("'{\"a\": 1,  \"b\": [1, 2]}'", "'null'"), TEXT),
    Case("integer_holding_text", "INTEGER", ("1", "'abc'"), pa.int64(), fails=ALL,
         override={"v": "text"}),
)

CASES: Mapping[str, tuple[Case, ...]] = {
    "postgresql": POSTGRESQL, "mariadb": MARIADB, "sqlite": SQLITE,
}
PATHS: Mapping[str, tuple[str, ...]] = {
    "postgresql": ALL,
    "mariadb": ("sqlalchemy", "arrow-odbc", "pyodbc"),
    "sqlite": ("sqlalchemy", "arrow-odbc", "pyodbc"),
}
TEXT_SQL = {"postgresql": _pg_text, "mariadb": lambda c: f"CAST({c} AS CHAR)",
            "sqlite": lambda c: f"CAST({c} AS TEXT)"}
