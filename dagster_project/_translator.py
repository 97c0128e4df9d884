"""The one place that names things in Dagster: asset keys, groups, kinds, owners, tags.

Warehouse tables map to asset keys by layer (``raw_erp__orders`` is ``raw/erp/orders``,
``clean_order`` is ``clean/order``), so column lineage written in table names by the
lower layers becomes asset lineage here without a second declaration. Subclass
:class:`HeadwaterTranslator` and pass it to ``build_definitions`` to name things your
way (as dagster-dlt's and dagster-sling's translators are subclassed).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from dagster import AssetKey

from connectors import SourceIdentity
from normalization import EntityMapping
from pipelines.config import ConnectorConfig
from pipelines.warehouse import raw_table_name

_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]+")


def name_part(text: str) -> str:
    """``text`` as an asset key part: letters, digits and underscores, lower case."""
    return _NOT_A_NAME.sub("_", text).strip("_").lower() or "_"


def warehouse_kind(url: str) -> str:
    return "duckdb" if url.startswith("duckdb") else "postgres"


def code_version(*parts: Any) -> str:
    """A short digest of what defines an asset's logic, so changed code shows as stale."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:12]


class HeadwaterTranslator:
    """How headwater's tables and sources appear in Dagster. Override any method."""

    # Table prefix -> the asset key's layer, and the suffix that keeps the key's last part
    # (the label the lineage graph shows) unique: clean/account, not a third "account".
    _LAYERS = (("clean_", "clean", ""), ("quarantine_", "quarantine", "_quarantine"),
               ("ref_", "reference", ""), ("context_", "context", "_context"),
               ("model_errors_", "model_errors", "_errors"),
               ("model_attempts_", "model_attempts", "_attempts"), ("model_", "model", ""))

    def asset_key(self, table: str) -> AssetKey:
        """The asset that materializes a warehouse table, by the table's layer prefix."""
        if table.startswith("raw_") and "__" in table:
            source, _, stream = table.removeprefix("raw_").partition("__")
            return AssetKey(["raw", source, stream])
        for prefix, layer, suffix in self._LAYERS:
            if table.startswith(prefix):
                return AssetKey([layer, table.removeprefix(prefix) + suffix])
        return AssetKey(["warehouse", name_part(table)])

    def raw_key(self, connector: str, stream: str) -> AssetKey:
        return self.asset_key(raw_table_name(connector, stream))

    def source_key(self, identity: SourceIdentity) -> AssetKey:
        """The external node for what a stream reads: a table, an endpoint or an operation."""
        what = identity.object
        if identity.object_kind == "endpoint":  # "GET /api/tickets": the path names it
            what = what.split(" ", 1)[-1]
        return AssetKey([identity.system, "source", name_part(what)])

    def connector_group(self, connector: ConnectorConfig) -> str:
        """The group of a connector's source nodes and raw assets."""
        return connector.name

    def entity_group(self, mapping: EntityMapping) -> str:
        """The group of an entity's clean and quarantine assets: its source system."""
        return mapping.source.removeprefix("raw_").partition("__")[0]

    def owners(self, connector: ConnectorConfig) -> list[str]:
        return [str(owner) for owner in connector.settings.owners]

    def tags(self, connector: ConnectorConfig) -> dict[str, str]:
        return {name_part(k): str(v) for k, v in connector.settings.tags.items()}

    def source_kind(self, identity: SourceIdentity) -> str:
        """The technology shown as the source's kind tag."""
        return {"postgresql": "postgres", "mssql": "sqlserver"}.get(identity.kind,
                                                                    identity.kind)

    def source_metadata(self, identity: SourceIdentity) -> dict[str, Any]:
        """What a source node shows: system, kind, where, what (never credentials)."""
        return {"system": identity.system, "kind": identity.kind,
                "location": identity.location, identity.object_kind: identity.object}

    def label(self, table: str) -> str:
        """How lineage tables name a warehouse table: its asset key."""
        return self.asset_key(table).to_user_string()
