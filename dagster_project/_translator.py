"""The one place that names things in Dagster: asset keys, groups, kinds, owners, tags.

Warehouse tables map to asset keys by layer (``raw_erp__orders`` is ``raw/erp/orders``,
``clean_order`` is ``clean/order``), so column lineage written in table names by the
lower layers becomes asset lineage here without a second declaration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dagster import AssetKey

from normalization import EntityMapping
from pipelines.warehouse import raw_table_name

_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]+")
_URL_KINDS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql",
              "mariadb": "mariadb", "mssql": "sqlserver", "oracle": "oracle", "db2": "db2"}


def name_part(text: str) -> str:
    """``text`` as an asset key part: letters, digits and underscores, lower case."""
    return _NOT_A_NAME.sub("_", text).strip("_").lower() or "_"


def asset_key_for_table(table: str) -> AssetKey:
    """The asset that materializes a warehouse table, by the table's layer prefix."""
    if table.startswith("raw_") and "__" in table:
        source, _, stream = table.removeprefix("raw_").partition("__")
        return AssetKey(["raw", source, stream])
    for prefix, layer in (("clean_", "clean"), ("quarantine_", "quarantine"),
                          ("ref_", "reference"), ("context_", "context"),
                          ("model_errors_", "model_errors"), ("model_", "model")):
        if table.startswith(prefix):
            return AssetKey([layer, table.removeprefix(prefix)])
    return AssetKey(["warehouse", name_part(table)])


def raw_key(connector: str, stream: str) -> AssetKey:
    return asset_key_for_table(raw_table_name(connector, stream))


def source_key(connector: str, spec: Mapping[str, Any], stream: Mapping[str, Any]) -> AssetKey:
    """The external node for what a stream reads: a table, an endpoint or an operation."""
    what = stream.get("table") or stream.get("path") or stream.get("operation") \
        or stream.get("name", "query")
    return AssetKey([connector, "source", name_part(str(what))])


def source_kind(spec: Mapping[str, Any]) -> str:
    """The technology of a source: its database for SQL URLs, else its connector kind."""
    kind = spec.get("kind", "sql")
    if kind == "sql" and "url" in spec:
        backend = str(spec["url"]).split(":", 1)[0].split("+", 1)[0]
        return _URL_KINDS.get(backend, backend)
    return kind


def warehouse_kind(url: str) -> str:
    return "duckdb" if url.startswith("duckdb") else "postgres"


def source_system(mapping: EntityMapping) -> str:
    """The source system an entity is cleaned from: its group in the UI."""
    return mapping.source.removeprefix("raw_").partition("__")[0]


def owners(spec: Mapping[str, Any]) -> list[str]:
    return [str(owner) for owner in spec.get("owners", [])]


def tags(spec: Mapping[str, Any]) -> dict[str, str]:
    return {name_part(k): str(v) for k, v in dict(spec.get("tags", {})).items()}


def code_version(*parts: Any) -> str:
    """A short digest of what defines an asset's logic, so changed code shows as stale."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:12]


def public_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A connector spec without credentials, addresses or its streams (each stream's
    asset hashes its own declaration): what a stream's code version hashes."""
    hidden = ("password", "secret", "token", "key", "url", "connection_string", "auth", "wsdl",
              "base_url", "username", "streams")
    return {k: v for k, v in spec.items() if not any(h in k for h in hidden)}
