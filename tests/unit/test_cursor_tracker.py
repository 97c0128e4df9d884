"""CursorTracker: which records a run delivers, and the cursor and boundary it saves."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from connectors._errors import DataContractError
from connectors._incremental import MAX_BOUNDARY_KEYS, CursorTracker, Incremental, MissingCursor

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def admitted(tracker: CursorTracker, records) -> list[tuple]:
    """The keys of ``records`` (cursor, key) that the tracker lets through, in order."""
    return [key for cursor, key in records if tracker.admit(cursor, key)]


# -- the window --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incremental", "saved", "inside", "outside"),
    [
        pytest.param(Incremental("seq"), None, [-5, 0, 10**9], [], id="unbounded-first-run"),
        pytest.param(Incremental("seq", start=10), None, [10, 11, 500], [9, -1],
                     id="start-first-run"),
        pytest.param(Incremental("seq", end=20), None, [0, 19], [20, 21], id="end-is-open"),
        pytest.param(Incremental("seq", start=10, end=20), None, [10, 15, 19], [9, 20],
                     id="start-and-end"),
        pytest.param(Incremental("seq", start=10), 15, [15, 16, 99], [10, 14],
                     id="saved-cursor-wins-over-start"),
        pytest.param(Incremental("seq", lag=3), 15, [12, 14, 15, 40], [11, 0],
                     id="numeric-lag"),
        pytest.param(Incremental("seq", start=13, lag=5), 15, [13, 15], [10, 12],
                     id="lag-clamped-to-start"),
        pytest.param(Incremental("seq", lag=3, end=20), 15, [12, 19], [11, 20],
                     id="lag-and-end"),
        pytest.param(
            Incremental("updated_at", lag=dt.timedelta(minutes=10)),
            at(60),
            [at(50), at(59), at(60), at(61)],
            [at(49), at(49.99)],
            id="timedelta-lag",
        ),
        pytest.param(
            Incremental("updated_at", start=at(0), end=at(30)),
            None,
            [at(0), at(29.99)],
            [at(-1), at(30)],
            id="datetime-window",
        ),
    ],
)
def test_the_window_filters_records(incremental, saved, inside, outside):
    tracker = CursorTracker(incremental, saved)
    assert [tracker.admit(c, (i,)) for i, c in enumerate(inside)] == [True] * len(inside)
    assert [tracker.admit(c, (i,)) for i, c in enumerate(outside, 100)] == [False] * len(outside)


def test_records_outside_the_window_do_not_move_the_cursor():
    tracker = CursorTracker(Incremental("seq", start=10, end=20))
    assert not tracker.admit(25, ("late",))
    assert not tracker.admit(5, ("early",))
    assert tracker.admit(12, ("in",))
    assert tracker.state() == {"cursor": 12, "boundary": [["in"]]}


def test_a_date_start_bounds_datetime_cursors_on_the_first_run():
    tracker = CursorTracker(Incremental("updated_at", start=dt.date(2024, 5, 1)))
    assert not tracker.admit(dt.datetime(2024, 4, 30, 23, 59, tzinfo=dt.UTC), (1,))
    assert tracker.admit(dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC), (2,))


def test_a_date_start_bounds_datetime_cursors_after_a_saved_cursor():
    tracker = CursorTracker(
        Incremental("updated_at", start=dt.date(2024, 5, 1), lag=dt.timedelta(days=30)), at(0)
    )
    assert not tracker.admit(dt.datetime(2024, 4, 30, 23, 59, tzinfo=dt.UTC), (1,))
    assert tracker.admit(dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.UTC), (2,))


# -- de-duplication at the saved cursor ---------------------------------------------------


def test_a_record_at_the_saved_cursor_already_delivered_is_refused():
    tracker = CursorTracker(Incremental("seq"), 15, [[1], [2]])
    assert tracker.admit(15, (1,)) is False
    assert tracker.admit(15, (2,)) is False
    assert tracker.admit(15, (3,)) is True  # same cursor, another key
    assert tracker.admit(16, (1,)) is True  # same key, a later cursor: an update


def test_boundary_keys_may_be_composite_and_come_from_json():
    boundary = json.loads(json.dumps([["eu", 7], ["us", 7]]))
    tracker = CursorTracker(Incremental("seq"), 15, boundary)
    assert tracker.admit(15, ("eu", 7)) is False
    assert tracker.admit(15, ("us", 8)) is True
    assert tracker.admit(15, ("eu",)) is True


def test_the_boundary_only_applies_at_the_saved_cursor():
    # With a lag, records before the saved cursor are read again even if their key is
    # in the boundary: the boundary is about the saved cursor value only.
    tracker = CursorTracker(Incremental("seq", lag=5), 15, [[1]])
    assert tracker.admit(12, (1,)) is True
    assert tracker.admit(15, (1,)) is False


def test_the_boundary_with_datetime_cursors():
    tracker = CursorTracker(Incremental("updated_at"), at(60), [["A-1"]])
    assert tracker.admit(at(60), ("A-1",)) is False
    assert tracker.admit(at(60), ("A-2",)) is True


# -- the max cursor and its keys ----------------------------------------------------------


def test_max_cursor_and_its_keys_regardless_of_arrival_order():
    tracker = CursorTracker(Incremental("seq"))
    records = [(5, (1,)), (9, (2,)), (7, (3,)), (9, (4,)), (2, (5,)), (9, (2,))]
    assert admitted(tracker, records) == [(1,), (2,), (3,), (4,), (5,), (2,)]
    assert tracker.max_cursor == 9
    assert tracker.state() == {"cursor": 9, "boundary": [[2], [4]]}


def test_a_larger_cursor_replaces_the_keys():
    tracker = CursorTracker(Incremental("seq"))
    admitted(tracker, [(3, ("a",)), (3, ("b",)), (4, ("c",)), (3, ("d",))])
    assert tracker.state() == {"cursor": 4, "boundary": [["c"]]}


def test_without_records_the_state_is_what_was_saved():
    assert CursorTracker(Incremental("seq")).state() == {"cursor": None, "boundary": []}
    tracker = CursorTracker(Incremental("seq"), 15, [[1], [2]])
    assert tracker.state() == {"cursor": 15, "boundary": [[1], [2]]}


def test_new_keys_at_the_saved_cursor_join_its_boundary():
    tracker = CursorTracker(Incremental("seq"), 15, [[1]])
    admitted(tracker, [(15, (1,)), (15, (2,)), (14, (3,))])
    assert tracker.state() == {"cursor": 15, "boundary": [[1], [2]]}


def test_datetime_cursors_are_tracked():
    tracker = CursorTracker(Incremental("updated_at"))
    admitted(tracker, [(at(5), ("x",)), (at(1), ("y",)), (at(5), ("z",))])
    assert tracker.state() == {"cursor": at(5), "boundary": [["x"], ["z"]]}


# -- checkpoints: saved(), resume(), state() ----------------------------------------------


def test_saved_is_what_the_run_started_from():
    tracker = CursorTracker(Incremental("seq"), 15, [[1]])
    admitted(tracker, [(20, (5,))])
    assert tracker.saved() == {"cursor": 15, "boundary": [[1]]}
    assert tracker.resume() == {"max_cursor": 20, "max_boundary": [[5]]}
    assert tracker.state() == {"cursor": 20, "boundary": [[5]]}


def test_resume_mid_read_into_a_new_tracker():
    incremental = Incremental("seq", lag=2)
    first = CursorTracker(incremental, 15, [[1]])
    assert admitted(first, [(15, (1,)), (14, (2,)), (18, (3,)), (18, (4,))]) == [
        (2,), (3,), (4,)
    ]
    checkpoint = json.loads(json.dumps({**first.saved(), "resume": first.resume()}))

    second = CursorTracker(incremental, checkpoint["cursor"], checkpoint["boundary"],
                           resume=checkpoint["resume"])
    assert second.window == first.window
    assert second.max_cursor == 18
    # The saved boundary still applies; the running max is kept and extended.
    assert admitted(second, [(15, (1,)), (16, (5,)), (18, (6,)), (17, (7,))]) == [
        (5,), (6,), (7,)
    ]
    assert second.state() == {"cursor": 18, "boundary": [[3], [4], [6]]}


def test_resume_where_a_larger_cursor_arrives_after_the_restart():
    incremental = Incremental("seq")
    first = CursorTracker(incremental, 10, [[1]])
    admitted(first, [(12, (2,))])
    second = CursorTracker(incremental, 10, [[1]], resume=first.resume())
    admitted(second, [(13, (3,)), (12, (4,))])
    assert second.state() == {"cursor": 13, "boundary": [[3]]}


def test_resume_before_any_record_keeps_the_saved_state():
    incremental = Incremental("seq")
    first = CursorTracker(incremental, 10, [[1], [2]])
    second = CursorTracker(incremental, 10, [[1], [2]], resume=first.resume())
    assert second.state() == {"cursor": 10, "boundary": [[1], [2]]}


def test_a_completed_state_starts_the_next_run():
    incremental = Incremental("seq")
    run1 = CursorTracker(incremental)
    admitted(run1, [(1, (1,)), (2, (2,)), (2, (3,))])
    state = json.loads(json.dumps(run1.state()))
    run2 = CursorTracker(incremental, state["cursor"], state["boundary"])
    # The source answers everything again plus one new record at the same cursor.
    assert admitted(run2, [(1, (1,)), (2, (2,)), (2, (3,)), (2, (4,)), (3, (5,))]) == [
        (4,), (5,)
    ]
    assert run2.state() == {"cursor": 3, "boundary": [[5]]}


# -- missing cursors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(MissingCursor.INCLUDE, True), (MissingCursor.SKIP, False), ("include", True),
     ("skip", False)],
)
def test_missing_cursor_include_or_skip(policy, expected):
    tracker = CursorTracker(Incremental("seq", start=10, on_missing_cursor=policy), 15, [[1]])
    assert tracker.admit(None, (1,)) is expected
    assert tracker.admit(None, (2,)) is expected
    # A record without a cursor never moves the cursor or its boundary.
    assert tracker.state() == {"cursor": 15, "boundary": [[1]]}


def test_missing_cursor_fail_is_a_data_contract_error():
    tracker = CursorTracker(Incremental("updated_at", on_missing_cursor="fail"))
    assert tracker.admit(at(0), ("ok",)) is True
    with pytest.raises(DataContractError) as info:
        tracker.admit(None, ("A-17",))
    assert "('A-17',)" in info.value.message
    assert "'updated_at'" in info.value.message
    assert "on_missing_cursor" in info.value.message


# -- too many records at one cursor -------------------------------------------------------


def test_more_than_max_boundary_keys_at_one_cursor_empties_the_boundary():
    tracker = CursorTracker(Incremental("seq"))
    for i in range(MAX_BOUNDARY_KEYS):
        assert tracker.admit(7, (i,))
    assert len(tracker.state()["boundary"]) == MAX_BOUNDARY_KEYS
    assert tracker.state()["boundary"][:2] == [[0], [1]]

    assert tracker.admit(7, (MAX_BOUNDARY_KEYS,))  # one too many: still delivered
    assert tracker.state() == {"cursor": 7, "boundary": []}
    # It stays empty: new keys, repeats and older cursors do not refill it.
    for cursor, key in [(7, ("new",)), (7, (0,)), (6, ("older",)), (7, ("another",))]:
        assert tracker.admit(cursor, key)
        assert tracker.state() == {"cursor": 7, "boundary": []}

    # A larger cursor starts a fresh boundary.
    assert tracker.admit(8, ("next",))
    assert tracker.state() == {"cursor": 8, "boundary": [["next"]]}
    assert tracker.admit(8, ("next-2",))
    assert tracker.state() == {"cursor": 8, "boundary": [["next"], ["next-2"]]}


def test_exactly_max_boundary_keys_are_all_kept():
    tracker = CursorTracker(Incremental("seq"))
    for i in range(MAX_BOUNDARY_KEYS):
        tracker.admit(7, (i,))
    tracker.admit(7, (0,))  # a repeat does not count twice
    assert len(tracker.state()["boundary"]) == MAX_BOUNDARY_KEYS


def test_the_limit_is_a_thousand():
    assert MAX_BOUNDARY_KEYS == 1000
