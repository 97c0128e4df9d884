"""Materializing the demo graph with Dagster against the live legacy estate."""

from __future__ import annotations

import json

import pytest
from dagster import AssetKey, Definitions, ExecuteInProcessResult, materialize

from dagster_project import build_definitions
from headwater_demo.crm import CRMServer
from headwater_demo.llm import LLMServer
from headwater_demo.mappings import MAPPINGS
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import demo_config

pytestmark = pytest.mark.slow

TICKETS = AssetKey(["raw", "crm", "tickets"])


def table_of(key: AssetKey) -> str:
    from pipelines.lineage import table_of as table

    return table(key.to_user_string())


def events(result: ExecuteInProcessResult, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def materialized(result: ExecuteInProcessResult) -> list:
    """Materializations of the warehouse's assets (not of the source nodes they read)."""
    return [e for e in result.get_asset_materialization_events()
            if "source" not in e.asset_key.path[1:2]]


def source_events(result: ExecuteInProcessResult) -> list:
    return [e for e in result.get_asset_materialization_events()
            if "source" in e.asset_key.path[1:2]]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dagster")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEADWATER_CONFIG", str(demo_config(root)))
        patch.setenv("HEADWATER_OPENLINEAGE_FILE", str(root / "openlineage.jsonl"))
        defs = build_definitions()
        result = materialize(defs.assets, resources=defs.resources)
    with DuckDBWarehouse(root / "warehouse.duckdb") as warehouse:
        counts = {t: warehouse.row_count(t) for t in warehouse.tables()}
    events = [json.loads(line) for line in
              (root / "openlineage.jsonl").read_text("utf-8").splitlines()]
    return result, counts, events, root


def test_the_whole_demo_graph_materializes(full_run) -> None:
    result, _, _, _ = full_run
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}

    assert result.success
    assert {AssetKey(["clean", m.entity]) for m in MAPPINGS} <= materialized
    assert AssetKey(["clean", "party_xref"]) in materialized and TICKETS in materialized
    parties = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                   if e.asset_key == AssetKey(["clean", "party_xref"]))
    assert (parties["mode"].value, parties["why resolved whole"].value) == ("full", "first run")
    assert parties["records re-resolved"].value == parties["dagster/row_count"].value


def test_row_counts_in_metadata_equal_the_warehouse(full_run) -> None:
    result, counts, _, _ = full_run
    for event in materialized(result):
        metadata = event.materialization.metadata
        assert metadata["dagster/row_count"].value == counts[table_of(event.asset_key)], \
            event.asset_key


def test_every_clean_column_has_its_lineage_in_the_materialization(full_run) -> None:
    result, _, _, _ = full_run
    by_key = {e.asset_key: e.materialization.metadata
              for e in result.get_asset_materialization_events()}
    for mapping in MAPPINGS:
        metadata = by_key[AssetKey(["clean", mapping.entity])]
        lineage = metadata["dagster/column_lineage"].value.deps_by_column
        assert set(lineage) == set(mapping.table_schema.columns), mapping.entity
        assert all(lineage.values()), mapping.entity
        table = metadata["column lineage"].value.records
        assert [r.data["column"] for r in table] == list(mapping.table_schema.columns)
        assert metadata["rows read"].value == metadata["rows clean"].value + \
            metadata["rows quarantined"].value + metadata["rows superseded"].value


def test_the_model_answers_keep_their_lineage_and_costs(full_run) -> None:
    result, counts, _, _ = full_run
    by_key = {e.asset_key: e.materialization.metadata
              for e in result.get_asset_materialization_events()}
    model = by_key[AssetKey(["model", "account_health"])]
    context = by_key[AssetKey(["context", "account_context"])]

    assert model["rows"].value == counts["model_account_health"] == context["contexts"].value
    assert model["errors"].value == 0 and model["cost"].value == 0
    lineage = model["dagster/column_lineage"].value.deps_by_column
    account = AssetKey(["context", "account_context"])
    assert {(d.asset_key, d.column_name) for d in lineage["cited_sources"]} == {
        (account, "document.account.account_id"), (account, "document.open_tickets.ticket_id"),
        (account, "document.late_shipments.shipment_id"), (account, "document.orders.order_no"),
        (account, "provenance")}
    assert {d.column_name for d in lineage["risk"]} == {
        "document.counts.open_tickets", "document.counts.late_shipments",
        "document.open_tickets.priority"}, "only the fields the step uses"
    assert context["dagster/column_lineage"].value.deps_by_column["document"]
    explained = model["answers explained (sample)"].value.records
    assert explained and all(r.data["cites"] in r.data["answer"] or r.data["record"]
                             for r in explained)
    first = explained[0].data
    assert first["record"].startswith("clean_account key ACC-")
    assert "← crm GET /api/accounts." in first["from source"]


def test_the_demo_model_step_asks_an_endpoint_when_its_variables_are_set(full_run) -> None:
    *_, root = full_run
    with LLMServer(model="demo-model", api_key="sk-demo-key") as llm, \
            pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEADWATER_CONFIG", str(root / "headwater.toml"))
        for name, value in {"BASE_URL": llm.url, "MODEL": "demo-model",
                            "API_KEY": "sk-demo-key"}.items():
            patch.setenv(f"HEADWATER_LLM_{name}", value)
        defs = build_definitions()
        result = materialize(defs.assets, resources=defs.resources,
                             selection=[AssetKey(["model", "account_health"]),
                                        AssetKey(["model_errors", "account_health_errors"])])
        calls = llm.requests

    metadata = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.asset_key == AssetKey(["model", "account_health"]))
    assert result.success and calls == metadata["rows"].value > 0
    assert metadata["served_by"].value == {"openai/demo-model": metadata["rows"].value}


def test_blocking_schema_checks_pass_and_quarantine_rates_are_reported(full_run) -> None:
    result, _, _, _ = full_run
    evaluations = [e.event_specific_data for e in events(result, "ASSET_CHECK_EVALUATION")]
    schema = {e.asset_key.path[-1]: e.passed for e in evaluations
              if e.check_name == "schema_rules"}
    assert schema == {m.entity: True for m in MAPPINGS}
    rates = [e for e in evaluations if e.check_name == "quarantine_rate"]
    assert len(rates) == len(MAPPINGS)
    contact = next(e for e in rates if e.asset_key.path[-1] == "contact")
    assert 0 < contact.metadata["share"].value < 0.05


def test_openlineage_events_carry_the_column_lineage(full_run) -> None:
    _, _, events, _ = full_run
    by_job = {e["job"]["name"]: e for e in events}

    assert {f"clean_{m.entity}" for m in MAPPINGS} | {"context_account",
                                                      "model_account_health"} <= set(by_job)
    order = by_job["clean_order"]["outputs"][0]["facets"]
    assert set(order["columnLineage"]["fields"]) == set(ORDER_COLUMNS)
    assert order["columnLineage"]["fields"]["customer_no"]["inputFields"][0]["field"] == \
        "cust_no"
    assert {i["name"] for i in by_job["model_account_health"]["inputs"]} == {"context_account"}


ORDER_COLUMNS = next(m for m in MAPPINGS if m.entity == "order").table_schema.columns


@pytest.fixture
def crm():
    with CRMServer(accounts=30, tickets=300) as server:
        yield server


def crm_definitions(tmp_path, monkeypatch, crm: CRMServer, secret: str) -> Definitions:
    """The demo with the test's own CRM (so the test can break it), tight HTTP retries."""
    config = demo_config(tmp_path, replace={
        '[connectors.crm]\nclass = "headwater_demo.sources:DemoCRM"\naccounts = 120\n'
        'tickets = 400':
        f"[connectors.crm]\nkind = \"rest\"\nbase_url = \"{crm.url}\"\n"
        "retry = { max_attempts = 2, base_delay = 0.01, max_delay = 0.02 }\n"
        f"auth = {{ kind = \"oauth2\", token_url = \"{crm.token_url}\", "
        f"client_id = \"{crm.client_id}\", client_secret = \"{secret}\" }}",
    })
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    return build_definitions()


def test_a_retriable_fault_is_retried_by_dagster_and_loses_nothing(tmp_path, monkeypatch,
                                                                   crm) -> None:
    defs = crm_definitions(tmp_path, monkeypatch, crm, crm.client_secret)
    crm.faults.unavailable(count=3, path="/api/tickets")  # more than one step's attempts

    result = materialize(defs.assets, resources=defs.resources, selection=[TICKETS])

    assert result.success
    assert len(events(result, "STEP_UP_FOR_RETRY")) >= 1
    metadata = materialized(result)[0].materialization.metadata
    assert metadata["retry count"].value >= 1
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as warehouse:
        ids = warehouse.query('SELECT id FROM "raw_crm__tickets"').column(0).to_pylist()
    assert sorted(ids) == sorted(t["id"] for t in crm.records("tickets"))  # 0 lost, 0 twice


def test_a_fatal_fault_fails_once_with_a_readable_message(tmp_path, monkeypatch, crm) -> None:
    defs = crm_definitions(tmp_path, monkeypatch, crm, "not-the-secret")

    result = materialize(defs.assets, resources=defs.resources, selection=[TICKETS],
                         raise_on_error=False)

    assert not result.success
    assert events(result, "STEP_UP_FOR_RETRY") == []
    failures = events(result, "STEP_FAILURE")
    assert len(failures) == 1
    message = failures[0].event_specific_data.error_display_string
    assert "AuthenticationError" in message and "not-the-secret" not in message


MODEL_CONFIG = '''
[warehouse]
url = "duckdb:///{root}/models.duckdb"

[models.health]
context = "account"
output = "headwater_demo.account_health:AccountHealth"
prompt = "headwater_demo.account_health:ACCOUNT_HEALTH_PROMPT"
timeout = 2
breaker_failures = 2

[[models.health.providers]]
kind = "openai"
base_url = "{url}"
model = "health-1"
retry = {{ max_attempts = 1 }}

[[models.health.providers]]
kind = "rules"
function = "headwater_demo.account_health:account_health_rules"
version = "rules-1"
'''


def test_a_model_step_past_its_fallback_share_fails_its_blocking_check(tmp_path) -> None:
    from headwater_demo.contexts import account_contexts
    from headwater_demo.llm import ALWAYS

    with LLMServer(model="health-1") as llm:
        config = tmp_path / "headwater.toml"
        config.write_text(MODEL_CONFIG.format(root=tmp_path.as_posix(), url=llm.url),
                          "utf-8")
        with DuckDBWarehouse(tmp_path / "models.duckdb") as warehouse:
            warehouse.replace_tables({"context_account": account_contexts(20)})
        defs = build_definitions(config)
        output = AssetKey(["model", "health"])
        both = [output, AssetKey(["model_errors", "health_errors"])]

        llm.faults.status(500, "the model is down", count=ALWAYS)
        failed = materialize(defs.assets, resources=defs.resources, selection=both,
                             raise_on_error=False)
        assert not failed.success
        [check] = failed.get_asset_check_evaluations()
        assert check.check_name == "fallback_share" and not check.passed
        assert "500" in check.metadata["top reasons"].value
        assert not [e for e in failed.get_asset_materialization_events()
                    if e.asset_key == output], "no output is reported when none was written"
        with DuckDBWarehouse(tmp_path / "models.duckdb") as warehouse:
            assert "model_health" not in warehouse.tables()

        llm.faults.clear()
        healthy = materialize(defs.assets, resources=defs.resources, selection=both)
        assert healthy.success
        [check] = healthy.get_asset_check_evaluations()
        assert check.passed and check.metadata["fallback share"].value == 0.0
        with DuckDBWarehouse(tmp_path / "models.duckdb") as warehouse:
            assert warehouse.row_count("model_health") == 20


def test_a_transient_source_fault_survived_inside_a_step_shows_in_the_run(tmp_path,
                                                                        monkeypatch,
                                                                        crm) -> None:
    from dagster import DagsterInstance

    defs = crm_definitions(tmp_path, monkeypatch, crm, crm.client_secret)
    crm.faults.unavailable(count=1, path="/api/tickets")  # one 503: the connector retries

    with DagsterInstance.ephemeral() as instance:
        result = materialize(defs.assets, resources=defs.resources, selection=[TICKETS],
                             instance=instance)
        assert result.success
        assert events(result, "STEP_UP_FOR_RETRY") == [], "survived inside the step"
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
        run = instance.get_run_by_id(result.run_id)

    assert any("source retry: " in m and "503" in m for m in logged), logged
    metadata = materialized(result)[0].materialization.metadata
    assert metadata["source retries"].value == 1
    assert "503" in metadata["last transient error"].value
    assert run.tags["headwater/retried"] == "1"  # the runs list shows it


def test_each_source_node_is_reported_with_its_columns_as_the_source_names_them(full_run
                                                                              ) -> None:
    result, *_ = full_run
    sources = {e.asset_key.to_user_string(): e.materialization for e in source_events(result)}
    orders = sources["erp/source/orders"]
    assert orders.description == "read by raw/erp/orders"
    columns = {c.name: c.type for c in orders.metadata["dagster/column_schema"].value.columns}
    assert columns["total_cents"] == "BIGINT" and columns["updated_at"] == "DATETIME"
    assert orders.metadata["table"].value == "orders"
    assert orders.metadata["system"].value == "erp"
    tickets = sources["crm/source/api_tickets"].metadata
    assert tickets["endpoint"].value == "GET /api/tickets"
    assert {c.type for c in tickets["dagster/column_schema"].value.columns} >= {
        "string", "integer"}
    raw = next(e.materialization.metadata for e in materialized(result)
               if e.asset_key == AssetKey(["raw", "erp", "orders"]))
    deps = raw["dagster/column_lineage"].value.deps_by_column
    assert [(d.asset_key.to_user_string(), d.column_name) for d in deps["total_cents"]] == [
        ("erp/source/orders", "total_cents")]
