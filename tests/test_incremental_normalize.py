"""Incremental normalization: only rows landed since the last run are cleaned and merged
by key, with the same tables a full rebuild gives; a landing still going holds the
watermark back; batches keep keys together; a rebuild replaces the tables at once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater_demo.mappings import ORDER
from pipelines.cleaning import (
    CLOCK_SKEW,
    clean_entity,
    clean_state_key,
    landing_watermark,
    reprocess_quarantined,
)
from pipelines.warehouse import Provenance
from tests.conftest import demo_normalization, scratch_warehouse

LANDED = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)  # long before any run of these tests


def orders(numbers, status="SHP", cents=12345) -> pa.RecordBatch:
    """Raw ERP orders as the SQL connector lands them."""
    count = len(numbers)
    return pa.RecordBatch.from_pydict({
        "order_no": pa.array(numbers, pa.int64()),
        "cust_no": [f"C{n % 99999:05d}  " for n in numbers],
        "order_date": [dt.date(2024, 1, 2)] * count,
        "ship_date": [dt.date(2024, 1, 5)] * count,
        "status": [status] * count,
        "total_cents": pa.array([cents] * count, pa.int64()),
        "user": ["JSMITH"] * count,
        "updated_at": [dt.datetime(2024, 1, 2, 10)] * count,
    })


def land(warehouse, batch, at=LANDED, run="run-1") -> None:
    warehouse.merge("raw_erp__orders", batch, ("order_no",),
                    provenance=Provenance("erp", "orders", run, at))


def tables(warehouse) -> tuple[list, list]:
    clean = warehouse.query('SELECT order_no, status, total FROM "clean_order" ORDER BY 1')
    quarantine = warehouse.query('SELECT source_key, "column", "check" FROM '
                                 '"quarantine_order" ORDER BY 1, 2')
    return clean.to_pylist(), quarantine.to_pylist()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path):
    with scratch_warehouse(request.param, tmp_path) as wh:
        yield wh


def test_a_delta_is_cleaned_alone_and_ends_where_a_rebuild_ends(warehouse) -> None:
    spec = demo_normalization()
    land(warehouse, orders(range(1, 101)))
    land(warehouse, orders([101, 102], status="???"))  # fail: unknown status
    first = clean_entity(warehouse, ORDER, spec, run_id="n-1")
    assert (first.mode, first.raw_rows, first.clean_rows, first.quarantined_rows) == \
        ("full", 102, 100, 2)

    now = dt.datetime.now(dt.UTC)
    land(warehouse, orders([5], status="???"), at=now, run="run-2")  # clean -> quarantine
    land(warehouse, orders([101]), at=now, run="run-2")  # quarantine -> clean
    land(warehouse, orders([7], cents=99), at=now, run="run-2")  # changed
    land(warehouse, orders([500]), at=now, run="run-2")  # new
    delta = clean_entity(warehouse, ORDER, spec, run_id="n-2")
    incremental = tables(warehouse)

    assert (delta.mode, delta.raw_rows, delta.clean_rows, delta.quarantined_rows) == \
        ("incremental", 4, 3, 1)
    clean, quarantine = incremental
    assert [r["order_no"] for r in clean] == [n for n in [*range(1, 101), 101, 500] if n != 5]
    assert next(r for r in clean if r["order_no"] == 7)["total"] == Decimal("0.99")
    assert [q["source_key"] for q in quarantine] == ['{"order_no":102}', '{"order_no":5}']

    assert clean_entity(warehouse, ORDER, spec, run_id="n-3").raw_rows == 4  # within skew
    rebuilt = clean_entity(warehouse, ORDER, spec, run_id="n-4", full=True)
    assert rebuilt.mode == "full" and rebuilt.raw_rows == 103
    assert tables(warehouse) == incremental


def test_a_landing_still_going_holds_the_watermark_back(warehouse) -> None:
    land(warehouse, orders([1, 2]))
    with warehouse.stream_lock("erp.orders@order_no[,100)", "run-slow"):
        held = landing_watermark(warehouse, "raw_erp__orders")
        other = landing_watermark(warehouse, "raw_crm__tickets")
        clean_entity(warehouse, ORDER, demo_normalization(), run_id="n-1")
        saved = warehouse.load_state(clean_state_key("order"))["since"]
    assert held < other and saved <= held + dt.timedelta(seconds=1)
    assert dt.datetime.now(dt.UTC) - other < CLOCK_SKEW + dt.timedelta(seconds=5)


def test_batches_keep_keys_together_and_rebuild_to_the_same_tables(warehouse) -> None:
    spec = demo_normalization()
    land(warehouse, orders(range(1, 301)))
    land(warehouse, orders(range(301, 311), status="???"))
    one = clean_entity(warehouse, ORDER, spec, run_id="n-1", full=True)
    whole = tables(warehouse)
    many = clean_entity(warehouse, ORDER, spec, run_id="n-2", full=True, batch_rows=40)
    assert one.batches == 1 and many.batches == 8
    assert tables(warehouse) == whole
    assert (many.raw_rows, many.clean_rows, many.quarantined_rows) == (310, 300, 10)
    assert not [t for t in warehouse.tables() if t.startswith("_hw_build_")]


def test_reprocessing_the_quarantine_moves_fixed_rows_by_key(warehouse) -> None:
    spec = demo_normalization()
    land(warehouse, orders([1, 2, 3]))
    land(warehouse, orders([4], status="???"))
    clean_entity(warehouse, ORDER, spec, run_id="n-1")
    land(warehouse, orders([4]), at=LANDED, run="fix")  # fixed at the source, same landing
    result = reprocess_quarantined(warehouse, ORDER, spec, run_id="n-2")
    clean, quarantine = tables(warehouse)
    assert result.raw_rows == 1 and result.clean_rows == 1
    assert [r["order_no"] for r in clean] == [1, 2, 3, 4] and quarantine == []


def test_the_epoch_moves_only_when_rows_change_beside_their_landing_time(warehouse) -> None:
    # steps downstream (parties, contexts) re-read an entity whole when its epoch moves
    spec = demo_normalization()
    land(warehouse, orders([1, 2]))
    land(warehouse, orders([3], status="???"))

    def epoch() -> str:
        return warehouse.load_state(clean_state_key("order"))["epoch"]

    clean_entity(warehouse, ORDER, spec, run_id="n-1")
    assert epoch() == "n-1"
    land(warehouse, orders([4]), at=dt.datetime.now(dt.UTC), run="run-2")
    assert clean_entity(warehouse, ORDER, spec, run_id="n-2").mode == "incremental"
    assert epoch() == "n-1"
    reprocess_quarantined(warehouse, ORDER, spec, run_id="n-3")
    assert epoch() == "n-3"  # row 3 was tried again, its landing time unchanged
    clean_entity(warehouse, ORDER, spec, run_id="n-4", full=True)
    assert epoch() == "n-4"


def test_a_changed_mapping_rebuilds_the_entity(warehouse) -> None:
    import dataclasses

    from normalization import From

    spec = demo_normalization()
    land(warehouse, orders([1, 2, 3]))
    assert clean_entity(warehouse, ORDER, spec, run_id="n-1").why_full == "first run"
    assert clean_entity(warehouse, ORDER, spec, run_id="n-2").mode == "incremental"
    changed = dataclasses.replace(ORDER, columns={**ORDER.columns,
                                                  "entered_by": From("user", "upper")})
    again = clean_entity(warehouse, changed, spec, run_id="n-3")
    assert (again.mode, again.raw_rows) == ("full", 3)
    assert again.why_full == "the mapping or a reference it looks up changed"
    assert clean_entity(warehouse, changed, spec, run_id="n-4").mode == "incremental"


@pytest.mark.parametrize("deletes", ["hard", "soft"])
def test_rows_deleted_at_the_source_leave_the_clean_table_too(warehouse, deletes) -> None:
    """A delete lands no row, so the delta alone would keep the deleted order clean:
    a deletion since the last run rebuilds the entity, and says so."""
    from pipelines.runner import note_deletions
    from pipelines.warehouse import DELETED_AT

    spec = demo_normalization()
    land(warehouse, orders(range(1, 11)))
    assert clean_entity(warehouse, ORDER, spec, run_id="n-1").clean_rows == 10
    raw = warehouse.read_table("raw_erp__orders")
    gone = pc.equal(raw.column("order_no"), 3)
    if deletes == "hard":  # what the end of a full read does, as the warehouse sees it
        raw = raw.filter(pc.invert(gone))
    else:
        stamp = pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC"))
        marks = pc.if_else(gone, stamp, pa.scalar(None, pa.timestamp("us", tz="UTC")))
        raw = raw.append_column(DELETED_AT, marks)
    warehouse.replace_tables({"raw_erp__orders": raw})
    note_deletions(warehouse, "raw_erp__orders")

    again = clean_entity(warehouse, ORDER, spec, run_id="n-2")
    assert again.mode == "full"
    assert again.why_full == "rows were deleted from raw_erp__orders since the last run"
    assert [row["order_no"] for row in tables(warehouse)[0]] == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert clean_entity(warehouse, ORDER, spec, run_id="n-3").mode == "incremental"
