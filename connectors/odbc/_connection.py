"""ODBC connection strings: parsed, described without secrets, completed per driver."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from .._errors import ConfigurationError
from .._redaction import register_secret
from ._dialects import family_of

_SECRET_KEYS = {"pwd", "password", "passwd", "accesstoken", "authentication_token"}
_PAIR = re.compile(r"\s*([^=;]+?)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)\s*(?:;|$)")

# Options a driver family gets unless the connection string sets them. psqlODBC:
# booleans as booleans (not "1"/"0" text); no per-connection log file in the temp
# directory (Debian registers the driver with CommLog=1); and TEXT and unbounded
# VARCHAR reported as long as the longest value the fast path may take (it reports
# 8190 and 255 otherwise, and a bound buffer cannot outgrow the reported size).
FAMILY_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "postgresql": {"BoolsAsChar": "0", "CommLog": "0", "MaxVarcharSize": "65535"},
}


def family_options(family: str, max_text_size: int) -> dict[str, str]:
    """The connection options ``family`` gets by default (see ``FAMILY_OPTIONS``)."""
    options = dict(FAMILY_OPTIONS.get(family, {}))
    if family == "postgresql":
        # Above MaxVarcharSize, so TEXT stays a long type whatever the ceiling.
        options["MaxLongVarcharSize"] = str(max(max_text_size, 2**20))
    return options


# Statements run on every new connection, so both read paths see the same values:
# PostgreSQL timestamps with time zone come in UTC, and dates as ISO text whatever the
# server's DateStyle; MariaDB keeps CHAR padding, as PostgreSQL and the SQL connector do.
SESSION_SQL: Mapping[str, tuple[str, ...]] = {
    "postgresql": ("SET TIME ZONE 'UTC'", "SET DateStyle = 'ISO'"),
    "mysql": ("SET SESSION sql_mode = CONCAT(@@sql_mode, ',PAD_CHAR_TO_FULL_LENGTH')",),
}


def parse(connection_string: str) -> dict[str, str]:
    """``key=value;...`` pairs, braces removed (``}}`` is an escaped ``}``)."""
    pairs: dict[str, str] = {}
    pos, text = 0, connection_string.strip()
    while pos < len(text):
        if text[pos] in "; \t":  # empty segments, as left by joining strings
            pos += 1
            continue
        match = _PAIR.match(text, pos)
        if match is None or match.end() == pos:
            raise ConfigurationError(
                f"cannot parse the ODBC connection string near character {pos}; expected "
                "key=value pairs separated by ';' (values with ';' go in braces)"
            )
        key, value = match.group(1), match.group(2).strip()
        if value.startswith("{") and value.endswith("}"):
            value = value[1:-1].replace("}}", "}")
        pairs[key] = value
        pos = match.end()
    return pairs


def _quote(value: str) -> str:
    if re.search(r"[;{}]|^\s|\s$", value):
        return "{" + value.replace("}", "}}") + "}"
    return value


class ConnectionString:
    """A parsed ODBC connection string; keys are case-insensitive, as in ODBC."""

    def __init__(self, text: str) -> None:
        self.pairs = parse(text)
        for key, value in self.pairs.items():
            if key.lower() in _SECRET_KEYS:
                register_secret(value)

    def get(self, key: str) -> str | None:
        for k, v in self.pairs.items():
            if k.lower() == key.lower():
                return v
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self.pairs)

    def with_defaults(self, defaults: Mapping[str, str]) -> ConnectionString:
        """A copy with each default added unless the string sets that key already."""
        out = ConnectionString.__new__(ConnectionString)
        out.pairs = dict(self.pairs)
        for key, value in defaults.items():
            if self.get(key) is None:
                out.pairs[key] = value
        return out

    def __str__(self) -> str:
        return ";".join(f"{k}={_quote(v)}" for k, v in self.pairs.items())

    @property
    def driver(self) -> str | None:
        return self.get("driver")

    @property
    def dsn(self) -> str | None:
        return self.get("dsn")

    def describe(self) -> str:
        """Names the source for messages: driver or DSN, database, host; never secrets."""
        database = self.get("database") or self.get("dbname") or self.get("db")
        host = self.get("server") or self.get("host") or self.get("servername")
        port = self.get("port")
        head = f"ODBC data source {self.dsn!r}" if self.dsn else f"ODBC driver {self.driver!r}"
        parts = [head]
        if database:
            parts.append(f"database {database!r}")
        if host:
            parts.append(f"at {host}:{port}" if port else f"at {host}")
        return " ".join(parts)

    def family_guess(self, data_sources: Mapping[str, str]) -> str:
        """The database family the driver (or the DSN's driver) names; ``"ansi"`` if none."""
        sources = {k.lower(): v for k, v in data_sources.items()}
        name = self.driver or sources.get((self.dsn or "").lower(), "") or self.dsn or ""
        return family_of(name)


def check_driver(connection: ConnectionString, installed: list[str],
                 data_sources: Mapping[str, str]) -> None:
    """Fail before connecting when the driver or DSN named is not on this machine."""
    driver = connection.driver
    if driver is not None:
        is_path = "/" in driver or "\\" in driver or driver.endswith((".so", ".dll", ".dylib"))
        # unixODBC, like Windows, matches driver and DSN names in any case.
        if not is_path and driver.lower() not in {d.lower() for d in installed}:
            listing = ", ".join(repr(d) for d in installed) or "(none)"
            raise ConfigurationError(
                f"ODBC driver {driver!r} is not installed; installed drivers: {listing} "
                "(see odbcinst -q -d)"
            )
    elif connection.dsn is not None:
        if connection.dsn.lower() not in {d.lower() for d in data_sources}:
            listing = ", ".join(repr(d) for d in sorted(data_sources)) or "(none)"
            raise ConfigurationError(
                f"ODBC data source {connection.dsn!r} is not defined; defined data sources: "
                f"{listing} (see odbcinst -q -s)"
            )
    else:
        raise ConfigurationError(
            "the ODBC connection string names neither DRIVER= nor DSN=; "
            "e.g. DRIVER={PostgreSQL Unicode};SERVER=host;DATABASE=db;UID=user;PWD=${PASSWORD}"
        )
