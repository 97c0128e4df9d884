"""The SQL a chunk query is sent as, per database family behind an ODBC driver.

ODBC carries SQL text through unchanged, so quoting, paging and parameter markers are
the database's, not the driver's. Queries are built with SQLAlchemy (the same keyset
statements as the SQL connector) and compiled by the family's SQLAlchemy dialect with
``?`` markers; DB2 and unknown databases get a small ANSI dialect (double-quoted names,
``FETCH FIRST n ROWS ONLY``) that needs no vendor package.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import default
from sqlalchemy.sql import compiler

from .._errors import ConfigurationError

FAMILIES = ("postgresql", "mysql", "sqlite", "mssql", "oracle", "db2", "ansi")

# What SQL_DBMS_NAME (or a driver name) says, matched in this order.
_FAMILY_PATTERNS = (
    ("postgresql", re.compile(r"postgres", re.IGNORECASE)),
    ("mysql", re.compile(r"mysql|mariadb", re.IGNORECASE)),
    ("sqlite", re.compile(r"sqlite", re.IGNORECASE)),
    ("mssql", re.compile(r"sql server|sqlserver|freetds|sybase|adaptive server",
                         re.IGNORECASE)),
    ("oracle", re.compile(r"oracle", re.IGNORECASE)),
    ("db2", re.compile(r"db2|as/?400|iseries|ibm i\b|i access", re.IGNORECASE)),
)


def family_of(dbms_name: str) -> str:
    """The database family named by a DBMS or driver name; ``"ansi"`` if unknown."""
    for family, pattern in _FAMILY_PATTERNS:
        if pattern.search(dbms_name or ""):
            return family
    return "ansi"


class _ANSICompiler(compiler.SQLCompiler):
    """Standard SQL paging: ``OFFSET n ROWS FETCH FIRST m ROWS ONLY`` (DB2, Informix 12+)."""

    def limit_clause(self, select: Any, **kw: Any) -> str:
        text = ""
        if select._offset_clause is not None:
            text += " OFFSET " + self.process(select._offset_clause, **kw) + " ROWS"
        if select._limit_clause is not None:
            text += " FETCH FIRST " + self.process(select._limit_clause, **kw) + " ROWS ONLY"
        return text


class ANSIDialect(default.DefaultDialect):
    """Double-quoted identifiers, ``?`` markers and standard paging; nothing vendor-only."""

    name = "ansi"
    statement_compiler = _ANSICompiler
    supports_native_boolean = False


# The SQLAlchemy dialect class per family, imported when first asked for: loading every
# vendor dialect would add a tenth of a second to each start.
_DIALECTS = {
    "postgresql": ("sqlalchemy.dialects.postgresql.base", "PGDialect"),
    "mysql": ("sqlalchemy.dialects.mysql.base", "MySQLDialect"),
    "sqlite": ("sqlalchemy.dialects.sqlite.base", "SQLiteDialect"),
    "mssql": ("sqlalchemy.dialects.mssql.base", "MSDialect"),
    "oracle": ("sqlalchemy.dialects.oracle.base", "OracleDialect"),
}


def dialect_for(family: str) -> sa.Dialect:
    """A SQLAlchemy dialect compiling for ``family`` with ``?`` parameter markers."""
    if family not in FAMILIES:
        raise ConfigurationError(
            f"unknown database family {family!r}; known: {', '.join(FAMILIES)}"
        )
    if family in _DIALECTS:
        module, name = _DIALECTS[family]
        return getattr(importlib.import_module(module), name)(paramstyle="qmark")
    dialect = ANSIDialect(paramstyle="qmark")
    dialect.name = family  # "db2" or "ansi"
    return dialect


def compile_sql(stmt: sa.Executable, dialect: sa.Dialect, *, literal: bool = False
                ) -> tuple[str, list[Any]]:
    """SQL text and positional parameters for ``stmt``.

    ``literal`` renders every value into the text (quoted by the dialect), for drivers
    and servers that cannot bind parameters, or bind them slowly.
    """
    if literal:
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        return str(compiled), []
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    names = compiled.positiontup or []
    return str(compiled), [compiled.params[name] for name in names]
