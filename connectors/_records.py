"""Records out of JSON bodies: selection by path, flattening, and declared types."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from ._errors import DataContractError

FLATTEN, AS_JSON = "flatten", "json"


def _steps(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    return [s for s in path.replace("[*]", "").replace("*", "").split(".") if s]


def value_at(body: Any, path: str) -> Any:
    """The value at a dotted path (``links.next``, ``$.meta.total``); None if absent."""
    current = body
    for step in _steps(path):
        if isinstance(current, Mapping):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current


def _is_record(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def select_records(body: Any, path: str) -> list[Mapping[str, Any]]:
    """The records at ``path`` (JSONPath-like: ``data``, ``$.data[*]``, ``results.items``;
    empty for a body that is the list itself). A path through a list collects from every
    element (``shipments.events``: the events of every shipment).

    A path that matches nothing in a body that holds something is a
    :class:`DataContractError` naming the path and the keys that are there (a mistyped
    ``record_path`` would otherwise read every page and land nothing); a null or empty
    value at the path, or an empty body, holds no records."""
    found = follow_path(body, path) if path else body
    if found is None:
        return []
    if isinstance(found, Mapping):
        return [found]
    if not isinstance(found, list) or not all(map(_is_record, found)):
        raise DataContractError(
            f"the records at {path or '$'!r} are not a list of objects "
            f"(found {type(found).__name__}); set the stream's record_path"
        )
    return found


def follow_path(body: Any, path: str) -> Any:
    """The value at a record path, collecting through lists; ``None`` where the body or a
    value on the way is null or empty. Raises :class:`DataContractError` where the path
    names a key that is in none of the objects there."""
    steps = _steps(path)
    current = body
    for depth, step in enumerate(steps):
        if current is None or (isinstance(current, Mapping | list) and not current):
            return None  # nothing there, which is not a wrong path
        if isinstance(current, Mapping):
            if step not in current:
                raise _no_match(path, steps[:depth], step, current)
            current = current[step]
        elif isinstance(current, list) and step.isdigit():
            current = current[int(step)] if int(step) < len(current) else None
        elif isinstance(current, list):
            holders = [item for item in current if _is_record(item) and step in item]
            if not holders:
                keys: dict[str, None] = {}
                for item in current:
                    keys.update(dict.fromkeys(item if _is_record(item) else ()))
                raise _no_match(path, steps[:depth], step, keys, every=True)
            current = _collected(holder[step] for holder in holders)
        else:
            raise DataContractError(
                f"record_path {path!r} goes on past {_where(steps[:depth])}, which holds a "
                f"{type(current).__name__}, not an object; set the stream's record_path to "
                "where the records are"
            )
    return current


def _collected(values: Iterable[Any]) -> list[Any]:
    """The values found through a list, as one list (lists joined, nulls left out)."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


def _where(steps: Sequence[str]) -> str:
    return repr(".".join(steps)) if steps else "the top of the response"


_LISTED_KEYS = 30


def _no_match(path: str, before: Sequence[str], step: str, keys: Iterable[str], *,
              every: bool = False) -> DataContractError:
    names = sorted(map(str, keys))
    listed = names[:_LISTED_KEYS] + (["..."] if len(names) > _LISTED_KEYS else [])
    place = f"the elements at {_where(before)} have" if every else f"{_where(before)} has"
    return DataContractError(
        f"record_path {path!r} matches nothing in the response: {place} no {step!r} "
        f"(keys there: {listed}); set the stream's record_path to where the records are"
    )


def flatten(record: Mapping[str, Any], nested: str = FLATTEN, separator: str = "__"
            ) -> Mapping[str, Any]:
    """One flat record: nested objects become ``parent__child`` columns (``nested="flatten"``)
    or JSON text (``nested="json"``); lists always become JSON text. A record with
    nothing nested comes back as it is."""
    if _NESTED.isdisjoint(map(type, record.values())):
        return record
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping) and nested == FLATTEN:
            for inner, inner_value in flatten(value, nested, separator).items():
                out[f"{key}{separator}{inner}"] = inner_value
        elif isinstance(value, Mapping | list):
            out[key] = as_json(value)
        else:
            out[key] = value
    return out


_NESTED = frozenset({dict, list})


def as_json(value: Any) -> str:
    """Compact JSON text with sorted keys: the same text for the same value. Decimals
    and date-times (from SOAP and other typed sources) are written as their text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_text)


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)


def parse_instant(value: Any) -> Any:
    """An ISO 8601 date-time string as an aware or naive datetime; other values as given."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _convert(value: Any, t: pa.DataType) -> Any:
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if value is None or value == "":
        return value if text else None
    if pa.types.is_timestamp(t):
        parsed = parse_instant(value)
        if isinstance(parsed, dt.datetime) and t.tz is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed
    if pa.types.is_date(t) and isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if pa.types.is_decimal(t) and not isinstance(value, Decimal):
        return Decimal(str(value))
    if text and not isinstance(value, str):
        # Date-times as written, offset included (ISO 8601): declare a column as text to
        # keep the offset a source gave, as a timestamp to get the UTC instant.
        return as_json(value) if isinstance(value, Mapping | list | bool) else _text(value)
    return value


def unknown_fields(records: Sequence[Mapping[str, Any]], schema: pa.Schema) -> set[str]:
    """Fields some record has that the schema does not name."""
    # Iterating a record yields its keys: chain them in C rather than per record.
    return set(itertools.chain.from_iterable(records)).difference(schema.names)


def to_batch(records: Sequence[Mapping[str, Any]], schema: pa.Schema, *,
             fields_checked: bool = False, key: Sequence[str] = ()) -> pa.RecordBatch:
    """Records into a batch of ``schema``, column by column.

    JSON text becomes the declared types in Arrow (ISO 8601 timestamps with or without
    a zone, dates, decimal strings), one cast per column; a column Arrow cannot cast
    (empty strings, numbers in a text column, naive timestamps for a zoned column) is
    converted value by value instead. A field not in the schema is an error
    (``fields_checked``: the caller has looked already). A value that fits no conversion
    is an error naming the field and, by the ``key`` fields, its record.
    """
    unknown = set() if fields_checked else unknown_fields(records, schema)
    if unknown:
        raise DataContractError(
            f"records have fields not in the stream schema: {sorted(unknown)}; add them to "
            "the declared schema"
        )
    transport = pa.schema([f.with_type(pa.string()) if _via_text(f.type) else f
                           for f in schema])
    try:
        # One struct conversion reads the dicts several times faster than from_pylist.
        raw = pa.array(records, type=pa.struct(transport))
        arrays = [column.cast(f.type) if column.type != f.type else column
                  for column, f in zip(raw.flatten(), schema, strict=True)]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        # Some column needs a value-by-value conversion: find it column by column.
        arrays = []
        for f in schema:
            try:
                arrays.append(_array([r.get(f.name) for r in records], f))
            except _Unfit as unfit:
                raise DataContractError(
                    f"field {f.name!r} of {record_label(records[unfit.index], key)} holds a "
                    f"value that does not fit {f.type} ({unfit.reason}); declare the "
                    "field's type in the stream's schema or fix the source"
                ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def record_label(record: Mapping[str, Any], key: Sequence[str]) -> str:
    """Names a record in messages by its key fields: ``the record with id=17``."""
    if not key:
        return "a record"
    return "the record with " + ", ".join(f"{k}={record.get(k)!r}" for k in key)


_VIA_TEXT = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_decimal)
_ARROW_FAILURES = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                   OverflowError)
_VALUE_FAILURES = (ValueError, InvalidOperation, TypeError, *_ARROW_FAILURES)


def _via_text(t: pa.DataType) -> bool:
    return any(check(t) for check in _VIA_TEXT)


class _Unfit(Exception):
    """The value at ``index`` fits no conversion to its field's type."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index, self.reason = index, reason


def _array(values: list[Any], field: pa.Field) -> pa.Array:
    t = field.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        values = [_in_utc(v) for v in values]
    try:
        return pa.array(values, type=t)  # Python values already (a SOAP client's)
    except _ARROW_FAILURES:
        pass
    if _via_text(t):
        try:
            return pa.array(values, type=pa.string()).cast(t)  # ISO text (JSON)
        except _ARROW_FAILURES:
            pass
    converted = []
    for index, value in enumerate(values):
        try:
            converted.append(_convert(value, t))
        except _VALUE_FAILURES as exc:
            raise _Unfit(index, f"{type(exc).__name__}: {exc}") from None
    try:
        return pa.array(converted, type=t)
    except _ARROW_FAILURES as exc:
        # Rare: look for the value at fault one by one.
        for index, value in enumerate(converted):
            try:
                pa.array([value], type=t)
            except _ARROW_FAILURES as one:
                raise _Unfit(index, f"{type(one).__name__}: {one}") from None
        raise _Unfit(0, f"{type(exc).__name__}: {exc}") from None


def _in_utc(value: Any) -> Any:
    """An aware datetime moved to UTC before Arrow sees it: with PYARROW_IGNORE_TIMEZONE
    set (pandera sets it on import), pyarrow would keep the wall time and drop the
    offset, so 01:52-03:00 would land as 01:52Z instead of 04:52Z."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


def coerce(records: Iterable[Mapping[str, Any]], schema: pa.Schema | None,
           key: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Records with JSON text values turned into the declared types (ISO timestamps and
    dates, decimal strings). Without a schema the records pass unchanged. An error names
    the record by its ``key`` fields."""
    if schema is None:
        return [dict(r) for r in records]
    types = {f.name: f.type for f in schema}
    out = []
    for record in records:
        try:
            out.append({k: _convert(v, types[k]) if k in types else v
                        for k, v in record.items()})
        except (ValueError, InvalidOperation, TypeError) as exc:
            raise DataContractError(
                f"{record_label(record, key)} does not fit the declared types "
                f"({type(exc).__name__}: {exc})"
            ) from None
    return out
