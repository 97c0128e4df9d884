"""Keyset chunk SELECTs, compiled for each dialect and read as SQL text."""

from __future__ import annotations

import re
from contextlib import nullcontext

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

from connectors.sql._keyset import after_key, chunk_select

DIALECTS = {
    "postgresql": postgresql.dialect,
    "mysql": mysql.dialect,
    "sqlite": sqlite.dialect,
    "mssql": mssql.dialect,
    "oracle": oracle.dialect,
}


def db2_dialect():
    base = pytest.importorskip("ibm_db_sa.base")
    return base.DB2Dialect()


ALL_DIALECTS = [*DIALECTS, "db2"]


def dialect_for(name):
    return db2_dialect() if name == "db2" else DIALECTS[name]()


def compiled(clause, dialect_name):
    sql = str(
        clause.compile(dialect=dialect_for(dialect_name), compile_kwargs={"literal_binds": True})
    )
    return " ".join(sql.split())


orders = sa.table(
    "orders",
    sa.column("a"),
    sa.column("b"),
    sa.column("c"),
    sa.column("updated_at"),
    sa.column("note"),
)


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (1, "orders.a > 1"),
        (2, "orders.a > 1 OR orders.a = 1 AND orders.b > 2"),
        (
            3,
            "orders.a > 1 OR orders.a = 1 AND orders.b > 2"
            " OR orders.a = 1 AND orders.b = 2 AND orders.c > 3",
        ),
    ],
)
def test_after_key_is_lexicographic_with_and_or(dialect_name, width, expected):
    columns = [orders.c.a, orders.c.b, orders.c.c][:width]
    sql = compiled(after_key(columns, [1, 2, 3][:width]), dialect_name)
    assert sql == expected
    assert "(orders.a, orders.b" not in sql  # no row-value comparison


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
def test_after_key_quotes_string_values(dialect_name):
    sql = compiled(after_key([orders.c.note], ["O'Brien"]), dialect_name)
    assert sql == "orders.note > 'O''Brien'"


@pytest.mark.parametrize(
    ("columns", "values", "expectation"),
    [
        ([orders.c.a], [1], nullcontext()),
        ([orders.c.a, orders.c.b], [1, 2], nullcontext()),
        ([], [], pytest.raises(ValueError, match="non-zero length")),
        ([orders.c.a, orders.c.b], [1], pytest.raises(ValueError, match="same")),
        ([orders.c.a], [1, 2], pytest.raises(ValueError, match="same")),
    ],
)
def test_after_key_needs_one_value_per_column(columns, values, expectation):
    with expectation:
        after_key(columns, values)


LIMIT_SHAPES = {
    "postgresql": r"ORDER BY orders\.a, orders\.b LIMIT 500$",
    "mysql": r"ORDER BY orders\.a, orders\.b LIMIT 500$",
    "sqlite": r"ORDER BY orders\.a, orders\.b LIMIT 500 OFFSET 0$",
    "mssql": r"^SELECT TOP 500 .* ORDER BY orders\.a, orders\.b$",
    "oracle": r"ORDER BY orders\.a, orders\.b FETCH FIRST 500 ROWS ONLY$",
    # ibm_db_sa renders LIMIT rather than FETCH FIRST.
    "db2": r"ORDER BY orders\.a, orders\.b LIMIT 500$",
}


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
def test_chunk_orders_by_the_key_and_limits_per_dialect(dialect_name):
    stmt = chunk_select(orders, [orders.c.a, orders.c.note], [orders.c.a, orders.c.b], limit=500)
    sql = compiled(stmt, dialect_name)
    assert re.search(LIMIT_SHAPES[dialect_name], sql), sql
    assert "WHERE" not in sql


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
def test_chunk_reads_the_window_half_open_after_the_last_key(dialect_name):
    stmt = chunk_select(
        orders,
        [orders.c.a],
        [orders.c.updated_at, orders.c.a],
        limit=10,
        after=[150, 7],
        cursor=orders.c.updated_at,
        window=(100, 200),
    )
    sql = compiled(stmt, dialect_name)
    where = re.search(r"WHERE (.*) ORDER BY", sql).group(1)
    assert where == (
        "orders.updated_at >= 100 AND orders.updated_at < 200"
        " AND orders.updated_at IS NOT NULL"
        # The OR group must stay parenthesised next to the window's ANDs.
        " AND (orders.updated_at > 150 OR orders.updated_at = 150 AND orders.a > 7)"
    )
    assert "ORDER BY orders.updated_at, orders.a" in sql


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ((None, None), "orders.updated_at IS NOT NULL"),
        ((5, None), "orders.updated_at >= 5 AND orders.updated_at IS NOT NULL"),
        ((None, 9), "orders.updated_at < 9 AND orders.updated_at IS NOT NULL"),
    ],
)
def test_open_window_ends_add_no_bound(dialect_name, window, expected):
    stmt = chunk_select(
        orders, [orders.c.a], [orders.c.a], limit=1, cursor=orders.c.updated_at, window=window
    )
    assert re.search(r"WHERE (.*) ORDER BY", compiled(stmt, dialect_name)).group(1) == expected


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
def test_null_cursor_phase_reads_null_cursors_by_primary_key_ignoring_the_window(dialect_name):
    stmt = chunk_select(
        orders,
        [orders.c.a],
        [orders.c.a],
        limit=10,
        after=[42],
        cursor=orders.c.updated_at,
        window=(100, 200),
        null_cursor=True,
    )
    sql = compiled(stmt, dialect_name)
    assert re.search(r"WHERE (.*) ORDER BY", sql).group(1) == (
        "orders.updated_at IS NULL AND orders.a > 42"
    )
    assert "ORDER BY orders.a" in sql


@pytest.mark.parametrize("dialect_name", ALL_DIALECTS)
def test_without_a_cursor_the_window_is_ignored(dialect_name):
    stmt = chunk_select(
        orders, [orders.c.a], [orders.c.a], limit=10, after=[3], window=(100, 200), null_cursor=True
    )
    assert re.search(r"WHERE (.*) ORDER BY", compiled(stmt, dialect_name)).group(1) == (
        "orders.a > 3"
    )


INJECTION = 'x"; DROP TABLE y; --'

# How each dialect must spell an identifier that needs quoting.
QUOTED = {
    "postgresql": lambda n: '"' + n.replace('"', '""') + '"',
    "sqlite": lambda n: '"' + n.replace('"', '""') + '"',
    "oracle": lambda n: '"' + n.replace('"', '""') + '"',
    "db2": lambda n: '"' + n.replace('"', '""') + '"',
    "mysql": lambda n: "`" + n.replace("`", "``") + "`",
    "mssql": lambda n: "[" + n.replace("]", "]]") + "]",
}


def weird_table(*names):
    return sa.table("Order Lines", *(sa.column(n) for n in names))


@pytest.mark.parametrize(
    ("dialect_name", "name", "quoted"),
    [
        ("postgresql", INJECTION, '"x""; DROP TABLE y; --"'),
        ("sqlite", INJECTION, '"x""; DROP TABLE y; --"'),
        ("oracle", INJECTION, '"x""; DROP TABLE y; --"'),
        ("db2", INJECTION, '"x""; DROP TABLE y; --"'),
        ("mysql", INJECTION, '`x"; DROP TABLE y; --`'),
        ("mssql", INJECTION, '[x"; DROP TABLE y; --]'),
        # A name holding the dialect's own closing quote must have it doubled.
        ("mysql", "x`; DROP TABLE y; --", "`x``; DROP TABLE y; --`"),
        ("mssql", "x]; DROP TABLE y; --", "[x]]; DROP TABLE y; --]"),
    ],
)
def test_injection_shaped_names_appear_only_inside_the_dialects_quotes(dialect_name, name, quoted):
    table = weird_table("id", name)
    column = table.c[name]
    stmt = chunk_select(
        table,
        [table.c.id, column],
        [column, table.c.id],
        limit=5,
        after=[1, 2],
        cursor=column,
        window=(0, 9),
    )
    sql = compiled(stmt, dialect_name)
    # select list, >=, <, IS NOT NULL, twice in after_key, ORDER BY
    assert sql.count(quoted) == 7
    assert "DROP TABLE" not in sql.replace(quoted, "")


@pytest.mark.parametrize(
    ("dialect_name", "name", "expectation"),
    [
        (dialect_name, name, QUOTED[dialect_name](name))
        for dialect_name in ALL_DIALECTS
        for name in ("Customer Name", "CustomerID", "select", "order")
    ]
    + [
        ("postgresql", "user", '"user"'),
        ("oracle", "user", '"user"'),
        ("mssql", "user", "[user]"),
        ("db2", "user", '"user"'),
        # USER is not a reserved word in MySQL or SQLite; bare is valid there.
        ("mysql", "user", "user"),
        ("sqlite", "user", "user"),
    ],
)
def test_spaces_mixed_case_and_reserved_words_are_quoted(dialect_name, name, expectation):
    table = weird_table("id", name)
    column = table.c[name]
    stmt = chunk_select(table, [column], [column], limit=5, after=["v"], cursor=column)
    sql = compiled(stmt, dialect_name)
    table_name = QUOTED[dialect_name]("Order Lines")
    assert f"SELECT {table_name}.{expectation} FROM" in sql.replace("TOP 5 ", "")
    assert f"ORDER BY {table_name}.{expectation}" in sql
    assert f"{table_name}.{expectation} > 'v'" in sql
