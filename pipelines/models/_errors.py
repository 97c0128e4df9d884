"""The errors of model steps, named for what the caller should do.

::

    HeadwaterError (connectors)
    ├── ConfigurationError      the step or provider is declared wrong (no base URL, no
    │                           price for a budgeted provider): fix the declaration
    ├── AuthenticationError     the endpoint refused the API key: fix the key; the step
    │                           stops at once rather than fall back for every context
    └── ModelStepError          base of the errors below
        ├── ProviderError       one call failed for good (retries spent, a 4xx, a rule
        │                       raised): the chain moves to its next provider
        ├── OutputRejected      the answer is not valid JSON, breaks the schema or cites
        │                       a source the context lacks: one repair, then next provider
        └── ModelStepFailed     too many contexts failed; the output and errors tables
                                are written: read model_errors_<step>, fix, run again

Messages carry no secrets (they pass through ``connectors.redact``) and no payloads.
"""

from __future__ import annotations

from typing import Any

from connectors import HeadwaterError


class ModelStepError(HeadwaterError):
    """Base of the model-step errors."""


class ProviderError(ModelStepError):
    """One provider could not answer one context; the next provider in the chain tries."""


class OutputRejected(ModelStepError):
    """An answer failed validation; ``reason`` is what the repair prompt tells the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = self.message


class ModelStepFailed(ModelStepError):
    """The share of failed contexts passed the step's threshold (tables are written).

    ``run`` is the :class:`~pipelines.models.ModelRun`, so that its metadata can still be
    published."""

    def __init__(self, message: str, *, run: Any = None) -> None:
        super().__init__(message)
        self.run = run
