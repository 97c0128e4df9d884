"""The normalization engine on small frames: where each row goes and why."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import nullcontext
from decimal import Decimal

import pandas as pd
import pandera.polars as pa
import polars as pl
import pyarrow as pa_arrow
import pytest
from pandera.engines import polars_engine as pe

from normalization import (
    QUARANTINE_SCHEMA,
    Derived,
    EntityMapping,
    From,
    Lookup,
    MappingError,
    QuarantineThresholdExceeded,
    SourceShapeError,
    normalize,
)


class Item(pa.DataFrameModel):
    item_no: int = pa.Field(unique=True, ge=1)
    code: str = pa.Field(str_matches=r"^[A-Z]{3}$")
    active: bool
    price: pe.Decimal = pa.Field(dtype_kwargs={"precision": 12, "scale": 2}, ge=0)
    sold_on: pe.Date = pa.Field(nullable=True)
    label: str = pa.Field(nullable=True)
    price_band: str

    class Config:
        strict = True


def mapping(**overrides) -> EntityMapping:
    options = dict(
        entity="item", source="raw_shop__items", schema=Item, primary_key=("ITEM",),
        cursor="STAMP",
        columns={
            "item_no": From("ITEM"),
            "code": From("CODE", "trim", "upper"),
            "active": From("ACTIVE", "flag"),
            "price": From("PRICE_CENTS", "cents"),
            "sold_on": From("SOLD", ("sentinel_to_null", {"values": [0]}), "packed_date"),
            "price_band": Derived(
                lambda: pl.when(pl.col("price") >= 10).then(pl.lit("high"))
                .otherwise(pl.lit("low")),
                inputs=["price"], transform="high from 10.00 up, else low"),
        },
        lookups=[Lookup("labels", on={"code": "code"}, columns={"label": "text"},
                        required=False)],
    )
    options.update(overrides)
    return EntityMapping(**options)


def raw(**columns) -> pa_arrow.Table:
    base = {
        "ITEM": [1, 2, 3],
        "CODE": ["abc ", "XYZ", "QRS  "],
        "ACTIVE": ["Y", "N", "y"],
        "PRICE_CENTS": [1250, 99, 100000],
        "SOLD": [20240131, 0, 20231201],
        "STAMP": [dt.datetime(2024, 1, 1)] * 3,
    }
    base.update(columns)
    return pa_arrow.table(base)


LABELS = pa_arrow.table({"code": ["ABC", "XYZ"], "text": ["Alpha", "Ex"]})


def test_clean_rows_come_out_cleaned_typed_and_enriched() -> None:
    result = normalize(mapping(), raw(), references={"labels": LABELS}, run_id="r1")

    clean = result.clean.to_pylist()
    assert clean == [
        {"item_no": 1, "code": "ABC", "active": True, "price": Decimal("12.50"),
         "sold_on": dt.date(2024, 1, 31), "label": "Alpha", "price_band": "high"},
        {"item_no": 2, "code": "XYZ", "active": False, "price": Decimal("0.99"),
         "sold_on": None, "label": "Ex", "price_band": "low"},
        {"item_no": 3, "code": "QRS", "active": True, "price": Decimal("1000.00"),
         "sold_on": dt.date(2023, 12, 1), "label": None, "price_band": "high"},
    ]
    assert result.clean.schema.field("price").type == pa_arrow.decimal128(12, 2)
    assert result.quarantine.num_rows == 0 and result.reconciles


def test_a_value_no_cleaner_can_read_is_quarantined_with_its_raw_value() -> None:
    result = normalize(mapping(), raw(ACTIVE=["Y", "maybe", "N"], SOLD=[20240230, 0, 0]),
                       references={"labels": LABELS}, run_id="r2")

    rows = result.quarantine.to_pylist()
    assert [(r["source_key"], r["column"], r["check"], r["value"]) for r in rows] == [
        ('{"ITEM":1}', "sold_on", "packed_date", "20240230"),
        ('{"ITEM":2}', "active", "flag", "maybe"),
    ]
    assert {r["run_id"] for r in rows} == {"r2"} and {r["entity"] for r in rows} == {"item"}
    assert result.clean.column("item_no").to_pylist() == [3]
    assert (result.raw_rows, result.clean_rows, result.quarantined_rows) == (3, 1, 2)
    assert result.reconciles
    assert result.quarantine.schema == QUARANTINE_SCHEMA


def test_schema_checks_fail_lazily_one_row_per_failure() -> None:
    result = normalize(mapping(), raw(CODE=["ab", "XYZ", "TOOLONG"], PRICE_CENTS=[-5, 1, 2]),
                       references={"labels": LABELS})

    failures = {(r["source_key"], r["column"], r["check"], r["value"])
                for r in result.quarantine.to_pylist()}
    assert failures == {
        ('{"ITEM":1}', "code", "str_matches('^[A-Z]{3}$')", "AB"),
        ('{"ITEM":1}', "price", "greater_than_or_equal_to(0)", "-0.05"),
        ('{"ITEM":3}', "code", "str_matches('^[A-Z]{3}$')", "TOOLONG"),
    }
    assert result.quarantined_rows == 2 and result.failures == 3
    assert result.reasons() == {("code", "str_matches('^[A-Z]{3}$')"): 2,
                                ("price", "greater_than_or_equal_to(0)"): 1}


def test_a_failed_cleaning_step_is_not_reported_again_as_not_nullable() -> None:
    result = normalize(mapping(), raw(ACTIVE=["Y", "?", "N"]), references={"labels": LABELS})

    assert [(r["column"], r["check"]) for r in result.quarantine.to_pylist()] == [
        ("active", "flag")]


def test_repeated_keys_keep_the_latest_by_cursor_and_are_counted() -> None:
    data = raw(ITEM=[1, 1, 2], CODE=["NEW", "OLD", "XYZ"],
               STAMP=[dt.datetime(2024, 2, 1), dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1)])

    result = normalize(mapping(), data, references={"labels": LABELS})

    assert result.clean.column("code").to_pylist() == ["NEW", "XYZ"]
    assert (result.superseded_rows, result.reconciles) == (1, True)


def test_a_required_lookup_that_misses_quarantines_the_row() -> None:
    strict = mapping(lookups=[Lookup("labels", on={"code": "code"}, columns={"label": "text"})])

    result = normalize(strict, raw(), references={"labels": LABELS})

    assert [(r["column"], r["check"], r["value"]) for r in result.quarantine.to_pylist()] == [
        ("code", "lookup labels", "QRS")]


@pytest.mark.parametrize(
    ("references", "expectation"),
    [
        ({"labels": LABELS}, nullcontext()),
        ({}, pytest.raises(MappingError, match="needs the reference 'labels'")),
        ({"labels": pa_arrow.table({"code": ["ABC", "ABC"], "text": ["a", "b"]})},
         pytest.raises(MappingError, match="repeats keys")),
        ({"labels": pa_arrow.table({"code": ["ABC"]})},
         pytest.raises(MappingError, match=r"lacks column\(s\) \['text'\]")),
    ],
)
def test_lookup_references_are_checked(references, expectation) -> None:
    with expectation:
        normalize(mapping(), raw(), references=references)


def test_a_raw_table_missing_a_column_is_refused_before_anything_runs() -> None:
    with pytest.raises(SourceShapeError, match=r"lacks column\(s\) \['SOLD'\]"):
        normalize(mapping(), raw().drop(["SOLD"]), references={"labels": LABELS})


def test_pandas_and_polars_frames_work_as_well_as_arrow() -> None:
    arrow = normalize(mapping(), raw(), references={"labels": LABELS}).clean
    frame = raw().to_pandas()

    assert normalize(mapping(), frame, references={"labels": LABELS}).clean.equals(arrow)
    assert normalize(mapping(), pl.from_pandas(frame),
                     references={"labels": pd.DataFrame({"code": ["ABC", "XYZ"],
                                                         "text": ["Alpha", "Ex"]})}
                     ).clean.equals(arrow)
    with pytest.raises(TypeError, match="not list"):
        normalize(mapping(), [1, 2])


def test_provenance_columns_travel_with_clean_rows() -> None:
    data = raw().append_column("_hw_source", pa_arrow.array(["shop"] * 3))

    result = normalize(mapping(), data, references={"labels": LABELS})

    assert result.clean.column("_hw_source").to_pylist() == ["shop"] * 3


@pytest.mark.parametrize(("bad", "over"), [(0, False), (1, True)])
def test_the_threshold_turns_too_many_failures_into_an_error(bad, over) -> None:
    codes = ["ABC"] * (20 - bad) + ["??"] * bad
    data = raw(ITEM=list(range(1, 21)), CODE=codes, ACTIVE=["Y"] * 20, PRICE_CENTS=[1] * 20,
               SOLD=[0] * 20, STAMP=[dt.datetime(2024, 1, 1)] * 20)
    result = normalize(mapping(max_quarantine_share=0.04), data,
                       references={"labels": LABELS})

    assert result.over_threshold is over
    expectation = pytest.raises(QuarantineThresholdExceeded, match=r"1 of 20 rows \(5\.0%\)") \
        if over else nullcontext()
    with expectation:
        result.raise_for_threshold()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"columns": {"item_no": From("ITEM")}}, "schema columns with no mapping"),
        ({"primary_key": ()}, "needs a primary_key"),
        ({"max_quarantine_share": 2}, "within 0..1"),
        ({"lookups": [Lookup("labels", on={"price_band": "code"},
                             columns={"label": "text"})]}, "must join on From columns"),
    ],
)
def test_inconsistent_mappings_fail_when_declared(overrides, message) -> None:
    with pytest.raises(MappingError, match=message):
        mapping(**overrides)


def test_an_unknown_cleaner_fails_when_declared() -> None:
    with pytest.raises(MappingError, match="no_such_cleaner"):
        From("CODE", "no_such_cleaner")


def test_source_keys_are_json_that_identify_composite_keys() -> None:
    class Pair(pa.DataFrameModel):
        a: int
        b: str

    pairs = EntityMapping(entity="pair", source="raw_x__pairs", schema=Pair,
                          primary_key=("A", "B"),
                          columns={"a": From("A"), "b": From("B", "packed_date")})
    result = normalize(pairs, pa_arrow.table({"A": [7], "B": ["x y"]}))

    assert json.loads(result.quarantine.column("source_key")[0].as_py()) == {"A": 7, "B": "x y"}


def one_column_mapping(step, dtype) -> EntityMapping:
    """A mapping of one cleaned column of ``dtype`` through ``step``."""
    model = type("OneValue", (pa.DataFrameModel,), {
        "__annotations__": {"key": int, "value": dtype},
        "value": pa.Field(nullable=True),
    })
    return EntityMapping(entity="one", source="raw_x__values", schema=model,
                         primary_key=("KEY",), columns={"key": From("KEY"),
                                                        "value": From("VALUE", step)})


@pytest.mark.parametrize(
    ("step", "dtype", "good", "bad"),
    [
        ("flag", bool, "Y", "maybe"),
        ("cents", pe.Decimal, "12345", "12x45"),
        (("implied_decimal", {"places": 2}), pe.Decimal, "0001250", "12.5.0"),
        ("decimal", pe.Decimal, "1,234.50", "one thousand"),
        ("julian_date", pe.Date, "124032", "124400"),
        ("packed_date", pe.Date, "20240131", "20240231"),
        ("timestamp", pe.DateTime, "2024-03-01T02:00:00Z", "yesterday"),
        ("email", str, "A.B@Example.com", "not-an-address"),
        ("phone", str, "+44 20 1234 5678", "ext. 12"),
        (("codes", {"mapping": {"SHP": "shipped"}}), str, "SHP", "ZZZ"),
        ("currency", str, "eur", "EURO"),
        ("country", str, "Deutschland", "Atlantis"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_value_a_cleaner_cannot_read_reaches_quarantine_not_an_exception(step, dtype, good,
                                                                           bad) -> None:
    mapping = one_column_mapping(step, dtype)
    raw_values = pa_arrow.table({"KEY": [1, 2, 3, 4], "VALUE": [good, bad, None, ""]})

    result = normalize(mapping, raw_values)

    name = step if isinstance(step, str) else step[0]
    failures = {r["source_key"]: (r["check"], r["value"]) for r in result.quarantine.to_pylist()}
    # The malformed value and the empty one (no blank_as_null before it) are quarantined
    # with the cleaner's name and the raw value; the good one and the null one are clean.
    assert set(failures) == {'{"KEY":2}', '{"KEY":4}'}
    assert failures['{"KEY":2}'][1] == bad and failures['{"KEY":4}'][1] == ""
    assert all(check.startswith(name) for check, _ in failures.values())
    assert result.clean.column("key").to_pylist() == [1, 3]
    assert result.clean.column("value").to_pylist()[1] is None
    assert result.reconciles
