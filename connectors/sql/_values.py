"""Column values into Arrow arrays of their declared type, exactly or not at all.

Values arrive as Python objects (the generic paths) or as Arrow arrays (the fast paths),
some of them as the database's text on purpose (see ``TEXT_VALUE`` in ``_types``). Every
conversion here either keeps the value exactly or raises :class:`UnfitValue` naming the
column and the row of the first value that does not fit; the read adds connector,
stream and the row's key. Arrow's own casts are used where they are exact; text the
casts cannot parse (dates before year 1 or after 9999, PostgreSQL's ``24:00:00``,
offsets) is parsed here, and text too long for a decimal is never handed to Arrow, whose
parser wraps such values silently.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._errors import DataContractError

_FAILURES = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError,
             TypeError, ValueError, InvalidOperation)
_DATE = re.compile(r"^\s*(\d{4,})-(\d\d)-(\d\d)(?:\s+BC)?\s*$")
_TIMESTAMP = re.compile(
    r"^\s*(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"\s*(?:(Z)|([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?(\s+BC)?\s*$"
)
_TIME = re.compile(r"^\s*(\d{2,}):(\d\d):(\d\d)(?:\.(\d{1,6}))?\s*$")
_DAY_MICROS = 86_400_000_000
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


class UnfitValue(DataContractError):
    """A value that does not fit its column's Arrow type.

    ``row`` is the value's index in the rows or batch being converted, when known; the
    read turns the error into one that names connector, stream, column and key.
    """

    def __init__(self, column: str, arrow_type: pa.DataType, reason: str,
                 row: int | None = None) -> None:
        reason = reason.strip().splitlines()[0][:200] if reason.strip() else "no reason given"
        super().__init__(f"column {column!r} holds a value that does not fit {arrow_type} "
                         f"({reason})")
        self.column = column
        self.arrow_type = arrow_type
        self.reason = reason
        self.row = row
        self.key: dict[str, Any] | None = None


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, any year (0 is 1 BC)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _year(text: str, bc: bool) -> int:
    return 1 - int(text) if bc else int(text)  # 1 BC is year 0


def _month_day(year: int, month: str, day: str) -> tuple[int, int]:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    lengths = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    m, d = int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= lengths[m - 1]):
        raise ValueError(f"{year:04d}-{month}-{day} is not a date")
    return m, d


def _check_range(value: int, bounds: tuple[int, int], what: str) -> int:
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{what} is outside the range Arrow holds")
    return value


def date_days(text: str) -> int:
    """``YYYY-MM-DD`` (any year, PostgreSQL's `` BC`` suffix) as days since 1970-01-01."""
    match = _DATE.match(text)
    if match is None:
        raise ValueError(f"not a date: {text[:40]!r}")
    year = _year(match.group(1), "BC" in text)
    days = days_from_civil(year, *_month_day(year, match.group(2), match.group(3)))
    return _check_range(days, _INT32, "the date")


def timestamp_micros(text: str) -> int:
    """An ISO timestamp (any year, an optional offset or `` BC``) as microseconds since
    1970-01-01 UTC."""
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(f"not a timestamp: {text[:40]!r}")
    (year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m, off_s,
     bc) = match.groups()
    days = days_from_civil(_year(year, bc is not None),
                           *_month_day(_year(year, bc is not None), month, day))
    offset = 0
    if sign:
        offset = (int(off_h) * 3600 + int(off_m or 0) * 60 + int(off_s or 0)) * 1_000_000
        offset = -offset if sign == "-" else offset
    micros = (days * _DAY_MICROS + ((int(hour) * 60 + int(minute)) * 60 + int(second))
              * 1_000_000 + int((fraction or "").ljust(6, "0")) - offset)
    return _check_range(micros, _INT64, "the timestamp")


def time_micros(text: str) -> int:
    """A time of day (``HH:MM:SS[.ffffff]``, up to PostgreSQL's ``24:00:00``) as
    microseconds since midnight."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not a time of day: {text[:40]!r}")
    hours, minutes, seconds, fraction = match.groups()
    micros = (((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000
              + int((fraction or "").ljust(6, "0")))
    if int(minutes) > 59 or int(seconds) > 59 or micros > _DAY_MICROS:
        raise ValueError(f"{text[:40]!r} is not a time of day (00:00:00 to 24:00:00)")
    return micros


def _unfit_row(values: Sequence[Any], convert: Callable[[Any], Any]) -> tuple[int, str]:
    """The index of the first value ``convert`` refuses, and why."""
    for index, value in enumerate(values):
        if value is None:
            continue
        try:
            convert(value)
        except _FAILURES as exc:
            return index, str(exc) or type(exc).__name__
    return -1, "the values do not fit together"


def _unfit(field: pa.Field, values: Sequence[Any], convert: Callable[[Any], Any],
           first: BaseException) -> UnfitValue:
    """The error for a conversion of ``values`` that failed with ``first``: the first
    value ``convert`` refuses on its own, or, if none does, ``first`` itself."""
    row, reason = _unfit_row(values, convert)
    return UnfitValue(field.name, field.type, reason if row >= 0 else str(first),
                      row if row >= 0 else None)


# -- Python values (the generic paths) ------------------------------------------------


def python_array(values: Sequence[Any], field: pa.Field) -> pa.Array:
    """Python values into an array of ``field``'s type, or :class:`UnfitValue`."""
    try:
        return pa.array(values, type=field.type)
    except _FAILURES as exc:
        raise _unfit(field, values, lambda v: pa.array([v], type=field.type), exc) from None


def strict_bool_array(values: Sequence[Any], field: pa.Field) -> pa.Array:
    """0/1 integers (MySQL's BOOLEAN is TINYINT(1), BIT(1)) as booleans; any other
    integer is refused rather than read as true."""
    def check(v: Any) -> bool:
        if v in (0, 1) and not isinstance(v, float):
            return bool(v)
        raise ValueError(f"{v!r} is not 0 or 1; declare the column as an integer")

    out = []
    for index, value in enumerate(values):
        try:
            out.append(None if value is None else check(value))
        except ValueError as exc:
            raise UnfitValue(field.name, field.type, str(exc), index) from None
    return pa.array(out, type=pa.bool_())


def time_from_timedelta_array(values: Sequence[Any], field: pa.Field) -> pa.Array:
    """MySQL TIME values (``timedelta``, -838 to 838 hours) as times of day."""
    micros = []
    for index, value in enumerate(values):
        if value is None or isinstance(value, dt.time):
            micros.append(value if value is None else
                          (value.hour * 3600 + value.minute * 60 + value.second) * 1_000_000
                          + value.microsecond)
            continue
        total = value // dt.timedelta(microseconds=1)
        if not 0 <= total < _DAY_MICROS:
            raise UnfitValue(field.name, field.type,
                             f"{value} is not a time of day (00:00:00 to 23:59:59.999999)",
                             index)
        micros.append(total)
    return pa.array(micros, type=pa.int64()).cast(pa.time64("us"))


def text_array(values: Sequence[Any], field: pa.Field) -> pa.Array:
    """Values read as text, parsed into ``field``'s type (see :func:`from_text`)."""
    try:
        text = pa.array(values, type=pa.string())
    except _FAILURES:
        text = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return from_text(text, field)


# -- text into Arrow types (both paths) -------------------------------------------------


def from_text(values: pa.Array, field: pa.Field) -> pa.Array:
    """An array of the database's text into ``field``'s type, exactly."""
    t = field.type
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values.cast(t)
    if pa.types.is_decimal(t):
        return _decimals(values, field)
    if pa.types.is_date32(t):
        return _parsed(values, field, date_days, pa.int32())
    if pa.types.is_timestamp(t):
        return _parsed(values, field, timestamp_micros, pa.int64())
    if pa.types.is_time(t):
        return _parsed(values, field, time_micros, pa.int64(), fast=False)
    try:
        return pc.cast(values, t)
    except _FAILURES as exc:
        raise _unfit(field, values.to_pylist(), lambda v: pc.cast(pa.array([v]), t),
                     exc) from None


def _decimals(values: pa.Array, field: pa.Field) -> pa.Array:
    t = field.type
    # Arrow's decimal parser wraps digits beyond its width (a 1000-digit number becomes
    # -1): text longer than any value of the type is converted value by value instead.
    longest = pc.max(pc.utf8_length(values)).as_py() or 0
    if longest <= t.precision + 3:
        try:
            return pc.cast(values, t)
        except _FAILURES:
            pass
    texts = values.to_pylist()
    decimals = []
    for index, text in enumerate(texts):
        try:
            value = None if text is None else Decimal(text.strip())
            if value is not None and not value.is_finite():
                raise ValueError(f"{text!r} is not a finite number")
        except (InvalidOperation, ValueError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else f"{text[:40]!r} is not a number"
            raise UnfitValue(field.name, t, reason, index) from None
        decimals.append(value)
    return python_array(decimals, field)


def _parsed(values: pa.Array, field: pa.Field, parse: Callable[[str], int],
            storage: pa.DataType, *, fast: bool = True) -> pa.Array:
    """Text into a temporal type: Arrow's ISO cast where it applies, else ``parse``."""
    t = field.type
    if fast:
        try:
            return pc.cast(values, t)
        except _FAILURES:
            pass
    out = []
    for index, text in enumerate(values.to_pylist()):
        try:
            out.append(None if text is None else parse(text))
        except ValueError as exc:
            reason = str(exc)
            if text is not None and "infinity" in text.lower():
                reason = f"{text!r} has no Arrow value"
            raise UnfitValue(field.name, t, reason, index) from None
    return pa.array(out, type=storage).view(t) if storage.bit_width == t.bit_width else \
        pa.array(out, type=storage).cast(t)


# -- Arrow arrays from a fast path ------------------------------------------------------


def cast_array(column: pa.Array, field: pa.Field) -> pa.Array:
    """A fast path's column in ``field``'s type: text parsed exactly, other types cast."""
    t = field.type
    if column.type == t:
        return column
    if pa.types.is_boolean(t) and pa.types.is_integer(column.type):
        return strict_bool_array(column.to_pylist(), field)  # Arrow reads 2 as true
    textual = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if textual and not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        return from_text(column, field)
    try:
        return pc.cast(column, t)
    except _FAILURES as exc:
        raise _unfit(field, column.to_pylist(),
                     lambda v: pc.cast(pa.array([v], column.type), t), exc) from None

