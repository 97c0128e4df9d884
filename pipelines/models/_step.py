"""A model step declared as data: what it reads, asks, expects, and may spend.

Declaring is separate from running (:func:`pipelines.models.run_model_step`). A step
reads one context table, renders its versioned :class:`Prompt` around each document,
asks its providers in order and keeps the first answer that validates against its
pydantic ``output`` model and cites only sources in the context's provenance.
"""

from __future__ import annotations

import functools
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pydantic

from connectors import ConfigurationError

from .._canonical import canonical_json, content_hash
from ._costs import PriceTable
from ._providers import LocalRules, Provider

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
    """A model step: writes ``model_<name>`` (one row per context) and
    ``model_errors_<name>`` (one row per context no provider could answer).

    ``providers`` is the fallback chain, tried in order; it must end with
    :class:`LocalRules` so that every context can get an answer offline. ``timeout`` bounds
    each call attempt, ``concurrency`` the contexts in flight, ``budget`` what paid calls
    may cost per run (priced by ``prices``), ``max_failure_share`` the share of contexts
    that may fail before the step fails. ``citations_field`` is the output field listing
    the ``source_id`` values the answer rests on.
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

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.match(self.name):
            problems.append("name must be lower-case letters, digits and _")
        if not self.providers or not isinstance(self.providers[-1], LocalRules):
            problems.append("the provider chain must end with LocalRules (offline fallback)")
        cites = self.output.model_fields.get(self.citations_field)
        if cites is None or typing.get_origin(cites.annotation) is not list:
            problems.append(f"the output model needs a list field {self.citations_field!r} "
                            "for the source ids it cites")
        clashing = set(self.output.model_fields) & {"context_id", *(n for n, _ in LINEAGE_FIELDS)}
        if clashing:
            problems.append(f"output fields {sorted(clashing)} clash with lineage columns")
        if self.timeout <= 0 or self.concurrency < 1 or self.max_output_tokens < 1:
            problems.append("timeout, concurrency and max_output_tokens must be positive")
        if not 0 <= self.max_failure_share <= 1:
            problems.append("max_failure_share must be between 0 and 1")
        if self.budget is not None:
            unpriced = [p.label for p in self.providers
                        if p.paid and self.prices.price(p.name, p.model) is None]
            if unpriced:
                problems.append(f"a budget needs a price for {unpriced} in the price table")
        if problems:
            raise ConfigurationError(f"model step {self.name!r}: {'; '.join(problems)}")

    @property
    def output_table(self) -> str:
        return f"model_{self.name}"

    @property
    def errors_table(self) -> str:
        return f"model_errors_{self.name}"

    @functools.cached_property
    def json_schema(self) -> dict[str, Any]:
        """The output model as JSON Schema, as sent in ``response_format``."""
        return self.output.model_json_schema()

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the prompt's text and the output schema (part of the cache key)."""
        return content_hash(canonical_json([self.prompt.system, self.prompt.template,
                                            self.json_schema]))[:16]
