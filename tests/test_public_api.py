"""The public surface changes only on purpose: these lists are the contract."""

from __future__ import annotations

import connectors
import connectors.http
import connectors.odbc
import connectors.rest
import connectors.soap
import connectors.sql
import connectors.testing
import normalization
import pipelines.warehouse

PINNED = {
    connectors: [
        "NO_RETRY", "AuthenticationError", "ConfigurationError", "Connector",
        "DataContractError", "HeadwaterError", "Incremental", "KeyRange", "MissingCursor",
        "ODBCConnector", "RESTConnector", "RESTStream", "RecordBatcher", "RedactingFilter",
        "Retrier", "RetriableSourceError", "RetryPolicy",
        "SOAPConnector", "SOAPStream", "SQLConnector", "SQLQuery", "SQLTable",
        "SkippableRecordError", "SourceIdentity", "Stream", "Window",
        "batch_records", "checkpoint_of", "dumps_state", "loads_state", "redact",
        "register_secret", "stream_name_for", "with_checkpoint", "without_checkpoint",
    ],
    connectors.sql: [
        "ReadPlan", "SQLConnector", "SQLQuery", "SQLTable", "after_key", "arrow_type",
        "chunk_select", "create_source_engine", "declared_column_type", "describe_url",
        "translate_error",
    ],
    connectors.odbc: [
        "ANSIDialect", "ConnectionString", "ODBCColumn", "ODBCConnector", "ODBCReadPlan",
        "column_type", "compile_sql", "datetimeoffset", "dialect_for", "family_of",
        "fast_path_available", "graphic", "graphic_decoder",
    ],
    connectors.http: [
        "DEFAULT_DEADLINE", "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_TIMEOUT", "APIKey", "Auth",
        "BasicAuth", "BearerToken", "Deadline", "HTTPClient", "OAuth2ClientCredentials",
        "RateLimit", "WatchedAdapter", "armed", "describe", "read_body",
        "retry_after_seconds", "wait_needed",
    ],
    connectors.rest: [
        "CursorInBody", "DateWindows", "LinkHeader", "NextURLInBody", "Offset", "Page", "PageLoop",
        "PageNumber", "PageProgress", "PageResult", "Paginator", "RESTConnector", "RESTStream",
        "coerce", "flatten", "parse_link_header", "select_records", "value_at",
    ],
    connectors.soap: [
        "GuardedTransport", "SOAPConnector", "SOAPStream", "TimestampedUsernameToken",
        "hardened_settings", "origin_of", "translate_fault",
    ],
    connectors.testing: ["ConnectorConformance", "conformance_suite", "keys_of", "read_all"],
    normalization: [
        "CLEANERS", "CROSSWALK_SCHEMA", "PROVENANCE_COLUMNS", "QUARANTINE_SCHEMA", "Cleaner",
        "ColumnLineage", "Derived", "EntityMapping", "From", "Lookup", "MappingError",
        "NormalizationError", "NormalizeResult", "PartySource", "QuarantineThresholdExceeded",
        "Resolution", "ResolvedParties", "SourceShapeError", "Step", "as_polars", "cleaner",
        "column_lineage", "find_cleaner", "normalize", "normalize_name", "render_lineage",
        "resolve", "source_key",
    ],
    pipelines.warehouse: [
        "DELETED_AT", "PROVENANCE_COLUMNS", "STATE_TABLE", "DuckDBWarehouse", "KeyedRows",
        "Provenance", "RowsGone", "SchemaDiff", "Settled", "StreamLocked", "Warehouse",
        "open_warehouse", "quote", "raw_table_name", "rebuild_hint", "rejects_table_name",
    ],
}


def test_all_is_pinned() -> None:
    for module, names in PINNED.items():
        assert sorted(module.__all__) == sorted(names), module.__name__


def test_every_exported_name_exists() -> None:
    for module in PINNED:
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], module.__name__
