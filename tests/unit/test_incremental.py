"""The half-open window and how a saved cursor, a lag and a start combine."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext

import pytest

from connectors._incremental import Incremental, MissingCursor, Window

JAN1 = dt.datetime(2024, 1, 1)
FEB1 = dt.datetime(2024, 2, 1)


@pytest.mark.parametrize(
    ("window", "value", "inside"),
    [
        (Window(10, 20), 10, True),  # start is closed
        (Window(10, 20), 19, True),
        (Window(10, 20), 20, False),  # end is open
        (Window(10, 20), 9, False),
        (Window(10, 20), None, False),
        (Window(None, 20), -(10**9), True),
        (Window(None, 20), 20, False),
        (Window(10, None), 10**9, True),
        (Window(10, None), 9, False),
        (Window(), 0, True),
        (Window(), None, False),
        (Window(JAN1, FEB1), JAN1, True),
        (Window(JAN1, FEB1), FEB1 - dt.timedelta(microseconds=1), True),
        (Window(JAN1, FEB1), FEB1, False),
        (Window("b", "d"), "c", True),
        (Window("b", "d"), "d", False),
    ],
)
def test_window_is_half_open_and_excludes_none(window, value, inside):
    assert window.contains(value) is inside


@pytest.mark.parametrize(
    ("incremental", "saved", "expected"),
    [
        pytest.param(Incremental("updated_at"), None, Window(None, None), id="first-run-unbounded"),
        pytest.param(
            Incremental("updated_at", start=JAN1, end=FEB1),
            None,
            Window(JAN1, FEB1),
            id="first-run-configured",
        ),
        pytest.param(
            Incremental("updated_at", start=JAN1, lag=0),
            dt.datetime(2024, 1, 15),
            Window(dt.datetime(2024, 1, 15), None),
            id="saved-cursor-inclusive",
        ),
        pytest.param(
            Incremental("updated_at"),
            dt.datetime(2024, 1, 15, 12),
            Window(dt.datetime(2024, 1, 15, 11, 55), None),
            id="timestamp-default-lag-5-minutes",
        ),
        pytest.param(
            Incremental("updated_at"),
            dt.datetime(2024, 1, 15, 12, tzinfo=dt.UTC),
            Window(dt.datetime(2024, 1, 15, 11, 55, tzinfo=dt.UTC), None),
            id="aware-timestamp-default-lag",
        ),
        pytest.param(
            Incremental("updated_at", lag=dt.timedelta(0)),
            dt.datetime(2024, 1, 15, 12),
            Window(dt.datetime(2024, 1, 15, 12), None),
            id="zero-timedelta-turns-the-default-off",
        ),
        pytest.param(
            Incremental("changed_on"), dt.date(2024, 1, 15), Window(dt.date(2024, 1, 15), None),
            id="date-no-default-lag",
        ),
        pytest.param(Incremental("seq"), 1000, Window(1000, None), id="int-no-default-lag"),
        pytest.param(Incremental("code"), "b", Window("b", None), id="text-no-default-lag"),
        pytest.param(
            Incremental("updated_at", start=dt.datetime(2024, 1, 15, 11, 58)),
            dt.datetime(2024, 1, 15, 12),
            Window(dt.datetime(2024, 1, 15, 11, 58), None),
            id="default-lag-never-below-start",
        ),
        pytest.param(
            Incremental("updated_at", lag=dt.timedelta(hours=2)),
            dt.datetime(2024, 1, 15, 12),
            Window(dt.datetime(2024, 1, 15, 10), None),
            id="timedelta-lag",
        ),
        pytest.param(
            Incremental("updated_at", start=JAN1, lag=dt.timedelta(days=3)),
            dt.datetime(2024, 1, 2),
            Window(JAN1, None),
            id="lag-never-below-start",
        ),
        pytest.param(
            Incremental("updated_at", start=JAN1),
            dt.datetime(2023, 6, 1),
            Window(JAN1, None),
            id="saved-cursor-below-start",
        ),
        pytest.param(Incremental("seq", lag=100), 1000, Window(900, None), id="int-lag"),
        pytest.param(
            Incremental("seq", start=950, lag=100), 1000, Window(950, None), id="int-lag-clamped"
        ),
        pytest.param(Incremental("seq", lag=0), 1000, Window(1000, None), id="zero-lag"),
        pytest.param(Incremental("seq", end=5000), 1000, Window(1000, 5000), id="end-kept"),
        pytest.param(Incremental("seq", start=0), 0, Window(0, None), id="falsy-cursor"),
    ],
)
def test_window_from_saved_cursor(incremental, saved, expected):
    assert incremental.window(saved) == expected


@pytest.mark.parametrize(
    ("value", "expectation"),
    [
        ("include", nullcontext(MissingCursor.INCLUDE)),
        ("skip", nullcontext(MissingCursor.SKIP)),
        ("fail", nullcontext(MissingCursor.FAIL)),
        (MissingCursor.SKIP, nullcontext(MissingCursor.SKIP)),
        ("SKIP", pytest.raises(ValueError)),
        ("ignore", pytest.raises(ValueError)),
        ("", pytest.raises(ValueError)),
    ],
)
def test_on_missing_cursor_accepts_the_enum_or_its_value(value, expectation):
    with expectation as expected:
        incremental = Incremental("updated_at", on_missing_cursor=value)
        assert incremental.on_missing_cursor is expected
        assert type(incremental.on_missing_cursor) is MissingCursor


def test_default_for_missing_cursor_is_include():
    assert Incremental("updated_at").on_missing_cursor is MissingCursor.INCLUDE


def test_missing_cursor_values_are_strings():
    assert [m.value for m in MissingCursor] == ["include", "skip", "fail"]
    assert MissingCursor.FAIL == "fail"


def test_a_date_start_bounds_a_datetime_cursor():
    inc = Incremental("changed", start=dt.date(2024, 1, 1), lag=dt.timedelta(days=30))
    window = inc.window(dt.datetime(2024, 1, 10, 12))
    assert window.start == dt.datetime(2024, 1, 1)
