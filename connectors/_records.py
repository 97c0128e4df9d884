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
    empty for a body that is the list itself)."""
    found = value_at(body, path) if path else body
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
             fields_checked: bool = False) -> pa.RecordBatch:
    """Records into a batch of ``schema``, column by column.

    JSON text becomes the declared types in Arrow (ISO 8601 timestamps with or without
    a zone, dates, decimal strings), one cast per column; a column Arrow cannot cast
    (empty strings, numbers in a text column, naive timestamps for a zoned column) is
    converted value by value instead. A field not in the schema is an error
    (``fields_checked``: the caller has looked already).
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
        arrays = [_array([r.get(f.name) for r in records], f) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_VIA_TEXT = (pa.types.is_timestamp, pa.types.is_date, pa.types.is_decimal)


def _via_text(t: pa.DataType) -> bool:
    return any(check(t) for check in _VIA_TEXT)


def _array(values: list[Any], field: pa.Field) -> pa.Array:
    t = field.type
    failures = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)
    if pa.types.is_timestamp(t) and t.tz is not None:
        values = [_in_utc(v) for v in values]
    try:
        return pa.array(values, type=t)  # Python values already (a SOAP client's)
    except failures:
        pass
    if _via_text(t):
        try:
            return pa.array(values, type=pa.string()).cast(t)  # ISO text (JSON)
        except failures:
            pass
    try:
        return pa.array([_convert(v, t) for v in values], type=t)
    except (ValueError, InvalidOperation, TypeError, pa.ArrowInvalid, pa.ArrowTypeError,
            OverflowError) as exc:
        raise DataContractError(
            f"field {field.name!r} holds a value that does not fit {t} "
            f"({type(exc).__name__}: {exc}); declare its type or fix the source"
        ) from None


def _in_utc(value: Any) -> Any:
    """An aware datetime moved to UTC before Arrow sees it: with PYARROW_IGNORE_TIMEZONE
    set (pandera sets it on import), pyarrow would keep the wall time and drop the
    offset, so 01:52-03:00 would land as 01:52Z instead of 04:52Z."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


def coerce(records: Iterable[Mapping[str, Any]], schema: pa.Schema | None
           ) -> list[dict[str, Any]]:
    """Records with JSON text values turned into the declared types (ISO timestamps and
    dates, decimal strings). Without a schema the records pass unchanged."""
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
                f"a record does not fit the declared types ({type(exc).__name__}: {exc})"
            ) from None
    return out
