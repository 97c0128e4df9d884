"""headwater connectors: extraction from source systems into Arrow record batches.

This layer imports no pandas, pandera or dagster. Names are loaded when first used
(PEP 562): ``from connectors import ConfigurationError`` loads the error tree alone, and
an ODBC, SOAP or REST stack is imported only by the code that uses it, so a machine
without unixODBC can still use every other kind.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ._identity import SourceIdentity
    from ._incremental import Incremental, KeyRange, MissingCursor, Window
    from ._redaction import RedactingFilter, redact, register_secret
    from ._retry import NO_RETRY, Retrier, RetryPolicy
    from ._state import (
        checkpoint_of,
        dumps_state,
        loads_state,
        with_checkpoint,
        without_checkpoint,
    )
    from ._stream import Stream, stream_name_for
    from .odbc import ODBCConnector
    from .rest import RESTConnector, RESTStream
    from .soap import SOAPConnector, SOAPStream
    from .sql import SQLConnector, SQLQuery, SQLTable

# Public name -> the module that defines it.
_WHERE = {
    "Connector": "._base",
    "RecordBatcher": "._batching", "batch_records": "._batching",
    "AuthenticationError": "._errors", "ConfigurationError": "._errors",
    "DataContractError": "._errors", "HeadwaterError": "._errors",
    "RetriableSourceError": "._errors", "SkippableRecordError": "._errors",
    "Incremental": "._incremental", "KeyRange": "._incremental",
    "MissingCursor": "._incremental", "Window": "._incremental",
    "RedactingFilter": "._redaction", "redact": "._redaction",
    "register_secret": "._redaction",
    "NO_RETRY": "._retry", "Retrier": "._retry", "RetryPolicy": "._retry",
    "checkpoint_of": "._state", "dumps_state": "._state", "loads_state": "._state",
    "with_checkpoint": "._state", "without_checkpoint": "._state",
    "SourceIdentity": "._identity",
    "Stream": "._stream", "stream_name_for": "._stream",
    "ODBCConnector": ".odbc",
    "RESTConnector": ".rest", "RESTStream": ".rest",
    "SOAPConnector": ".soap", "SOAPStream": ".soap",
    "SQLConnector": ".sql", "SQLQuery": ".sql", "SQLTable": ".sql",
}

__all__ = [
    "NO_RETRY",
    "AuthenticationError",
    "ConfigurationError",
    "Connector",
    "DataContractError",
    "HeadwaterError",
    "Incremental",
    "KeyRange",
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
    "SourceIdentity",
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'connectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
