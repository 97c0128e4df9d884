"""ODBC connection strings: parsing, quoting, descriptions without secrets, driver checks."""

from __future__ import annotations

import pytest

import connectors
from connectors import ConfigurationError, _redaction
from connectors.odbc._connection import ConnectionString, check_driver, parse

INSTALLED = ["PostgreSQL ANSI", "PostgreSQL Unicode", "MariaDB Unicode", "SQLite3"]
DATA_SOURCES = {"erp": "PostgreSQL Unicode", "shop": "MariaDB Unicode", "Lite": "SQLite3"}


@pytest.fixture(autouse=True)
def isolated_secrets(monkeypatch):
    """Each test starts with no registered secrets and leaves none behind."""
    monkeypatch.setattr(_redaction, "_known_secrets", set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1;b=2", {"a": "1", "b": "2"}),
        ("a=1;b=2;", {"a": "1", "b": "2"}),
        ("Driver=SQLite3", {"Driver": "SQLite3"}),
        ("a=", {"a": ""}),
        ("a=b=c", {"a": "b=c"}),
        ("DRIVER={PostgreSQL Unicode}", {"DRIVER": "PostgreSQL Unicode"}),
        ("PWD={p;w=d};UID=etl", {"PWD": "p;w=d", "UID": "etl"}),
        ("PWD={p;w}}d};UID=u", {"PWD": "p;w}d", "UID": "u"}),
        ("a={x}}};b=2", {"a": "x}", "b": "2"}),
        ("a={}}}", {"a": "}"}),
        ("a={ x };b=1", {"a": " x ", "b": "1"}),
        (
            "  Driver = {PostgreSQL Unicode} ; Server = db1 ;Port= 5432 ",
            {"Driver": "PostgreSQL Unicode", "Server": "db1", "Port": "5432"},
        ),
        ("\tServer=db1;\n Database=erp\n", {"Server": "db1", "Database": "erp"}),
        ("", {}),
    ],
)
def test_parse_splits_pairs_and_unbraces_values(text, expected):
    assert parse(text) == expected


def test_parse_keeps_key_spelling_and_order():
    assert list(parse("Uid=u;DATABASE=d;driver=x")) == ["Uid", "DATABASE", "driver"]


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("foo", 0),
        ("=1", 0),
        ("Driver=x;Server", 9),
        ("a=1;junk", 4),
    ],
)
def test_unparsable_connection_strings_raise_configuration_error(text, position):
    with pytest.raises(ConfigurationError, match=f"near character {position}"):
        parse(text)


def test_connection_string_keys_are_case_insensitive():
    cs = ConnectionString("Driver={PostgreSQL Unicode};SERVER=db1;database=erp")
    assert cs.get("driver") == "PostgreSQL Unicode"
    assert cs.get("DRIVER") == "PostgreSQL Unicode"
    assert cs.get("Server") == "db1"
    assert cs.get("DataBase") == "erp"
    assert cs.get("port") is None
    assert cs.driver == "PostgreSQL Unicode"
    assert cs.dsn is None
    assert list(cs) == ["Driver", "SERVER", "database"]


def test_dsn_property_reads_any_spelling():
    cs = ConnectionString("dsn=erp;Uid=etl")
    assert cs.dsn == "erp"
    assert cs.driver is None


def test_with_defaults_adds_only_missing_keys_case_insensitively():
    cs = ConnectionString("Driver={PostgreSQL Unicode};boolsaschar=1")
    out = cs.with_defaults({"BoolsAsChar": "0", "CommLog": "0"})
    assert out.pairs == {"Driver": "PostgreSQL Unicode", "boolsaschar": "1", "CommLog": "0"}
    assert out.get("BOOLSASCHAR") == "1"


def test_with_defaults_returns_a_copy_and_leaves_the_original_alone():
    cs = ConnectionString("Driver={PostgreSQL Unicode};Server=db1")
    out = cs.with_defaults({"CommLog": "0"})
    assert out is not cs
    assert cs.pairs == {"Driver": "PostgreSQL Unicode", "Server": "db1"}
    assert cs.get("CommLog") is None
    assert out.get("CommLog") == "0"
    out.pairs["Server"] = "elsewhere"
    assert cs.get("Server") == "db1"


def test_str_quotes_only_values_that_need_braces():
    cs = ConnectionString("Driver={PostgreSQL Unicode};Server=db1;PWD={a;b}}c}")
    assert str(cs) == "Driver=PostgreSQL Unicode;Server=db1;PWD={a;b}}c}"


@pytest.mark.parametrize(
    "value",
    ["", "plain", "with space", "p=q", "a;b", "}", "{", "{x}", "x}}y", "{{;}}", " lead", "trail "],
)
def test_str_round_trips_through_parse(value):
    cs = ConnectionString("Driver=SQLite3;Database=/tmp/db.sqlite")
    cs.pairs["Extra"] = value
    again = parse(str(cs))
    assert again == {"Driver": "SQLite3", "Database": "/tmp/db.sqlite", "Extra": value}
    assert ConnectionString(str(cs)).get("extra") == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Driver={PostgreSQL Unicode}", "ODBC driver 'PostgreSQL Unicode'"),
        (
            "Driver={PostgreSQL Unicode};Server=db1;Port=5432;Database=erp;Uid=etl;Pwd=hunter22",
            "ODBC driver 'PostgreSQL Unicode' database 'erp' at db1:5432",
        ),
        ("DSN=erp;UID=etl;PWD=hunter22", "ODBC data source 'erp'"),
        ("DSN=erp;Driver=x;DBNAME=sales", "ODBC data source 'erp' database 'sales'"),
        ("Driver=x;HOST=db2;DB=hr", "ODBC driver 'x' database 'hr' at db2"),
        ("Driver=x;ServerName=as400.local;Password=hunter22", "ODBC driver 'x' at as400.local"),
    ],
)
def test_describe_names_the_source_without_secrets(text, expected):
    described = ConnectionString(text).describe()
    assert described == expected
    assert "hunter22" not in described


@pytest.mark.parametrize("key", ["PWD", "pwd", "Password", "PASSWD", "AccessToken",
                                 "Authentication_Token"])
def test_secret_values_are_registered_for_redaction(key):
    ConnectionString(f"Driver={{PostgreSQL Unicode}};Server=db1;UID=etl;{key}=Tr0ub4dor&3")
    echoed = "[unixODBC] FATAL: authentication failed for user etl using Tr0ub4dor&3 (08001)"
    assert connectors.redact(echoed) == (
        "[unixODBC] FATAL: authentication failed for user etl using *** (08001)"
    )


def test_braced_secret_is_registered_without_its_braces():
    ConnectionString("Driver=x;PWD={se;cr}}et9};UID=etl")
    assert connectors.redact("driver said: bad password se;cr}et9!") == (
        "driver said: bad password ***!"
    )


def test_only_secret_values_are_registered():
    ConnectionString("Driver={PostgreSQL Unicode};Server=dbhost1;Database=erpmain;UID=etluser")
    text = "could not reach dbhost1 for erpmain as etluser"
    assert connectors.redact(text) == text


@pytest.mark.parametrize(
    ("text", "data_sources", "family"),
    [
        ("Driver={PostgreSQL Unicode}", {}, "postgresql"),
        ("Driver={PostgreSQL ANSI}", {}, "postgresql"),
        ("Driver={MariaDB Unicode}", {}, "mysql"),
        ("Driver={MySQL ODBC 8.0 Unicode Driver}", {}, "mysql"),
        ("Driver=SQLite3", {}, "sqlite"),
        ("Driver={ODBC Driver 18 for SQL Server}", {}, "mssql"),
        ("Driver=FreeTDS", {}, "mssql"),
        ("Driver={IBM DB2 ODBC DRIVER}", {}, "db2"),
        ("Driver={IBM i Access ODBC Driver}", {}, "db2"),
        ("Driver={Oracle 19 ODBC driver}", {}, "oracle"),
        ("Driver={IBM INFORMIX ODBC DRIVER}", {}, "ansi"),
        ("Driver=/opt/vendor/lib/libodbc.so", {}, "ansi"),
        ("DSN=erp", DATA_SOURCES, "postgresql"),
        ("DSN=shop", DATA_SOURCES, "mysql"),
        ("DSN=Lite", DATA_SOURCES, "sqlite"),
        ("DSN=warehouse", {"warehouse": "ODBC Driver 17 for SQL Server"}, "mssql"),
        # A DSN not in the mapping falls back to its own name.
        ("DSN=postgres_reporting", {}, "postgresql"),
        ("DSN=reporting", {}, "ansi"),
        # DRIVER wins over the DSN's driver.
        ("DSN=erp;Driver=SQLite3", DATA_SOURCES, "sqlite"),
    ],
)
def test_family_guess_from_driver_or_dsn(text, data_sources, family):
    assert ConnectionString(text).family_guess(data_sources) == family


def test_family_guess_finds_a_dsn_spelt_in_another_case():
    assert ConnectionString("DSN=lite").family_guess(DATA_SOURCES) == "sqlite"


@pytest.mark.parametrize(
    "text",
    [
        "Driver={PostgreSQL Unicode};Server=db1",
        "DRIVER=SQLite3;Database=x.db",
        "DSN=erp",
        "dsn=shop;UID=u",
        "DSN=erp;Driver={MariaDB Unicode}",
    ],
)
def test_check_driver_accepts_installed_drivers_and_defined_dsns(text):
    assert check_driver(ConnectionString(text), INSTALLED, DATA_SOURCES) is None


@pytest.mark.parametrize(
    "driver",
    [
        "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so",
        "libsqlite3odbc.so",
        r"C:\Windows\System32\sqlsrv32.dll",
        "libdb2.dylib",
    ],
)
def test_check_driver_accepts_a_driver_library_path(driver):
    assert check_driver(ConnectionString(f"Driver={{{driver}}}"), INSTALLED, {}) is None


def test_unknown_driver_names_the_driver_and_lists_the_installed_ones():
    cs = ConnectionString("Driver={ODBC Driver 18 for SQL Server};Server=db1")
    with pytest.raises(ConfigurationError) as info:
        check_driver(cs, INSTALLED, DATA_SOURCES)
    message = str(info.value)
    assert "'ODBC Driver 18 for SQL Server' is not installed" in message
    assert ("installed drivers: 'PostgreSQL ANSI', 'PostgreSQL Unicode', 'MariaDB Unicode', "
            "'SQLite3'") in message


def test_unknown_driver_with_none_installed_says_so():
    with pytest.raises(ConfigurationError, match=r"installed drivers: \(none\)"):
        check_driver(ConnectionString("Driver=SQLite3"), [], {})


def test_unknown_dsn_names_it_and_lists_the_defined_ones():
    with pytest.raises(ConfigurationError) as info:
        check_driver(ConnectionString("DSN=warehouse;UID=u"), INSTALLED, DATA_SOURCES)
    message = str(info.value)
    assert "data source 'warehouse' is not defined" in message
    assert "defined data sources: 'Lite', 'erp', 'shop'" in message


def test_unknown_dsn_with_none_defined_says_so():
    with pytest.raises(ConfigurationError, match=r"defined data sources: \(none\)"):
        check_driver(ConnectionString("DSN=erp"), INSTALLED, {})


@pytest.mark.parametrize("text", ["Server=db1;Database=erp;UID=u", "", "Database=x.db"])
def test_connection_string_without_driver_or_dsn_is_rejected(text):
    with pytest.raises(ConfigurationError, match="neither DRIVER= nor DSN="):
        check_driver(ConnectionString(text), INSTALLED, DATA_SOURCES)


def test_check_driver_accepts_an_installed_driver_spelt_in_another_case():
    check_driver(ConnectionString("Driver={postgresql unicode};Server=db1"), INSTALLED, {})


def test_check_driver_accepts_a_defined_dsn_spelt_in_another_case():
    check_driver(ConnectionString("DSN=ERP"), INSTALLED, DATA_SOURCES)
