"""Model steps: clean context into a model, validated structured output back.

Declare a :class:`ModelStep` (context table, pydantic output model, versioned
:class:`Prompt`, provider chain ending in :class:`LocalRules`, deadlines, concurrency,
circuit breaker, budgets, fallback and failure thresholds) and run it with
:func:`run_model_step`. Around each request: the circuit breaker, the shared
``Retry-After``, rate limits, a reservation of its worst-case cost, a wall deadline from
connect to last byte, retries with backoff; around each answer: validation against the
schema and what the model saw, repairs, the next provider on failure. Every request is
recorded in ``model_attempts_<step>``, every validated answer written to the cache as it
arrives, and the output replaced only when the step succeeds. :meth:`ModelRun.metadata`
sums it up for the orchestrator.

Imports no dagster.
"""

from ._cache import (
    CACHE_SCHEMA,
    CACHE_TABLE,
    CachedAnswer,
    ModelCache,
    cache_key,
    clear_model_cache,
)
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
from ._report import ModelRun, percentile
from ._run import REFRESH_CHOICES, read_contexts, run_model_step
from ._schema import strict_json_schema
from ._step import ModelStep, Prompt
from ._tables import ATTEMPTS_SCHEMA, ERRORS_SCHEMA, output_schema

__all__ = [
    "ATTEMPTS_SCHEMA",
    "CACHE_SCHEMA",
    "CACHE_TABLE",
    "ENV_PREFIX",
    "ERRORS_SCHEMA",
    "REFRESH_CHOICES",
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
    "clear_model_cache",
    "output_schema",
    "percentile",
    "read_contexts",
    "repair_messages",
    "run_model_step",
    "strict_json_schema",
]
