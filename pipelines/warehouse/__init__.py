"""Warehouses: one interface, an embedded DuckDB file (default) and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from connectors import ConfigurationError

from ._base import PROVENANCE_COLUMNS, STATE_TABLE, Provenance, Warehouse, quote, raw_table_name
from ._duckdb import DuckDBWarehouse


def open_warehouse(url: str) -> Warehouse:
    """Open a warehouse by URL: ``duckdb:///path.duckdb`` or ``postgresql://...``.

    A DuckDB URL may set ``?memory_limit=1GB`` (default 64MB); a PostgreSQL URL may
    name the schema with ``?schema=name`` (default ``public``).
    """
    if url.startswith("duckdb://"):
        location, _, query = url.removeprefix("duckdb://").removeprefix("/").partition("?")
        options = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        unknown = set(options) - {"memory_limit"}
        if unknown:
            raise ConfigurationError(f"unknown DuckDB warehouse option(s) {sorted(unknown)}; "
                                     "known: memory_limit")
        return DuckDBWarehouse(location or ":memory:", **options)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"bad warehouse URL ({exc})") from exc
    if parsed.get_backend_name() == "postgresql":
        from ._postgres import PostgresWarehouse

        schema = parsed.query.get("schema", "public")
        return PostgresWarehouse(parsed.difference_update_query(["schema"]).render_as_string(
            hide_password=False), schema=str(schema))
    raise ConfigurationError(
        f"unsupported warehouse {parsed.get_backend_name()!r}: use duckdb:///path or postgresql://"
    )


__all__ = [
    "PROVENANCE_COLUMNS",
    "STATE_TABLE",
    "DuckDBWarehouse",
    "Provenance",
    "Warehouse",
    "open_warehouse",
    "quote",
    "raw_table_name",
]
