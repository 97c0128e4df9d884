"""Model steps: clean context into a model, validated structured output back.

Declare a :class:`ModelStep` (context table, pydantic output model, versioned
:class:`Prompt`, provider chain ending in :class:`LocalRules`, timeout, concurrency,
budget, failure threshold) and run it with :func:`run_model_step`. Around each call:
a timeout, retries with backoff on 429/5xx/dropped connections, validation against the
schema and the context's provenance, one repair retry, the next provider on failure,
a per-run cost budget, and a warehouse-backed cache so unchanged context is never sent
twice. :meth:`ModelRun.metadata` sums it up for the orchestrator.

Imports no dagster.
"""

from ._cache import CACHE_SCHEMA, CACHE_TABLE, CachedAnswer, ModelCache, cache_key
from ._costs import Budget, Price, PriceTable
from ._errors import ModelStepError, ModelStepFailed, OutputRejected, ProviderError
from ._guard import check_output, cited_ids, repair_messages
from ._providers import (
    ENV_PREFIX,
    Completion,
    CompletionRequest,
    LocalRules,
    OpenAICompatible,
    Provider,
)
from ._run import ModelRun, percentile, read_contexts, run_model_step
from ._step import ModelStep, Prompt
from ._tables import ERRORS_SCHEMA, output_schema

__all__ = [
    "CACHE_SCHEMA",
    "CACHE_TABLE",
    "ENV_PREFIX",
    "ERRORS_SCHEMA",
    "Budget",
    "CachedAnswer",
    "Completion",
    "CompletionRequest",
    "LocalRules",
    "ModelCache",
    "ModelRun",
    "ModelStep",
    "ModelStepError",
    "ModelStepFailed",
    "OpenAICompatible",
    "OutputRejected",
    "Price",
    "PriceTable",
    "Prompt",
    "Provider",
    "ProviderError",
    "cache_key",
    "check_output",
    "cited_ids",
    "output_schema",
    "percentile",
    "read_contexts",
    "repair_messages",
    "run_model_step",
]
