"""Values as a database prints them, and as Arrow holds them, in one comparable form.

The type matrix compares every value a read path lands with the database's own text
rendering of it. Both sides are turned into a canonical Python value here: integers as
``int``, floats by their bit pattern (so -0.0 differs from 0.0; every NaN is one NaN),
decimals as ``Decimal``, dates as days since 1970-01-01 and timestamps as microseconds
since 1970-01-01 UTC (computed with the proleptic Gregorian calendar, so years before 1
and after 9999 compare too), times and durations as microseconds, text and bytes as
they are.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_DATE = re.compile(r"^(-?\d{4,})-(\d\d)-(\d\d)")
_TIME = re.compile(r"(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?")
_ZONE = re.compile(r"([+-])(\d\d)(?::?(\d\d))?(?::(\d\d))?$")
_FLOAT_WORDS = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf,
                "inf": math.inf, "-inf": -math.inf}


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, any year (0 is 1 BC)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _date_days(text: str) -> int:
    match = _DATE.match(text.strip())
    assert match, f"not a date: {text!r}"
    year = int(match.group(1))
    if text.rstrip().endswith(" BC"):
        year = 1 - year  # 1 BC is year 0
    return days_from_civil(year, int(match.group(2)), int(match.group(3)))


def _time_micros(text: str) -> int:
    match = _TIME.search(text)
    assert match, f"not a time: {text!r}"
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3))
    fraction = int((match.group(4) or "").ljust(6, "0"))
    return ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + fraction


def _timestamp_micros(text: str, *, zoned: bool) -> int:
    body = text.strip()
    bc = body.endswith(" BC")
    body = body.removesuffix(" BC")
    offset = 0
    if zoned:
        zone = _ZONE.search(body)
        if zone:
            sign = -1 if zone.group(1) == "-" else 1
            offset = sign * (int(zone.group(2)) * 3600 + int(zone.group(3) or 0) * 60
                             + int(zone.group(4) or 0))
            body = body[:zone.start()]
    days = _date_days(body + (" BC" if bc else ""))
    micros = _time_micros(body[body.index(":") - 2:]) if ":" in body else 0
    return days * 86_400_000_000 + micros - offset * 1_000_000


def _float_key(value: float, single: bool) -> Any:
    if math.isnan(value):
        return "nan"
    return struct.pack(">f" if single else ">d", value)


def expected_value(text: str | None, t: pa.DataType) -> Any:
    """The canonical value a database's text rendering ``text`` stands for in type ``t``."""
    if text is None:
        return None
    if pa.types.is_boolean(t):
        return {"1": True, "0": False, "t": True, "f": False, "true": True,
                "false": False}[text.strip().lower()]
    if pa.types.is_integer(t):
        return int(text)
    if pa.types.is_floating(t):
        word = text.strip().lower()
        value = _FLOAT_WORDS[word] if word in _FLOAT_WORDS else float(text)
        return _float_key(value, pa.types.is_float32(t))
    if pa.types.is_decimal(t):
        return Decimal(text)
    if pa.types.is_date(t):
        return _date_days(text)
    if pa.types.is_timestamp(t):
        return _timestamp_micros(text, zoned=t.tz is not None)
    if pa.types.is_time(t) or pa.types.is_duration(t):
        negative = text.strip().startswith("-")
        micros = _time_micros(text)
        return -micros if negative else micros
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return bytes.fromhex(text.removeprefix("\\x"))
    return text


def actual_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The canonical values of an Arrow column (as landed, or as a warehouse returns it)."""
    t = column.type
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], t)
    if pa.types.is_date32(t):
        return column.cast(pa.int32()).to_pylist()
    if pa.types.is_timestamp(t):
        if t.unit != "us":
            column = column.cast(pa.timestamp("us", tz=t.tz))
        return column.cast(pa.int64()).to_pylist()
    if pa.types.is_time(t):
        return column.cast(pa.time64("us")).cast(pa.int64()).to_pylist()
    if pa.types.is_duration(t):
        return column.cast(pa.duration("us")).cast(pa.int64()).to_pylist()
    if t == pa.month_day_nano_interval():
        out = []
        for value in column.to_pylist():
            if value is None:
                out.append(None)
                continue
            assert value.months == 0, f"an interval of months landed for a duration: {value}"
            out.append(value.days * 86_400_000_000 + value.nanoseconds // 1000)
        return out
    if pa.types.is_floating(t):
        single = pa.types.is_float32(t)
        return [None if v is None else _float_key(v, single) for v in column.to_pylist()]
    if pa.types.is_dictionary(t):
        return pc.cast(column, t.value_type).to_pylist()
    return column.to_pylist()
