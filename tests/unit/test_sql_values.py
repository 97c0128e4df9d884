"""Values into Arrow exactly, or an error naming the row: the pure core of every read path."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from decimal import Decimal

import pyarrow as pa
import pytest

from connectors import DataContractError
from connectors.sql._values import (
    UnfitValue,
    cast_array,
    date_days,
    days_from_civil,
    from_text,
    python_array,
    strict_bool_array,
    time_from_timedelta_array,
    time_micros,
    timestamp_micros,
)

DAY = 86_400_000_000


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("1970-01-01", 0),
        ("2000-02-29", 11016),
        ("0001-01-01", (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days),
        ("9999-12-31", (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days),
        ("4713-01-01 BC", -2440550),  # PostgreSQL: date '4713-01-01 BC' - date '1970-01-01'
        ("0001-12-31 BC", -719163),
        ("5874897-12-31", 2145042905),
    ],
)
def test_dates_of_any_year(text, days) -> None:
    assert date_days(text) == days


@pytest.mark.parametrize("text", ["2023-02-29", "2024-13-01", "infinity", "24/12/2024", ""])
def test_what_is_not_a_date_is_refused(text) -> None:
    with pytest.raises(ValueError):
        date_days(text)


def test_days_from_civil_agrees_with_python_on_its_whole_range() -> None:
    for year in range(1, 10000, 97):
        for month, day in ((1, 1), (2, 28), (3, 1), (12, 31)):
            assert days_from_civil(year, month, day) == (
                dt.date(year, month, day) - dt.date(1970, 1, 1)).days


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("1970-01-01 00:00:00", 0),
        ("1970-01-01 00:00:00.5", 500_000),
        ("1970-01-01T01:00:00+01", 0),
        ("1970-01-01 05:30:00+05:30", 0),
        ("1969-12-31 23:00:00-01:00", 0),
        ("1970-01-01 00:00:00Z", 0),
        ("4713-01-01 00:00:00 BC", -2440550 * DAY),
        ("294246-12-31 23:59:59.999999", (days_from_civil(294246, 12, 31) + 1) * DAY - 1),
    ],
)
def test_timestamps_of_any_year_and_offset(text, micros) -> None:
    assert timestamp_micros(text) == micros


def test_a_timestamp_arrow_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the range"):
        timestamp_micros("294276-12-31 23:59:59.999999")


@pytest.mark.parametrize(
    ("text", "expectation"),
    [
        ("00:00:00", nullcontext(0)),
        ("23:59:59.999999", nullcontext(DAY - 1)),
        ("24:00:00", nullcontext(DAY)),  # PostgreSQL's end of day
        ("24:00:01", pytest.raises(ValueError)),
        ("-838:59:59", pytest.raises(ValueError)),
        ("838:59:59", pytest.raises(ValueError)),
        ("12:60:00", pytest.raises(ValueError)),
    ],
)
def test_times_of_day(text, expectation) -> None:
    with expectation as expected:
        assert time_micros(text) == expected


def test_a_decimal_too_long_for_arrow_is_refused_not_wrapped() -> None:
    # Arrow's own cast turns this 1000-digit number into -1.
    field = pa.field("n", pa.decimal128(38, 10))
    with pytest.raises(UnfitValue) as err:
        from_text(pa.array(["1.5", "9" * 1000]), field)
    assert err.value.row == 1 and err.value.column == "n"


@pytest.mark.parametrize("text", ["NaN", "Infinity", "abc"])
def test_a_decimal_that_is_no_number_names_its_row(text) -> None:
    with pytest.raises(UnfitValue) as err:
        from_text(pa.array(["0.1", None, text]), pa.field("n", pa.decimal128(10, 2)))
    assert err.value.row == 2


def test_decimals_from_text_are_exact() -> None:
    got = from_text(pa.array(["0.10", "-99999999.99", None, "1.23456789012346e+19"]),
                    pa.field("n", pa.decimal128(38, 10)))
    assert got.to_pylist() == [Decimal("0.1"), Decimal("-99999999.99"), None,
                               Decimal("12345678901234600000")]


def test_dates_from_text_take_the_fast_cast_or_the_exact_parse() -> None:
    field = pa.field("d", pa.date32())
    assert from_text(pa.array(["2024-01-02", None]), field).to_pylist() == [
        dt.date(2024, 1, 2), None]
    extreme = from_text(pa.array(["4713-01-01 BC", "2024-01-02"]), field)
    assert extreme.cast(pa.int32()).to_pylist() == [-2440550, 19724]
    with pytest.raises(UnfitValue, match="'infinity' has no Arrow value") as err:
        from_text(pa.array(["2024-01-02", "infinity"]), field)
    assert err.value.row == 1


def test_a_python_value_that_does_not_fit_names_its_row() -> None:
    with pytest.raises(UnfitValue) as err:
        python_array([1, 2, "three"], pa.field("n", pa.int64()))
    assert err.value.row == 2 and isinstance(err.value, DataContractError)


def test_booleans_from_integers_refuse_anything_but_zero_and_one() -> None:
    field = pa.field("flag", pa.bool_())
    assert strict_bool_array([1, 0, None], field).to_pylist() == [True, False, None]
    for values in ([1, 2], pa.array([0, -1], pa.int64())):
        with pytest.raises(UnfitValue) as err:
            cast_array(values, field) if isinstance(values, pa.Array) else \
                strict_bool_array(values, field)
        assert err.value.row == 1


def test_mysql_times_outside_a_day_are_refused_not_wrapped() -> None:
    field = pa.field("t", pa.time64("us"))
    got = time_from_timedelta_array([dt.timedelta(hours=13, microseconds=5), None], field)
    assert got.to_pylist() == [dt.time(13, 0, 0, 5), None]
    with pytest.raises(UnfitValue) as err:
        time_from_timedelta_array([dt.timedelta(0), dt.timedelta(hours=-838)], field)
    assert err.value.row == 1
