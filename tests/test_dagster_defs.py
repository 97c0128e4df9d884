"""The Dagster code location as loaded: assets, lineage edges, checks, automation, secrets."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    SkipReason,
)

from dagster_project import HeadwaterTranslator, build_definitions
from dagster_project._automation import new_data_requests
from headwater_demo.mappings import MAPPINGS
from pipelines.config import load_config
from pipelines.lineage import landings_of
from tests.conftest import demo_config

SECRET = "Correct-Horse-42"


def definitions(monkeypatch, config: Path, **env: str) -> Definitions:
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return build_definitions()


@pytest.fixture
def defs(monkeypatch, tmp_path) -> Definitions:
    return definitions(monkeypatch, demo_config(tmp_path))


def graph(defs: Definitions):
    return defs.resolve_asset_graph()


def test_dagster_validates_the_code_location(tmp_path) -> None:
    env = {**os.environ, "HEADWATER_CONFIG": str(demo_config(tmp_path)),
           "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-m",
         "dagster_project.definitions"], capture_output=True, text=True, env=env, timeout=300,
        cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_every_stream_and_entity_is_an_asset_with_its_upstream(defs) -> None:
    asset_graph = graph(defs)
    keys = {key.to_user_string() for key in asset_graph.get_all_asset_keys()}

    for stream in ("erp/orders", "erp/order_lines", "crm/tickets", "logistics/shipments"):
        assert f"raw/{stream}" in keys
    for mapping in MAPPINGS:
        assert f"clean/{mapping.entity}" in keys
        assert f"quarantine/{mapping.entity}_quarantine" in keys
    assert {"erp/source/orders", "crm/source/api_tickets",
            "logistics/source/listshipments"} <= keys
    parents = asset_graph.get(AssetKey(["clean", "order_line"])).parent_keys
    assert parents == {AssetKey(["raw", "erp", "order_lines"]), AssetKey(["clean", "product"])}
    assert asset_graph.get(AssetKey(["raw", "erp", "orders"])).parent_keys == {
        AssetKey(["erp", "source", "orders"])}
    assert asset_graph.get(AssetKey(["model", "account_health"])).parent_keys == {
        AssetKey(["context", "account_context"])}
    assert {AssetKey(["clean", "party_xref"]), AssetKey(["clean", "ticket"])} <= \
        asset_graph.get(AssetKey(["context", "account_context"])).parent_keys
    assert asset_graph.get(AssetKey(["clean", "party_xref"])).parent_keys == {
        AssetKey(["clean", "customer"]), AssetKey(["clean", "account"]),
        AssetKey(["clean", "shipment"])}


def test_a_table_stream_without_a_name_is_one_asset_under_the_name_it_lands_by(
        monkeypatch, tmp_path) -> None:
    config = demo_config(tmp_path, replace={
        'name = "order_lines"\ntable = "ORDER LINES"': 'table = "ORDER LINES"'})
    asset_graph = graph(definitions(monkeypatch, config))

    landed = AssetKey(["raw", "erp", "order_lines"])
    assert landed in asset_graph.get_all_asset_keys()
    assert landed in asset_graph.get(AssetKey(["clean", "order_line"])).parent_keys
    assert landings_of(load_config(config))["raw_erp__order_lines"] == \
        "erp table 'ORDER LINES'"


def test_groups_kinds_owners_and_tags_come_from_the_spec(defs) -> None:
    node = graph(defs).get(AssetKey(["raw", "erp", "orders"]))
    assert node.group_name == "erp"
    assert {"sqlite", "duckdb"} <= set(node.kinds)
    assert node.owners == ["team:erp-integration"]
    assert node.tags["domain"] == "sales"
    clean = graph(defs).get(AssetKey(["clean", "contact"]))
    assert clean.group_name == "crm" and {"pandera", "polars"} <= set(clean.kinds)
    assert clean.automation_condition is not None


def test_a_changed_spec_changes_the_code_version(monkeypatch, tmp_path) -> None:
    before = definitions(monkeypatch, demo_config(tmp_path / "a"))
    after = definitions(monkeypatch, demo_config(
        tmp_path / "b", replace={'table = "orders"\ncursor = "updated_at"':
                                 'table = "orders"\ncursor = "updated_at"\nlag_seconds = 60'}))

    def version(d: Definitions, key: list[str]) -> str | None:
        return graph(d).get(AssetKey(key)).code_version

    assert version(before, ["raw", "erp", "orders"]) != version(after, ["raw", "erp", "orders"])
    assert version(before, ["raw", "erp", "products"]) == \
        version(after, ["raw", "erp", "products"])
    assert version(before, ["clean", "order"]) == version(after, ["clean", "order"])


def test_clean_assets_publish_schema_and_lineage_in_their_definition(defs) -> None:
    spec = next(s for a in defs.assets if hasattr(a, "specs") for s in a.specs
                if s.key == AssetKey(["clean", "order"]))
    columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
    assert columns["customer_no"].description == "ordering customer"
    assert columns["shipped_on"].constraints.nullable is True
    assert columns["order_no"].constraints.unique is True
    assert "one of cancelled, new, on_hold, shipped" in columns["status"].constraints.other
    assert columns["total"].constraints.other == [">= 0"]
    lineage = spec.metadata["dagster/column_lineage"].deps_by_column
    assert [(d.asset_key, d.column_name) for d in lineage["customer_no"]] == [
        (AssetKey(["raw", "erp", "orders"]), "cust_no")]
    rows = {r.data["column"]: r.data for r in spec.metadata["column lineage"].records}
    assert rows["is_shipped"]["from"] == "raw/erp/orders.ship_date"
    assert "derived from shipped_on" in rows["is_shipped"]["transform"]


def test_checks_cover_schema_rules_and_quarantine_rate(defs) -> None:
    check_keys = {(k.asset_key.to_user_string(), k.name)
                  for k in graph(defs).asset_check_keys}
    for mapping in MAPPINGS:
        assert (f"clean/{mapping.entity}", "schema_rules") in check_keys
        assert (f"clean/{mapping.entity}", "quarantine_rate") in check_keys


def test_every_source_has_a_freshness_policy_from_its_spec(defs) -> None:
    erp = graph(defs).get(AssetKey(["raw", "erp", "orders"])).freshness_policy
    crm = graph(defs).get(AssetKey(["raw", "crm", "tickets"])).freshness_policy
    assert erp.fail_window.to_timedelta() == dt.timedelta(hours=48)  # freshness_hours
    assert crm.fail_window.to_timedelta() == dt.timedelta(hours=24)  # the default


def test_schedules_have_explicit_time_zones_and_start_on(defs) -> None:
    schedules = {s.name: s for s in defs.schedules}
    erp = schedules["erp_schedule"]
    assert (erp.cron_schedule, erp.execution_timezone) == ("0 * * * *", "Europe/Berlin")
    assert all(s.default_status == DefaultScheduleStatus.RUNNING for s in schedules.values())
    sensors = {s.name: s for s in defs.sensors}
    assert {"erp_new_data", "headwater_automation"} <= set(sensors)
    assert sensors["headwater_automation"].default_status == DefaultSensorStatus.RUNNING


def test_new_data_requests_only_what_moved() -> None:
    first = new_data_requests("erp", {}, {"orders": "2024-05-01T10:00:00", "products": None})
    assert [r.asset_selection for r in first.run_requests] == [
        [AssetKey(["raw", "erp", "orders"])]]
    again = new_data_requests("erp", {"orders": "2024-05-01T10:00:00"},
                              {"orders": "2024-05-01T10:00:00"})
    assert isinstance(again, SkipReason)


def test_secrets_reach_definitions_only_as_environment_variable_names(monkeypatch,
                                                                      tmp_path) -> None:
    config = demo_config(tmp_path, replace={
        'class = "headwater_demo.sources:DemoCRM"':
        'class = "headwater_demo.sources:DemoCRM"\n'
        'auth = { kind = "bearer", token = "${CRM_TOKEN}" }'})
    defs = definitions(monkeypatch, config, CRM_TOKEN=SECRET,
                       HEADWATER_WAREHOUSE_URL=f"postgresql://etl:{SECRET}@db/warehouse")

    resource = defs.resources["headwater"]
    assert isinstance(resource.warehouse_url, EnvVar)
    nodes = [graph(defs).get(key) for key in graph(defs).get_all_asset_keys()]
    shown = repr([(n.metadata, n.description, n.tags) for n in nodes]) \
        + repr(defs.resources) + repr([s.description for s in defs.schedules])
    assert SECRET not in shown


def test_asset_keys_follow_the_warehouse_table_layers() -> None:
    key = HeadwaterTranslator().asset_key
    assert key("raw_erp__order_lines") == AssetKey(["raw", "erp", "order_lines"])
    assert key("clean_party_xref") == AssetKey(["clean", "party_xref"])
    assert key("ref_fx_rates") == AssetKey(["reference", "fx_rates"])
    assert key("model_errors_health") == AssetKey(["model_errors", "health_errors"])
    assert key("context_account") == AssetKey(["context", "account_context"])


def test_a_configuration_of_your_own_starts_with_its_automation_stopped(tmp_path) -> None:
    config = tmp_path / "headwater.toml"
    config.write_text(f"""
[warehouse]
url = "duckdb:///{tmp_path.as_posix()}/wh.duckdb"
[connectors.shop]
url = "sqlite:///{tmp_path.as_posix()}/shop.sqlite"
schedule = "0 6 * * *"
sensor = true
[[connectors.shop.streams]]
table = "sales"
cursor = "changed"
""", "utf-8")
    defs = build_definitions(config)
    assert [(s.name, s.default_status) for s in defs.schedules] == [
        ("shop_schedule", DefaultScheduleStatus.STOPPED)]
    assert {s.name: s.default_status for s in defs.sensors} == {
        "shop_new_data": DefaultSensorStatus.STOPPED,
        "headwater_automation": DefaultSensorStatus.STOPPED}
    started = config.read_text("utf-8") + "[dagster]\nstart_automation = true\n"
    config.write_text(started, "utf-8")
    assert {s.default_status for s in build_definitions(config).sensors} == {
        DefaultSensorStatus.RUNNING}
