"""translate_error: every driver exception becomes a headwater error that says what to do."""

from __future__ import annotations

import sqlite3
import types

import psycopg
import psycopg.errors as pg_errors
import pymysql
import pyodbc
import pytest
import sqlalchemy.exc as sa_exc

from connectors import _redaction
from connectors._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    HeadwaterError,
    RetriableSourceError,
)
from connectors._redaction import register_secret
from connectors.sql._translate import translate_error

WHERE = "postgresql database 'erp' at db1:5432"

PEP249_NAMES = [
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
]

# What each PEP 249 class means when nothing more specific (SQLSTATE, code, text) is known.
PEP249_EXPECTED = {
    "Error": ConfigurationError,
    "InterfaceError": RetriableSourceError,
    "DatabaseError": ConfigurationError,
    "DataError": DataContractError,
    "OperationalError": RetriableSourceError,
    "IntegrityError": ConfigurationError,
    "InternalError": RetriableSourceError,
    "ProgrammingError": ConfigurationError,
    "NotSupportedError": ConfigurationError,
}


def fake_dbapi_module():
    """A driver module with the PEP 249 hierarchy and nothing else, as a DBAPI defines it."""
    module = types.ModuleType("fakedb")

    class Error(Exception):
        pass

    class InterfaceError(Error):
        pass

    class DatabaseError(Error):
        pass

    class DataError(DatabaseError):
        pass

    class OperationalError(DatabaseError):
        pass

    class IntegrityError(DatabaseError):
        pass

    class InternalError(DatabaseError):
        pass

    class ProgrammingError(DatabaseError):
        pass

    class NotSupportedError(DatabaseError):
        pass

    for cls in (
        Error,
        InterfaceError,
        DatabaseError,
        DataError,
        OperationalError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
    ):
        cls.__module__ = module.__name__
        setattr(module, cls.__name__, cls)
    return module


DRIVERS = {
    "fake": fake_dbapi_module(),
    "psycopg": psycopg,
    "pymysql": pymysql,
    "sqlite3": sqlite3,
    "pyodbc": pyodbc,
}


@pytest.fixture(autouse=True)
def isolated_secrets(monkeypatch):
    monkeypatch.setattr(_redaction, "_known_secrets", set())


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("class_name", PEP249_NAMES)
def test_every_pep249_class_maps_to_a_specific_headwater_error(driver, class_name):
    exc_class = getattr(DRIVERS[driver], class_name)
    error = translate_error(exc_class("something went wrong"), WHERE)
    assert isinstance(error, HeadwaterError)
    assert type(error) is not HeadwaterError
    assert type(error) is PEP249_EXPECTED[class_name]
    assert WHERE in error.message
    assert "something went wrong" in error.message


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("class_name", PEP249_NAMES)
def test_every_pep249_class_wrapped_by_sqlalchemy_maps_the_same_way(driver, class_name):
    orig = getattr(DRIVERS[driver], class_name)("something went wrong")
    wrapped = sa_exc.DBAPIError.instance("SELECT 1", {}, orig, DRIVERS[driver].Error)
    error = translate_error(wrapped, WHERE)
    assert type(error) is PEP249_EXPECTED[class_name]
    assert "SELECT 1" not in error.message  # the first line of the driver error only


@pytest.mark.parametrize(
    ("exc_class", "sqlstate", "expected"),
    [
        (pg_errors.InvalidPassword, "28P01", AuthenticationError),
        (pg_errors.InvalidAuthorizationSpecification, "28000", AuthenticationError),
        (pg_errors.AdminShutdown, "57P01", RetriableSourceError),
        (pg_errors.CannotConnectNow, "57P03", RetriableSourceError),
        (pg_errors.ConnectionFailure, "08006", RetriableSourceError),
        (pg_errors.SerializationFailure, "40001", RetriableSourceError),
        (pg_errors.DeadlockDetected, "40P01", RetriableSourceError),
        (pg_errors.TooManyConnections, "53300", RetriableSourceError),
        (pg_errors.UndefinedTable, "42P01", ConfigurationError),
        (pg_errors.InvalidCatalogName, "3D000", ConfigurationError),
        (pg_errors.InsufficientPrivilege, "42501", ConfigurationError),
        (pg_errors.SyntaxError, "42601", ConfigurationError),
        (pg_errors.NumericValueOutOfRange, "22003", DataContractError),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else v,
)
def test_psycopg_errors_by_sqlstate(exc_class, sqlstate, expected):
    exc = exc_class("boom")
    assert exc.sqlstate == sqlstate
    assert type(translate_error(exc, WHERE)) is expected


@pytest.mark.parametrize(
    ("exc_class", "fix"),
    [
        (pg_errors.UndefinedTable, "the table does not exist"),
        (pg_errors.InvalidCatalogName, "the database does not exist"),
        (pg_errors.InsufficientPrivilege, "grant the reading user SELECT"),
        (pg_errors.InvalidPassword, "check the user name and password"),
    ],
)
def test_configuration_and_credential_messages_name_the_fix(exc_class, fix):
    assert fix in translate_error(exc_class("boom"), WHERE).message


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1045, AuthenticationError),
        (1044, AuthenticationError),
        (1698, AuthenticationError),
        (2003, RetriableSourceError),
        (2013, RetriableSourceError),
        (2006, RetriableSourceError),
        (1205, RetriableSourceError),
        (1213, RetriableSourceError),
        (1146, ConfigurationError),
        (1049, ConfigurationError),
    ],
)
@pytest.mark.parametrize(
    "exc_class",
    [pymysql.err.OperationalError, pymysql.err.ProgrammingError, pymysql.err.InternalError],
    ids=lambda c: c.__name__,
)
def test_pymysql_errors_by_code_whatever_their_class(code, expected, exc_class):
    assert type(translate_error(exc_class(code, "boom"), WHERE)) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), RetriableSourceError),
        (sqlite3.IntegrityError("UNIQUE constraint failed: t.id"), ConfigurationError),
        (sqlite3.DataError("string or blob too big"), DataContractError),
    ],
    ids=str,
)
def test_sqlite_errors(exc, expected):
    assert type(translate_error(exc, WHERE)) is expected


@pytest.mark.parametrize(
    "message", ["no such table: orders", "no such column: x", 'near "FORM": syntax error']
)
def test_sqlite_schema_errors_are_configuration_errors(message):
    assert type(translate_error(sqlite3.OperationalError(message), WHERE)) is ConfigurationError


def test_pyodbc_login_failure_is_an_authentication_error():
    exc = pyodbc.InterfaceError(
        "28000",
        "[28000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]"
        "Login failed for user 'etl'. (18456) (SQLDriverConnect)",
    )
    assert type(translate_error(exc, "mssql database 'erp' at db1")) is AuthenticationError


def invalidated(orig):
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=True)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (invalidated(psycopg.OperationalError("boom")), RetriableSourceError),
        (invalidated(pg_errors.SyntaxError("boom")), RetriableSourceError),
        (invalidated(pymysql.err.ProgrammingError(1064, "boom")), RetriableSourceError),
        # Credentials come first: never retried, even on an invalidated connection.
        (invalidated(pg_errors.InvalidPassword("boom")), AuthenticationError),
        (
            sa_exc.ProgrammingError("SELECT 1", {}, pg_errors.UndefinedTable("boom")),
            ConfigurationError,
        ),
    ],
    ids=["operational", "syntax", "mysql-syntax", "auth-wins", "not-invalidated"],
)
def test_sqlalchemy_wrapped_errors(exc, expected):
    assert type(translate_error(exc, WHERE)) is expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('FATAL: password authentication failed for user "etl"', AuthenticationError),
        ("Access denied for user 'etl'@'10.0.0.1' (using password: YES)", AuthenticationError),
        ("connection refused", RetriableSourceError),
        ("server closed the connection unexpectedly", RetriableSourceError),
        ("SSL SYSCALL error: EOF detected", RetriableSourceError),
        ("Lost connection to MySQL server during query", RetriableSourceError),
        ("MySQL server has gone away", RetriableSourceError),
        ("read timed out", RetriableSourceError),
    ],
)
def test_driver_text_classifies_errors_of_a_generic_class(message, expected):
    exc = DRIVERS["fake"].DatabaseError(message)
    assert type(translate_error(exc, WHERE)) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad literal"), ConfigurationError),
        (TimeoutError("timed out"), RetriableSourceError),
        (sa_exc.NoSuchTableError("orders"), ConfigurationError),
        (sa_exc.ArgumentError("bad url"), ConfigurationError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_non_driver_exceptions(exc, expected):
    assert type(translate_error(exc, WHERE)) is expected


def test_a_headwater_error_passes_through_unchanged():
    error = AuthenticationError("already translated")
    assert translate_error(error, WHERE) is error


def test_message_holds_only_the_first_line_of_the_driver_error():
    exc = psycopg.OperationalError("connection is bad\nDETAIL: row (1, 'payload')\nHINT: x")
    message = translate_error(exc, WHERE).message
    assert "connection is bad" in message
    assert "payload" not in message


@pytest.mark.parametrize(
    "exc_class",
    [
        pg_errors.InvalidPassword,
        psycopg.OperationalError,
        psycopg.ProgrammingError,
        pymysql.err.OperationalError,
        sqlite3.OperationalError,
    ],
)
def test_registered_password_in_a_driver_message_is_never_shown(exc_class):
    register_secret("Tr0ub4dor&3")
    exc = exc_class("connection failed: server rejected 'Tr0ub4dor&3' for user etl")
    message = translate_error(exc, WHERE).message
    assert "Tr0ub4dor&3" not in message
    assert "***" in message


@pytest.mark.parametrize(
    "text",
    [
        'connection to "postgresql://etl:Tr0ub4dor3@db1:5432/erp" failed: could not connect',
        "Access denied for user 'etl' (DSN: mysql+pymysql://etl:Tr0ub4dor3@db1/erp)",
        "invalid option in 'host=db1 user=etl password=Tr0ub4dor3 dbname=erp'",
    ],
)
def test_password_in_a_url_or_connection_string_is_never_shown(text):
    message = translate_error(psycopg.OperationalError(text), WHERE).message
    assert "Tr0ub4dor3" not in message


def test_password_in_where_is_never_shown():
    exc = psycopg.OperationalError("boom")
    message = translate_error(exc, "postgresql://etl:Tr0ub4dor3@db1/erp").message
    assert "Tr0ub4dor3" not in message
