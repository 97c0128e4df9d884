"""Warehouses: one interface, an embedded DuckDB file (default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from connectors import ConfigurationError

from ._base import (
    DELETED_AT,
    PROVENANCE_COLUMNS,
    STATE_TABLE,
    KeyedRows,
    Provenance,
    RowsGone,
    SchemaDiff,
    Settled,
    Warehouse,
    quote,
    raw_table_name,
    rebuild_hint,
    rejects_table_name,
)
from ._duckdb import DuckDBWarehouse
from ._locks import DEFAULT_LOCK_WAIT, StreamLocked


def open_warehouse(url: str) -> Warehouse:
    """Open a warehouse by URL: ``duckdb:///path.duckdb`` or ``postgresql://...``.

    A DuckDB URL may set ``?memory_limit=1GB`` (default 64MB); a PostgreSQL URL may
    name the schema with ``?schema=name`` (default ``public``). Either may set
    ``lock_wait=<seconds>``: how long a second run of a stream waits for the first
    before it fails naming it (default 5).
    """
    if url.startswith("duckdb://"):
        location, _, query = url.removeprefix("duckdb://").removeprefix("/").partition("?")
        options: dict[str, Any] = dict(part.split("=", 1) for part in query.split("&")
                                       if "=" in part)
        unknown = set(options) - {"memory_limit", "lock_wait"}
        if unknown:
            raise ConfigurationError(f"unknown DuckDB warehouse option(s) {sorted(unknown)}; "
                                     "known: lock_wait, memory_limit")
        if "lock_wait" in options:
            options["lock_wait"] = _seconds(options["lock_wait"])
        return DuckDBWarehouse(location or ":memory:", **options)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"bad warehouse URL ({exc})") from exc
    if parsed.get_backend_name() == "postgresql":
        from ._postgres import PostgresWarehouse

        schema = parsed.query.get("schema", "public")
        wait = parsed.query.get("lock_wait")
        rest = parsed.difference_update_query(["schema", "lock_wait"])
        return PostgresWarehouse(
            rest.render_as_string(hide_password=False), schema=str(schema),
            lock_wait=DEFAULT_LOCK_WAIT if wait is None else _seconds(str(wait)),
        )
    raise ConfigurationError(
        f"unsupported warehouse {parsed.get_backend_name()!r}: use duckdb:///path or postgresql://"
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigurationError(
            f"warehouse option lock_wait={text!r} is not a number of seconds (0 or more)"
        )
    return seconds


__all__ = [
    "DELETED_AT",
    "PROVENANCE_COLUMNS",
    "STATE_TABLE",
    "DuckDBWarehouse",
    "KeyedRows",
    "Provenance",
    "RowsGone",
    "SchemaDiff",
    "Settled",
    "StreamLocked",
    "Warehouse",
    "open_warehouse",
    "quote",
    "raw_table_name",
    "rebuild_hint",
    "rejects_table_name",
]
