"""Normalization of the whole demo estate, landed for real from its three systems."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from headwater_demo.mappings import CONTACT, MAPPINGS, PARTIES
from normalization import column_lineage, render_lineage
from pipelines.cleaning import (
    clean_all,
    clean_table,
    quarantine_table,
    reprocess_quarantined,
)
from pipelines.cli import main
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import demo_config, demo_normalization

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> Path:
    """The demo estate landed into a DuckDB warehouse, as ``headwater run`` does."""
    root = tmp_path_factory.mktemp("estate")
    config = demo_config(root, replace={"orders = 2000": "orders = 600"})
    assert main(["--config", str(config), "run"]) == 0
    return root / "warehouse.duckdb"


@pytest.fixture(scope="module")
def cleaned(landed: Path):
    with DuckDBWarehouse(landed) as warehouse:
        run = clean_all(warehouse, demo_normalization(), run_id="test-run")
        counts = {t: warehouse.row_count(t) for t in warehouse.tables()}
        quarantined = {
            m.entity: warehouse.query(
                f'SELECT count(DISTINCT source_key) FROM "{quarantine_table(m.entity)}"'
            ).column(0)[0].as_py()
            for m in MAPPINGS
        }
        tables = {t: warehouse.read_table(t) for t in warehouse.tables()
                  if t.startswith(("quarantine_", "clean_"))}
    return run, counts, quarantined, tables


def test_every_entity_is_normalized(cleaned) -> None:
    run, _, _, _ = cleaned
    assert [r.entity for r in run.results] == [m.entity for m in MAPPINGS]
    assert all(r.raw_rows > 0 for r in run.results)


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: m.entity)
def test_raw_rows_reconcile_with_clean_and_quarantined_rows(cleaned, mapping) -> None:
    run, counts, quarantined, _ = cleaned
    result = next(r for r in run.results if r.entity == mapping.entity)

    assert counts[mapping.source] == counts[clean_table(mapping.entity)] + \
        quarantined[mapping.entity]
    assert result.reconciles and result.superseded_rows == 0
    assert result.quarantined_rows == quarantined[mapping.entity]


def test_quarantine_reasons_name_the_column_the_check_and_the_value(cleaned) -> None:
    _, _, _, tables = cleaned
    reasons = {
        (row["entity"], row["column"], row["check"], row["value"])
        for name, table in tables.items() if name.startswith("quarantine_")
        for row in table.to_pylist()
    }
    assert ("account", "erp_customer_no", r"str_matches('^C\d{5}$')", "C-00041") in reasons
    assert ("contact", "email", "email", "n/a") in reasons
    assert any(r[:3] == ("contact", "phone", "phone(default_country_code='1')")
               and r[3].startswith("ext. ") for r in reasons)
    assert all(row["source_key"] and row["run_id"] == "test-run"
               for name, table in tables.items() if name.startswith("quarantine_")
               for row in table.to_pylist())


def test_legacy_quirks_are_fixed_in_the_clean_tables(cleaned) -> None:
    _, _, _, tables = cleaned
    customers = tables["clean_customer"].to_pylist()
    accounts = {a["account_id"]: a for a in tables["clean_account"].to_pylist()}
    orders = tables["clean_order"].to_pylist()

    assert all(len(c["customer_no"]) == 6 and c["name"] == c["name"].strip()
               for c in customers)
    assert any(c["opened_on"] is None for c in customers)  # 1900-01-01 meant unknown
    assert all((o["shipped_on"] is None) == (not o["is_shipped"]) for o in orders)
    assert {o["status"] for o in orders} <= {"new", "shipped", "cancelled", "on_hold"}
    assert accounts["ACC-00042"]["name"] == "Société Générale"  # mojibake repaired
    assert accounts["ACC-00007"]["erp_customer_no"] == "C00007"  # typed in lower case
    assert accounts["ACC-00010"]["erp_customer_no"] is None  # typed as blank
    phones = [c["phone"] for c in tables["clean_contact"].to_pylist() if c["phone"]]
    assert phones and all(p.startswith("+") and p[1:].isdigit() for p in phones)


def test_lookups_enrich_lines_and_shipments(cleaned) -> None:
    _, _, _, tables = cleaned
    products = {p["sku"]: p["description"] for p in tables["clean_product"].to_pylist()}
    lines = tables["clean_order_line"].to_pylist()
    shipments = tables["clean_shipment"].to_pylist()

    assert all(line["product_description"] == products[line["sku"]] for line in lines)
    assert {s["currency"] for s in shipments} == {"EUR", "USD", "GBP"}
    for shipment in shipments:
        expected = (shipment["declared_value"] * shipment["fx_rate_to_eur"]).quantize(
            shipment["declared_value"])
        assert abs(shipment["declared_value_eur"] - expected) <= type(expected)("0.01")


@pytest.fixture(scope="module")
def raw_columns(landed: Path) -> dict[str, set[str]]:
    with DuckDBWarehouse(landed) as warehouse:
        return {m.source: set(warehouse.query(f'SELECT * FROM "{m.source}" LIMIT 0').schema.names)
                for m in MAPPINGS}


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: m.entity)
def test_column_lineage_is_complete(cleaned, raw_columns, mapping) -> None:
    _, _, _, tables = cleaned
    lineage = column_lineage(mapping)

    assert [item.column for item in lineage] == tables[clean_table(mapping.entity)] \
        .schema.names[: len(lineage)]
    for item in lineage:
        assert item.sources, f"{item.column} names no source"
        for table, column in item.sources:
            if table.startswith("raw_"):
                assert column in raw_columns[table], f"{table}.{column}"
        if item.derived_from:
            assert set(item.derived_from) <= {i.column for i in lineage}
        assert item.transform and item.description
    text = render_lineage(lineage)
    assert all(f"{mapping.entity}.{item.column}" in text for item in lineage)


def test_parties_link_the_three_systems(cleaned) -> None:
    run, _, _, tables = cleaned
    crosswalk = tables[f"clean_{PARTIES.name}_xref"].to_pylist()
    party_of = {(r["system"], r["source_key"]): r["party_id"] for r in crosswalk}

    assert party_of[("crm", "ACC-00001")] == party_of[("erp", "C00001")]  # by key
    assert party_of[("crm", "ACC-00010")] == party_of[("erp", "C00010")]  # by name alone
    by = {(r["system"], r["source_key"]): r["matched_by"] for r in crosswalk}
    assert by[("crm", "ACC-00001")] == "key" and by[("crm", "ACC-00010")] == "name"
    assert by[("erp", "C00001")] == "anchor"
    consignees = [r for r in crosswalk if r["system"] == "logistics"]
    assert any(r["matched_by"] == "name" for r in consignees)
    assert run.parties is not None and run.parties.linked_by_key > 50


def test_party_ids_are_stable_across_runs(landed: Path, cleaned) -> None:
    _, _, _, tables = cleaned
    with DuckDBWarehouse(landed) as warehouse:
        clean_all(warehouse, demo_normalization(), run_id="second-run")
        again = warehouse.read_table(f"clean_{PARTIES.name}_xref")
    assert again.equals(tables[f"clean_{PARTIES.name}_xref"])


def test_quarantined_rows_are_reprocessed_after_a_mapping_fix(landed: Path) -> None:
    # The fix: "n/a" in the e-mail field means unknown, so it becomes null, not a failure.
    email = CONTACT.columns["email"]
    fixed_columns = {**CONTACT.columns, "email": type(email)(
        email.column, ("sentinel_to_null", {"values": ["n/a"]}), *email.steps)}
    fixed = dataclasses.replace(CONTACT, columns=fixed_columns)
    spec = demo_normalization()
    with DuckDBWarehouse(landed) as warehouse:
        clean_all(warehouse, spec, run_id="before", entities=["contact"])
        before_clean = warehouse.row_count(clean_table("contact"))
        before = warehouse.read_table(quarantine_table("contact")).to_pylist()
        fixed_emails = {r["source_key"] for r in before if r["column"] == "email"}

        result = reprocess_quarantined(warehouse, fixed, spec, run_id="after")
        after = warehouse.read_table(quarantine_table("contact")).to_pylist()
        raw_rows = warehouse.row_count(CONTACT.source)
        clean_rows = warehouse.row_count(clean_table("contact"))

    assert fixed_emails and result.raw_rows == len({r["source_key"] for r in before})
    assert clean_rows == before_clean + len(fixed_emails)
    assert {r["column"] for r in after} == {"phone"}
    assert raw_rows == clean_rows + len({r["source_key"] for r in after})
