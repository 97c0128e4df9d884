"""State documents keep their types through JSON and ride on record batches."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from connectors._state import (
    STATE_METADATA_KEY,
    checkpoint_of,
    dumps_state,
    loads_state,
    with_checkpoint,
    without_checkpoint,
)

MINUS_FIVE = dt.timezone(dt.timedelta(hours=-5))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(dt.datetime(2024, 1, 2, 3, 4, 5, 678901), id="naive-datetime"),
        pytest.param(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), id="utc-datetime"),
        pytest.param(dt.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=MINUS_FIVE), id="offset-datetime"),
        pytest.param(dt.date(2024, 2, 29), id="date"),
        pytest.param(dt.time(23, 59, 59, 999999), id="naive-time"),
        pytest.param(dt.time(1, 2, tzinfo=MINUS_FIVE), id="offset-time"),
        pytest.param(Decimal("12345678901234567890.000000001"), id="decimal-beyond-float"),
        pytest.param(Decimal("-0.50"), id="decimal-keeps-trailing-zero"),
        pytest.param(b"\x00\xff binary", id="bytes"),
        pytest.param(b"", id="empty-bytes"),
        pytest.param(12, id="int"),
        pytest.param("2024-01-02", id="date-looking-string-stays-a-string"),
        pytest.param(None, id="none"),
    ],
)
def test_scalar_round_trip_keeps_type_value_and_offset(value):
    loaded = loads_state(dumps_state({"cursor": value}))["cursor"]
    assert type(loaded) is type(value)
    assert loaded == value
    assert str(loaded) == str(value)  # equal instants in other offsets would not pass
    if isinstance(value, dt.datetime | dt.time):
        assert loaded.utcoffset() == value.utcoffset()


def test_nested_lists_and_mappings_round_trip():
    state = {
        "phase": "rows",
        "cursor": dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        "boundary_keys": [[1, "a"], [2, Decimal("3.10")], [dt.date(2024, 1, 1), b"k"]],
        "nested": {"inner": [{"t": dt.time(8, 30)}]},
    }
    assert loads_state(dumps_state(state)) == state
    loaded = loads_state(dumps_state(state))
    assert isinstance(loaded["boundary_keys"][2][0], dt.date)
    assert str(loaded["boundary_keys"][1][1]) == "3.10"


def test_tuples_come_back_as_lists():
    assert loads_state(dumps_state({"key": (1, "a")})) == {"key": [1, "a"]}


def test_dumps_is_plain_sorted_json():
    text = dumps_state({"b": dt.date(2024, 1, 1), "a": 1})
    assert text == '{"a": 1, "b": {"$date": "2024-01-01"}}'
    assert json.loads(text)["b"] == {"$date": "2024-01-01"}


def test_a_mapping_with_a_marker_and_other_keys_is_not_decoded():
    assert loads_state('{"x": {"$date": "2024-01-01", "other": 1}}') == {
        "x": {"$date": "2024-01-01", "other": 1}
    }


@pytest.mark.parametrize("empty", [None, {}])
def test_no_state_dumps_as_an_empty_document(empty):
    assert dumps_state(empty) == "{}"


@pytest.mark.parametrize("text", [None, "", "{}"])
def test_no_text_loads_as_an_empty_state(text):
    assert loads_state(text) == {}


@pytest.fixture
def batch():
    return pa.RecordBatch.from_pydict(
        {"id": [1, 2]}, schema=pa.schema([("id", pa.int64())], metadata={b"owner": b"erp"})
    )


def test_batch_carries_its_checkpoint(batch):
    state = {"cursor": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "keys": [[Decimal("1.5")]]}
    stamped = with_checkpoint(batch, state)
    assert checkpoint_of(stamped) == state
    assert stamped.schema.metadata[b"owner"] == b"erp"
    assert stamped.column(0).to_pylist() == [1, 2]
    assert checkpoint_of(batch) is None  # the original is not modified


def test_a_new_checkpoint_replaces_the_old_one(batch):
    stamped = with_checkpoint(with_checkpoint(batch, {"cursor": 1}), {"cursor": 2})
    assert checkpoint_of(stamped) == {"cursor": 2}


def test_batch_without_metadata_has_no_checkpoint():
    assert checkpoint_of(pa.RecordBatch.from_pydict({"id": [1]})) is None


def test_empty_batch_can_carry_only_the_state():
    empty = pa.RecordBatch.from_pylist([], schema=pa.schema([("id", pa.int64())]))
    assert checkpoint_of(with_checkpoint(empty, {"done": True})) == {"done": True}


def test_without_checkpoint_keeps_other_metadata(batch):
    schema = without_checkpoint(with_checkpoint(batch, {"cursor": 1}).schema)
    assert schema.metadata == {b"owner": b"erp"}
    assert schema.names == ["id"]


def test_without_checkpoint_leaves_no_empty_metadata():
    stamped = with_checkpoint(pa.RecordBatch.from_pydict({"id": [1]}), {"cursor": 1})
    assert STATE_METADATA_KEY in stamped.schema.metadata
    plain = without_checkpoint(stamped.schema)
    assert not plain.metadata
    assert plain.equals(pa.schema([("id", pa.int64())]), check_metadata=True)
