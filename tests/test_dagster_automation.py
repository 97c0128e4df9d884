"""Schedules, the new-data sensor and daily partitions, run with Dagster's test contexts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from dagster_project import build_definitions
from headwater_demo.erp import touch_erp
from pipelines.config import load_config
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import demo_config

DAILY = AssetKey(["raw", "erp", "orders_by_day"])
PARTITIONED_STREAM = '''
[[connectors.erp.streams]]
name = "orders_by_day"
table = "orders"
cursor = "updated_at"
partition = "daily"
partition_start = "2024-01-01"
'''


@pytest.fixture
def estate(tmp_path, monkeypatch):
    """A built demo ERP and the definitions over it, with a daily-partitioned stream."""
    config = demo_config(tmp_path, extra=PARTITIONED_STREAM,
                         replace={"orders = 2000": "orders = 400"})
    with load_config(config).build_connector("erp"):
        pass  # the demo ERP builds itself when first opened
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    return tmp_path, build_definitions()


def test_a_source_schedule_requests_its_streams_in_its_time_zone(estate) -> None:
    _, defs = estate
    schedule = next(s for s in defs.schedules if s.name == "erp_schedule")
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC))

    requests = schedule.evaluate_tick(context).run_requests

    assert len(requests) == 1 and schedule.execution_timezone == "Europe/Berlin"
    job = defs.resolve_job_def(schedule.job_name)
    assert {k.path[-1] for k in job.asset_layer.executable_asset_keys} == {
        "customers", "products", "orders", "order_lines"}


def test_the_sensor_lands_only_streams_whose_cursor_moved(estate) -> None:
    root, defs = estate
    sensor = next(s for s in defs.sensors if s.name == "erp_new_data")
    with DagsterInstance.ephemeral() as instance:
        first = sensor.evaluate_tick(build_sensor_context(instance=instance))
        assert len(first.run_requests) == 1
        assert set(first.run_requests[0].asset_selection) == {
            AssetKey(["raw", "erp", s]) for s in ("customers", "products", "orders",
                                                  "order_lines")}

        quiet = sensor.evaluate_tick(build_sensor_context(instance=instance,
                                                          cursor=first.cursor))
        assert quiet.run_requests == [] and quiet.skip_message

        engine = sa.create_engine(f"sqlite:///{root / 'erp.sqlite'}")
        touch_erp(engine, changed=3, added=2)
        engine.dispose()
        moved = sensor.evaluate_tick(build_sensor_context(instance=instance,
                                                          cursor=first.cursor))
    assert [r.asset_selection for r in moved.run_requests] == [[AssetKey(["raw", "erp",
                                                                           "orders"])]]
    assert json.loads(moved.cursor)["orders"] > json.loads(first.cursor)["orders"]


def test_a_backfill_of_three_days_lands_exactly_those_windows(estate) -> None:
    root, defs = estate
    days = ["2024-01-05", "2024-01-06", "2024-01-07"]
    for day in [*days, days[1]]:  # the middle day twice: a rerun adds nothing
        result = materialize(defs.assets, resources=defs.resources, selection=[DAILY],
                             partition_key=day)
        assert result.success

    engine = sa.create_engine(f"sqlite:///{root / 'erp.sqlite'}")
    with engine.connect() as conn:
        expected = sorted(conn.execute(sa.text(
            "SELECT order_no FROM orders WHERE updated_at >= '2024-01-05' "
            "AND updated_at < '2024-01-08'")).scalars())
    engine.dispose()
    with DuckDBWarehouse(root / "warehouse.duckdb") as warehouse:
        landed = warehouse.query('SELECT order_no FROM "raw_erp__orders_by_day" ORDER BY 1')
        states = warehouse.states()
    assert landed.column(0).to_pylist() == expected and expected
    assert "erp.orders_by_day" not in states  # partitions never move the stream's cursor
    assert {k for k in states if k.startswith("erp.orders_by_day@")} == {
        f"erp.orders_by_day@{day}T00:00:00" for day in days}


def test_a_source_the_sensor_cannot_read_skips_the_tick_with_the_reason(tmp_path,
                                                                         monkeypatch) -> None:
    # The ERP's database server does not answer.
    config = demo_config(tmp_path, replace={
        f'url = "sqlite:///{tmp_path.as_posix()}/erp.sqlite"':
        'url = "postgresql+psycopg://postgres@127.0.0.1:1/erp"\nretry = { max_attempts = 1 }'})
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    sensor = next(s for s in build_definitions().sensors if s.name == "erp_new_data")
    with DagsterInstance.ephemeral() as instance:
        tick = sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert tick.run_requests == []
    assert "erp cannot be read now" in tick.skip_message


def evaluate(defs, instance, cursor=None):
    """One tick of declarative automation (its evaluator calls a beta Dagster API inside)."""
    import warnings

    from dagster import evaluate_automation_conditions

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*include_sources.*is currently in beta")
        return evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)


@pytest.mark.slow
def test_a_tick_without_new_rows_runs_nothing_downstream_and_new_rows_run_their_chain(
        tmp_path) -> None:
    config = demo_config(tmp_path, replace={"orders = 2000": "orders = 300"})
    defs = build_definitions(config)
    graph = defs.resolve_asset_graph()
    everything = [k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    orders = AssetKey(["raw", "erp", "orders"])
    with DagsterInstance.ephemeral() as instance:
        assert materialize(defs.assets, instance=instance, resources=defs.resources,
                           selection=everything).success
        settled = evaluate(defs, instance)

        assert materialize(defs.assets, instance=instance, resources=defs.resources,
                           selection=[orders]).success  # nothing new at the source
        quiet = evaluate(defs, instance, settled.cursor)
        assert quiet.total_requested == 0, [
            r.key.to_user_string() for r in quiet.results if r.true_subset.size]

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}")
        touch_erp(engine, changed=5, added=3)
        engine.dispose()
        assert materialize(defs.assets, instance=instance, resources=defs.resources,
                           selection=[orders]).success
        busy = evaluate(defs, instance, quiet.cursor)
        requested = {r.key.to_user_string() for r in busy.results if r.true_subset.size}
        assert requested == {"clean/order", "quarantine/order_quarantine"} | (
            requested & {"clean/party_xref", "context/account_context", "model/account_health",
                         "model_errors/account_health_errors"})
        assert "clean/order" in requested and "clean/customer" not in requested
