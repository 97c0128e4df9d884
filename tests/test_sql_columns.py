"""Column names and declared column types on table and query streams (SQL and ODBC)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors import (
    ConfigurationError,
    DataContractError,
    Incremental,
    SQLQuery,
    SQLTable,
    checkpoint_of,
)
from connectors.testing import read_all

pytestmark = pytest.mark.filterwarnings("ignore:.*Data truncated.*")
PATHS = pytest.mark.parametrize("through", ["sql", "odbc"])


def _stamped_table(db) -> None:
    table = sa.Table(
        "Stamped", sa.MetaData(),
        sa.Column("Order_ID", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("Last_Update", sa.DateTime),
        sa.Column("Amount", sa.Numeric(12, 2)),
        schema=db.schema,
    )
    table.create(db.engine)
    start = dt.datetime(2024, 1, 1)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [
            {"Order_ID": i, "Last_Update": start + dt.timedelta(hours=i),
             "Amount": Decimal(f"{i}.25")} for i in range(1, 8)
        ])


def _connector(db, through: str, streams, **options):
    return db.connector(streams, **options) if through == "sql" else db.odbc(streams, **options)


@PATHS
def test_key_and_cursor_names_match_in_any_case(live_db, through) -> None:
    _stamped_table(live_db)
    stream = SQLTable(name="stamped", table="stamped", primary_key=("order_id",),
                      incremental=Incremental("LAST_UPDATE"))
    with _connector(live_db, through, [stream], chunk_size=3) as connector:
        found = connector.discover()[0]
        assert found.primary_key == ("Order_ID",)
        assert found.cursor_field == "Last_Update"
        batches, state = read_all(connector, "stamped")
        ids = [i for b in batches for i in b.column("Order_ID").to_pylist()]
        assert ids == list(range(1, 8))
        assert state["cursor"] == dt.datetime(2024, 1, 1, 7)
        again, _ = read_all(connector, "stamped", state)
        assert sum(b.num_rows for b in again) == 0


def test_a_name_matching_several_columns_in_case_is_refused(live_db) -> None:
    if live_db.backend != "postgresql":
        pytest.skip("only PostgreSQL keeps two columns that differ only in case")
    with live_db.engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE {live_db.table("twins")} '
                             '(id int PRIMARY KEY, "Stamp" timestamp, "STAMP" timestamp)')
    stream = SQLTable(name="twins", table="twins", incremental=Incremental("stamp"))
    with live_db.connector([stream]) as connector, pytest.raises(ConfigurationError) as err:
        connector.discover()
    message = str(err.value)
    assert "connector 'erp', stream 'twins'" in message and "cursor column 'stamp'" in message
    assert "several columns match it" in message and "'Stamp'" in message and "'STAMP'" in message


@PATHS
def test_an_unknown_key_column_lists_the_columns(live_db, through) -> None:
    _stamped_table(live_db)
    stream = SQLTable(name="stamped", table="Stamped", primary_key=("order_no",))
    with _connector(live_db, through, [stream]) as connector, \
            pytest.raises(ConfigurationError) as err:
        connector.discover()
    message = str(err.value)
    assert "stream 'stamped'" in message and "primary-key column 'order_no'" in message
    assert "'Order_ID'" in message and "'Last_Update'" in message


@PATHS
def test_column_types_land_a_column_as_declared(live_db, through) -> None:
    _stamped_table(live_db)
    stream = SQLTable(name="stamped", table="Stamped",
                      column_types={"amount": "text", "last_update": "text"})
    with _connector(live_db, through, [stream]) as connector:
        schema = connector.discover()[0].schema
        got = pa.Table.from_batches([b for b in connector.read("stamped") if b.num_rows])
    assert schema.field("Amount").type == pa.large_string()
    assert schema.field("Order_ID").type in (pa.int32(), pa.int64())
    first = got.to_pylist()[0]
    assert Decimal(first["Amount"]) == Decimal("1.25")
    assert first["Last_Update"].startswith("2024-01-01 01:00:00")


@pytest.mark.parametrize(
    ("column_types", "says"),
    [
        ({"ghost": "text"}, "column_types entry 'ghost': no such column"),
        ({"Amount": "decimal(65,30)"}, "at most 38 digits"),
        ({"Amount": "money"}, "unknown column type 'money'"),
    ],
)
def test_a_declared_column_type_that_cannot_land_fails_at_discovery(live_db, column_types,
                                                                     says) -> None:
    _stamped_table(live_db)
    stream = SQLTable(name="stamped", table="Stamped", column_types=column_types)
    with live_db.connector([stream]) as connector:
        with pytest.raises(ConfigurationError) as err:
            connector.discover()
        with pytest.raises(ConfigurationError):
            connector.read("stamped")  # before any row
    assert says in str(err.value) and "connector 'erp', stream 'stamped'" in str(err.value)


def test_a_query_stream_takes_column_types(live_db) -> None:
    _stamped_table(live_db)
    table = live_db.table("Stamped")
    query = SQLQuery(name="amounts", sql=f'SELECT "Order_ID" AS id, "Amount" AS amount FROM {table}'
                     if live_db.backend != "mariadb" else
                     f"SELECT Order_ID AS id, Amount AS amount FROM {table}",
                     primary_key=("id",), column_types={"amount": "decimal(20,4)"})
    with live_db.connector([query]) as connector:
        got = pa.Table.from_batches([b for b in connector.read("amounts") if b.num_rows])
    assert got.schema.field("amount").type == pa.decimal128(20, 4)
    assert got.column("amount").to_pylist()[:2] == [Decimal("1.25"), Decimal("2.25")]


def test_a_value_that_does_not_fit_names_connector_stream_column_and_key(live_db) -> None:
    if live_db.backend != "sqlite":
        pytest.skip("SQLite lets a column hold a value of another type")
    with live_db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE typed (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.exec_driver_sql("INSERT INTO typed VALUES (1, 1), (2, 2), (3, 'three'), (4, 4)")
    stream = SQLTable(name="typed", table="typed")
    with live_db.connector([stream], chunk_size=2, batch_size=2) as connector:
        batches = connector.read("typed")
        first = next(batches)
        assert first.num_rows == 2 and checkpoint_of(first) is not None
        with pytest.raises(DataContractError) as err:
            list(batches)
    assert str(err.value).startswith(
        "connector 'erp', stream 'typed': column 'n' of the row with id=3 holds a value that "
        "does not fit int64")
    assert "column_types = {'n': \"text\"}" in str(err.value)
