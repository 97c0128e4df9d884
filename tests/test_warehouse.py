"""Both warehouses: tables from Arrow, merges by key, evolution, and atomic state."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors import ConfigurationError, DataContractError, with_checkpoint
from pipelines.warehouse import DuckDBWarehouse, Provenance, open_warehouse, quote
from tests.conftest import PG_URL, demo_normalization

PROVENANCE = Provenance("erp", "orders", "run-1", dt.datetime(2024, 6, 1, tzinfo=dt.UTC))


def batch(ids, amounts=None, **extra) -> pa.RecordBatch:
    amounts = amounts or [Decimal(f"{i}.25") for i in ids]
    columns = {"id": pa.array(ids, pa.int32()),
               "amount": pa.array(amounts, pa.decimal128(12, 2)), **extra}
    return pa.RecordBatch.from_pydict(columns)


class Crashing:
    """Makes a warehouse fail inside its next merge's transaction."""

    def __init__(self, warehouse) -> None:
        self.warehouse = warehouse

    def __enter__(self):
        def crash(table: str) -> None:
            raise RuntimeError("crash before commit")

        self.warehouse._before_commit = crash
        return self

    def __exit__(self, *exc):
        del self.warehouse._before_commit


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path):
    if request.param == "duckdb":
        wh = DuckDBWarehouse(tmp_path / "w.duckdb")
        yield wh
        wh.close()
        return
    schema = f"hw_wh_{uuid.uuid4().hex[:8]}"
    wh = open_warehouse(f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}")
    yield wh
    wh.close()
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {quote(schema)} CASCADE"))
    engine.dispose()


def rows(warehouse, table="raw_t", order="id"):
    return warehouse.query(f"SELECT * FROM {quote(table)} ORDER BY {quote(order)}").to_pylist()


def test_merge_creates_the_table_with_provenance(warehouse) -> None:
    assert warehouse.merge("raw_t", batch([1, 2]), ("id",), provenance=PROVENANCE) == 2
    landed = rows(warehouse)
    assert [r["id"] for r in landed] == [1, 2]
    assert landed[0]["amount"] == Decimal("1.25")
    assert landed[0]["_hw_source"] == "erp" and landed[0]["_hw_stream"] == "orders"
    assert landed[0]["_hw_run_id"] == "run-1"
    assert landed[0]["_hw_extracted_at"] == PROVENANCE.extracted_at


def test_merge_by_primary_key_updates_instead_of_duplicating(warehouse) -> None:
    warehouse.merge("raw_t", batch([1, 2, 3]), ("id",))
    warehouse.merge("raw_t", batch([2, 3, 4], [Decimal("9.99")] * 3), ("id",))
    assert [(r["id"], r["amount"]) for r in rows(warehouse)] == [
        (1, Decimal("1.25")), (2, Decimal("9.99")), (3, Decimal("9.99")), (4, Decimal("9.99"))]


def test_merges_above_below_and_across_the_landed_keys(warehouse) -> None:
    warehouse.merge("raw_t", batch([10, 11]), ("id",))
    warehouse.merge("raw_t", batch([12, 13]), ("id",))  # an append above every key
    warehouse.merge("raw_t", batch([1, 2]), ("id",))  # below every key
    warehouse.merge("raw_t", batch([2, 5, 13, 20], [Decimal("7.00")] * 4), ("id",))
    assert [(r["id"], r["amount"]) for r in rows(warehouse)] == [
        (1, Decimal("1.25")), (2, Decimal("7.00")), (5, Decimal("7.00")),
        (10, Decimal("10.25")), (11, Decimal("11.25")), (12, Decimal("12.25")),
        (13, Decimal("7.00")), (20, Decimal("7.00"))]


def test_repeated_keys_within_a_batch_keep_the_last(warehouse) -> None:
    warehouse.merge("raw_t", batch([7, 7, 8], [Decimal("1"), Decimal("2"), Decimal("3")]),
                    ("id",))
    assert [(r["id"], r["amount"]) for r in rows(warehouse)] == [
        (7, Decimal("2.00")), (8, Decimal("3.00"))]


def test_composite_keys_merge(warehouse) -> None:
    def lines(qty):
        return pa.RecordBatch.from_pydict({"order": [1, 1, 2], "line": [1, 2, 1],
                                           "qty": [qty] * 3})

    warehouse.merge("raw_lines", lines(1), ("order", "line"))
    warehouse.merge("raw_lines", lines(5), ("order", "line"))
    assert [r["qty"] for r in rows(warehouse, "raw_lines", "line")] == [5, 5, 5]


def test_null_primary_key_is_refused_and_nothing_written(warehouse) -> None:
    bad = pa.RecordBatch.from_pydict({"id": pa.array([1, None], pa.int32())})
    with pytest.raises(DataContractError, match="'id' has nulls"):
        warehouse.merge("raw_t", bad, ("id",), state_key="erp.t", state={"cursor": 1})
    assert warehouse.load_state("erp.t") is None
    assert "raw_t" not in warehouse.tables()


def test_a_new_source_column_is_added(warehouse) -> None:
    warehouse.merge("raw_t", batch([1]), ("id",))
    warehouse.merge("raw_t", batch([2], region=pa.array(["EU"])), ("id",))
    assert [(r["id"], r["region"]) for r in rows(warehouse)] == [(1, None), (2, "EU")]


def test_a_replaced_row_loses_the_columns_the_new_batch_lacks(warehouse) -> None:
    warehouse.merge("raw_t", batch([1, 2], region=pa.array(["EU", "US"])), ("id",))
    warehouse.merge("raw_t", batch([2]), ("id",))
    assert [(r["id"], r["region"]) for r in rows(warehouse)] == [(1, "EU"), (2, None)]


def test_incompatible_type_change_names_the_column_and_writes_nothing(warehouse) -> None:
    warehouse.merge("raw_t", batch([1]), ("id",), state_key="erp.t", state={"cursor": 1})
    changed = pa.RecordBatch.from_pydict({"id": pa.array([2], pa.int32()),
                                          "amount": pa.array(["lots"])})
    with pytest.raises(DataContractError, match="column 'amount'"):
        warehouse.merge("raw_t", changed, ("id",), state_key="erp.t", state={"cursor": 2})
    assert [r["id"] for r in rows(warehouse)] == [1]
    assert warehouse.load_state("erp.t") == {"cursor": 1}


def test_a_widening_type_change_is_accepted(warehouse) -> None:
    warehouse.merge("raw_t", batch([1]), ("id",))
    wider = pa.RecordBatch.from_pydict({"id": pa.array([2], pa.int16()),
                                        "amount": pa.array([Decimal("1.50")],
                                                           pa.decimal128(12, 2))})
    warehouse.merge("raw_t", wider, ("id",))
    assert [r["id"] for r in rows(warehouse)] == [1, 2]


def test_state_is_written_with_the_rows_and_round_trips_types(warehouse) -> None:
    state = {"cursor": dt.datetime(2024, 1, 2, 3, 4, 5), "boundary": [[Decimal("1.5"), "x"]]}
    data = with_checkpoint(batch([1]), state)
    warehouse.merge("raw_t", data, ("id",), provenance=PROVENANCE, state_key="erp.t",
                    state=state)
    assert warehouse.load_state("erp.t") == state
    assert warehouse.states()["erp.t"]["run_id"] == "run-1"
    assert "headwater:state" not in str(warehouse.query('SELECT * FROM "raw_t"').schema)
    assert warehouse.delete_state("erp.t") is True
    assert warehouse.delete_state("erp.t") is False
    assert warehouse.load_state("erp.t") is None


def test_failure_inside_the_transaction_changes_neither_rows_nor_state(warehouse) -> None:
    warehouse.merge("raw_t", batch([1]), ("id",), state_key="erp.t", state={"cursor": 1})
    with Crashing(warehouse), pytest.raises(RuntimeError, match="crash before commit"):
        warehouse.merge("raw_t", batch([1, 2], [Decimal("5")] * 2, region=pa.array(["EU"] * 2)),
                        ("id",), state_key="erp.t", state={"cursor": 2})
    assert [(r["id"], r["amount"]) for r in rows(warehouse)] == [(1, Decimal("1.25"))]
    assert "region" not in rows(warehouse)[0]
    assert warehouse.load_state("erp.t") == {"cursor": 1}
    warehouse.merge("raw_t", batch([2]), ("id",), state_key="erp.t", state={"cursor": 2})
    assert warehouse.load_state("erp.t") == {"cursor": 2}


def test_hostile_table_names_are_quoted(warehouse) -> None:
    name = 'raw_x"; DROP TABLE raw_t; --'
    warehouse.merge("raw_t", batch([1]), ("id",))
    warehouse.merge(name, batch([1]), ("id",))
    assert {"raw_t", name} <= set(warehouse.tables())


@pytest.mark.parametrize(
    ("url", "expectation"),
    [
        ("duckdb:///:memory:", None),
        ("duckdb:///:memory:?memory_limit=256MB", None),
        ("duckdb:///:memory:?lock_wait=30", None),
        ("duckdb:///:memory:?threads=1", "unknown DuckDB warehouse option"),
        ("duckdb:///:memory:?lock_wait=soon", "lock_wait='soon' is not a number of seconds"),
        ("duckdb:///:memory:?lock_wait=-1", "lock_wait='-1' is not a number of seconds"),
        ("postgresql://postgres@127.0.0.1:1/test?lock_wait=nan", "lock_wait='nan' is not a"),
        ("sqlite:///x.db", "unsupported warehouse 'sqlite'"),
        ("not a url", "bad warehouse URL"),
    ],
)
def test_open_warehouse_by_url(url, expectation) -> None:
    if expectation is None:
        warehouse = open_warehouse(url)
        limit = warehouse.query("SELECT current_setting('memory_limit') AS m").column(0)[0]
        assert limit.as_py().startswith("244.1 MiB" if "256MB" in url else "61.0 MiB")
        assert warehouse.lock_wait == (30 if "lock_wait" in url else 5)
        warehouse.close()
        return
    with pytest.raises(ConfigurationError, match=expectation):
        open_warehouse(url)


@pytest.mark.parametrize(
    "keys",
    [
        pa.array([1.0, float("nan")], pa.float64()),
        pa.array([1, 2], pa.timestamp("ns")),
        pa.array([1, 2], pa.duration("us")),
        pa.array(["b", "a"], pa.string()),
    ],
    ids=["float-nan", "timestamp-ns", "duration", "unsorted-strings"],
)
def test_merging_the_same_keys_twice_never_duplicates(tmp_path, keys) -> None:
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        for version in (1, 2):
            data = pa.RecordBatch.from_pydict({"k": keys, "v": [version] * len(keys)})
            warehouse.merge("raw_k", data, ("k",))
        assert warehouse.query('SELECT v FROM "raw_k"').column(0).to_pylist() == [2, 2]


def test_duckdb_merges_on_their_own_thread_count_and_queries_keep_theirs(tmp_path) -> None:
    with DuckDBWarehouse(tmp_path / "w.duckdb", merge_threads=1) as warehouse:
        def threads() -> int:
            return warehouse._con.execute("SELECT current_setting('threads')").fetchall()[0][0]

        for_queries = threads()
        during_merge = []
        warehouse._before_commit = lambda table: during_merge.append(threads())
        warehouse.merge("raw_t", batch([1, 2]), ("id",))
        with pytest.raises(RuntimeError), Crashing(warehouse):
            warehouse.merge("raw_t", batch([3]), ("id",))
        assert during_merge == [1]
        assert threads() == for_queries


def test_replace_tables_swaps_every_table_or_none(warehouse) -> None:
    warehouse.replace_tables({"clean_a": pa.table({"x": [1]}), "clean_b": pa.table({"y": [1]})})
    with Crashing(warehouse), pytest.raises(RuntimeError, match="crash before commit"):
        warehouse.replace_tables({"clean_a": pa.table({"x": [2, 3]}),
                                  "clean_b": pa.table({"y": [2, 3]})})
    assert warehouse.read_table("clean_a").column("x").to_pylist() == [1]
    assert warehouse.read_table("clean_b").column("y").to_pylist() == [1]

    warehouse.replace_tables({"clean_a": pa.table({"x": [2, 3]}),
                              "clean_b": pa.table({"y": pa.array([], pa.int64())})})
    assert warehouse.read_table("clean_a").column("x").to_pylist() == [2, 3]
    assert warehouse.row_count("clean_b") == 0


def test_an_entity_is_cleaned_from_and_into_either_warehouse(warehouse) -> None:
    from headwater_demo.mappings import ORDER
    from pipelines.cleaning import clean_entity

    raw = pa.RecordBatch.from_pydict({
        "order_no": pa.array([1, 2, 3], pa.int64()),
        "cust_no": ["C00001  ", "C00002  ", "C00003  "],
        "order_date": [dt.date(2024, 1, 2)] * 3,
        "ship_date": [dt.date(2024, 1, 5), dt.date(1900, 1, 1), dt.date(2024, 1, 6)],
        "status": ["SHP", "NEW", "???"],
        "total_cents": pa.array([12345, 99, 500], pa.int64()),
        "user": ["JSMITH", "o'brien", "BATCH01"],
        "updated_at": [dt.datetime(2024, 1, 2, 10)] * 3,
    })
    warehouse.merge("raw_erp__orders", raw, ("order_no",), provenance=PROVENANCE)

    result = clean_entity(warehouse, ORDER, demo_normalization(), run_id="run-9")

    clean = warehouse.query('SELECT * FROM "clean_order" ORDER BY order_no').to_pylist()
    assert [(r["order_no"], r["customer_no"], r["total"], r["shipped_on"], r["is_shipped"])
            for r in clean] == [(1, "C00001", Decimal("123.45"), dt.date(2024, 1, 5), True),
                                (2, "C00002", Decimal("0.99"), None, False)]
    assert clean[0]["_hw_source"] == "erp"
    quarantined = warehouse.read_table("quarantine_order").to_pylist()
    assert [(q["source_key"], q["column"], q["check"], q["value"]) for q in quarantined] == [
        ('{"order_no":3}', "status", "codes(mapping={'NEW': 'new', 'SHP': 'shipped', 'CAN...)",
         "???")]
    assert result.reconciles


@pytest.fixture
def pg_warehouse():
    schema = f"hw_wh_{uuid.uuid4().hex[:8]}"
    wh = open_warehouse(f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}&lock_wait=2")
    yield wh
    wh.close()
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {quote(schema)} CASCADE"))
    engine.dispose()


def primary_key_of(warehouse, table: str) -> list[str]:
    return warehouse.query(
        "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
        f"WHERE i.indisprimary AND n.nspname = current_schema() AND c.relname = '{table}' "
        "ORDER BY a.attnum"
    ).column(0).to_pylist()


@pytest.mark.postgres
def test_postgres_raw_tables_carry_their_primary_key(pg_warehouse) -> None:
    assert pg_warehouse.lock_wait == 2
    pg_warehouse.merge("raw_t", batch([1]), ("id",), provenance=PROVENANCE)
    pg_warehouse.merge("raw_lines", pa.RecordBatch.from_pydict(
        {"order": [1], "line": [1], "qty": [1]}), ("order", "line"))
    pg_warehouse.merge("raw_log", pa.RecordBatch.from_pydict({"msg": ["x"]}), ())
    assert primary_key_of(pg_warehouse, "raw_t") == ["id"]
    assert primary_key_of(pg_warehouse, "raw_lines") == ["order", "line"]
    assert primary_key_of(pg_warehouse, "raw_log") == []


@pytest.mark.postgres
def test_a_postgres_table_landed_without_a_key_gets_it_keeping_the_newest_copy(
    pg_warehouse, caplog
) -> None:
    older = Provenance("erp", "orders", "run-1", dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    newer = Provenance("erp", "orders", "run-2", dt.datetime(2024, 6, 2, tzinfo=dt.UTC))
    table = pg_warehouse._name("raw_t")
    # A table as an earlier release created it (no key) after two runs raced into it.
    pg_warehouse.merge("raw_t", batch([1, 2]), (), provenance=older)
    pg_warehouse.merge("raw_t", batch([2, 3], [Decimal("9.99")] * 2), (), provenance=newer)
    with pg_warehouse._con.cursor() as cur:
        cur.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE id = 3")
    pg_warehouse._con.commit()
    assert pg_warehouse.row_count("raw_t") == 5

    reopened = open_warehouse(f"postgresql://postgres@127.0.0.1:5432/test"
                              f"?schema={pg_warehouse.schema}")
    with reopened, caplog.at_level("WARNING", logger="headwater.warehouse"):
        reopened.merge("raw_t", batch([4]), ("id",), provenance=newer)
        assert [(r["id"], r["amount"], r["_hw_run_id"]) for r in rows(reopened)] == [
            (1, Decimal("1.25"), "run-1"), (2, Decimal("9.99"), "run-2"),
            (3, Decimal("9.99"), "run-2"), (4, Decimal("4.25"), "run-2")]
        assert primary_key_of(reopened, "raw_t") == ["id"]
    assert "raw_t: removed 2 rows repeated by primary key ['id']" in caplog.text


@pytest.mark.postgres
def test_a_postgres_table_keyed_otherwise_is_refused_naming_both_keys(pg_warehouse) -> None:
    pg_warehouse.merge("raw_t", batch([1]), ("id",), state_key="erp.t", state={"cursor": 1})
    fresh = open_warehouse(f"postgresql://postgres@127.0.0.1:5432/test"
                           f"?schema={pg_warehouse.schema}")
    with fresh, pytest.raises(DataContractError, match=r"primary key is \['id'\] but the "
                              r"stream declares \['amount'\]; nothing was written"):
        fresh.merge("raw_t", batch([2]), ("amount",), state_key="erp.t", state={"cursor": 2})
    assert [r["id"] for r in rows(pg_warehouse)] == [1]
    assert pg_warehouse.load_state("erp.t") == {"cursor": 1}
