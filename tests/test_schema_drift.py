"""Schema drift held to each stream's contract: a JSON API on 127.0.0.1 whose records grow
a field, and PostgreSQL columns that widen or change type, landed in either warehouse."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import DataContractError, SQLConnector, SQLTable
from connectors.rest import PageNumber, RESTConnector, RESTStream
from pipelines.cli import main
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse, quote
from tests.conftest import scratch_warehouse
from tests.hostile_servers import Answer, HostileServer, Seen

PAGE = 10


class OrdersAPI:
    """``GET /orders?page=N&per_page=M``: ``{"data": [...], "total_pages": n}``."""

    def __init__(self, count: int = 25) -> None:
        self.records = [{"id": i, "customer": f"c{i % 5}", "total": f"{i}.50"}
                        for i in range(1, count + 1)]

    def respond(self, seen: Seen) -> Answer:
        page = int(seen.query.get("page", ["1"])[0])
        size = int(seen.query.get("per_page", [str(PAGE)])[0])
        body = {"data": self.records[(page - 1) * size: page * size],
                "total_pages": -(-len(self.records) // size)}
        return Answer(200, {"Content-Type": "application/json"}, json.dumps(body).encode())


@pytest.fixture
def api():
    orders = OrdersAPI()
    with HostileServer(orders.respond) as server:
        yield orders, server


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        yield wh


def shop(server: HostileServer, contract: str = "evolve") -> RESTConnector:
    stream = RESTStream(name="orders", path="/orders", record_path="data",
                        paginator=PageNumber("page", "per_page", PAGE,
                                             total_pages_path="total_pages"),
                        primary_key=("id",), schema_contract=contract)
    return RESTConnector("shop", server.url(), [stream])


def landed(warehouse, table: str = "raw_shop__orders") -> list[dict]:
    return warehouse.query(f"SELECT * FROM {quote(table)} ORDER BY id").to_pylist()


def add_discount(orders: OrdersAPI, ids: set[int]) -> None:
    for record in orders.records:
        if record["id"] in ids:
            record["discount"] = record["id"] * 10


def test_inferred_types_are_kept_in_the_state_and_no_page_is_fetched_for_them(
        api, warehouse) -> None:
    _, server = api
    with shop(server) as connector:
        assert run_stream(connector, "orders", warehouse).rows == 25
        assert server.requests == 3  # the three pages, none fetched only to infer types
        kept = warehouse.load_state("shop.orders")["schema"]
        assert kept == [["id", "int64"], ["customer", "string"], ["total", "string"]]
        assert run_stream(connector, "orders", warehouse).rows == 25
        assert server.requests == 6


def test_a_new_field_lands_as_a_new_column_under_evolve(api, warehouse) -> None:
    orders, server = api
    with shop(server) as connector:
        run_stream(connector, "orders", warehouse)
        add_discount(orders, {12, 13, 24})
        result = run_stream(connector, "orders", warehouse)
    assert result.rows == 25
    assert result.schema_changes == ["new column 'discount' (BIGINT)"]
    assert {r["id"]: r["discount"] for r in landed(warehouse) if r["discount"]} == {
        12: 120, 13: 130, 24: 240}
    assert ["discount", "int64"] in warehouse.load_state("shop.orders")["schema"]


def test_a_new_field_fails_a_frozen_stream_naming_it_and_writes_nothing(api, warehouse) -> None:
    orders, server = api
    with shop(server, "freeze") as connector:
        run_stream(connector, "orders", warehouse)
        state = warehouse.load_state("shop.orders")
        add_discount(orders, {12})
        with pytest.raises(DataContractError) as error:
            run_stream(connector, "orders", warehouse)
    message = error.value.message
    assert message.startswith("connector 'shop', stream 'orders': schema_contract = 'freeze'")
    assert "new column 'discount' (BIGINT)" in message and "nothing was written" in message
    assert "discount" not in landed(warehouse)[0]
    assert warehouse.load_state("shop.orders") == state


def test_a_new_field_is_dropped_with_a_warning_under_discard_columns(api, warehouse,
                                                                     caplog) -> None:
    orders, server = api
    with shop(server, "discard_columns") as connector:
        run_stream(connector, "orders", warehouse)
        add_discount(orders, {3, 4})
        with caplog.at_level(logging.WARNING, logger="headwater.runner"):
            result = run_stream(connector, "orders", warehouse)
    assert result.rows == 25 and result.discarded == {"discount": 2}
    assert "connector 'shop', stream 'orders': new column 'discount' dropped" in caplog.text
    assert "discount" not in landed(warehouse)[0]


def test_a_record_with_a_new_field_goes_to_rejects_under_discard_rows(api, warehouse) -> None:
    orders, server = api
    with shop(server, "discard_rows") as connector:
        run_stream(connector, "orders", warehouse)
        add_discount(orders, {7, 21})
        orders.records[6]["customer"] = "changed"  # id 7: the new version is rejected
        result = run_stream(connector, "orders", warehouse)
    assert (result.rows, result.rejected) == (23, 2)
    assert result.rejects_table == "rejects_shop__orders"
    rejects = landed(warehouse, "rejects_shop__orders")
    assert [r["id"] for r in rejects] == [7, 21]
    assert "['discount']" in rejects[0]["_hw_reason"]
    assert json.loads(rejects[0]["_hw_record"])["discount"] == 70
    assert rejects[0]["_hw_run_id"] == landed(warehouse)[0]["_hw_run_id"]
    # A rejected record is still at the source: the full refresh keeps its landed row.
    rows = {r["id"]: r for r in landed(warehouse)}
    assert len(rows) == 25 and rows[7]["customer"] == "c2" and "discount" not in rows[7]


# -- PostgreSQL columns that change type --------------------------------------------------


@pytest.fixture(params=["duckdb", "postgres"])
def any_warehouse(request, tmp_path):
    with scratch_warehouse(request.param, tmp_path) as wh:
        yield wh


def execute(db, *statements: str) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def items(db, contract: str = "evolve") -> SQLConnector:
    stream = SQLTable(name="items", table="items", schema_contract=contract)
    return SQLConnector("src", db.url, [stream], db_schema=db.schema, chunk_size=50)


@pytest.mark.postgres
@pytest.mark.parametrize("contract", ["evolve", "freeze"])
def test_an_int_to_bigint_widening_lands_without_a_rebuild(pg_db, any_warehouse,
                                                           contract) -> None:
    table = pg_db.table("items")
    execute(pg_db, f"CREATE TABLE {table} (id integer PRIMARY KEY, n integer, "
                   "price numeric(8,2))",
            f"INSERT INTO {table} SELECT g, g * 1000, g + 0.25 FROM generate_series(1, 120) g")
    with items(pg_db, contract) as connector:
        run_stream(connector, "items", any_warehouse)
    execute(pg_db, f"ALTER TABLE {table} ALTER COLUMN n TYPE bigint",
            f"ALTER TABLE {table} ALTER COLUMN price TYPE numeric(14,3)",
            f"UPDATE {table} SET n = 5000000000, price = 12345678901.125 WHERE id = 7")
    with items(pg_db, contract) as connector:
        if contract == "freeze":
            with pytest.raises(DataContractError, match="column 'n' INTEGER -> BIGINT"):
                run_stream(connector, "items", any_warehouse)
            return
        result = run_stream(connector, "items", any_warehouse)
    assert result.rows == 120
    assert any("'n' INTEGER -> BIGINT" in change for change in result.schema_changes)
    row = any_warehouse.query('SELECT n, price FROM "raw_src__items" WHERE id = 7').to_pylist()
    assert str(row[0]["n"]) == "5000000000" and str(row[0]["price"]) == "12345678901.125"
    assert any_warehouse.row_count("raw_src__items") == 120


@pytest.mark.postgres
def test_a_type_that_cannot_widen_names_the_command_that_rebuilds_the_table(
        pg_db, tmp_path: Path, capsys) -> None:
    table = pg_db.table("items")
    execute(pg_db, f"CREATE TABLE {table} (id integer PRIMARY KEY, code integer)",
            f"INSERT INTO {table} SELECT g, g FROM generate_series(1, 30) g")
    config = tmp_path / "headwater.toml"
    config.write_text(f"""
[warehouse]
url = "duckdb:///{tmp_path.as_posix()}/w.duckdb"

[connectors.src]
kind = "sql"
url = "{pg_db.url}"
schema = "{pg_db.schema}"

[[connectors.src.streams]]
table = "items"
""", "utf-8")
    run = ["--config", str(config), "run"]
    assert main(run) == 0
    execute(pg_db, f"ALTER TABLE {table} ALTER COLUMN code TYPE text",
            f"UPDATE {table} SET code = 'A-' || id")
    capsys.readouterr()
    assert main(run) == 1
    err = capsys.readouterr().err
    assert "connector 'src', stream 'items': column 'code' is INTEGER" in err
    assert "`headwater state reset --drop src.items`" in err
    assert main(["--config", str(config), "state", "reset", "--drop", "src.items"]) == 1
    assert "not confirmed, nothing dropped" in capsys.readouterr().err
    assert main(["--config", str(config), "state", "reset", "--drop", "--yes",
                 "src.items"]) == 0
    out = capsys.readouterr().out
    assert "src.items: dropped table raw_src__items" in out
    assert "src.items: dropped state src.items" in out
    assert main(run) == 0
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        codes = warehouse.query('SELECT code FROM "raw_src__items" ORDER BY id').column(0)
    assert codes.to_pylist()[:2] == ["A-1", "A-2"]
