"""The errors of model steps, named for what the caller should do.

::

    HeadwaterError (connectors)
    ├── ConfigurationError      the step or provider is declared wrong (no base URL, no
    │                           price for a budgeted provider, an output model strict
    │                           structured output cannot express): fix the declaration
    ├── AuthenticationError     the endpoint refused the API key: fix the key; the step
    │                           stops (answers already paid for are kept in the cache)
    └── ModelStepError          base of the errors below
        ├── ProviderError       one request failed (a timeout, a 5xx, a 4xx, a rule that
        │                       raised): retried if ``retriable``; ``fatal`` ones (a 4xx
        │                       other than 408/409/429) end the provider for the run
        ├── OutputRejected      the answer is not valid JSON, breaks the schema or cites
        │                       a source the model did not see: a repair, then the next
        │                       provider
        └── ModelStepFailed     too many contexts fell back or failed: the attempts and
                                errors tables are written, the last good output is kept:
                                read model_attempts_<step>, fix, run again

Messages carry no secrets (they pass through ``connectors.redact``) and no payloads.
"""

from __future__ import annotations

from typing import Any

from connectors import HeadwaterError


class ModelStepError(HeadwaterError):
    """Base of the model-step errors."""


class ProviderError(ModelStepError):
    """One request to a provider failed.

    ``reason`` is a short label that groups in the attempts table and the step's top
    reasons (``timeout``, ``http 503``, ``connection``, ``malformed response``,
    ``http 400``, ``rules raised``); ``status`` the HTTP status, ``request_id`` the
    endpoint's id for the request, ``retry_after`` the seconds it asked to wait.
    ``retriable``: the same request may succeed later. ``fatal``: the provider cannot
    answer this step at all (a 4xx other than 408, 409, 429): the chain stops asking it
    for the rest of the run.
    """

    def __init__(self, message: str, *, reason: str = "error", status: int | None = None,
                 request_id: str | None = None, retry_after: float | None = None,
                 retriable: bool = False, fatal: bool = False) -> None:
        super().__init__(message)
        self.reason, self.status, self.request_id = reason, status, request_id
        self.retry_after, self.retriable, self.fatal = retry_after, retriable, fatal


class OutputRejected(ModelStepError):
    """An answer failed validation; ``reason`` is what the repair prompt tells the model,
    ``kind`` the short label it is counted under (``invalid json``, ``schema``,
    ``citation``, ``too few citations``, ``refused``)."""

    def __init__(self, reason: str, kind: str = "invalid answer") -> None:
        super().__init__(reason)
        self.reason = self.message
        self.kind = kind


class ModelStepFailed(ModelStepError):
    """Too many contexts fell back or failed (the attempts and errors tables are
    written; the output table keeps its last good rows).

    ``run`` is the :class:`~pipelines.models.ModelRun`, so that its metadata, fallback
    share and top reasons can still be published."""

    def __init__(self, message: str, *, run: Any = None) -> None:
        super().__init__(message)
        self.run = run
