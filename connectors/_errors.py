"""The errors a connector raises, named for what the caller should do.

::

    HeadwaterError                  base; never raised itself
    ├── ConfigurationError          fix the configuration; retrying will not help
    ├── AuthenticationError         fix the credentials; fatal, never retried
    ├── RetriableSourceError        transient (network, timeout, restart); retry with backoff
    ├── SkippableRecordError        one record is unusable; skip it, count it, go on
    └── DataContractError           data breaks the declared contract; stop the stream,
                                    write nothing for the offending batch

Messages name the fix and carry no secrets or payloads: every message passes through
``connectors.redact`` when the error is built.
"""

from __future__ import annotations

from ._redaction import redact

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DataContractError",
    "HeadwaterError",
    "RetriableSourceError",
    "SkippableRecordError",
]


class HeadwaterError(Exception):
    """Base of every error headwater raises on purpose.

    ``retriable`` tells orchestration whether another attempt can succeed.
    """

    retriable = False

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(HeadwaterError):
    """The configuration is wrong (unknown table, bad URL, missing variable)."""


class AuthenticationError(HeadwaterError):
    """The source rejected the credentials. Fatal: retrying would only lock the account."""


class RetriableSourceError(HeadwaterError):
    """A transient failure: the same request may succeed later.

    ``retry_after`` carries a delay the source asked for (seconds), if it gave one.
    """

    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SkippableRecordError(HeadwaterError):
    """A single record cannot be used; the stream goes on without it."""


class DataContractError(HeadwaterError):
    """Data does not match what the stream declared (types, keys, cursor)."""
