"""Incremental context builds: only the documents of roots whose records changed, moved or
vanished are rebuilt, and the table ends as a full build would leave it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from pipelines.context import ContextSpec, Root, Section, build_contexts
from pipelines.warehouse import DuckDBWarehouse

OLD = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SPEC = ContextSpec(
    name="acct",
    root=Root(entity="account", key="account_id", fields=("account_id", "name")),
    sections=(Section(name="tickets", entity="ticket", key="ticket_id",
                      fields=("ticket_id", "subject"), on={"account_id": "account_id"}),),
)


def clean(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{**r, "_hw_source": "crm", "_hw_stream": "x",
                                  "_hw_extracted_at": r.get("_hw_extracted_at", OLD),
                                  "_hw_run_id": "r"} for r in rows])


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        wh.replace_tables({
            "clean_account": clean([{"account_id": a, "name": f"acct {a}"}
                                    for a in ("A", "B", "C", "D")]),
            "clean_ticket": clean([{"ticket_id": t, "account_id": a, "subject": f"s{t}"}
                                   for t, a in ((1, "A"), (2, "A"), (3, "B"), (4, "C"))]),
        })
        yield wh


def documents(warehouse) -> dict[str, tuple[str, str]]:
    rows = warehouse.query('SELECT context_id, content_hash, run_id FROM "context_acct"')
    return {r["context_id"]: (r["content_hash"], r["run_id"]) for r in rows.to_pylist()}


def test_only_the_roots_a_change_touches_are_rebuilt(warehouse) -> None:
    first = build_contexts(warehouse, SPEC, run_id="c-1")
    assert (first.mode, first.contexts, first.why_full) == ("full", 4, "first build")

    now = dt.datetime.now(dt.UTC)
    tickets = warehouse.read_table("clean_ticket").to_pylist()
    tickets = [t for t in tickets if t["ticket_id"] != 4]  # vanished: C's document changes
    for t in tickets:
        if t["ticket_id"] == 2:  # moved from A to B: both change
            t.update(account_id="B", _hw_extracted_at=now)
    accounts = [a for a in warehouse.read_table("clean_account").to_pylist()
                if a["account_id"] != "D"]  # a root gone: its document goes
    accounts.append({**accounts[0], "account_id": "E", "name": "new", "_hw_extracted_at": now})
    warehouse.replace_tables({"clean_ticket": pa.Table.from_pylist(tickets),
                              "clean_account": pa.Table.from_pylist(accounts)})

    second = build_contexts(warehouse, SPEC, run_id="c-2")
    assert (second.mode, second.contexts, second.removed) == ("incremental", 4, 1)
    assert sorted(second.table.column("context_id").to_pylist()) == ["A", "B", "C", "E"]
    incremental = documents(warehouse)
    assert {k: run for k, (_, run) in incremental.items()} == {
        "A": "c-2", "B": "c-2", "C": "c-2", "E": "c-2"}

    untouched = build_contexts(warehouse, SPEC, run_id="c-3")
    assert untouched.mode == "incremental"
    # Rows landed within the lag of the last build are looked at again: ticket 2 (now B's)
    # and account E; A no longer cites ticket 2, so A is left alone.
    assert sorted(untouched.table.column("context_id").to_pylist()) == ["B", "E"]

    rebuilt = build_contexts(warehouse, SPEC, run_id="c-4", full=True)
    assert rebuilt.mode == "full" and rebuilt.contexts == 4
    assert {k: h for k, (h, _) in documents(warehouse).items()} == \
        {k: h for k, (h, _) in incremental.items()}


def test_a_changed_declaration_rebuilds_every_document(warehouse) -> None:
    build_contexts(warehouse, SPEC, run_id="c-1")
    wider = ContextSpec(name="acct", root=SPEC.root, sections=SPEC.sections, budget=50)
    again = build_contexts(warehouse, wider, run_id="c-2")
    assert again.mode == "full" and "declaration" in again.why_full
    assert again.contexts == 4


def test_rows_cleaned_after_the_last_build_are_seen_by_their_landing_mark(warehouse) -> None:
    # normalization's mark (clean.<entity> since) says which landed rows it has cleaned:
    # a ticket landed an hour ago but cleaned only after the last build is still new
    now = dt.datetime.now(dt.UTC)
    for entity in ("account", "ticket"):
        warehouse.save_state(f"clean.{entity}", {"since": now - dt.timedelta(hours=2),
                                                 "epoch": "n-1"})
    build_contexts(warehouse, SPEC, run_id="c-1")
    tickets = warehouse.read_table("clean_ticket").to_pylist()
    tickets.append({**tickets[0], "ticket_id": 9, "account_id": "D", "subject": "late",
                    "_hw_extracted_at": now - dt.timedelta(hours=1)})
    warehouse.replace_tables({"clean_ticket": pa.Table.from_pylist(tickets)})
    warehouse.save_state("clean.ticket", {"since": now, "epoch": "n-1"})

    second = build_contexts(warehouse, SPEC, run_id="c-2")
    assert second.mode == "incremental"
    assert second.table.column("context_id").to_pylist() == ["D"]
    assert "late" in second.table.column("document")[0].as_py()


def test_an_entity_rebuilt_since_the_last_build_counts_as_changed_whole(warehouse) -> None:
    now = dt.datetime.now(dt.UTC)
    for entity in ("account", "ticket"):
        warehouse.save_state(f"clean.{entity}", {"since": now, "epoch": "n-1"})
    build_contexts(warehouse, SPEC, run_id="c-1")
    # a rebuild (a mapping fixed, quarantined rows re-processed) changes rows whatever
    # their landing time; only the epoch says so
    tickets = warehouse.read_table("clean_ticket").to_pylist()
    for t in tickets:
        t["subject"] = t["subject"].upper()
    warehouse.replace_tables({"clean_ticket": pa.Table.from_pylist(tickets)})
    unchanged_epoch = build_contexts(warehouse, SPEC, run_id="c-2")
    assert unchanged_epoch.table.num_rows == 0
    warehouse.save_state("clean.ticket", {"since": now, "epoch": "n-2"})
    rebuilt = build_contexts(warehouse, SPEC, run_id="c-3")
    assert sorted(rebuilt.table.column("context_id").to_pylist()) == ["A", "B", "C"]
    assert all('"S' in d for d in rebuilt.table.column("document").to_pylist())


def test_a_party_that_gains_or_loses_a_member_rebuilds_its_documents(tmp_path) -> None:
    spec = ContextSpec(
        name="acct",
        root=Root(entity="account", key="account_id", fields=("account_id",), parties="crm"),
        sections=(Section(name="orders", entity="order", key="order_id",
                          fields=("order_id",), through_parties=("erp", "customer_no")),),
    )
    xref = pa.schema([("party_id", pa.string()), ("system", pa.string()),
                      ("source_key", pa.string())])
    now = dt.datetime.now(dt.UTC)
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        wh.replace_tables({
            "clean_account": clean([{"account_id": a} for a in ("A", "B", "C")]),
            "clean_order": clean([{"order_id": o, "customer_no": c}
                                  for o, c in ((1, "100"), (2, "200"), (3, "300"))]),
            "clean_party_xref": pa.Table.from_pylist([
                {"party_id": p, "system": s, "source_key": k} for p, s, k in (
                    ("p1", "crm", "A"), ("p1", "erp", "100"), ("p2", "crm", "B"),
                    ("p2", "erp", "200"), ("p3", "crm", "C"), ("p3", "erp", "300"))],
                schema=xref),
        })
        for entity in ("account", "order"):
            wh.save_state(f"clean.{entity}", {"since": now, "epoch": "n-1"})
        build_contexts(wh, spec, run_id="c-1")
        # ERP customer 200 turns out to be A's; B's party keeps only its CRM account,
        # and C's party gets a new id; no clean row changed
        wh.replace_tables({"clean_party_xref": pa.Table.from_pylist([
            {"party_id": p, "system": s, "source_key": k} for p, s, k in (
                ("p1", "crm", "A"), ("p1", "erp", "100"), ("p1", "erp", "200"),
                ("p2", "crm", "B"), ("p4", "crm", "C"), ("p4", "erp", "300"))],
            schema=xref)})
        second = build_contexts(wh, spec, run_id="c-2")
        assert second.mode == "incremental"
        assert sorted(second.table.column("context_id").to_pylist()) == ["A", "B", "C"]
        stored = {r["context_id"]: (r["party_id"], r["content_hash"])
                  for r in wh.read_table("context_acct").to_pylist()}
        assert build_contexts(wh, spec, run_id="c-3").table.num_rows == 0
        build_contexts(wh, spec, run_id="c-4", full=True)
        assert stored == {r["context_id"]: (r["party_id"], r["content_hash"])
                          for r in wh.read_table("context_acct").to_pylist()}
        assert stored["C"][0] == "p4"
