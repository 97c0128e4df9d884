"""Incremental party resolution: after a change, only the records it can reach are
resolved again, and the crosswalk ends exactly as a whole resolution would leave it."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from normalization import PartySource, Resolution, resolve
from pipelines._parties import crosswalk_table, parties_summary, resolve_parties
from pipelines.warehouse import DuckDBWarehouse

# Three systems of a wholesaler's estate: suppliers in purchasing, vendors in accounts
# payable (which keep the supplier number), carriers in a freight system (which keep the
# vendor code).
RESOLUTION = Resolution(name="vendor", sources=(
    PartySource(system="purchasing", entity="supplier", key="supplier_no", name="legal_name"),
    PartySource(system="payables", entity="payee", key="payee_code", name="payee_name",
                links={"purchasing": "supplier_ref"}),
    PartySource(system="freight", entity="carrier", key="carrier_id", name="carrier_name",
                links={"payables": "payee_code"}),
))
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
NAMES = ["Acme Ltd", "ACME Limited", "Borealis GmbH", "Cobalt & Sons", "Cobalt and Sons",
         "Delta Freight", "Ember Co", "Ember Company", "Fjord AS", "Granite Inc", ""]


def write(warehouse, entity: str, rows: list[dict], *, since: dt.datetime,
          epoch: str = "e1") -> None:
    """A clean table as normalization leaves it, with its state entry (mark)."""
    columns = {"supplier": ("supplier_no", "legal_name"),
               "payee": ("payee_code", "payee_name", "supplier_ref"),
               "carrier": ("carrier_id", "carrier_name", "payee_code")}[entity]
    schema = pa.schema([*[(c, pa.int64() if c == "supplier_no" else pa.string())
                          for c in columns], ("_hw_extracted_at", pa.timestamp("us", "UTC"))])
    warehouse.replace_tables({f"clean_{entity}": pa.Table.from_pylist(rows, schema=schema)})
    warehouse.save_state(f"clean.{entity}", {"since": since, "epoch": epoch})


def crosswalk(warehouse) -> set[tuple]:
    return {tuple(r.values()) for r in warehouse.read_table(crosswalk_table("vendor")).to_pylist()}


def party_of(warehouse) -> dict[str, str]:
    """Each record's party id in the stored crosswalk, by its key."""
    return {r["source_key"]: r["party_id"]
            for r in warehouse.read_table(crosswalk_table("vendor")).to_pylist()}


def whole(warehouse) -> set[tuple]:
    """What a whole resolution of the stored clean tables gives."""
    tables = {s.entity: warehouse.read_table(f"clean_{s.entity}") for s in RESOLUTION.sources}
    return {tuple(r.values()) for r in resolve(RESOLUTION, tables).crosswalk.to_pylist()}


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        yield wh


def estate(rng: random.Random) -> dict[str, dict[str, dict]]:
    old = T0 - dt.timedelta(hours=1)
    suppliers = {i: {"supplier_no": i, "legal_name": rng.choice(NAMES), "_hw_extracted_at": old}
                 for i in range(1, 25)}
    payees = {f"P{i}": {"payee_code": f"P{i}", "payee_name": rng.choice(NAMES),
                        "supplier_ref": rng.choice([None, "999", *map(str, suppliers)]),
                        "_hw_extracted_at": old} for i in range(1, 25)}
    carriers = {f"C{i}": {"carrier_id": f"C{i}", "carrier_name": rng.choice(NAMES),
                          "payee_code": rng.choice([None, *payees]), "_hw_extracted_at": old}
                for i in range(1, 15)}
    return {"supplier": suppliers, "payee": payees, "carrier": carriers}


def mutate(rng: random.Random, tables: dict[str, dict[str, dict]], at: dt.datetime) -> None:
    """A few changes as a delta brings them: renames, relinks, new and deleted records,
    each changed row with its new landing time."""
    for _ in range(rng.randint(1, 4)):
        entity = rng.choice(list(tables))
        rows = tables[entity]
        action = rng.choice(["rename", "relink", "add", "delete"])
        key = rng.choice(list(rows)) if rows else None
        if action == "delete" and key is not None:
            del rows[key]
        elif action == "add" or key is None:
            template = next(iter(rows.values())) if rows else None
            if template is None:
                continue
            new_key = (max(rows) + 1 if entity == "supplier"
                       else f"{entity[0].upper()}{rng.randint(100, 999)}")
            first = next(iter(template))
            rows[new_key] = {**template, first: new_key, "_hw_extracted_at": at}
        elif action == "rename":
            name = next(c for c in rows[key] if c.endswith("name"))
            rows[key] = {**rows[key], name: rng.choice(NAMES), "_hw_extracted_at": at}
        elif entity != "supplier":
            link = "supplier_ref" if entity == "payee" else "payee_code"
            targets = (list(map(str, tables["supplier"])) if entity == "payee"
                       else list(tables["payee"]))
            rows[key] = {**rows[key], link: rng.choice([None, "nowhere", *targets]),
                         "_hw_extracted_at": at}


@pytest.mark.parametrize("seed", range(16))
def test_incremental_resolution_ends_where_a_whole_one_does(warehouse, seed) -> None:
    rng = random.Random(seed)
    tables = estate(rng)
    since = T0
    for entity, rows in tables.items():
        write(warehouse, entity, list(rows.values()), since=since)
    first = resolve_parties(warehouse, RESOLUTION, run_id="r0")
    assert first is not None and (first.mode, first.why_full) == ("full", "first run")
    assert crosswalk(warehouse) == whole(warehouse)
    for step in range(1, 5):
        at = since + dt.timedelta(minutes=5)  # landed after the last mark
        mutate(rng, tables, at)
        since = at + dt.timedelta(minutes=5)
        for entity, rows in tables.items():
            write(warehouse, entity, list(rows.values()), since=since)
        resolved = resolve_parties(warehouse, RESOLUTION, run_id=f"r{step}")
        assert resolved is not None and resolved.mode == "incremental", resolved.why_full
        assert crosswalk(warehouse) == whole(warehouse), f"seed {seed}, step {step}"
        assert resolved.records == sum(len(rows) for rows in tables.values())


def small_estate(warehouse, *, since=T0) -> None:
    old = T0 - dt.timedelta(hours=1)
    write(warehouse, "supplier", [
        {"supplier_no": i, "legal_name": f"Supplier {i} Ltd", "_hw_extracted_at": old}
        for i in range(1, 101)], since=since)
    write(warehouse, "payee", [
        {"payee_code": f"P{i}", "payee_name": f"Payee {i}", "supplier_ref": str(i),
         "_hw_extracted_at": old} for i in range(1, 101)], since=since)
    write(warehouse, "carrier", [
        {"carrier_id": f"C{i}", "carrier_name": f"Supplier {i} Limited", "payee_code": None,
         "_hw_extracted_at": old} for i in range(1, 51)], since=since)


def test_a_change_re_resolves_only_the_parties_it_reaches(warehouse) -> None:
    small_estate(warehouse)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    before = party_of(warehouse)

    # carrier C7 is renamed away from supplier 7's name; a new payee links to supplier 60
    rows = warehouse.read_table("clean_carrier").to_pylist()
    moved = T0 + dt.timedelta(minutes=1)
    for row in rows:
        if row["carrier_id"] == "C7":
            row.update(carrier_name="Seven Seas Shipping", _hw_extracted_at=moved)
    write(warehouse, "carrier", rows, since=T0 + dt.timedelta(hours=1))
    payees = warehouse.read_table("clean_payee").to_pylist()
    payees.append({"payee_code": "P999", "payee_name": "Someone Else", "supplier_ref": "60",
                   "_hw_extracted_at": moved})
    write(warehouse, "payee", payees, since=T0 + dt.timedelta(hours=1))
    write(warehouse, "supplier", warehouse.read_table("clean_supplier").to_pylist(),
          since=T0 + dt.timedelta(hours=1))

    resolved = resolve_parties(warehouse, RESOLUTION, run_id="r2")
    assert resolved is not None and resolved.mode == "incremental"
    # supplier 7 + payee P7 + carrier C7, and supplier 60 + P60 + the new P999
    assert resolved.crosswalk.num_rows == 6
    assert (resolved.records, resolved.parties) == (251, 101)
    after = party_of(warehouse)
    assert after["C7"] != after["7"] and after["P999"] == after["60"]
    untouched = set(before) - {"7", "P7", "C7", "60", "P60"}
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    assert crosswalk(warehouse) == whole(warehouse)
    line = parties_summary("vendor", resolved)
    assert line.startswith("vendor: 101 parties from 251 records; 6 re-resolved")


def test_nothing_changed_re_resolves_nothing(warehouse) -> None:
    small_estate(warehouse)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    again = resolve_parties(warehouse, RESOLUTION, run_id="r2")
    assert again is not None and again.mode == "incremental"
    assert again.crosswalk.num_rows == 0 and again.records == 250


def test_a_rebuilt_entity_or_a_new_declaration_resolves_whole(warehouse) -> None:
    small_estate(warehouse)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    write(warehouse, "payee", warehouse.read_table("clean_payee").to_pylist(), since=T0,
          epoch="e2")
    rebuilt = resolve_parties(warehouse, RESOLUTION, run_id="r2")
    assert rebuilt is not None and rebuilt.mode == "full"
    assert rebuilt.why_full == "clean_payee was rebuilt"
    assert "whole: clean_payee was rebuilt" in parties_summary("vendor", rebuilt)

    narrower = Resolution(name="vendor", sources=RESOLUTION.sources[:2])
    changed = resolve_parties(warehouse, narrower, run_id="r3")
    assert changed is not None and changed.why_full == "the resolution's declaration changed"

    asked = resolve_parties(warehouse, narrower, full=True, run_id="r4")
    assert asked is not None and asked.why_full == "asked for"
    resolve_parties(warehouse, RESOLUTION, run_id="r5")
    warehouse.delete_state("clean.carrier")
    unkept = resolve_parties(warehouse, RESOLUTION, run_id="r6")
    assert unkept is not None and "no state entry clean.carrier" in unkept.why_full


def test_rows_landed_before_the_last_resolution_but_cleaned_after_it_are_seen(
        warehouse) -> None:
    # normalization ran at T0 (its mark); the resolution ran later, at wall-clock time;
    # a row landed an hour after T0 is cleaned only after that resolution
    small_estate(warehouse)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    payees = warehouse.read_table("clean_payee").to_pylist()
    payees.append({"payee_code": "P500", "payee_name": "Late", "supplier_ref": "5",
                   "_hw_extracted_at": T0 + dt.timedelta(hours=1)})
    write(warehouse, "payee", payees, since=T0 + dt.timedelta(hours=2))
    resolved = resolve_parties(warehouse, RESOLUTION, run_id="r2")
    assert resolved is not None and resolved.mode == "incremental"
    assert crosswalk(warehouse) == whole(warehouse)
    party = party_of(warehouse)
    assert party["P500"] == party["5"]


def test_a_missing_clean_table_resolves_nothing(warehouse) -> None:
    write(warehouse, "supplier", [], since=T0)
    assert resolve_parties(warehouse, RESOLUTION) is None
    assert crosswalk_table("vendor") not in warehouse.tables()


def test_dangling_links_are_counted_and_said(warehouse) -> None:
    small_estate(warehouse)
    payees = warehouse.read_table("clean_payee").to_pylist()
    payees[0]["supplier_ref"] = "4040"
    write(warehouse, "payee", payees, since=T0)
    resolved = resolve_parties(warehouse, RESOLUTION)
    assert resolved is not None and resolved.dangling_links == 1
    assert "1 declared-key links naming no record (left unlinked)" in \
        parties_summary("vendor", resolved)


def test_a_party_that_loses_a_member_is_resolved_again_whole(warehouse) -> None:
    # supplier 5 and carrier C9 share a name, but C1 (freight, linked through P1) keeps
    # C9 out of supplier 5's party; once C1 links elsewhere, C9 joins it by name
    old = T0 - dt.timedelta(hours=1)
    write(warehouse, "supplier", [{"supplier_no": 5, "legal_name": "Acme Ltd",
                                   "_hw_extracted_at": old}], since=T0)
    write(warehouse, "payee", [
        {"payee_code": "P1", "payee_name": "Payables One", "supplier_ref": "5",
         "_hw_extracted_at": old},
        {"payee_code": "P2", "payee_name": "Payables Two", "supplier_ref": None,
         "_hw_extracted_at": old}], since=T0)
    carriers = [{"carrier_id": "C1", "carrier_name": "Carrier One", "payee_code": "P1",
                 "_hw_extracted_at": old},
                {"carrier_id": "C9", "carrier_name": "ACME Limited", "payee_code": None,
                 "_hw_extracted_at": old}]
    write(warehouse, "carrier", carriers, since=T0)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    party = party_of(warehouse)
    assert party["C1"] == party["5"] != party["C9"]

    carriers[0].update(payee_code="P2", _hw_extracted_at=T0 + dt.timedelta(minutes=1))
    write(warehouse, "carrier", carriers, since=T0 + dt.timedelta(hours=1))
    resolved = resolve_parties(warehouse, RESOLUTION, run_id="r2")
    assert resolved is not None and resolved.mode == "incremental"
    assert crosswalk(warehouse) == whole(warehouse)
    party = party_of(warehouse)
    assert party["C9"] == party["5"] != party["C1"]


def test_a_new_record_gathers_the_links_that_named_it(warehouse) -> None:
    small_estate(warehouse)
    payees = warehouse.read_table("clean_payee").to_pylist()
    payees[0]["supplier_ref"] = "777"  # no such supplier yet
    write(warehouse, "payee", payees, since=T0)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    suppliers = warehouse.read_table("clean_supplier").to_pylist()
    suppliers.append({"supplier_no": 777, "legal_name": "Newcomer",
                      "_hw_extracted_at": T0 + dt.timedelta(minutes=1)})
    write(warehouse, "supplier", suppliers, since=T0 + dt.timedelta(hours=1))
    resolved = resolve_parties(warehouse, RESOLUTION, run_id="r2")
    assert resolved is not None and resolved.mode == "incremental"
    assert crosswalk(warehouse) == whole(warehouse)
    party = party_of(warehouse)
    assert party["777"] == party[payees[0]["payee_code"]]


def test_a_mistyped_column_is_one_error_naming_it_and_nothing_is_written(warehouse) -> None:
    from connectors import ConfigurationError

    small_estate(warehouse)
    resolve_parties(warehouse, RESOLUTION, run_id="r1")
    before = crosswalk(warehouse)
    payables = PartySource(system="payables", entity="payee", key="payee_code",
                           name="payee_nmae", links={"purchasing": "supplier_ref"})
    mistyped = Resolution(name="vendor", sources=(RESOLUTION.sources[0], payables,
                                                  RESOLUTION.sources[2]))
    with pytest.raises(ConfigurationError, match=r"system 'payables' reads \['payee_nmae'\] "
                                                 r"from clean_payee.*'payee_name'"):
        resolve_parties(warehouse, mistyped, run_id="r2")
    assert crosswalk(warehouse) == before
