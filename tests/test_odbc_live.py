"""The ODBC connector through the real PostgreSQL, MariaDB and SQLite ODBC drivers."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal

import pyarrow as pa
import pyodbc
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from connectors import SQLQuery, SQLTable, checkpoint_of
from connectors.odbc import ODBCConnector, ODBCReadPlan
from connectors.odbc._types import ODBCColumn
from connectors.testing import keys_of, read_all
from headwater_demo.erp import touch_erp
from pipelines.runner import run_connector
from pipelines.warehouse import DuckDBWarehouse
from tests.test_sql_live import source_rows

pytestmark = pytest.mark.filterwarnings("ignore:.*Data truncated.*")

STREAMS = ("customers", "products", "orders", "order_lines")
PATHS = pytest.mark.parametrize("fast", [True, False], ids=["arrow-odbc", "pyodbc"])


def table_of(connector, stream: str, state=None) -> pa.Table:
    batches, _ = read_all(connector, stream, state)
    return pa.Table.from_batches([b for b in batches if b.num_rows]).replace_schema_metadata(None)


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as wh:
        yield wh


@PATHS
def test_reads_exactly_what_the_sql_connector_reads(erp_db, fast) -> None:
    with erp_db.odbc(fast_path=fast, chunk_size=70, batch_size=30) as odbc, \
            erp_db.connector(fast_path=False) as sql:
        assert all(p for p in [odbc.plan(odbc.stream(s)) for s in STREAMS]
                   if isinstance(p, ODBCReadPlan) and p.fast == fast)
        for stream in STREAMS:
            ours, theirs = table_of(odbc, stream), table_of(sql, stream)
            assert ours.num_rows == len(source_rows(erp_db, sql.stream(stream).table))
            assert ours.schema.equals(theirs.schema), stream
            assert ours.equals(theirs), stream


def test_fast_path_and_pyodbc_give_identical_tables(erp_db) -> None:
    with erp_db.odbc(fast_path=True, chunk_size=64) as fast, \
            erp_db.odbc(fast_path=False, chunk_size=64) as slow:
        for stream in STREAMS:
            a, b = table_of(fast, stream), table_of(slow, stream)
            assert a.num_rows > 0
            assert a.equals(b), stream


@PATHS
def test_full_run_lands_every_row_and_a_rerun_adds_none(erp_db, warehouse, fast) -> None:
    with erp_db.odbc(fast_path=fast, chunk_size=97, batch_size=40) as connector:
        first = {r.stream: r.rows for r in run_connector(connector, warehouse, commit_rows=100)}
        second = [r.rows for r in run_connector(connector, warehouse)]
    assert first["order_lines"] == len(source_rows(erp_db, "ORDER LINES"))
    assert first["customers"] == len(source_rows(erp_db, "Customer Master"))
    assert second == [0, 0, 0, 0]
    amounts = warehouse.query('SELECT "ORDER_NO", "LINE_NO", "QTY" FROM raw_erp__order_lines')
    expected = {(r["ORDER_NO"], r["LINE_NO"]): r["QTY"]
                for r in source_rows(erp_db, "ORDER LINES")}
    assert {(r["ORDER_NO"], r["LINE_NO"]): r["QTY"] for r in amounts.to_pylist()} == expected


@PATHS
def test_incremental_read_returns_exactly_the_changed_and_added_rows(erp_db, fast) -> None:
    with erp_db.odbc(fast_path=fast, chunk_size=50) as connector:
        _, state = read_all(connector, "orders")
        touched = touch_erp(erp_db.engine, changed=6, added=9, schema=erp_db.schema)
        again = table_of(connector, "orders", state)
    source = {r["order_no"]: r["status"] for r in source_rows(erp_db, "orders")}
    assert again.num_rows == touched["changed"] + touched["added"] == 15
    got = dict(zip(again.column("order_no").to_pylist(), again.column("status").to_pylist(),
                   strict=True))
    assert all(source[k] == v for k, v in got.items())
    newest = sorted(source)[-9:]
    assert set(newest) <= set(got)


@PATHS
def test_a_read_resumed_from_any_checkpoint_loses_and_repeats_nothing(erp_db, fast) -> None:
    with erp_db.odbc(fast_path=fast, chunk_size=60, batch_size=25) as connector:
        full, _ = read_all(connector, "order_lines")
        expected = keys_of(full, ("ORDER_NO", "LINE_NO"))
        for stop_after in (1, 3, 7):
            reader = connector.read("order_lines")
            delivered = [next(reader) for _ in range(stop_after)]
            reader.close()
            rest, _ = read_all(connector, "order_lines", checkpoint_of(delivered[-1]))
            combined = keys_of(delivered + rest, ("ORDER_NO", "LINE_NO"))
            assert combined == expected, f"resumed after {stop_after} batches"


def test_discovery_through_the_odbc_catalog(erp_db) -> None:
    connector = ODBCConnector("erp", erp_db.odbc_connection_string, db_schema=erp_db.schema)
    with connector:
        found = {s.name: s for s in connector.discover()}
        assert {"customer_master", "products", "orders", "order_lines"} <= set(found)
        assert found["order_lines"].primary_key == ("ORDER_NO", "LINE_NO")
        assert found["customer_master"].primary_key == ("CUST_NO",)
        assert found["products"].schema.field("UNIT_PRICE").type == pa.decimal128(12, 2)
        assert table_of(connector, "orders").num_rows == len(source_rows(erp_db, "orders"))


@PATHS
def test_query_stream_reads_in_resumable_chunks(erp_db, fast) -> None:
    q = erp_db.engine.dialect.identifier_preparer.quote
    query = SQLQuery(
        name="line_values",
        sql=f"SELECT {q('ORDER_NO')} AS order_no, {q('LINE_NO')} AS line_no, "
            f"{q('QTY')} * 2 AS double_qty FROM {erp_db.table('ORDER LINES')}",
        primary_key=("order_no", "line_no"),
    )
    with erp_db.odbc([query], fast_path=fast, chunk_size=64) as connector:
        total = table_of(connector, "line_values").num_rows
        first = next(iter(connector.read("line_values")))
        rest = table_of(connector, "line_values", checkpoint_of(first))
    assert total == len(source_rows(erp_db, "ORDER LINES"))
    assert first.num_rows + rest.num_rows == total


# -- types --------------------------------------------------------------------------------

LONG_TEXT = "é" * 9000  # longer than the fast path's default text buffer


def _typed_table(db) -> tuple[sa.Table, dict, dict]:
    """A table of the legacy types this backend has, a row, and the Arrow types expected."""
    columns = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("code", sa.CHAR(5)),
        sa.Column("ncode", sa.NCHAR(4)),
        sa.Column("day", sa.Date),
        sa.Column("stamp", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                                      "mariadb")),
        sa.Column("clock", sa.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")),
        sa.Column("ratio", sa.Double()),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("body", sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")),
    ]
    amount = Decimal("1234567890.1234") if db.backend == "sqlite" else Decimal(
        "12345678901234.5678")
    row = {"id": 1, "amount": amount, "code": "AB   ", "ncode": "ü   ",
           "day": dt.date(1900, 1, 1), "stamp": dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
           "clock": dt.time(13, 14, 15, 123456), "ratio": 1.0000000000000002,
           "blob": b"\x00\xff\\x", "body": LONG_TEXT}
    expected = {"id": pa.int64() if db.backend == "sqlite" else pa.int32(),
                "amount": pa.decimal128(18, 4), "code": pa.string(), "ncode": pa.string(),
                "day": pa.date32(), "stamp": pa.timestamp("us"), "clock": pa.time64("us"),
                "ratio": pa.float64(), "blob": pa.large_binary(), "body": pa.large_string()}
    if db.backend == "postgresql":
        columns += [sa.Column("guid", postgresql.UUID(as_uuid=False)),
                    sa.Column("aware", sa.DateTime(timezone=True)),
                    sa.Column("cash", postgresql.MONEY), sa.Column("flag", sa.Boolean),
                    sa.Column("single", sa.REAL)]
        row |= {"guid": "6F1C8C7E-5B1A-4E7C-9A0E-3D9F1E2A4B5C",
                "aware": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                "cash": Decimal("1234.56"), "flag": True, "single": 1.5}
        expected |= {"guid": pa.string(), "aware": pa.timestamp("us", tz="UTC"),
                     "cash": pa.decimal128(19, 2), "flag": pa.bool_(), "single": pa.float32()}
    if db.backend == "mariadb":
        columns += [sa.Column("big", mysql.BIGINT(unsigned=True)),
                    sa.Column("raw", mysql.VARBINARY(16))]
        row |= {"big": 2**64 - 1, "raw": b"\x01\x00\x02"}
        expected |= {"big": pa.decimal128(20, 0), "raw": pa.large_binary()}
    table = sa.Table("typed", sa.MetaData(), *columns, schema=db.schema)
    table.create(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [row])
        conn.execute(table.insert(), [{"id": 2}])
    return table, row, expected


def test_legacy_types_arrive_exactly_on_both_paths(live_db) -> None:
    _, row, expected = _typed_table(live_db)
    stream = [SQLTable(name="typed", table="typed")]
    tables = []
    for fast in (True, False):
        with live_db.odbc(stream, fast_path=fast) as connector:
            tables.append(table_of(connector, "typed"))
            plan = connector.plan(connector.stream("typed"))
            assert plan.fast == fast
    # The long body outgrew the fast path's first buffers, which grew to hold it.
    assert plan.fast is False
    fast_table, slow_table = tables
    assert fast_table.equals(slow_table)
    assert {f.name: f.type for f in fast_table.schema} == expected
    got, empty = fast_table.to_pylist()
    want = dict(row)
    if "guid" in want:
        want["guid"] = want["guid"].lower()
        want["aware"] = dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)
    assert got == want
    assert {k: v for k, v in empty.items() if v is not None} == {"id": 2}


def test_fast_path_buffers_grow_for_long_values_mid_chunk(live_db, caplog) -> None:
    table = sa.Table("notes", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("body", sa.Text().with_variant(mysql.LONGTEXT(), "mysql",
                                                              "mariadb")),
                     schema=live_db.schema)
    table.create(live_db.engine)
    bodies = {i: "n" * (10 if i % 50 else 300 * i) for i in range(1, 201)}
    with live_db.engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, "body": b} for i, b in bodies.items()])
    stream = [SQLTable(name="notes", table="notes")]
    with caplog.at_level(logging.INFO, "headwater.connectors.odbc"), \
            live_db.odbc(stream, fast_path=True, chunk_size=120, batch_size=16) as connector:
        got = table_of(connector, "notes")
        plan = connector.plan(connector.stream("notes"))
    assert plan.fast and plan.text_size >= 300 * 200
    assert "buffers grown" in caplog.text
    assert dict(zip(got.column("id").to_pylist(), got.column("body").to_pylist(),
                    strict=True)) == bodies
    # Past the ceiling, the stream moves to pyodbc and still loses nothing.
    caplog.clear()
    with caplog.at_level(logging.WARNING, "headwater.connectors.odbc"), \
            live_db.odbc(stream, fast_path=True, chunk_size=120, batch_size=16,
                         max_text_size=4096) as connector:
        capped = table_of(connector, "notes")
        assert connector.plan(connector.stream("notes")).fast is False
    assert "through pyodbc instead" in caplog.text
    assert capped.equals(got)


def test_unknown_types_are_read_as_text_with_a_warning(pg_db, caplog) -> None:
    with pg_db.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{pg_db.schema}".shapes '
                             "(id int PRIMARY KEY, spot point, tag varchar(10))"))
        conn.execute(sa.text(f'INSERT INTO "{pg_db.schema}".shapes VALUES '
                             "(1, point(1.5, 2), 'a'), (2, NULL, 'b')"))

    class VariantReportingDriver(ODBCConnector):
        """Reports ``spot`` with a type code outside the table (SQL Server's sql_variant),
        with no declaration of its own to fall back on."""

        def declared_types(self, name, schema):
            return {}

        def odbc_columns(self, name, schema):
            columns, key = super().odbc_columns(name, schema)
            return [ODBCColumn(c.name, -150, "sql_variant") if c.name == "spot" else c
                    for c in columns], key

    for fast in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING, "headwater.connectors.odbc"), \
                VariantReportingDriver("src", pg_db.odbc_connection_string,
                                       [SQLTable(name="shapes", table="shapes")],
                                       db_schema=pg_db.schema, fast_path=fast) as connector:
            got = table_of(connector, "shapes")
        assert "column 'spot'" in caplog.text and "read as text" in caplog.text
        assert got.schema.field("spot").type == pa.large_string()
        assert got.column("spot").to_pylist() == ["(1.5,2)", None]


def test_output_converters_decode_driver_specific_types(pg_db) -> None:
    with pg_db.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{pg_db.schema}".codes '
                             "(id int PRIMARY KEY, code varchar(10))"))
        conn.execute(sa.text(f"INSERT INTO \"{pg_db.schema}\".codes VALUES (1, 'abc'), (2, NULL)"))
    seen: list[bytes] = []

    def upper(raw: bytes | None) -> str | None:
        seen.append(raw)
        return None if raw is None else raw.decode("utf-8").upper()

    with pg_db.odbc([SQLTable(name="codes", table="codes")], fast_path=False,
                    output_converters={pyodbc.SQL_WVARCHAR: upper}) as connector:
        got = table_of(connector, "codes")
    assert got.column("code").to_pylist() == ["ABC", None]
    assert b"abc" in seen


@pytest.mark.postgres
def test_a_guid_key_reads_in_chunks(pg_db) -> None:
    ids = sorted(str(uuid.UUID(int=i * 7919)) for i in range(1, 60))
    with pg_db.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{pg_db.schema}".tokens (id uuid PRIMARY KEY)'))
        conn.execute(sa.text(f'INSERT INTO "{pg_db.schema}".tokens VALUES (CAST(:id AS uuid))'),
                     [{"id": i} for i in ids])
    for fast in (True, False):
        with pg_db.odbc([SQLTable(name="tokens", table="tokens")], fast_path=fast,
                        chunk_size=10) as connector:
            assert table_of(connector, "tokens").column("id").to_pylist() == ids
