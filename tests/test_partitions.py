"""Key-range partitions: split values, one range per read, checkpoints of their own, and
the raw asset's partitions materialized one by one (a backfill) through Dagster."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext

import pytest
import sqlalchemy as sa
from dagster import AssetKey, materialize

from connectors import ConfigurationError, KeyRange, SQLTable
from dagster_project import build_definitions
from pipelines.config import load_config
from pipelines.partitions import even_splits, partition_names
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import demo_config

KEYED = AssetKey(["raw", "erp", "orders_by_key"])
KEY_RANGE_STREAM = '''
[[connectors.erp.streams]]
name = "orders_by_key"
table = "orders"
partition = "key_range"
partition_key = "order_no"
partitions = 4
'''


@pytest.mark.parametrize(("low", "high", "count", "expected"), [
    (1, 4_000_000, 8, [500_001, 1_000_001, 1_500_001, 2_000_001, 2_500_001, 3_000_001,
                       3_500_001]),
    (1, 3, 4, [2, 3, 4]),  # narrower than the count: the last range is empty
    (5, 5, 1, []),
    (dt.date(2024, 1, 1), dt.date(2024, 1, 30), 3,
     [dt.date(2024, 1, 11), dt.date(2024, 1, 21)]),
    (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), 2, [dt.datetime(2024, 1, 1, 12)]),
])
def test_even_splits_cut_the_span_into_equal_ranges(low, high, count, expected) -> None:
    assert even_splits(low, high, count) == expected


def test_a_key_that_cannot_be_cut_evenly_asks_for_explicit_bounds() -> None:
    with pytest.raises(ConfigurationError, match="declare partition_bounds"):
        even_splits("A", "Z", 4, "erp.customers")


@pytest.mark.parametrize(("stream", "expectation"), [
    ('partition = "key_range"\npartition_key = "order_no"\npartitions = 4', nullcontext()),
    ('partition = "key_range"\npartition_key = "order_no"\npartition_bounds = [100, 200]',
     nullcontext()),
    ('partition = "key_range"\npartitions = 4',
     pytest.raises(ConfigurationError, match="needs partition_key")),
    ('partition = "key_range"\npartition_key = "order_no"',
     pytest.raises(ConfigurationError, match="either partitions = <count> or partition_bounds")),
    ('partition = "key_range"\npartition_key = "order_no"\npartition_bounds = [200, 100]',
     pytest.raises(ConfigurationError, match="increasing order")),
    ('partition = "daily"\npartition_start = "2024-01-01"',
     pytest.raises(ConfigurationError, match="needs a cursor")),
])
def test_partition_keys_are_checked_at_load(tmp_path, stream, expectation) -> None:
    extra = f'\n[[connectors.erp.streams]]\nname = "keyed"\ntable = "orders"\n{stream}\n'
    with expectation:
        config = load_config(demo_config(tmp_path, extra=extra))
        spec = config.connector("erp").partitions()["keyed"]
        assert spec.kind == "key_range" and len(partition_names(spec)) in (3, 4)


def test_key_ranges_land_the_whole_table_once_with_a_checkpoint_each(erp_db, tmp_path) -> None:
    stream = SQLTable(name="orders", table="orders")
    ranges = [KeyRange("order_no", None, 100), KeyRange("order_no", 100, 200),
              KeyRange("order_no", 200, None)]
    with erp_db.connector([stream], chunk_size=40) as source, \
            DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        landed = [run_stream(source, "orders", warehouse, key_range=r).rows for r in ranges]
        again = run_stream(source, "orders", warehouse, key_range=ranges[1])
        keys = warehouse.query('SELECT order_no FROM "raw_erp__orders" ORDER BY 1')
        states = warehouse.states()
    with erp_db.engine.connect() as conn:
        expected = list(conn.execute(sa.text(
            f"SELECT order_no FROM {erp_db.table('orders')} ORDER BY 1")).scalars())
    assert keys.column(0).to_pylist() == expected and sum(landed) == len(expected) == 300
    assert landed == [99, 100, 101] and again.rows == 100  # a rerun merges, never doubles
    assert {k for k in states if k.startswith("erp.orders@")} == {
        "erp.orders@order_no[,100)", "erp.orders@order_no[100,200)", "erp.orders@order_no[200,)"}
    assert "erp.orders" not in states  # ranges never move the stream's own state


def test_a_rest_stream_cannot_be_read_by_key_range() -> None:
    from connectors import RESTConnector, RESTStream

    rest = RESTConnector("crm", "http://127.0.0.1:1",
                         [RESTStream(name="a", path="/a", primary_key=("id",))])
    with pytest.raises(ConfigurationError, match="cannot be read by key range"):
        run_stream(rest, "a", None, key_range=KeyRange("id", 1, 2))  # type: ignore[arg-type]


def test_a_backfill_of_key_ranges_through_dagster_lands_every_order_once(tmp_path,
                                                                         monkeypatch) -> None:
    config = demo_config(tmp_path, extra=KEY_RANGE_STREAM,
                         replace={"orders = 2000": "orders = 400"})
    with load_config(config).build_connector("erp"):
        pass  # the demo ERP builds itself when first opened
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    defs = build_definitions()
    assert defs.resolve_job_def("erp__orders_by_key_partitions") is not None
    for key in ["1-of-4", "2-of-4", "3-of-4", "4-of-4", "2-of-4"]:  # one twice: a rerun
        result = materialize(defs.assets, resources=defs.resources, selection=[KEYED],
                             partition_key=key)
        assert result.success

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    with engine.connect() as conn:
        expected = list(conn.execute(sa.text("SELECT order_no FROM orders ORDER BY 1")).scalars())
    engine.dispose()
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as warehouse:
        landed = warehouse.query('SELECT order_no FROM "raw_erp__orders_by_key" ORDER BY 1')
        states = warehouse.states()
    assert landed.column(0).to_pylist() == expected and len(expected) == 400
    split = states["erp.orders_by_key@split"]["state"]
    assert split["count"] == 4 and len(split["splits"]) == 3
    assert len([k for k in states if k.startswith("erp.orders_by_key@order_no[")]) == 4


def test_a_fan_out_run_lands_every_partition_as_a_step_and_records_each(tmp_path,
                                                                       monkeypatch) -> None:
    from dagster import DagsterInstance

    config = demo_config(tmp_path, extra=KEY_RANGE_STREAM,
                         replace={"orders = 2000": "orders = 400"})
    with load_config(config).build_connector("erp"):
        pass
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    defs = build_definitions()
    job = defs.resolve_job_def("erp__orders_by_key_fanout")
    assert sorted(n.name for n in job.nodes) == ["land_1_of_4", "land_2_of_4", "land_3_of_4",
                                                 "land_4_of_4"]
    with DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(instance=instance)
        again = job.execute_in_process(instance=instance)  # a rerun: nothing doubles
        assert first.success and again.success
        events = [e for e in first.get_asset_materialization_events() if e.asset_key == KEYED]
        assert sorted(e.materialization.partition for e in events) == [
            "1-of-4", "2-of-4", "3-of-4", "4-of-4"]
        assert all(e.materialization.tags["dagster/data_version"] for e in events)
        assert instance.get_materialized_partitions(KEYED) == {
            "1-of-4", "2-of-4", "3-of-4", "4-of-4"}
        read = sum(e.materialization.metadata["rows read"].value for e in events)
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as warehouse:
        landed = warehouse.query('SELECT count(*), count(DISTINCT order_no) FROM '
                                 '"raw_erp__orders_by_key"').to_pylist()[0]
    assert list(landed.values()) == [400, 400] and read == 400


# Dagster's own test helper passes a beta parameter to AssetSelection.all internally.
@pytest.mark.filterwarnings("ignore:Parameter `include_sources`:Warning")
def test_downstream_of_partitions_runs_once_every_partition_is_in() -> None:
    from dagster import (
        DagsterInstance,
        StaticPartitionsDefinition,
        asset,
        evaluate_automation_conditions,
    )

    from dagster_project._deploy import AFTER_UPSTREAM

    parts = StaticPartitionsDefinition(["1-of-4", "2-of-4", "3-of-4", "4-of-4"])

    @asset(partitions_def=parts)
    def raw_items() -> None:
        return None

    @asset(deps=[raw_items], automation_condition=AFTER_UPSTREAM)
    def clean_items() -> None:
        return None

    requested = []
    with DagsterInstance.ephemeral() as instance:
        cursor = None

        def tick() -> int:
            nonlocal cursor
            result = evaluate_automation_conditions(defs=[raw_items, clean_items],
                                                    instance=instance, cursor=cursor)
            cursor = result.cursor
            return result.get_num_requested(clean_items.key)

        requested.append(tick())
        for key in ["1-of-4", "2-of-4", "3-of-4", "4-of-4"]:
            assert materialize([raw_items], instance=instance, partition_key=key).success
            requested.append(tick())
        requested.append(tick())
        assert materialize([raw_items], instance=instance, partition_key="2-of-4").success
        requested.append(tick())
    # Nothing while partitions are missing, once when the last lands, once per new landing.
    assert requested == [0, 0, 0, 0, 1, 0, 1]


def test_a_key_range_partition_of_a_full_refresh_table_removes_no_other_rows(tmp_path) -> None:
    """A partition reads part of the source: it must not take the rest as deleted."""
    import sqlalchemy as sa

    from connectors import KeyRange, SQLConnector, SQLTable
    from pipelines.runner import run_stream
    from pipelines.warehouse import DuckDBWarehouse

    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)"))
        for i in range(1, 101):
            conn.execute(sa.text("INSERT INTO items VALUES (:i, 'x')"), {"i": i})
    engine.dispose()
    source = SQLConnector("src", f"sqlite:///{tmp_path / 's.sqlite'}",
                          [SQLTable(name="items", table="items")])
    with source, DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        for low, high in ((1, 51), (51, 101)):
            ran = run_stream(source, "items", warehouse, key_range=KeyRange("id", low, high))
            assert ran.removed == 0
        assert warehouse.row_count("raw_src__items") == 100
