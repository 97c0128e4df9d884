"""Context documents built from the demo estate, landed for real and normalized."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from connectors import ConfigurationError
from headwater_demo.account_context import account_context
from headwater_demo.account_health import account_health_step
from pipelines._canonical import content_hash, estimate_tokens
from pipelines.cleaning import clean_all
from pipelines.cli import main
from pipelines.context import build_contexts
from pipelines.models import run_model_step
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import demo_config, demo_normalization

pytestmark = pytest.mark.slow

KEYS = {"clean_account": "account_id", "clean_customer": "customer_no",
        "clean_order": "order_no", "clean_ticket": "ticket_id", "clean_shipment": "shipment_id"}


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory) -> Path:
    """The demo estate landed into DuckDB as ``headwater run`` does, then normalized."""
    root = tmp_path_factory.mktemp("estate")
    config = demo_config(root, replace={"orders = 2000": "orders = 600"})
    assert main(["--config", str(config), "run"]) == 0
    with DuckDBWarehouse(root / "warehouse.duckdb") as warehouse:
        clean_all(warehouse, demo_normalization(), run_id="clean-1")
    return root / "warehouse.duckdb"


@pytest.fixture
def warehouse(cleaned: Path):
    with DuckDBWarehouse(cleaned) as wh:
        yield wh


def clean_rows(warehouse) -> dict[str, dict[str, dict]]:
    """Each clean table's rows by their key, as text."""
    return {table: {str(row[key]): row for row in warehouse.read_table(table).to_pylist()}
            for table, key in KEYS.items()}


def test_one_context_per_crm_account_joined_through_the_party_crosswalk(warehouse) -> None:
    run = build_contexts(warehouse, account_context(), run_id="ctx-1")

    accounts = warehouse.read_table("clean_account").column("account_id").to_pylist()
    xref = {r["source_key"]: r["party_id"] for r in warehouse.read_table(
        "clean_party_xref").to_pylist() if r["system"] == "crm"}
    rows = warehouse.read_table("context_account").to_pylist()
    assert sorted(r["context_id"] for r in rows) == sorted(accounts)
    assert all(r["party_id"] == xref[r["context_id"]] and r["run_id"] == "ctx-1" for r in rows)
    documents = [json.loads(r["document"]) for r in rows]
    assert sum(1 for d in documents if d["erp_customers"]) > len(rows) / 3
    assert sum(1 for d in documents if d["late_shipments"]) > 0
    # Tickets of a quarantined account have no context until the account is fixed.
    assert sum(d["counts"]["open_tickets"] for d in documents) == warehouse.query(
        "SELECT count(*) FROM clean_ticket JOIN clean_account USING (account_id) "
        "WHERE is_open").column(0)[0].as_py()
    assert run.metadata()["contexts"] == len(rows)


def test_every_provenance_entry_points_to_a_real_clean_row(warehouse) -> None:
    build_contexts(warehouse, account_context(), run_id="ctx-1")
    clean = clean_rows(warehouse)

    entries = 0
    for row in warehouse.read_table("context_account").to_pylist():
        provenance = json.loads(row["provenance"])
        for entry in provenance:
            record = clean[entry["source_table"]][entry["source_key"]]
            assert entry["source_id"].split(":", 1)[1] == entry["source_key"]
            assert (entry["source"], entry["stream"], entry["run_id"]) == (
                record["_hw_source"], record["_hw_stream"], record["_hw_run_id"])
            assert dt.datetime.fromisoformat(entry["extracted_at"]) == record["_hw_extracted_at"]
            entries += 1
        in_document = {item["source_id"] for section in ("orders", "open_tickets",
                                                           "late_shipments", "erp_customers")
                       for item in json.loads(row["document"])[section]}
        assert in_document <= {e["source_id"] for e in provenance}
    assert entries > 1000


def test_late_shipments_are_undelivered_past_the_window_or_in_exception(warehouse) -> None:
    run = build_contexts(warehouse, account_context(), run_id="ctx-1")
    shipments = clean_rows(warehouse)["clean_shipment"]
    cutoff = run.as_of - dt.timedelta(days=account_context().constants["late_after_days"])

    late = [item for row in warehouse.read_table("context_account").to_pylist()
            for item in json.loads(row["document"])["late_shipments"]]
    assert late and {s["status"] for s in late} >= {"EXCEPTION"}
    for item in late:
        shipment = shipments[item["shipment_id"]]
        assert shipment["status"] == "EXCEPTION" or (
            shipment["delivered_at"] is None and shipment["shipped_at"] < cutoff)


@pytest.mark.parametrize("budget", [250, 120])  # every mix of cuts; some still over budget
def test_a_context_over_budget_is_trimmed_by_priority_and_the_trim_recorded(warehouse, budget
                                                                           ) -> None:
    spec = dataclasses.replace(account_context(), budget=budget)
    run = build_contexts(warehouse, spec, run_id="ctx-1")

    trimmed = 0
    for row in warehouse.read_table("context_account").to_pylist():
        document, cuts = json.loads(row["document"]), json.loads(row["trimmed"])
        assert row["tokens"] == estimate_tokens(row["document"])
        assert row["content_hash"] == content_hash(row["document"])
        if row["tokens"] > spec.budget:  # over even with every trimmable section emptied
            assert all(not document[section] for section in spec.priorities)
        provenance = {e["source_id"] for e in json.loads(row["provenance"])}
        for cut in cuts:
            kept = {item["source_id"] for item in document[cut["section"]]}
            assert cut["dropped"] == len(cut["source_ids"]) > 0
            assert not kept & set(cut["source_ids"]) and set(cut["source_ids"]) <= provenance
        sections = [cut["section"] for cut in cuts]
        assert sections == [s for s in spec.priorities if s in sections]
        for earlier in spec.priorities[: spec.priorities.index(sections[-1])] if cuts else []:
            assert not document[earlier], "a later section was cut before an earlier emptied"
        assert document["counts"]["orders"] == document["orders_summary"]["count"]
        trimmed += bool(cuts)
    assert trimmed == run.trimmed > 0
    assert run.metadata()["over_budget"] == run.over_budget


def test_rebuilding_unchanged_data_gives_the_same_content_hashes(warehouse) -> None:
    first = build_contexts(warehouse, account_context(), run_id="ctx-1").table
    clean_all(warehouse, demo_normalization(), run_id="clean-2")  # new clean run ids, same data

    second = build_contexts(warehouse, account_context(), run_id="ctx-2").table

    assert second.column("run_id").unique().to_pylist() == ["ctx-2"]
    hashes = dict(zip(first.column("context_id").to_pylist(),
                      first.column("content_hash").to_pylist(), strict=True))
    assert dict(zip(second.column("context_id").to_pylist(),
                    second.column("content_hash").to_pylist(), strict=True)) == hashes


def test_the_demo_model_step_answers_every_context_offline_citing_its_sources(warehouse
                                                                              ) -> None:
    build_contexts(warehouse, account_context(), run_id="ctx-1")

    run = run_model_step(warehouse, account_health_step({}), run_id="model-1")

    assert run.metadata()["errors"] == 0
    contexts = {r["context_id"]: {e["source_id"] for e in json.loads(r["provenance"])}
                for r in warehouse.read_table("context_account").to_pylist()}
    outputs = warehouse.read_table("model_account_health").to_pylist()
    assert len(outputs) == len(contexts)
    for output in outputs:
        cited = json.loads(output["cited"])
        assert cited and {c["source_id"] for c in cited} <= contexts[output["context_id"]]


def test_building_before_normalizing_names_the_fix(tmp_path) -> None:
    with DuckDBWarehouse(tmp_path / "empty.duckdb") as warehouse, pytest.raises(
            ConfigurationError, match="land and normalize their sources first"):
        build_contexts(warehouse, account_context(), run_id="ctx-1")
