"""A model step declared as data: what it reads, asks, expects, may spend and wait.

Declaring is separate from running (:func:`pipelines.models.run_model_step`). A step
reads one context table, renders its versioned :class:`Prompt` around each document,
asks its providers in order and keeps the first answer that validates against its
pydantic ``output`` model and cites only sources in the context's provenance.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pydantic

from connectors import ConfigurationError

from .._canonical import canonical_json, content_hash
from ._costs import PriceTable
from ._providers import LocalRules, Provider
from ._schema import strict_json_schema

CONTEXT_PLACEHOLDER = "{context}"
# The columns of model_<step> besides context_id and the answer's own fields.
LINEAGE_FIELDS = [
    ("output", pa.string()), ("cited", pa.string()), ("provider", pa.string()),
    ("model", pa.string()), ("prompt_version", pa.string()), ("content_hash", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()), ("cost", pa.float64()),
    ("latency_ms", pa.float64()), ("attempts", pa.int64()), ("cached", pa.bool_()),
    ("fallback_reason", pa.string()), ("run_id", pa.string()),
]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Prompt:
    """A prompt and its version. ``{context}`` in ``template`` becomes the context
    document. Bump ``version`` when the wording changes; the cache keys on it (and on
    the text itself, so a forgotten bump cannot serve answers to the old wording)."""

    version: str
    system: str
    template: str

    def __post_init__(self) -> None:
        if CONTEXT_PLACEHOLDER not in self.template or not self.version:
            raise ConfigurationError(f"prompt {self.version!r}: the template needs "
                                     f"{CONTEXT_PLACEHOLDER} and the prompt a version")

    def messages(self, document: str) -> list[dict[str, Any]]:
        """The conversation for one context document (canonical JSON text)."""
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.template.replace(CONTEXT_PLACEHOLDER, document)}]


@dataclass(frozen=True)
class ModelStep:
    """A model step: writes ``model_<name>`` (one row per context, replaced only when the
    step succeeds), ``model_errors_<name>`` (one row per context no provider could answer)
    and appends to ``model_attempts_<name>`` (one row per request or skipped provider).

    ``providers`` is the fallback chain, tried in order; it must end with
    :class:`LocalRules` so that every context can get an answer offline.

    Bounds: ``timeout`` is each request's wall deadline, connect to last byte;
    ``run_deadline`` (seconds, None: none) ends the paid part of a run: contexts not
    answered by then go to the rules; ``concurrency`` is the contexts (and so requests)
    in flight; ``breaker_failures`` consecutive failed requests to a provider open its
    circuit for ``breaker_cooldown`` seconds (its contexts go to the next provider).

    Money: ``budget`` caps what one run may spend and ``daily_budget`` what the step may
    spend per UTC day (counted from the attempts table), both priced by ``prices``; a
    request reserves its worst case first, so neither is ever passed.

    Judgement: more than ``max_fallback_share`` of the contexts not answered by the first
    provider, or more than ``max_failure_share`` answered by none, fails the step
    (:class:`ModelStepFailed`, naming the top reasons). An invalid answer is sent back
    ``max_repairs`` times; a provider whose answers for a context stayed invalid is
    passed over for that context for ``rejection_ttl`` seconds (0: asked every run).
    ``citations_field`` is the output field listing the ``source_id`` values the answer
    rests on; at least ``min_citations`` of them, all from what the model was shown.
    """

    name: str
    context: str
    output: type[pydantic.BaseModel]
    prompt: Prompt
    providers: tuple[Provider, ...]
    timeout: float = 30.0
    concurrency: int = 4
    budget: float | None = None
    max_failure_share: float = 0.05
    prices: PriceTable = field(default_factory=PriceTable)
    citations_field: str = "cited_sources"
    min_citations: int = 1
    max_output_tokens: int = 512
    max_fallback_share: float = 0.05
    max_repairs: int = 1
    run_deadline: float | None = None
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    daily_budget: float | None = None
    rejection_ttl: float = 86_400.0
    # Output field -> the document paths it is answered from ("counts.open_tickets",
    # "open_tickets.priority"): what lineage shows instead of the whole document.
    field_lineage: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_lineage",
                           {k: tuple(v) for k, v in dict(self.field_lineage).items()})
        problems = self._chain_problems() + self._output_problems() + self._bound_problems()
        if problems:
            raise ConfigurationError(f"model step {self.name!r}: {'; '.join(problems)}")
        if any(p.strict for p in self.providers):
            strict_json_schema(self.output)  # names the field strict mode cannot express

    def _chain_problems(self) -> list[str]:
        problems = []
        if not _NAME.match(self.name):
            problems.append("name must be lower-case letters, digits and _")
        if not self.providers or not isinstance(self.providers[-1], LocalRules):
            problems.append("the provider chain must end with LocalRules (offline fallback)")
        if self.budget is not None or self.daily_budget is not None:
            unpriced = [p.label for p in self.providers
                        if p.paid and self.prices.price(p.name, p.model) is None]
            if unpriced:
                problems.append(f"a budget needs a price for {unpriced} in the price table")
        return problems

    def _output_problems(self) -> list[str]:
        problems = []
        cites = self.output.model_fields.get(self.citations_field)
        if cites is None or typing.get_origin(cites.annotation) is not list:
            problems.append(f"the output model needs a list field {self.citations_field!r} "
                            "for the source ids it cites")
        clashing = set(self.output.model_fields) & {"context_id", *(n for n, _ in LINEAGE_FIELDS)}
        if clashing:
            problems.append(f"output fields {sorted(clashing)} clash with lineage columns")
        unknown = sorted(set(self.field_lineage) - set(self.output.model_fields))
        if unknown:
            problems.append(f"field_lineage names fields the output model lacks: {unknown}")
        return problems

    def _bound_problems(self) -> list[str]:
        problems = []
        if (self.timeout <= 0 or self.concurrency < 1 or self.max_output_tokens < 1
                or self.breaker_failures < 1):
            problems.append("timeout, concurrency, max_output_tokens and breaker_failures "
                            "must be positive")
        if (self.max_repairs < 0 or self.breaker_cooldown < 0 or self.rejection_ttl < 0
                or (self.run_deadline is not None and self.run_deadline <= 0)):
            problems.append("max_repairs, breaker_cooldown and rejection_ttl must not be "
                            "negative, and run_deadline must be positive")
        if not (0 <= self.max_failure_share <= 1 and 0 <= self.max_fallback_share <= 1):
            problems.append("max_failure_share and max_fallback_share must be between 0 and 1")
        if any(b is not None and b < 0 for b in (self.budget, self.daily_budget)):
            problems.append("budget and daily_budget must not be negative")
        return problems

    @property
    def output_table(self) -> str:
        return f"model_{self.name}"

    @property
    def errors_table(self) -> str:
        return f"model_errors_{self.name}"

    @property
    def attempts_table(self) -> str:
        return f"model_attempts_{self.name}"

    @functools.cached_property
    def json_schema(self) -> dict[str, Any]:
        """The output model as JSON Schema, as sent in ``response_format``: closed for
        strict structured output where it can be (see :mod:`pipelines.models._schema`)."""
        try:
            return strict_json_schema(self.output)
        except ConfigurationError:
            return self.output.model_json_schema()  # no strict provider: sent as it is

    @functools.cached_property
    def schema_bytes(self) -> int:
        """The size of :attr:`json_schema` as sent, for the worst-case prompt."""
        return len(canonical_json(self.json_schema).encode("utf-8"))

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the prompt's text and the output schema (part of the cache key)."""
        return content_hash(canonical_json([self.prompt.system, self.prompt.template,
                                            self.json_schema]))[:16]
