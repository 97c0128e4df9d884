"""RecordBatcher: dict records into batches of one stable schema."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from decimal import Decimal

import pyarrow as pa
import pytest

from connectors._batching import RecordBatcher, batch_records
from connectors._errors import DataContractError

DECLARED = pa.schema(
    [
        ("id", pa.int32()),
        ("amount", pa.decimal128(12, 2)),
        ("name", pa.large_string()),
        ("seen_at", pa.timestamp("us", tz="UTC")),
    ]
)


def test_declared_schema_types_are_kept():
    records = [
        {
            "id": 1,
            "amount": Decimal("10.50"),
            "name": "a",
            "seen_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        },
        {"id": 2, "amount": None, "name": None, "seen_at": None},
    ]
    (batch,) = batch_records(records, schema=DECLARED)
    assert batch.schema == DECLARED
    assert batch.column("amount").to_pylist() == [Decimal("10.50"), None]


def test_fields_missing_from_a_record_are_null():
    (batch,) = batch_records([{"id": 1}], schema=DECLARED)
    assert batch.num_columns == 4
    assert batch.column("name").to_pylist() == [None]


def test_inferred_schema_is_locked_after_the_first_batch():
    batcher = RecordBatcher(batch_size=2)
    assert batcher.add({"id": 1, "price": 1.5}) is None
    first = batcher.add({"id": 2, "price": 2.0})
    assert first.schema == pa.schema([("id", pa.int64()), ("price", pa.float64())])
    # A later record with an int price is cast to the locked float type.
    batcher.add({"id": 3, "price": 7})
    second = batcher.flush()
    assert second.schema == first.schema
    assert second.column("price").to_pylist() == [7.0]


def test_a_later_batch_that_breaks_the_inferred_types_is_a_contract_violation():
    batches = batch_records([{"id": 1}, {"id": "not-a-number"}], batch_size=1)
    assert next(batches).schema == pa.schema([("id", pa.int64())])
    with pytest.raises(DataContractError, match="declare the column's type"):
        next(batches)


def test_a_later_batch_with_a_new_field_is_a_contract_violation():
    batches = batch_records([{"id": 1}, {"id": 2, "extra": "x"}], batch_size=1)
    next(batches)
    with pytest.raises(DataContractError, match=r"\['extra'\]"):
        next(batches)


def test_first_batch_keeps_a_field_missing_from_its_first_row():
    (batch,) = batch_records([{"a": 1}, {"a": 2, "b": "x"}])
    assert batch.column("b").to_pylist() == [None, "x"]


@pytest.mark.parametrize(
    ("count", "batch_size", "sizes"),
    [(0, 3, []), (1, 3, [1]), (3, 3, [3]), (7, 3, [3, 3, 1]), (6, 2, [2, 2, 2]), (5, 1, [1] * 5)],
)
def test_batch_sizes(count, batch_size, sizes):
    records = ({"id": i} for i in range(count))
    batches = list(batch_records(records, batch_size=batch_size))
    assert [b.num_rows for b in batches] == sizes
    ids = [i for b in batches for i in b.column("id").to_pylist()]
    assert ids == list(range(count))


def test_add_returns_a_batch_exactly_when_it_is_full_and_flush_returns_the_rest():
    batcher = RecordBatcher(batch_size=2)
    assert batcher.flush() is None
    assert batcher.add({"id": 1}) is None
    assert batcher.add({"id": 2}).num_rows == 2
    assert batcher.flush() is None
    assert batcher.add({"id": 3}) is None
    assert batcher.flush().column("id").to_pylist() == [3]
    assert batcher.flush() is None


@pytest.mark.parametrize(
    ("extra", "expectation"),
    [
        ("ignore", nullcontext()),
        ("error", pytest.raises(DataContractError, match=r"\['colour', 'size'\].*extra='ignore'")),
    ],
)
def test_unknown_fields_in_a_declared_schema(extra, expectation):
    schema = pa.schema([("id", pa.int64())])
    records = [{"id": 1}, {"id": 2, "size": 3, "colour": "red"}]
    with expectation:
        (batch,) = batch_records(records, schema=schema, extra=extra)
        assert batch.schema == schema
        assert batch.column("id").to_pylist() == [1, 2]


@pytest.mark.parametrize(
    ("field_type", "value", "expectation"),
    [
        (pa.int8(), 127, nullcontext()),
        (pa.int8(), 128, pytest.raises(DataContractError)),
        (pa.uint8(), -1, pytest.raises(DataContractError)),
        (pa.int64(), "12", pytest.raises(DataContractError)),
        (pa.decimal128(5, 2), Decimal("123.45"), nullcontext()),
        (pa.decimal128(5, 2), Decimal("123.456"), pytest.raises(DataContractError)),
        (pa.decimal128(5, 2), Decimal("1234.5"), pytest.raises(DataContractError)),
        (pa.timestamp("us"), dt.datetime(2024, 1, 1), nullcontext()),
        (pa.timestamp("us"), "yesterday", pytest.raises(DataContractError)),
        (pa.bool_(), True, nullcontext()),
        (pa.string(), b"\xff\xfe", pytest.raises(DataContractError)),
        (pa.int64(), 2**64, pytest.raises(DataContractError)),
    ],
)
def test_values_that_do_not_fit_the_declared_type(field_type, value, expectation):
    schema = pa.schema([("amount", field_type)])
    with expectation:
        (batch,) = batch_records([{"amount": value}], schema=schema)
        assert batch.column("amount").to_pylist() == [value]


def test_contract_error_keeps_the_arrow_error_as_its_cause():
    with pytest.raises(DataContractError) as info:
        list(batch_records([{"n": 300}], schema=pa.schema([("n", pa.int8())])))
    assert isinstance(info.value.__cause__, pa.ArrowInvalid | OverflowError)


def test_contract_error_names_the_field_that_does_not_fit():
    schema = pa.schema([("id", pa.int64()), ("quantity", pa.int8())])
    with pytest.raises(DataContractError, match="quantity"):
        list(batch_records([{"id": 1, "quantity": 300}], schema=schema))


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, nullcontext()),
        ({"batch_size": 1, "extra": "ignore"}, nullcontext()),
        ({"batch_size": 0}, pytest.raises(ValueError, match="batch_size")),
        ({"batch_size": -5}, pytest.raises(ValueError, match="batch_size")),
        ({"extra": "allow"}, pytest.raises(ValueError, match="extra")),
        ({"extra": "Error"}, pytest.raises(ValueError, match="extra")),
    ],
)
def test_batcher_validates_its_arguments(kwargs, expectation):
    with expectation:
        RecordBatcher(**kwargs)


def test_batch_records_validates_before_reading_any_record():
    def records():
        raise AssertionError("must not be read")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="batch_size"):
        next(batch_records(records(), batch_size=0))
