"""The one place where database driver exceptions become headwater errors.

Classification order: credentials first (never retried), then a connection that was
invalidated or never made (retried), then SQLSTATE / vendor codes, then the PEP 249
class of the exception. Every PEP 249 class maps somewhere (``tests`` pin that).
"""

from __future__ import annotations

import re

import sqlalchemy.exc as sa_exc

from .._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    HeadwaterError,
    RetriableSourceError,
)

# SQLSTATE classes and codes (PostgreSQL, also used by ADBC and ODBC drivers).
_AUTH_SQLSTATES = {"28000", "28P01"}
_RETRIABLE_SQLSTATE_PREFIXES = ("08", "40", "53", "57P", "HY008", "HYT")
_CONFIG_SQLSTATES = {"3D000": "the database does not exist", "42P01": "the table does not exist"}
_PRIVILEGE_SQLSTATE = "42501"
# MySQL / MariaDB error numbers.
_MYSQL_AUTH = {1044, 1045, 1698}
_MYSQL_RETRIABLE = {1040, 1053, 1205, 1213, 2002, 2003, 2005, 2006, 2013, 2055}
_MYSQL_CONFIG = {1049: "the database does not exist", 1146: "the table does not exist"}
_TRANSIENT_TEXT = re.compile(
    r"could not connect|connection refused|server closed the connection|terminating connection"
    r"|connection (?:is )?closed|connection reset|broken pipe|timed? ?out|database is locked"
    r"|lost connection|gone away|no route to host|network is unreachable|ssl syscall",
    re.IGNORECASE,
)
_AUTH_TEXT = re.compile(
    r"password authentication failed|access denied for user|login failed for user",
    re.IGNORECASE,
)
_CONFIG_TEXT = re.compile(
    r"no such table|no such column|syntax error|unable to open database file"
    r"|does not exist|unknown column|doesn't exist",
    re.IGNORECASE,
)
_SQLSTATE_SHAPE = re.compile(r"^[0-9A-Z]{5}$")
# arrow-odbc reports the driver's diagnostic in its message: "State: 57P01, Native ...".
_SQLSTATE_IN_TEXT = re.compile(r"\bState: ([0-9A-Z]{5})\b")


def _first_line(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    # pyodbc: ('08001', '[08001] [driver] message (native code) (SQLDriverConnect)')
    text = args[1] if len(args) == 2 and all(isinstance(a, str) for a in args) else str(exc)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # arrow-odbc puts the driver's message on the line after "ODBC emitted an error".
    if lines[0].startswith("ODBC emitted an error") and len(lines) > 1:
        return lines[1].strip()
    return lines[0]


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            return value
    diag = getattr(exc, "diag", None)
    if diag is not None and getattr(diag, "sqlstate", None):
        return diag.sqlstate
    # pyodbc puts the SQLSTATE first in args: ('28000', '[28000] ... Login failed ...')
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], str) and _SQLSTATE_SHAPE.match(args[0]):
        return args[0]
    found = _SQLSTATE_IN_TEXT.search(str(exc))
    return found.group(1) if found else None


def _mysql_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def translate_error(exc: BaseException, where: str) -> HeadwaterError:
    """Translate a driver or SQLAlchemy exception raised while talking to ``where``.

    ``where`` names the database without credentials, e.g.
    ``postgresql database 'erp' at db1:5432``.
    """
    if isinstance(exc, HeadwaterError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    detail = _first_line(orig)
    state = _sqlstate(orig)
    code = _mysql_code(orig)

    if state in _AUTH_SQLSTATES or code in _MYSQL_AUTH or _AUTH_TEXT.search(detail):
        return AuthenticationError(
            f"authentication failed for {where}: check the user name and password "
            f"(the password is not shown) ({detail})"
        )
    if getattr(exc, "connection_invalidated", False):
        return RetriableSourceError(f"lost the connection to {where}: {detail}")
    if state in _CONFIG_SQLSTATES or code in _MYSQL_CONFIG:
        reason = _CONFIG_SQLSTATES.get(state or "") or _MYSQL_CONFIG[code]
        return ConfigurationError(f"{where}: {reason}: {detail}")
    if state == _PRIVILEGE_SQLSTATE:
        return ConfigurationError(
            f"{where}: permission denied; grant the reading user SELECT on it ({detail})"
        )
    if (state and state.startswith(_RETRIABLE_SQLSTATE_PREFIXES)) or code in _MYSQL_RETRIABLE:
        return RetriableSourceError(f"transient failure at {where}: {detail}")
    if _TRANSIENT_TEXT.search(detail):
        return RetriableSourceError(f"could not reach or lost {where}: {detail}")
    if _CONFIG_TEXT.search(detail):
        return ConfigurationError(f"{where} rejected the query: {detail}")
    return _by_pep249_class(exc, orig, where, detail)


def _by_pep249_class(
    exc: BaseException, orig: BaseException, where: str, detail: str
) -> HeadwaterError:
    names = {cls.__name__ for cls in type(orig).__mro__} | {
        cls.__name__ for cls in type(exc).__mro__
    }
    if names & {"OperationalError", "InternalError", "InterfaceError", "TimeoutError"}:
        return RetriableSourceError(f"transient failure at {where}: {detail}")
    if "DataError" in names:
        return DataContractError(f"{where} returned a value that does not fit: {detail}")
    if names & {"ProgrammingError", "NotSupportedError", "IntegrityError", "NoSuchTableError"}:
        return ConfigurationError(f"{where} rejected the query: {detail}")
    if isinstance(exc, sa_exc.SQLAlchemyError) or "Error" in names or "DatabaseError" in names:
        return ConfigurationError(f"{where} failed: {detail}")
    return ConfigurationError(f"{where} failed with {type(orig).__name__}: {detail}")
