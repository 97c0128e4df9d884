"""Cleaners for legacy-system quirks, as polars expressions, and the registry that names them.

A mapping names a cleaner per column ("trim", "julian_date", or an import path
"package.module:function"); :func:`find_cleaner` resolves the name and ``Cleaner.apply`` builds
the expression. Every cleaner obeys the same rules, because the engine relies on them:

* it only builds an expression, and the expression never raises on any value: null, blank,
  junk, huge numbers, or a column of the wrong type (it is cast to text with ``strict=False``;
  list, struct, binary and duration columns have no text form and are not cleaner input);
* a value it cannot read becomes null, and null stays null. For a cleaner whose job is not to
  make nulls (``nulls_on_purpose=False``) the engine quarantines every "non-null in, null out"
  row, so a converting cleaner returns null *only* for unreadable input;
* it is vectorised: no Python per row (``repair_mojibake`` sends only the rows that show
  mojibake to Python).

Register your own with the :func:`cleaner` decorator. Bad parameters raise
``MappingError`` when the expression is built, never while it runs.
"""

from __future__ import annotations

import codecs
import functools
import importlib
import inspect
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl

from ._errors import MappingError
from ._iso import COUNTRY_LOOKUP, CURRENCY_LOOKUP

__all__ = ["CLEANERS", "Cleaner", "cleaner", "find_cleaner"]


@dataclass(frozen=True)
class Cleaner:
    """A named cleaner: ``function(expr, **params) -> pl.Expr`` plus what the engine needs.

    ``nulls_on_purpose`` is True when turning a value into null is the cleaner's job
    (sentinels, blanks), so the engine does not quarantine those rows. ``description`` is the
    one line shown in column lineage.
    """

    name: str
    function: Callable[..., pl.Expr]
    nulls_on_purpose: bool
    description: str

    def apply(self, expr: pl.Expr, **params: Any) -> pl.Expr:
        """Build the cleaning expression for ``expr``; the result keeps the input's name."""
        try:
            inspect.signature(self.function).bind(expr, **params)
        except TypeError as exc:
            raise MappingError(
                f"cleaner {self.name!r} cannot take parameters {sorted(params)} ({exc}); "
                f"it is called as {self.name}{inspect.signature(self.function)}"
            ) from None
        cleaned = self.function(expr, **params)
        # when/then and literals would otherwise rename the column to "literal" and the like.
        name = expr.meta.output_name(raise_if_undetermined=False)
        return cleaned.alias(name) if name else cleaned

    def __call__(self, expr: pl.Expr, **params: Any) -> pl.Expr:
        return self.apply(expr, **params)


CLEANERS: dict[str, Cleaner] = {}
"""The registry: cleaner name -> Cleaner. Add to it with :func:`cleaner`."""


def cleaner(
    name: str | Callable[..., pl.Expr] | None = None,
    *,
    nulls_on_purpose: bool = False,
    description: str | None = None,
    replace: bool = False,
) -> Any:
    """Register a function ``(expr, **params) -> pl.Expr`` as a cleaner; returns the Cleaner.

    Use it bare (``@cleaner``) or with options (``@cleaner("iban", description="...")``). The
    name defaults to the function's name and the description to its docstring's first line.
    Registering a taken name raises ValueError unless ``replace=True``.
    """

    def register(function: Callable[..., pl.Expr]) -> Cleaner:
        key = name if isinstance(name, str) else function.__name__
        if key in CLEANERS and not replace:
            raise ValueError(f"a cleaner named {key!r} is already registered; "
                             "pass replace=True to replace it or choose another name")
        entry = Cleaner(key, function, nulls_on_purpose, description or _first_line(function))
        CLEANERS[key] = entry
        return entry

    return register(name) if callable(name) else register


def find_cleaner(name: str) -> Cleaner:
    """The cleaner a mapping names: a registered name or an import path "package.module:attr".

    The attribute may be a Cleaner or a plain function (taken as ``nulls_on_purpose=False``).
    """
    if name in CLEANERS:
        return CLEANERS[name]
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise _unknown_cleaner(name, "no cleaner has that name")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise _unknown_cleaner(name, f"cannot import it: {exc}") from None
    if isinstance(found, Cleaner):
        return found
    if not callable(found):
        raise _unknown_cleaner(name, "it is neither a function nor a Cleaner")
    return Cleaner(name, found, False, _first_line(found))


def _unknown_cleaner(name: str, reason: str) -> MappingError:
    return MappingError(
        f"unknown cleaner {name!r} ({reason}); use one of {', '.join(sorted(CLEANERS))} "
        "or an import path such as 'package.module:function'"
    )


def _first_line(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.splitlines()[0].rstrip(".") if doc else function.__name__


def _text(expr: pl.Expr) -> pl.Expr:
    """The column as text: an int or date column handed to a text cleaner must not fail."""
    return expr.cast(pl.String, strict=False)


def _stripped(expr: pl.Expr) -> pl.Expr:
    return _text(expr).str.strip_chars()


def _check_scale(scale: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 38:
        raise MappingError(f"decimal scale must be an int from 0 to 38, got {scale!r}")


def _check_zone(zone: str) -> None:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise MappingError(f"unknown time zone {zone!r}; use an IANA name such as "
                                 "'UTC' or 'Europe/Berlin'") from None


# --- text ----------------------------------------------------------------------------------


@cleaner
def trim(expr: pl.Expr, *, side: str = "both") -> pl.Expr:
    """Trim CHAR padding blanks.

    For fixed-width CHAR columns, which PostgreSQL and most legacy databases pad with blanks.
    ``side`` is "both", "right" or "left".
    """
    strip = {"both": "strip_chars", "right": "strip_chars_end", "left": "strip_chars_start"}
    if side not in strip:
        raise MappingError(f"trim side must be 'both', 'right' or 'left', got {side!r}")
    return getattr(_text(expr).str, strip[side])()


@cleaner
def upper(expr: pl.Expr) -> pl.Expr:
    """Upper-case text."""
    return _text(expr).str.to_uppercase()


@cleaner
def lower(expr: pl.Expr) -> pl.Expr:
    """Lower-case text."""
    return _text(expr).str.to_lowercase()


# --- values that mean "no value" -----------------------------------------------------------

# A Datetime sentinel prints as "1900-01-01 00:00:00.000000" and a float one as "0.0": drop the
# zero time and zero fraction so "1900-01-01" and 0 match whatever the column's type.
_ZERO_TAIL = r"(?:[ T]00:00:00)?(?:\.0+)?$"


@cleaner(nulls_on_purpose=True)
def sentinel_to_null(
    expr: pl.Expr,
    *,
    values: Sequence[Any] = ("1900-01-01", "0001-01-01", "9999-12-31", "N/A", "NULL"),
) -> pl.Expr:
    """Null out sentinel values ("1900-01-01", "N/A", 0) that legacy systems store for "none".

    A value matches when its trimmed text form equals a sentinel's, so dates, ints and strings
    can be listed whatever the column's type. Other values keep their type and value.
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
        raise MappingError(f"sentinel values must be a list, got {values!r}")
    sentinels = sorted({re.sub(_ZERO_TAIL, "", str(value).strip()) for value in values})
    # A batch function, because the cheap comparison depends on the column's type: a date
    # or number column compares with the sentinels converted to its type once, instead of
    # printing every value as text.
    return expr.map_batches(functools.partial(_without_sentinels, sentinels=sentinels),
                            return_dtype=pl.self_dtype(), is_elementwise=True)


def _without_sentinels(batch: pl.Series, *, sentinels: list[str]) -> pl.Series:
    typed = _typed_sentinels(sentinels, batch.dtype)
    if typed is not None:
        listed = batch.is_in(typed.implode())
    else:
        text = batch.cast(pl.String, strict=False).str.strip_chars()
        listed = text.str.replace(_ZERO_TAIL, "").is_in(pl.Series(sentinels).implode())
    return pl.select(pl.when(~listed.fill_null(True)).then(batch)).to_series().alias(batch.name)


def _typed_sentinels(sentinels: list[str], dtype: pl.DataType) -> pl.Series | None:
    """The sentinels that are values of ``dtype``, as that type; ``None`` for types
    compared as text."""
    text = pl.Series(sentinels, dtype=pl.String)
    if dtype == pl.Date:
        return text.str.to_date("%Y-%m-%d", strict=False).drop_nulls()
    if isinstance(dtype, pl.Datetime):
        stamps = text.str.to_datetime("%Y-%m-%d", strict=False, time_unit=dtype.time_unit)
        if dtype.time_zone:
            stamps = stamps.dt.replace_time_zone(dtype.time_zone)
        return stamps.drop_nulls()
    if dtype.is_numeric():
        return text.cast(dtype, strict=False).drop_nulls()
    return None


@cleaner(nulls_on_purpose=True)
def blank_as_null(expr: pl.Expr) -> pl.Expr:
    """Null out empty and whitespace-only strings; other values are kept as they are."""
    return pl.when(_stripped(expr).str.len_bytes() > 0).then(expr)


# --- booleans and numbers ------------------------------------------------------------------


@cleaner
def flag(
    expr: pl.Expr,
    *,
    true: Sequence[str] = ("Y", "YES", "T", "TRUE", "1"),
    false: Sequence[str] = ("N", "NO", "F", "FALSE", "0"),
) -> pl.Expr:
    """Read a Y/N style flag as Boolean (trimmed, case-insensitive; ints 1/0 and bools too)."""
    true_keys = {str(value).strip().upper() for value in true}
    false_keys = {str(value).strip().upper() for value in false}
    if true_keys & false_keys:
        raise MappingError(f"flag values {sorted(true_keys & false_keys)} are both true "
                                 "and false; list each in one of true= or false= only")
    mapping = {key: True for key in true_keys} | {key: False for key in false_keys}
    key = _stripped(expr).str.to_uppercase()
    return key.replace_strict(mapping, default=None, return_dtype=pl.Boolean)


def _shift_point(integer_text: pl.Expr, places: int) -> pl.Expr:
    """Exact Decimal(38, places) from integer text whose last ``places`` digits are decimals.

    Never through a float: the integer becomes a Decimal with scale 0, and multiplying by
    1E-places only moves the point. Text that is not an integer, or too long for 38 digits, is
    null.
    """
    whole = integer_text.cast(pl.Int128, strict=False).cast(pl.Decimal(38, 0), strict=False)
    return whole * pl.lit(Decimal(1).scaleb(-places), dtype=pl.Decimal(38, places))


@cleaner
def cents(expr: pl.Expr, *, scale: int = 2) -> pl.Expr:
    """Turn integer minor units (cents) into an exact decimal: 12345 -> 123.45.

    Takes ints and integer text, including "12345.0" from a float column.
    """
    _check_scale(scale)
    return _shift_point(_stripped(expr).str.strip_suffix(".0"), scale)


@cleaner
def implied_decimal(expr: pl.Expr, *, places: int = 2) -> pl.Expr:
    """Read digits with an implied decimal point: "0001250" -> 12.50, COBOL "1250-" -> -12.50.

    A sign may lead or (COBOL style) trail, not both.
    """
    _check_scale(places)
    sign_in_front = _stripped(expr).str.replace(r"^([0-9]+)([+-])$", "${2}${1}")
    return _shift_point(sign_in_front, places)


_GROUPED_THOUSANDS = r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$"


@cleaner
def decimal(expr: pl.Expr, *, scale: int = 2) -> pl.Expr:
    """Read a number as an exact decimal with ``scale`` places: "1,234.50" -> 1234.50.

    Text is never read through a float. Commas count only as thousands separators in their
    proper places ("1,2,3" is unreadable); extra decimals round half to even.
    """
    _check_scale(scale)
    text = _stripped(expr)
    readable = ~text.str.contains(",", literal=True) | text.str.contains(_GROUPED_THOUSANDS)
    number = pl.when(readable).then(text.str.replace_all(",", "", literal=True))
    return number.cast(pl.Decimal(38, scale), strict=False)


# --- dates and times -----------------------------------------------------------------------


@cleaner
def julian_date(expr: pl.Expr) -> pl.Expr:
    """Read a JD Edwards CYYDDD date: 121032 -> 2021-02-01 (C 0 = 19xx, 1 = 20xx; DDD = day).

    Leading zeros may be missing (an int column): 98001 is 1998-01-01.
    """
    cyyddd = _stripped(expr).str.extract(r"^([0-9]{1,6})$").cast(pl.Int32, strict=False)
    # 1900 + CYY is the year, so adding 1,900,000 spells YYYYDDD; %j rejects day 0 and day 366
    # of a common year.
    return (cyyddd + 1_900_000).cast(pl.String).str.to_date("%Y%j", strict=False)


# Fields of fixed width, so a packed date can be held to its exact length: chrono would read
# "2024031" as 2024-03-01 under "%Y%m%d".
_FIELD_WIDTHS = {"%Y": 4, "%y": 2, "%m": 2, "%d": 2, "%j": 3, "%H": 2, "%M": 2, "%S": 2}


@cleaner
def packed_date(expr: pl.Expr, *, format: str = "%Y%m%d") -> pl.Expr:
    """Read a packed date such as 20240301 (int or text) into a Date; month 13 or Feb 30 is null."""
    text = _stripped(expr)
    fields = re.findall(r"%.|[^%]", format)
    if all(field in _FIELD_WIDTHS or not field.startswith("%") for field in fields):
        width = sum(_FIELD_WIDTHS.get(field, 1) for field in fields)
        text = pl.when(text.str.len_chars() == width).then(text)
    return text.str.to_date(format, strict=False)


@cleaner
def timestamp(expr: pl.Expr, *, time_zone: str = "UTC", naive_zone: str = "UTC") -> pl.Expr:
    """Read an ISO 8601 timestamp ("Z", "+02:00" or no offset) into Datetime("us", time_zone).

    Text without an offset, a naive Datetime column and a bare date are taken as ``naive_zone``
    local time; a wall-clock time that zone skips (the DST gap) is unreadable. An aware Datetime
    column is converted.
    """
    _check_zone(time_zone)
    _check_zone(naive_zone)
    # A batch function, not one expression, because the work depends on the column's type:
    # a Datetime column needs no parsing, and printing it as text to parse it again costs
    # hundreds of times more. The work per batch is still vectorised.
    return expr.map_batches(
        functools.partial(_timestamps, time_zone=time_zone, naive_zone=naive_zone),
        return_dtype=pl.Datetime("us", time_zone),
        is_elementwise=True,
    )


def _timestamps(batch: pl.Series, *, time_zone: str, naive_zone: str) -> pl.Series:
    def localise(naive: pl.Series) -> pl.Series:
        local = naive.dt.replace_time_zone(naive_zone, ambiguous="earliest", non_existent="null")
        return local.dt.convert_time_zone(time_zone)

    if isinstance(batch.dtype, pl.Datetime):
        batch = batch.dt.cast_time_unit("us")
        if batch.dtype.time_zone:
            return batch.dt.convert_time_zone(time_zone)
        return localise(batch)
    if batch.dtype == pl.Date:
        return localise(batch.cast(pl.Datetime("us")))
    # "2024-03-01 12:00:00" (as Datetime columns print) is ISO with a blank for the "T".
    text = batch.cast(pl.String, strict=False).str.strip_chars().str.replace(" ", "T", literal=True)
    # A failed parse costs as much as a good one, so each row goes to the one parser its shape
    # calls for; the others see null.
    has_offset = text.str.contains(_TRAILING_OFFSET).fill_null(False)
    is_date = (text.str.len_bytes() == len("2024-03-01")).fill_null(False)
    nothing = pl.Series(dtype=pl.String).extend_constant(None, len(text))
    with_offset = text.zip_with(has_offset, nothing).str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", strict=False, cache=False
    )
    naive = text.zip_with(~has_offset & ~is_date, nothing).str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False, cache=False
    )
    midnight = text.zip_with(is_date, nothing).str.to_date("%Y-%m-%d", strict=False, cache=False)
    local = localise(naive.fill_null(midnight.cast(pl.Datetime("us"))))
    return with_offset.dt.convert_time_zone(time_zone).fill_null(local)


# What chrono's "%#z" reads: Z, +hh, +hhmm or +hh:mm, after the time.
_TRAILING_OFFSET = r"T.*[0-9](?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)$"


# --- mojibake ------------------------------------------------------------------------------


def _byte_table(encodings: Sequence[str]) -> dict[str, int]:
    """Character -> the byte it was decoded from, for single-byte encodings (first one wins).

    cp1252 leaves five bytes undefined; decoders that hit them fall back to latin-1, which is
    why the default lists both.
    """
    table: dict[str, int] = {}
    for encoding in encodings:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise MappingError(f"unknown encoding {encoding!r}") from None
        decoded = {}
        for byte in range(256):
            try:
                decoded[byte] = bytes([byte]).decode(encoding)
            except UnicodeDecodeError:
                continue
        # Mojibake shows as the characters of UTF-8 lead bytes; an encoding that cannot read
        # them one byte at a time is not one that UTF-8 gets mistaken for.
        if any(len(decoded.get(byte, "")) != 1 for byte in range(0xC2, 0xF5)):
            raise MappingError(f"{encoding!r} is not a single-byte encoding such as "
                                     "'cp1252', 'latin-1' or 'cp1250'")
        for byte, char in decoded.items():
            table.setdefault(char, byte)
    return table


def _char_class(table: dict[str, int], low: int, high: int, *, rust: bool) -> str:
    chars = sorted(char for char, byte in table.items() if low <= byte <= high)
    if rust:
        return "[" + "".join(f"\\x{{{ord(char):X}}}" for char in chars) + "]"
    return "[" + "".join(re.escape(char) for char in chars) + "]"


@functools.cache
def _mojibake_repairer(encodings: tuple[str, ...]) -> Callable[[pl.Series], pl.Series]:
    """A batch function that repairs the rows showing mojibake and leaves the rest alone.

    Mojibake is UTF-8 read one byte per character, so it shows as a lead byte (0xC2-0xF4)
    followed by continuation bytes (0x80-0xBF), both spelled in the wrong encoding. Only such
    runs are decoded back, and only if they are valid UTF-8: correct text such as "Ørsted"
    has no such run and is never touched.
    """
    table = _byte_table(encodings)
    lead = _char_class(table, 0xC2, 0xF4, rust=True)
    cont = _char_class(table, 0x80, 0xBF, rust=True)
    py_cont = _char_class(table, 0x80, 0xBF, rust=False)
    runs = re.compile(
        f"{_char_class(table, 0xC2, 0xDF, rust=False)}{py_cont}"
        f"|{_char_class(table, 0xE0, 0xEF, rust=False)}{py_cont}{{2}}"
        f"|{_char_class(table, 0xF0, 0xF4, rust=False)}{py_cont}{{3}}"
    )

    def decode_run(match: re.Match[str]) -> str:
        try:
            return bytes(table[char] for char in match.group()).decode("utf-8")
        except UnicodeDecodeError:
            return match.group()

    def repair_text(text: str) -> str:
        for _ in range(3):  # text mis-decoded twice needs a second pass
            repaired = runs.sub(decode_run, text)
            if repaired == text:
                break
            text = repaired
        return text

    def repair_batch(series: pl.Series) -> pl.Series:
        spotted = series.str.contains(f"{lead}{cont}").fill_null(False)
        if not spotted.any():
            return series
        rows = spotted.arg_true()
        repaired = series.clone()
        repaired.scatter(rows, [repair_text(text) for text in series.gather(rows).to_list()])
        return repaired

    return repair_batch


@cleaner
def repair_mojibake(expr: pl.Expr, *, encodings: Sequence[str] = ("cp1252", "latin-1")) -> pl.Expr:
    """Repair UTF-8 text mis-decoded as cp1252 or latin-1: "MÃ¼ller" -> "Müller".

    Text that is already right is unchanged, and so is text that cannot be repaired.
    """
    if isinstance(encodings, str):
        encodings = (encodings,)
    repair_batch = _mojibake_repairer(tuple(encodings))
    return _text(expr).map_batches(repair_batch, return_dtype=pl.String, is_elementwise=True)


# --- contact details -----------------------------------------------------------------------

# No blanks, control characters or the punctuation of "Name <a@b.c>, ..." lists; the domain
# needs at least one dot between non-empty labels.
_NOT_IN_EMAIL = r"\s@,;:<>()\[\]\\\"\p{Cc}"
_EMAIL = rf"^[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}.]+(?:\.[^{_NOT_IN_EMAIL}.]+)+$"


@cleaner
def email(expr: pl.Expr) -> pl.Expr:
    """Trim and lower-case an e-mail address; null unless it looks like local@domain.tld."""
    address = _stripped(expr).str.to_lowercase()
    return pl.when(address.str.contains(_EMAIL)).then(address)


# Characters people put between digit groups; anything else (letters, "x12", "#") is kept and
# so fails the final E.164 check.
_PHONE_SEPARATORS = [" ", "\u00a0", "\t", "(", ")", "-", ".", "/"]


@cleaner
def phone(expr: pl.Expr, *, default_country_code: str = "1") -> pl.Expr:
    """Write a phone number in E.164 ("+442012345678"); extensions and letters make it null.

    "+" or "00" starts an international number; anything else is national and gets
    ``default_country_code`` after its trunk prefix (0, or 1 in the NANP) is dropped.
    """
    country_code = str(default_country_code).strip().removeprefix("+")
    if not re.fullmatch(r"[1-9][0-9]{0,2}", country_code):
        raise MappingError(f"default_country_code must be 1-3 digits such as '44', "
                                 f"got {default_country_code!r}")
    # One chain of rewrites, no branches: each step runs once per row even without
    # common-subexpression elimination (eager select).
    number = (
        _stripped(expr)
        .str.replace("(0)", "", literal=True)  # "+44 (0)20": that 0 is dialled only at home
        .str.replace_many(_PHONE_SEPARATORS, [""] * len(_PHONE_SEPARATORS))
        .str.replace(r"^00", "+")  # the international call prefix
    )
    if country_code == "1":
        number = number.str.replace(r"^1([0-9]{10})$", "${1}")  # NANP trunk prefix 1
    number = number.str.replace(r"^0?([0-9])", f"+{country_code}${{1}}")  # national number
    return number.str.extract(r"^(\+[1-9][0-9]{6,14})$")


# --- code lists ----------------------------------------------------------------------------


@cleaner
def codes(expr: pl.Expr, *, mapping: Mapping[Any, Any], default: Any = None) -> pl.Expr:
    """Map code values to others ({"SHP": "shipped"}), matching the trimmed text of each code.

    An unknown code becomes ``default``, or null (and so is quarantined) when there is none.
    """
    if not isinstance(mapping, Mapping):
        raise MappingError(f"codes needs mapping= a dict of code -> value, got {mapping!r}")
    lookup = {str(code).strip(): value for code, value in mapping.items()}
    try:
        dtype = pl.Series([*lookup.values(), default]).dtype
    except (TypeError, pl.exceptions.PolarsError) as exc:
        raise MappingError(f"codes mapping values must share one type ({exc})") from None
    dtype = pl.String if dtype == pl.Null else dtype
    key = _stripped(expr)
    mapped = key.replace_strict(lookup, default=default, return_dtype=dtype)
    return pl.when(key.is_not_null()).then(mapped)  # the default is for unknown codes, not nulls


@cleaner
def currency(expr: pl.Expr) -> pl.Expr:
    """Read an ISO 4217 currency code or an unambiguous symbol ("€", "£", "¥", "US$")."""
    key = _stripped(expr).str.to_uppercase()
    return key.replace_strict(CURRENCY_LOOKUP, default=None, return_dtype=pl.String)


@cleaner
def country(expr: pl.Expr) -> pl.Expr:
    """Read a country as ISO 3166-1 alpha-2 from alpha-2, alpha-3 or its English name."""
    key = _stripped(expr).str.to_uppercase()
    return key.replace_strict(COUNTRY_LOOKUP, default=None, return_dtype=pl.String)
