"""Chunk queries as each database family behind an ODBC driver receives them."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from connectors import ConfigurationError
from connectors.odbc._dialects import FAMILIES, ANSIDialect, compile_sql, dialect_for, family_of
from connectors.sql._keyset import chunk_select


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("PostgreSQL", "postgresql"),
        ("PostgreSQL Unicode", "postgresql"),
        ("MariaDB", "mysql"),
        ("MySQL", "mysql"),
        ("MySQL ODBC 8.0 Unicode Driver", "mysql"),
        ("SQLite", "sqlite"),
        ("SQLite3", "sqlite"),
        ("Microsoft SQL Server", "mssql"),
        ("ODBC Driver 18 for SQL Server", "mssql"),
        ("SQLServer", "mssql"),
        ("FreeTDS", "mssql"),
        ("Sybase", "mssql"),
        ("Adaptive Server Enterprise", "mssql"),
        ("Oracle", "oracle"),
        ("Oracle in OraClient19Home1", "oracle"),
        ("DB2/LINUXX8664", "db2"),
        ("DB2/NT64", "db2"),
        ("DB2/400 SQL", "db2"),
        ("AS/400", "db2"),
        ("AS400", "db2"),
        ("iSeries Access ODBC Driver", "db2"),
        ("IBM i Access ODBC Driver", "db2"),
        ("Informix", "ansi"),
        ("IBM INFORMIX ODBC DRIVER", "ansi"),
        ("Teradata", "ansi"),
        ("", "ansi"),
    ],
)
def test_family_of_dbms_and_driver_names(name, family):
    assert family_of(name) == family


def test_family_of_none_is_ansi():
    assert family_of(None) == "ansi"


@pytest.mark.parametrize("family", ["teradata", "db2/400", "", "PostgreSQL"])
def test_dialect_for_unknown_family_raises(family):
    with pytest.raises(ConfigurationError, match=f"unknown database family {family!r}"):
        dialect_for(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_compiles_with_qmark_parameters(family):
    dialect = dialect_for(family)
    assert dialect.paramstyle == "qmark"
    assert dialect.positional


@pytest.mark.parametrize(
    ("family", "name"),
    [
        ("postgresql", "postgresql"),
        ("mysql", "mysql"),
        ("sqlite", "sqlite"),
        ("mssql", "mssql"),
        ("oracle", "oracle"),
        ("db2", "db2"),
        ("ansi", "ansi"),
    ],
)
def test_dialect_names(family, name):
    assert dialect_for(family).name == name


@pytest.mark.parametrize("family", ["db2", "ansi"])
def test_db2_and_unknown_databases_use_the_ansi_dialect(family):
    assert isinstance(dialect_for(family), ANSIDialect)


def test_db2_dialect_is_a_fresh_instance_and_leaves_ansi_named_ansi():
    db2 = dialect_for("db2")
    assert db2 is not dialect_for("db2")
    assert dialect_for("ansi").name == "ansi"
    assert ANSIDialect.name == "ansi"


ORDER_LINES = sa.Table(
    "ORDER LINES",
    sa.MetaData(),
    sa.Column("id", sa.Integer),
    sa.Column("updated at", sa.DateTime),
    sa.Column("amt", sa.Numeric(12, 2)),
    schema="my schema",
)
UPDATED_AT = ORDER_LINES.c["updated at"]
START, END = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)
LAST = dt.datetime(2024, 1, 2, 3, 4, 5, 123456)


def chunk(limit=100):
    t = ORDER_LINES
    return chunk_select(
        t, [t.c.id, UPDATED_AT, t.c.amt], [UPDATED_AT, t.c.id], limit=limit,
        after=[LAST, 7], cursor=UPDATED_AT, window=(START, END),
    )


def flat(sql):
    return " ".join(sql.split())


# How each family spells "my schema"."ORDER LINES"."updated at".
QUOTED_COLUMN = {
    "postgresql": '"my schema"."ORDER LINES"."updated at"',
    "sqlite": '"my schema"."ORDER LINES"."updated at"',
    "oracle": '"my schema"."ORDER LINES"."updated at"',
    "db2": '"my schema"."ORDER LINES"."updated at"',
    "ansi": '"my schema"."ORDER LINES"."updated at"',
    "mysql": "`my schema`.`ORDER LINES`.`updated at`",
    "mssql": "[my schema].[ORDER LINES].[updated at]",
}
QUOTED_TABLE = {
    "postgresql": '"my schema"."ORDER LINES"',
    "sqlite": '"my schema"."ORDER LINES"',
    "oracle": '"my schema"."ORDER LINES"',
    "db2": '"my schema"."ORDER LINES"',
    "ansi": '"my schema"."ORDER LINES"',
    "mysql": "`my schema`.`ORDER LINES`",
    "mssql": "[my schema].[ORDER LINES]",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_names_are_quoted_in_the_familys_style(family):
    sql, _ = compile_sql(chunk(), dialect_for(family))
    sql = flat(sql)
    column, table = QUOTED_COLUMN[family], QUOTED_TABLE[family]
    assert f"FROM {table} WHERE" in sql
    assert f"{table}.id" in sql
    assert f"{table}.amt" in sql
    assert f"ORDER BY {column}, {table}.id" in sql
    # select list, >=, <, IS NOT NULL, twice in the keyset predicate, ORDER BY
    assert sql.count(column) == 7
    other_quotes = {"mssql": '"`', "mysql": '"[]'}.get(family, "`[]")
    assert not any(q in sql for q in other_quotes)


# Paging with literal values: keyword and position per family.
PAGING = {
    "postgresql": (r" LIMIT 100$", "LIMIT"),
    "mysql": (r" LIMIT 100$", "LIMIT"),
    "sqlite": (r" LIMIT 100 OFFSET 0$", "LIMIT"),
    "mssql": (r"^SELECT TOP 100 ", "TOP"),
    "oracle": (r"\.id FETCH FIRST 100 ROWS ONLY$", "FETCH FIRST"),
    "db2": (r"\.id FETCH FIRST 100 ROWS ONLY$", "FETCH FIRST"),
    "ansi": (r"\.id FETCH FIRST 100 ROWS ONLY$", "FETCH FIRST"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_chunks_are_paged_in_the_familys_syntax(family):
    sql, params = compile_sql(chunk(), dialect_for(family), literal=True)
    sql = flat(sql)
    shape, keyword = PAGING[family]
    assert re.search(shape, sql), sql
    assert params == []
    for other in {"LIMIT", "TOP", "FETCH FIRST"} - {keyword}:
        assert f" {other} " not in f" {sql} ", (other, sql)


# Positional parameters, in the order of their markers.
WHERE_PARAMS = [START, END, LAST, LAST, 7]
PARAMS = {
    "postgresql": [*WHERE_PARAMS, 100],
    "mysql": [*WHERE_PARAMS, 100],
    "sqlite": [*WHERE_PARAMS, 100, 0],
    "mssql": WHERE_PARAMS,  # TOP 100 is rendered inline
    "oracle": WHERE_PARAMS,  # FETCH FIRST 100 ROWS ONLY is rendered inline
    "db2": [*WHERE_PARAMS, 100],
    "ansi": [*WHERE_PARAMS, 100],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_parameters_use_question_marks_and_come_back_in_order(family):
    sql, params = compile_sql(chunk(), dialect_for(family))
    assert params == PARAMS[family]
    assert sql.count("?") == len(params)
    assert "%s" not in sql
    assert "%(" not in sql
    assert re.search(r":[A-Za-z_]", sql) is None
    assert "2024" not in sql
    column = QUOTED_COLUMN[family]
    assert f"{column} >= ? AND {column} < ? AND {column} IS NOT NULL" in flat(sql)
    assert f"({column} > ? OR {column} = ? AND {QUOTED_TABLE[family]}.id > ?)" in flat(sql)


@pytest.mark.parametrize(
    ("family", "limit_sql", "tail"),
    [
        ("postgresql", "LIMIT ?", [25]),
        ("mysql", "LIMIT ?", [25]),
        ("sqlite", "LIMIT ? OFFSET ?", [25, 0]),
        ("db2", "FETCH FIRST ? ROWS ONLY", [25]),
        ("ansi", "FETCH FIRST ? ROWS ONLY", [25]),
        ("oracle", "FETCH FIRST 25 ROWS ONLY", []),
    ],
)
def test_the_limit_is_bound_after_the_keyset_values(family, limit_sql, tail):
    sql, params = compile_sql(chunk(limit=25), dialect_for(family))
    assert flat(sql).endswith(f".id {limit_sql}")
    assert params == [*WHERE_PARAMS, *tail]


def test_mssql_renders_the_limit_as_top():
    sql, params = compile_sql(chunk(limit=25), dialect_for("mssql"))
    assert flat(sql).startswith("SELECT TOP 25 [my schema].[ORDER LINES].id, ")
    assert params == WHERE_PARAMS


# How the last key's timestamp is written into the SQL text.
LAST_LITERAL = {
    family: "'2024-01-02 03:04:05.123456'" for family in FAMILIES
} | {"oracle": "TO_TIMESTAMP('2024-01-02 03:04:05.123456', 'YYYY-MM-DD HH24:MI:SS.FF')"}


@pytest.mark.parametrize("family", FAMILIES)
def test_literal_mode_renders_values_and_returns_no_parameters(family):
    sql, params = compile_sql(chunk(), dialect_for(family), literal=True)
    sql = flat(sql)
    assert params == []
    assert "?" not in sql
    column, table = QUOTED_COLUMN[family], QUOTED_TABLE[family]
    literal = LAST_LITERAL[family]
    assert f"({column} > {literal} OR {column} = {literal} AND {table}.id > 7)" in sql


@pytest.mark.parametrize(
    ("family", "start"),
    [
        ("postgresql", "'2024-01-01 00:00:00'"),
        ("mysql", "'2024-01-01 00:00:00'"),
        ("sqlite", "'2024-01-01 00:00:00.000000'"),
        ("mssql", "'2024-01-01 00:00:00'"),
        ("oracle", "TO_DATE('2024-01-01 00:00:00', 'YYYY-MM-DD HH24:MI:SS')"),
        ("db2", "'2024-01-01 00:00:00'"),
        ("ansi", "'2024-01-01 00:00:00'"),
    ],
)
def test_literal_mode_renders_the_window_start(family, start):
    sql, _ = compile_sql(chunk(), dialect_for(family), literal=True)
    assert f"{QUOTED_COLUMN[family]} >= {start} AND" in flat(sql)


@pytest.mark.parametrize("family", FAMILIES)
def test_literal_mode_doubles_quotes_in_string_values(family):
    t = sa.Table("notes", sa.MetaData(), sa.Column("k", sa.String(20)))
    stmt = chunk_select(t, [t.c.k], [t.c.k], limit=5, after=["O'Brien'; DROP TABLE y; --"])
    sql, params = compile_sql(stmt, dialect_for(family), literal=True)
    assert params == []
    assert "notes.k > 'O''Brien''; DROP TABLE y; --'" in flat(sql)


INJECTION = 'x"; DROP TABLE y; --'
INJECTION_QUOTED = {
    "postgresql": '"x""; DROP TABLE y; --"',
    "sqlite": '"x""; DROP TABLE y; --"',
    "oracle": '"x""; DROP TABLE y; --"',
    "db2": '"x""; DROP TABLE y; --"',
    "ansi": '"x""; DROP TABLE y; --"',
    "mysql": '`x"; DROP TABLE y; --`',
    "mssql": '[x"; DROP TABLE y; --]',
}


@pytest.mark.parametrize("literal", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_injection_shaped_table_names_stay_inside_quotes(family, literal):
    t = sa.Table(INJECTION, sa.MetaData(), sa.Column("id", sa.Integer))
    stmt = chunk_select(t, [t.c.id], [t.c.id], limit=5, after=[3])
    sql, _ = compile_sql(stmt, dialect_for(family), literal=literal)
    quoted = INJECTION_QUOTED[family]
    # select list, FROM, keyset predicate, ORDER BY
    assert sql.count(quoted) == 4
    assert f"FROM {quoted}" in flat(sql)
    assert "DROP TABLE" not in sql.replace(quoted, "")


@pytest.mark.parametrize("family", ["db2", "ansi"])
def test_offset_comes_before_fetch_first(family):
    t = ORDER_LINES
    stmt = sa.select(t.c.id).order_by(t.c.id).limit(10).offset(20)
    sql, params = compile_sql(stmt, dialect_for(family))
    assert flat(sql).endswith('ORDER BY "my schema"."ORDER LINES".id '
                              "OFFSET ? ROWS FETCH FIRST ? ROWS ONLY")
    assert params == [20, 10]
    sql, params = compile_sql(stmt, dialect_for(family), literal=True)
    assert flat(sql).endswith("OFFSET 20 ROWS FETCH FIRST 10 ROWS ONLY")
    assert params == []


@pytest.mark.parametrize("family", ["db2", "ansi"])
def test_offset_alone_renders_no_fetch_first(family):
    t = ORDER_LINES
    stmt = sa.select(t.c.id).order_by(t.c.id).offset(5)
    sql, params = compile_sql(stmt, dialect_for(family), literal=True)
    assert flat(sql).endswith(".id OFFSET 5 ROWS")
    assert "FETCH" not in sql
    assert params == []


@pytest.mark.parametrize("family", ["db2", "ansi"])
def test_no_paging_without_limit_or_offset(family):
    t = ORDER_LINES
    sql, params = compile_sql(sa.select(t.c.id).order_by(t.c.id), dialect_for(family))
    assert flat(sql) == (
        'SELECT "my schema"."ORDER LINES".id FROM "my schema"."ORDER LINES" '
        'ORDER BY "my schema"."ORDER LINES".id'
    )
    assert params == []
