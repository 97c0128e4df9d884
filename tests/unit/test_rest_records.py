"""Records out of JSON bodies: paths, flattening and declared types; REST stream checks."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from connectors._errors import ConfigurationError, DataContractError
from connectors.rest import RESTStream, coerce, flatten, select_records, value_at

BODY = {
    "data": [{"id": 1}, {"id": 2}],
    "meta": {"total": 42, "next": None, "page": {"number": 3}},
    "links": {"next": "/p/2"},
    "items": [{"sku": "a", "tags": ["x", "y"]}, {"sku": "b"}],
    "empty": "",
    "zero": 0,
}

# -- value_at ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("meta.total", 42, id="dotted"),
        pytest.param("$.meta.total", 42, id="dollar-prefix"),
        pytest.param("$.meta.page.number", 3, id="deep"),
        pytest.param("links.next", "/p/2", id="string"),
        pytest.param("items.0.sku", "a", id="list-index"),
        pytest.param("items.1.sku", "b", id="second-index"),
        pytest.param("items.0.tags.1", "y", id="nested-index"),
        pytest.param("zero", 0, id="falsy-value"),
        pytest.param("empty", "", id="empty-string"),
        pytest.param("meta", BODY["meta"], id="an-object"),
        pytest.param("", BODY, id="empty-path-is-the-body"),
        pytest.param("$", BODY, id="root"),
        pytest.param("meta.next", None, id="null"),
        pytest.param("meta.missing", None, id="missing-key"),
        pytest.param("nope.deeper.still", None, id="missing-branch"),
        pytest.param("items.5.sku", None, id="index-out-of-range"),
        pytest.param("items.first", None, id="name-on-a-list"),
        pytest.param("meta.total.x", None, id="through-a-scalar"),
    ],
)
def test_value_at(path, expected):
    assert value_at(BODY, path) == expected


def test_value_at_on_a_bare_list():
    assert value_at([{"a": 1}, {"a": 2}], "1.a") == 2
    assert value_at([{"a": 1}], "a") is None


# -- select_records ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        pytest.param([{"id": 1}, {"id": 2}], "", [{"id": 1}, {"id": 2}], id="bare-list"),
        pytest.param({"data": [{"id": 1}]}, "data", [{"id": 1}], id="data"),
        pytest.param({"data": [{"id": 1}, {"id": 2}]}, "$.data[*]", [{"id": 1}, {"id": 2}],
                     id="jsonpath-star"),
        pytest.param({"data": [{"id": 3}]}, "$.data", [{"id": 3}], id="jsonpath-no-star"),
        pytest.param({"results": {"items": [{"id": 4}]}}, "results.items", [{"id": 4}],
                     id="nested"),
        pytest.param({"results": {"items": [{"id": 5}]}}, "$.results.items[*]", [{"id": 5}],
                     id="nested-jsonpath"),
        pytest.param({"data": {"id": 6}}, "data", [{"id": 6}], id="single-object"),
        pytest.param({"id": 7}, "", [{"id": 7}], id="body-is-one-object"),
        pytest.param({"data": []}, "data", [], id="empty-list"),
        pytest.param({}, "data", [], id="empty-body"),
        pytest.param({"data": {"items": []}}, "data.items", [], id="nested-empty"),
        pytest.param({"shipments": [{"id": 1, "events": [{"c": "a"}, {"c": "b"}]},
                                    {"id": 2, "events": [{"c": "c"}]},
                                    {"id": 3, "events": []}]},
                     "shipments.events", [{"c": "a"}, {"c": "b"}, {"c": "c"}],
                     id="through-a-repeated-element"),
        pytest.param({"shipments": [{"id": 1, "event": {"c": "a"}}, {"id": 2, "event": None}]},
                     "shipments.event", [{"c": "a"}], id="through-a-list-to-one-object"),
        pytest.param({"data": None}, "data", [], id="null"),
        pytest.param([], "", [], id="empty-bare-list"),
    ],
)
def test_select_records(body, path, expected):
    assert select_records(body, path) == expected


@pytest.mark.parametrize(
    ("body", "path", "found"),
    [
        pytest.param({"data": "oops"}, "data", "str", id="string"),
        pytest.param({"data": 5}, "data", "int", id="number"),
        pytest.param({"data": [1, 2]}, "data", "list", id="list-of-numbers"),
        pytest.param({"data": [{"id": 1}, "x"]}, "data", "list", id="mixed-list"),
        pytest.param("text body", "", "str", id="bare-string"),
        pytest.param([[{"id": 1}]], "", "list", id="list-of-lists"),
    ],
)
def test_select_records_refuses_what_is_not_objects(body, path, found):
    with pytest.raises(DataContractError, match="not a list of objects") as info:
        select_records(body, path)
    assert f"found {found}" in info.value.message
    assert "record_path" in info.value.message


@pytest.mark.parametrize(
    ("body", "path", "where", "keys"),
    [
        pytest.param({"data": [{"id": 1}], "next_cursor": "x"}, "date",
                     "the top of the response has no 'date'", "['data', 'next_cursor']",
                     id="a-typo"),
        pytest.param({"results": {"items": [{"id": 1}], "total": 1}}, "results.itemz",
                     "'results' has no 'itemz'", "['items', 'total']", id="nested"),
        pytest.param({"shipments": [{"id": 1, "events": []}, {"id": 2, "extra": 1}]},
                     "shipments.event", "the elements at 'shipments' have no 'event'",
                     "['events', 'extra', 'id']", id="through-a-list"),
    ],
)
def test_a_path_that_matches_nothing_in_a_response_with_content_is_an_error(body, path, where,
                                                                             keys):
    with pytest.raises(DataContractError, match="matches nothing in the response") as info:
        select_records(body, path)
    assert where in info.value.message and f"keys there: {keys}" in info.value.message
    assert repr(path) in info.value.message and "record_path" in info.value.message


def test_a_path_past_a_value_names_where_it_stops():
    with pytest.raises(DataContractError, match="goes on past 'meta', which holds a int"):
        select_records({"meta": 5}, "meta.items")


def test_select_records_names_the_path_or_the_root():
    with pytest.raises(DataContractError, match=r"at '\$'"):
        select_records(7, "")
    with pytest.raises(DataContractError, match="at 'data'"):
        select_records({"data": 7}, "data")


# -- flatten -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "kwargs", "expected"),
    [
        pytest.param({"id": 1, "name": "x"}, {}, {"id": 1, "name": "x"}, id="flat-unchanged"),
        pytest.param(
            {"id": 1, "customer": {"id": 9, "name": "Ann"}},
            {},
            {"id": 1, "customer__id": 9, "customer__name": "Ann"},
            id="nested-dict",
        ),
        pytest.param(
            {"a": {"b": {"c": {"d": 1}}, "e": 2}},
            {},
            {"a__b__c__d": 1, "a__e": 2},
            id="deep",
        ),
        pytest.param(
            {"tags": ["x", "y"], "n": None},
            {},
            {"tags": '["x","y"]', "n": None},
            id="list-as-compact-json",
        ),
        pytest.param(
            {"lines": [{"sku": "b", "qty": 2}, {"qty": 1, "sku": "a"}]},
            {},
            {"lines": '[{"qty":2,"sku":"b"},{"qty":1,"sku":"a"}]'},
            id="list-of-objects-sorted-keys",
        ),
        pytest.param(
            {"a": {"tags": [1, 2]}},
            {},
            {"a__tags": "[1,2]"},
            id="list-inside-nested",
        ),
        pytest.param(
            {"id": 1, "customer": {"name": "Ann", "id": 9}},
            {"nested": "json"},
            {"id": 1, "customer": '{"id":9,"name":"Ann"}'},
            id="nested-json",
        ),
        pytest.param(
            {"a": {"b": {"c": 1}}},
            {"separator": "."},
            {"a.b.c": 1},
            id="custom-separator",
        ),
        pytest.param(
            {"a": {"b": 1}, "c": "é"},
            {"separator": "_"},
            {"a_b": 1, "c": "é"},
            id="single-underscore",
        ),
    ],
)
def test_flatten(record, kwargs, expected):
    assert flatten(record, **kwargs) == expected


def test_flatten_keeps_non_ascii_readable_as_json():
    text = flatten({"names": ["Zoë"]})["names"]
    assert json.loads(text) == ["Zoë"]


def test_flatten_does_not_change_its_input():
    record = {"a": {"b": 1}}
    flatten(record)
    assert record == {"a": {"b": 1}}


# -- coerce ------------------------------------------------------------------------------

UTC_TS = pa.timestamp("us", tz="UTC")


def one(value, type_, name="v"):
    """``value`` coerced as the single field ``name`` of type ``type_``."""
    return coerce([{name: value}], pa.schema([(name, type_)]))[0][name]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-03-01T10:00:00Z", dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC), id="z"),
        pytest.param(
            "2024-03-01T12:00:00+02:00", dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC), id="offset"
        ),
        pytest.param(
            "2024-03-01T10:00:00", dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC), id="naive-is-utc"
        ),
        pytest.param(
            "2024-03-01T10:00:00.123456Z",
            dt.datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=dt.UTC),
            id="microseconds",
        ),
        pytest.param("2024-03-01", dt.datetime(2024, 3, 1, tzinfo=dt.UTC), id="date-only"),
    ],
)
def test_coerce_iso_timestamps_into_utc(text, expected):
    value = one(text, UTC_TS)
    assert isinstance(value, dt.datetime)
    assert value.tzinfo is not None
    assert value == expected
    # And Arrow stores the same instant.
    table = pa.Table.from_pylist([{"v": value}], schema=pa.schema([("v", UTC_TS)]))
    assert table.column("v")[0].as_py() == expected


def test_coerce_a_naive_timestamp_column_keeps_it_naive():
    assert one("2024-03-01T10:00:00", pa.timestamp("us")) == dt.datetime(2024, 3, 1, 10)


def test_coerce_keeps_a_datetime_that_is_already_parsed():
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert one(moment, UTC_TS) is moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05", dt.date(2024, 3, 5)),
        ("2024-03-05T23:30:00Z", dt.date(2024, 3, 5)),
        ("1999-12-31T00:00:00+05:00", dt.date(1999, 12, 31)),
    ],
)
def test_coerce_dates(text, expected):
    assert one(text, pa.date32()) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567.89", Decimal("1234567.89")),
        ("0.10", Decimal("0.10")),
        ("-5", Decimal("-5")),
        (0.1, Decimal("0.1")),  # the float's shortest repr, not its binary expansion
        (42, Decimal("42")),
        (Decimal("3.14"), Decimal("3.14")),
    ],
)
def test_coerce_decimals_exactly(value, expected):
    coerced = one(value, pa.decimal128(12, 2))
    assert isinstance(coerced, Decimal)
    assert coerced == expected
    assert str(coerced) == str(expected)


def test_coerce_decimal_into_arrow_is_exact():
    schema = pa.schema([("amount", pa.decimal128(12, 2))])
    rows = coerce([{"amount": "1234567.89"}], schema)
    table = pa.Table.from_pylist(rows, schema=schema)
    assert table.column("amount")[0].as_py() == Decimal("1234567.89")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        (1.5, "1.5"),
        ("text", "text"),
        ({"a": 1}, '{"a":1}'),
        ([1, "x"], '[1,"x"]'),
    ],
)
def test_coerce_into_string_columns(value, expected):
    assert one(value, pa.string()) == expected


def test_coerce_json_text_in_a_string_column_parses_back():
    value = {"b": [1, 2], "a": {"c": None}}
    assert json.loads(one(value, pa.string())) == value


@pytest.mark.parametrize(
    "type_",
    [UTC_TS, pa.date32(), pa.decimal128(10, 2), pa.int64(), pa.float64(), pa.bool_()],
    ids=str,
)
def test_coerce_empty_string_is_null_for_non_string_types(type_):
    assert one("", type_) is None


def test_coerce_empty_string_stays_for_a_string_column():
    assert one("", pa.string()) == ""


def test_coerce_empty_string_stays_for_a_large_string_column():
    assert one("", pa.large_string()) == ""


def test_coerce_none_stays_none():
    schema = pa.schema([("t", UTC_TS), ("s", pa.string()), ("n", pa.decimal128(5, 1))])
    assert coerce([{"t": None, "s": None, "n": None}], schema) == [{"t": None, "s": None,
                                                                     "n": None}]


def test_coerce_passes_fields_not_in_the_schema_through():
    schema = pa.schema([("n", pa.decimal128(10, 2))])
    rows = coerce([{"n": "1.50", "extra": "2024-01-01", "nested": {"a": 1}}], schema)
    assert rows == [{"n": Decimal("1.50"), "extra": "2024-01-01", "nested": {"a": 1}}]


def test_coerce_leaves_other_types_as_given():
    schema = pa.schema([("i", pa.int64()), ("b", pa.bool_())])
    assert coerce([{"i": 7, "b": False}], schema) == [{"i": 7, "b": False}]


def test_coerce_converts_every_record():
    schema = pa.schema([("n", pa.decimal128(10, 2))])
    rows = coerce(iter([{"n": "1"}, {"n": "2.5"}, {"n": None}]), schema)
    assert rows == [{"n": Decimal("1")}, {"n": Decimal("2.5")}, {"n": None}]


@pytest.mark.parametrize(
    ("value", "type_"),
    [("12,50", pa.decimal128(10, 2)), ("abc", pa.decimal128(10, 2)),
     ("2024-13-45", pa.date32()), ("yesterday", pa.date32())],
)
def test_coerce_a_bad_value_is_a_data_contract_error(value, type_):
    with pytest.raises(DataContractError, match="does not fit the declared types"):
        coerce([{"v": value}], pa.schema([("v", type_)]))


def test_coerce_without_a_schema_passes_records_unchanged():
    records = [{"t": "2024-03-01T10:00:00Z", "n": "1.5", "d": {"a": 1}, "e": ""}]
    out = coerce(records, None)
    assert out == records
    assert out[0] is not records[0]  # copies, so callers may change them


# -- RESTStream --------------------------------------------------------------------------


def test_rest_stream_requires_a_primary_key():
    with pytest.raises(ConfigurationError, match="'orders': declare primary_key"):
        RESTStream(name="orders", path="/orders")


def test_rest_stream_defaults():
    stream = RESTStream(name="orders", path="/orders", primary_key="id")
    assert stream.primary_key == ("id",)
    assert stream.record_path == ""
    assert stream.paginator is None
    assert stream.nested == "flatten"
    assert stream.since_param is None


@pytest.mark.parametrize("nested", ["flatten", "json"])
def test_rest_stream_accepts_the_nested_modes(nested):
    assert RESTStream(name="o", path="/o", primary_key=("a", "b"), nested=nested).nested == nested


@pytest.mark.parametrize("nested", ["xml", "", "JSON", "flat"])
def test_rest_stream_refuses_other_nested_modes(nested):
    with pytest.raises(ConfigurationError, match="nested must be 'flatten' or 'json'"):
        RESTStream(name="o", path="/o", primary_key="id", nested=nested)
