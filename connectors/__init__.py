"""headwater connectors: extraction from source systems into Arrow record batches.

This layer imports no pandas, pandera or dagster.
"""

from ._base import Connector
from ._batching import RecordBatcher, batch_records
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    HeadwaterError,
    RetriableSourceError,
    SkippableRecordError,
)
from ._incremental import Incremental, MissingCursor, Window
from ._redaction import RedactingFilter, redact, register_secret
from ._retry import NO_RETRY, Retrier, RetryPolicy
from ._state import checkpoint_of, dumps_state, loads_state, with_checkpoint, without_checkpoint
from ._stream import Stream, stream_name_for
from .odbc import ODBCConnector
from .rest import RESTConnector, RESTStream
from .soap import SOAPConnector, SOAPStream
from .sql import SQLConnector, SQLQuery, SQLTable

__all__ = [
    "NO_RETRY",
    "AuthenticationError",
    "ConfigurationError",
    "Connector",
    "DataContractError",
    "HeadwaterError",
    "Incremental",
    "MissingCursor",
    "ODBCConnector",
    "RESTConnector",
    "RESTStream",
    "RecordBatcher",
    "RedactingFilter",
    "RetriableSourceError",
    "Retrier",
    "RetryPolicy",
    "SOAPConnector",
    "SOAPStream",
    "SQLConnector",
    "SQLQuery",
    "SQLTable",
    "SkippableRecordError",
    "Stream",
    "Window",
    "batch_records",
    "checkpoint_of",
    "dumps_state",
    "loads_state",
    "redact",
    "register_secret",
    "stream_name_for",
    "with_checkpoint",
    "without_checkpoint",
]
