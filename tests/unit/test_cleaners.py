"""The legacy-quirk cleaners: exact output for good input, null for bad, never an error."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normalization._cleaners import CLEANERS, Cleaner, cleaner, find_cleaner
from normalization._errors import MappingError

BUILTIN = (
    "trim", "upper", "lower", "sentinel_to_null", "blank_as_null", "flag", "cents",
    "implied_decimal", "decimal", "julian_date", "packed_date", "timestamp", "repair_mojibake",
    "email", "phone", "codes", "currency", "country",
)
# The parameters a cleaner needs to be applied at all; the rest run on their defaults.
REQUIRED_PARAMS = {"codes": {"mapping": {"SHP": "shipped", "1": "one"}}}
UTC = ZoneInfo("UTC")


def clean(name: str, values: list, /, **params) -> list:
    frame = pl.DataFrame({"x": values})
    return frame.select(CLEANERS[name].apply(pl.col("x"), **params)).to_series().to_list()


def case(name: str, value, expected, **params):
    return pytest.param(name, value, expected, params, id=f"{name}:{value!r}{params or ''}")


CASES = [
    # trim: nothing is unreadable, but a non-string column still comes back as text
    case("trim", "  ACME  ", "ACME"),
    case("trim", "ACME   ", "ACME", side="right"),
    case("trim", "   ACME", "ACME", side="left"),
    case("trim", "  ACME  ", "  ACME", side="right"),
    case("trim", "   ", ""),
    case("trim", 42, "42"),
    case("trim", None, None),
    # upper / lower
    case("upper", "Müller gmbh", "MÜLLER GMBH"),
    case("upper", 7, "7"),
    case("upper", None, None),
    case("lower", "ACME Corp", "acme corp"),
    case("lower", None, None),
    # sentinel_to_null: the sentinel goes, everything else keeps its type and value
    case("sentinel_to_null", "1900-01-01", None),
    case("sentinel_to_null", "2024-03-01", "2024-03-01"),
    case("sentinel_to_null", "9999-12-31  ", None),
    case("sentinel_to_null", "N/A", None),
    case("sentinel_to_null", "n/a", "n/a"),
    case("sentinel_to_null", "NULL", None),
    case("sentinel_to_null", "", ""),
    case("sentinel_to_null", date(1900, 1, 1), None),
    case("sentinel_to_null", date(2024, 3, 1), date(2024, 3, 1)),
    case("sentinel_to_null", datetime(1900, 1, 1), None),
    case("sentinel_to_null", 0, None, values=(0, -1)),
    case("sentinel_to_null", -1, None, values=(0, -1)),
    case("sentinel_to_null", 5, 5, values=(0, -1)),
    case("sentinel_to_null", 0.0, None, values=(0,)),
    case("sentinel_to_null", None, None),
    # blank_as_null
    case("blank_as_null", "", None),
    case("blank_as_null", "   ", None),
    case("blank_as_null", "\t\n", None),
    case("blank_as_null", " a ", " a "),
    case("blank_as_null", 0, 0),
    case("blank_as_null", None, None),
    # flag
    case("flag", "Y", True),
    case("flag", " yes ", True),
    case("flag", "t", True),
    case("flag", "N", False),
    case("flag", "no", False),
    case("flag", "0", False),
    case("flag", 1, True),
    case("flag", 0, False),
    case("flag", True, True),
    case("flag", False, False),
    case("flag", "maybe", None),
    case("flag", "", None),
    case("flag", 2, None),
    case("flag", "j", True, true=("J",), false=("N",)),
    case("flag", "y", None, true=("J",), false=("N",)),
    case("flag", None, None),
    # cents
    case("cents", 12345, Decimal("123.45")),
    case("cents", -5, Decimal("-0.05")),
    case("cents", 0, Decimal("0.00")),
    case("cents", "12345", Decimal("123.45")),
    case("cents", " +7 ", Decimal("0.07")),
    case("cents", 2**63 - 1, Decimal("92233720368547758.07")),
    case("cents", 12345, Decimal("12.345"), scale=3),
    case("cents", 12345, Decimal("12345"), scale=0),
    case("cents", 12345.0, Decimal("123.45")),
    case("cents", "123.45", None),
    case("cents", "1e3", None),
    case("cents", "abc", None),
    case("cents", "", None),
    case("cents", "9" * 40, None),
    case("cents", None, None),
    # implied_decimal
    case("implied_decimal", "0001250", Decimal("12.50")),
    case("implied_decimal", "1250-", Decimal("-12.50")),
    case("implied_decimal", "1250+", Decimal("12.50")),
    case("implied_decimal", "-1250", Decimal("-12.50")),
    case("implied_decimal", "+0000001", Decimal("0.01")),
    case("implied_decimal", 1250, Decimal("12.50")),
    case("implied_decimal", "0001250", Decimal("1.250"), places=3),
    case("implied_decimal", "0001250", Decimal("1250"), places=0),
    case("implied_decimal", "-1250-", None),
    case("implied_decimal", "12.50", None),
    case("implied_decimal", "12a", None),
    case("implied_decimal", " ", None),
    case("implied_decimal", "", None),
    case("implied_decimal", None, None),
    # decimal
    case("decimal", "1234.50", Decimal("1234.50")),
    case("decimal", "1,234.50", Decimal("1234.50")),
    case("decimal", "1,234,567", Decimal("1234567.00")),
    case("decimal", " 12 ", Decimal("12.00")),
    case("decimal", "-0.5", Decimal("-0.50")),
    case("decimal", "12.345", Decimal("12.34")),
    case("decimal", "12.355", Decimal("12.36")),
    case("decimal", "3.14159", Decimal("3.1416"), scale=4),
    case("decimal", 12, Decimal("12.00")),
    case("decimal", 1.5, Decimal("1.50")),
    case("decimal", "1,2,3", None),
    case("decimal", "12,34", None),
    case("decimal", "1.2.3", None),
    case("decimal", "abc", None),
    case("decimal", "", None),
    case("decimal", None, None),
    # julian_date: CYYDDD
    case("julian_date", 121032, date(2021, 2, 1)),
    case("julian_date", "121032", date(2021, 2, 1)),
    case("julian_date", 98001, date(1998, 1, 1)),
    case("julian_date", "098001", date(1998, 1, 1)),
    case("julian_date", 100366, date(2000, 12, 31)),
    case("julian_date", 1, date(1900, 1, 1)),
    case("julian_date", 121366, None),
    case("julian_date", 121000, None),
    case("julian_date", 121367, None),
    case("julian_date", "1210321", None),
    case("julian_date", -121032, None),
    case("julian_date", "abc", None),
    case("julian_date", "", None),
    case("julian_date", None, None),
    # packed_date
    case("packed_date", 20240301, date(2024, 3, 1)),
    case("packed_date", "20240301", date(2024, 3, 1)),
    case("packed_date", " 20240229 ", date(2024, 2, 29)),
    case("packed_date", "01032024", date(2024, 3, 1), format="%d%m%Y"),
    case("packed_date", 20241301, None),
    case("packed_date", 20240230, None),
    case("packed_date", 20230229, None),
    case("packed_date", 0, None),
    case("packed_date", "2024031", None),
    case("packed_date", "2024-03-01", None),
    case("packed_date", "", None),
    case("packed_date", None, None),
    # timestamp
    case("timestamp", "2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    case("timestamp", "2024-03-01T12:00:00+02:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    case("timestamp", "2024-03-01T12:00:00.25-0500", datetime(2024, 3, 1, 17, 0, 0, 250000, UTC)),
    case("timestamp", "2024-03-01T12:00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    case("timestamp", " 2024-03-01 12:00:00 ", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    case("timestamp", "2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
    case("timestamp", "2024-03-01T12:00:00", datetime(2024, 3, 1, 11, tzinfo=UTC),
         naive_zone="Europe/Berlin"),
    case("timestamp", "2024-03-31T02:30:00", None, naive_zone="Europe/Berlin"),
    case("timestamp", "2024-13-01T00:00:00Z", None),
    case("timestamp", "2024-02-30T00:00:00", None),
    case("timestamp", "12:00", None),
    case("timestamp", "junk", None),
    case("timestamp", "", None),
    case("timestamp", 20240301, None),
    case("timestamp", None, None),
    # repair_mojibake: repair what is broken, never touch what is right, never null
    case("repair_mojibake", "MÃ¼ller GmbH", "Müller GmbH"),
    case("repair_mojibake", "SociÃ©tÃ© GÃ©nÃ©rale", "Société Générale"),
    case("repair_mojibake", "â€™", "\u2019"),
    case("repair_mojibake", "MÃƒÂ¼ller", "Müller"),
    case("repair_mojibake", "Ørsted", "Ørsted"),
    case("repair_mojibake", "Kōbe Seimitsu 株式会社", "Kōbe Seimitsu 株式会社"),
    case("repair_mojibake", "SÃO PAULO", "SÃO PAULO"),
    case("repair_mojibake", "â€", "â€"),
    case("repair_mojibake", "", ""),
    case("repair_mojibake", None, None),
    # email
    case("email", " Foo.Bar@Example.COM ", "foo.bar@example.com"),
    case("email", "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
    case("email", "a@b", None),
    case("email", "a b@c.com", None),
    case("email", "a@@b.com", None),
    case("email", "@b.com", None),
    case("email", "a@.com", None),
    case("email", "a@b..com", None),
    case("email", "John <j@x.com>", None),
    case("email", "", None),
    case("email", None, None),
    # phone
    case("phone", "+44 20 1234 5678", "+442012345678"),
    case("phone", "+44 (0)20 1234 5678", "+442012345678"),
    case("phone", "0049-89-12345678", "+498912345678"),
    case("phone", "(212) 555-0134", "+12125550134"),
    case("phone", "1-212-555-0134", "+12125550134"),
    case("phone", "212.555.0134", "+12125550134"),
    case("phone", "020 1234 5678", "+442012345678", default_country_code="44"),
    case("phone", 2125550134, "+12125550134"),
    case("phone", "555-0134 x12", None),
    case("phone", "+44 20 1234 5678 ext 9", None),
    case("phone", "12345", None),
    case("phone", "+1234567890123456", None),
    case("phone", "call me", None),
    case("phone", "+", None),
    case("phone", "", None),
    case("phone", None, None),
    # codes
    case("codes", " SHP ", "shipped", mapping={"SHP": "shipped"}),
    case("codes", "XYZ", None, mapping={"SHP": "shipped"}),
    case("codes", "XYZ", "other", mapping={"SHP": "shipped"}, default="other"),
    case("codes", None, None, mapping={"SHP": "shipped"}, default="other"),
    case("codes", 1, "one", mapping={1: "one"}),
    case("codes", "", None, mapping={"SHP": "shipped"}),
    # currency
    case("currency", "usd", "USD"),
    case("currency", " eur ", "EUR"),
    case("currency", "€", "EUR"),
    case("currency", "£", "GBP"),
    case("currency", "¥", "JPY"),
    case("currency", "us$", "USD"),
    case("currency", "CHF", "CHF"),
    case("currency", "$", None),
    case("currency", "XYZ", None),
    case("currency", "HRK", None),
    case("currency", "EURO", None),
    case("currency", "", None),
    case("currency", None, None),
    # country
    case("country", "de", "DE"),
    case("country", "DEU", "DE"),
    case("country", "germany", "DE"),
    case("country", "Deutschland", "DE"),
    case("country", "UK", "GB"),
    case("country", "United Kingdom", "GB"),
    case("country", "usa", "US"),
    case("country", "United States of America", "US"),
    case("country", "Côte d'Ivoire", "CI"),
    case("country", "COTE D'IVOIRE", "CI"),
    case("country", " ch ", "CH"),
    case("country", "Narnia", None),
    case("country", "XX", None),
    case("country", "EU", None),
    case("country", "", None),
    case("country", None, None),
]


@pytest.mark.parametrize(("name", "value", "expected", "params"), CASES)
def test_cleaner_reads_good_input_and_nulls_bad_input(name, value, expected, params):
    [result] = clean(name, [value], **params)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, Decimal):
        assert str(result) == str(expected)  # same scale, not just the same number


def test_every_builtin_cleaner_has_cases():
    assert {param.values[0] for param in CASES} == set(BUILTIN)


@pytest.mark.parametrize(("name", "params", "dtype"), [
    ("cents", {"scale": 4}, pl.Decimal(38, 4)),
    ("implied_decimal", {}, pl.Decimal(38, 2)),
    ("decimal", {"scale": 0}, pl.Decimal(38, 0)),
    ("julian_date", {}, pl.Date),
    ("packed_date", {}, pl.Date),
    ("timestamp", {}, pl.Datetime("us", "UTC")),
    ("timestamp", {"time_zone": "Europe/Berlin"}, pl.Datetime("us", "Europe/Berlin")),
    ("flag", {}, pl.Boolean),
])
def test_converting_cleaners_return_their_declared_type(name, params, dtype):
    frame = pl.DataFrame({"x": ["junk", None]})
    assert frame.select(CLEANERS[name].apply(pl.col("x"), **params)).dtypes == [dtype]


@pytest.mark.parametrize(("column", "expected"), [
    (pl.Series("x", [datetime(2024, 3, 1, 12)]), datetime(2024, 3, 1, 11, tzinfo=UTC)),
    (pl.Series("x", [datetime(2024, 3, 1, 12)]).dt.replace_time_zone("America/New_York"),
     datetime(2024, 3, 1, 17, tzinfo=UTC)),
    (pl.Series("x", [datetime(2024, 3, 1, 12)], dtype=pl.Datetime("ns")),
     datetime(2024, 3, 1, 11, tzinfo=UTC)),
    (pl.Series("x", [date(2024, 3, 1)]), datetime(2024, 2, 29, 23, tzinfo=UTC)),
])
def test_timestamp_converts_datetime_and_date_columns(column, expected):
    cleaned = pl.DataFrame(column).select(
        CLEANERS["timestamp"].apply(pl.col("x"), naive_zone="Europe/Berlin")
    )
    assert cleaned.to_series().to_list() == [expected]


def test_cleaned_column_keeps_its_name():
    frame = pl.DataFrame({"x": ["Y"]})
    for name in BUILTIN:
        expr = CLEANERS[name].apply(pl.col("x").alias("renamed"), **REQUIRED_PARAMS.get(name, {}))
        assert frame.select(expr).columns == ["renamed"], name


@pytest.mark.parametrize("engine", ["in-memory", "streaming"])
def test_cleaners_run_lazily_as_they_run_eagerly(engine):
    frame = pl.DataFrame({"x": ["  Y ", "MÃ¼ller", "2024-03-01T12:00:00Z", "121032", None] * 200})
    cleaned = [
        CLEANERS[name].apply(pl.col("x"), **REQUIRED_PARAMS.get(name, {})).alias(name)
        for name in BUILTIN
    ]
    assert frame.lazy().select(cleaned).collect(engine=engine).equals(frame.select(cleaned))


# --- the registry ----------------------------------------------------------------------------


def shout(expr: pl.Expr) -> pl.Expr:
    """Upper-case and exclaim."""
    return pl.concat_str(expr.cast(pl.String, strict=False).str.to_uppercase(), pl.lit("!"))


# Already a Cleaner (as the decorator returns), but not registered: found by import path only.
QUIET = Cleaner("quiet", lambda expr: expr.str.to_lowercase(), True, "lower-case quietly")


@pytest.fixture
def registry():
    saved = dict(CLEANERS)
    yield CLEANERS
    CLEANERS.clear()
    CLEANERS.update(saved)


def test_builtin_registry():
    assert set(BUILTIN) <= set(CLEANERS)
    on_purpose = {name for name in BUILTIN if CLEANERS[name].nulls_on_purpose}
    assert on_purpose == {"sentinel_to_null", "blank_as_null"}
    for name in BUILTIN:
        entry = CLEANERS[name]
        assert entry.name == name
        assert entry.description and "\n" not in entry.description
    assert CLEANERS["trim"].description == "Trim CHAR padding blanks"


def test_user_registers_a_cleaner_with_the_decorator(registry):
    @cleaner("initials", nulls_on_purpose=True)
    def first_letter(expr: pl.Expr, *, count: int = 1) -> pl.Expr:
        """Keep the first letters.

        More words here.
        """
        return expr.str.head(count)

    assert registry["initials"] is first_letter
    assert first_letter.nulls_on_purpose is True
    assert first_letter.description == "Keep the first letters"
    assert find_cleaner("initials") is first_letter
    frame = pl.DataFrame({"x": ["Headwater", None]})
    assert frame.select(first_letter.apply(pl.col("x"), count=2)).to_series().to_list() == [
        "He", None
    ]

    @cleaner
    def bare(expr: pl.Expr) -> pl.Expr:
        return expr

    assert registry["bare"].description == "bare"
    assert registry["bare"].nulls_on_purpose is False


def test_registering_a_taken_name_fails_unless_replacing(registry):
    with pytest.raises(ValueError, match="'trim' is already registered"):
        cleaner("trim")(shout)
    replaced = cleaner("trim", replace=True, description="shout instead")(shout)
    assert registry["trim"] is replaced
    assert replaced.description == "shout instead"


def test_find_cleaner_by_import_path():
    found = find_cleaner("tests.unit.test_cleaners:shout")
    assert found.name == "tests.unit.test_cleaners:shout"
    assert found.nulls_on_purpose is False
    assert found.description == "Upper-case and exclaim"
    frame = pl.DataFrame({"x": ["hi"]})
    assert frame.select(found.apply(pl.col("x"))).to_series().to_list() == ["HI!"]
    quiet = find_cleaner("tests.unit.test_cleaners:QUIET")
    assert quiet.name == "quiet"
    assert quiet.nulls_on_purpose is True


@pytest.mark.parametrize("name", [
    "no_such_cleaner",
    "tests.unit.no_such_module:shout",
    "tests.unit.test_cleaners:no_such_function",
    "tests.unit.test_cleaners:UTC",
])
def test_find_cleaner_rejects_unknown_names(name):
    with pytest.raises(MappingError, match="use one of ") as raised:
        find_cleaner(name)
    for known in BUILTIN:
        assert known in str(raised.value)


@pytest.mark.parametrize(("name", "params"), [
    ("trim", {"side": "middle"}),
    ("trim", {"sides": "both"}),
    ("cents", {"scale": -1}),
    ("decimal", {"scale": 39}),
    ("implied_decimal", {"places": 1.5}),
    ("timestamp", {"time_zone": "Mars/Olympus_Mons"}),
    ("timestamp", {"naive_zone": ""}),
    ("phone", {"default_country_code": "abc"}),
    ("flag", {"true": ("Y",), "false": ("y",)}),
    ("codes", {}),
    ("codes", {"mapping": ["SHP"]}),
    ("codes", {"mapping": {"A": 1, "B": "two"}}),
    ("sentinel_to_null", {"values": "N/A"}),
    ("repair_mojibake", {"encodings": ("no-such-codec",)}),
    ("repair_mojibake", {"encodings": ("utf-16",)}),
    ("repair_mojibake", {"encodings": ("utf-8",)}),
])
def test_bad_parameters_fail_when_the_expression_is_built(name, params):
    with pytest.raises(MappingError):
        CLEANERS[name].apply(pl.col("x"), **params)


# --- properties: no data can make a cleaner fail ----------------------------------------------

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",))
NEAR_MISSES = st.from_regex(
    r"\A[ +-]?[0-9]{1,8}"
    r"(-[0-9]{1,2}-[0-9]{1,2}([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{0,12})?)?)?"
    r"(Z|[+-][0-9]{1,2}(:?[0-9]{2})?)?|[.,][0-9]{0,40}|[+-])?\Z"
)
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=30),
    NEAR_MISSES,
    st.sampled_from(["", " ", "\x00", "N/A", "1900-01-01", "MÃ¼ller", "â€™", "€", "Y", "+"]),
)
INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ALL_CLEANERS = pytest.mark.parametrize("name", BUILTIN)


def check_nulls_stay_null(name: str, column: pl.Series) -> pl.Series:
    frame = pl.DataFrame(column)
    cleaned = frame.select(CLEANERS[name].apply(pl.col("x"), **REQUIRED_PARAMS.get(name, {})))
    assert cleaned.height == frame.height
    cleaned_column = cleaned.to_series()
    assert not (column.is_null() & cleaned_column.is_not_null()).any()
    return cleaned_column


@ALL_CLEANERS
@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.none() | TEXT, max_size=8))
def test_cleaners_never_fail_on_text(name, values):
    column = pl.Series("x", values, dtype=pl.String)
    cleaned = check_nulls_stay_null(name, column)
    if name in ("trim", "upper", "lower", "repair_mojibake"):
        assert cleaned.is_null().to_list() == column.is_null().to_list()


@ALL_CLEANERS
@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.none() | INT, max_size=8))
def test_cleaners_never_fail_on_ints(name, values):
    check_nulls_stay_null(name, pl.Series("x", values, dtype=pl.Int64))


@ALL_CLEANERS
def test_cleaners_take_an_all_null_column(name):
    assert check_nulls_stay_null(name, pl.Series("x", [None, None])).null_count() == 2


# Every column type that has a text form; nested, binary and duration columns have none.
ODD_COLUMNS = [
    pl.Series("x", [float("nan"), float("inf"), -0.0, 1e300, 5e-324, 12345.0, None]),
    pl.Series("x", [True, False, None]),
    pl.Series("x", [date(1, 1, 1), date(9999, 12, 31), None]),
    pl.Series("x", [datetime(2262, 4, 11), datetime(1677, 9, 22), None], dtype=pl.Datetime("ns"))
    .dt.replace_time_zone("Asia/Kolkata"),
    pl.Series("x", [datetime(9999, 12, 31, 23, 59, 59), datetime(1, 1, 1), None]),
    pl.Series("x", [Decimal("-99999999999999999999999999.9999999999"), Decimal("12.5"), None],
              dtype=pl.Decimal(38, 10)),
    pl.Series("x", [2**64 - 1, 0, None], dtype=pl.UInt64),
    pl.Series("x", [2**127 - 1, -(2**127), None], dtype=pl.Int128),
    pl.Series("x", [-128, 127, None], dtype=pl.Int8),
    pl.Series("x", ["Y", "MÃ¼ller", None], dtype=pl.Categorical),
    pl.Series("x", ["Y", "N", None], dtype=pl.Enum(["Y", "N"])),
]


@ALL_CLEANERS
def test_cleaners_take_any_column_type_with_a_text_form(name):
    for column in ODD_COLUMNS:
        check_nulls_stay_null(name, column)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(0, 18))
def test_cents_are_exact(minor_units, scale):
    expected = Decimal(minor_units).scaleb(-scale)
    assert clean("cents", [minor_units], scale=scale) == [expected]
    assert clean("implied_decimal", [str(abs(minor_units)) + ("-" if minor_units < 0 else "")],
                 places=scale) == [expected]


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=999_999))
def test_julian_date_matches_the_calendar(cyyddd):
    year, day = 1900 + cyyddd // 1000, cyyddd % 1000
    days_in_year = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    expected = date.fromordinal(date(year, 1, 1).toordinal() + day - 1)
    assert clean("julian_date", [cyyddd]) == [expected if 1 <= day <= days_in_year else None]


OFFSETS = st.none() | st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=100, deadline=None)
@given(st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1)), OFFSETS, st.sampled_from("T "))
def test_timestamp_reads_what_isoformat_writes(moment, offset, separator):
    text = moment.replace(tzinfo=offset).isoformat(sep=separator)
    [parsed] = clean("timestamp", [text])
    assert parsed == moment.replace(tzinfo=offset or UTC)


@settings(max_examples=100, deadline=None)
@given(st.dates(date(1, 1, 1), date(9999, 12, 31)))
def test_packed_date_matches_the_calendar(day):
    packed = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    assert clean("packed_date", [packed]) == [day]
    # As an int, a year before 1000 loses its leading zero and with it the fixed width.
    assert clean("packed_date", [int(packed)]) == [day if day.year >= 1000 else None]


NAME_LETTERS = st.sampled_from(list("abcXYZ 019-éüöäßñøåæçÉÜÖÅØōł株式会社東京😀𝄞"))


def misdecode(text: str) -> str:
    """UTF-8 bytes read as cp1252, falling back to latin-1 where cp1252 has no character."""
    return "".join(
        bytes([byte]).decode("cp1252", errors="ignore") or chr(byte)
        for byte in text.encode("utf-8")
    )


@settings(max_examples=100, deadline=None)
@given(st.text(NAME_LETTERS, max_size=20))
def test_repair_mojibake_undoes_misdecoding_and_keeps_correct_text(text):
    assert clean("repair_mojibake", [misdecode(text), text]) == [text, text]
