"""Serving one context: the provider chain, the repair retry, the budget.

:class:`ChainServer` is what a worker thread runs per context the cache could not
answer. From the first provider the cache has no entry for, in chain order: a paid
provider first reserves its worst-case cost from the run's budget (none left: skip it,
and the context is served by fallback "for budget"); then up to two calls, the second a
repair telling the model why the first answer was rejected (rules get one call: they
would answer the same); a :class:`ProviderError`
(retries spent, a 4xx, a rule that raised) moves on at once. The first answer that
validates is served. If none does, the context fails with every provider's reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._canonical import canonical_json, estimate_tokens
from ._costs import Budget
from ._errors import OutputRejected, ProviderError
from ._guard import check_output, cited_ids, repair_messages
from ._providers import Completion, CompletionRequest, Provider
from ._step import ModelStep

CALLS_PER_PROVIDER = 2  # the first answer and one repair


@dataclass
class ContextInput:
    """One row of the context table, as the step reads it."""

    context_id: str
    content_hash: str
    document: str
    provenance: dict[str, dict[str, Any]]  # source_id -> provenance entry

    def parsed(self) -> dict[str, Any]:
        return orjson.loads(self.document)


@dataclass
class Served:
    """What happened to one context: its answer (or why there is none) and its cost."""

    context: ContextInput
    output: str | None = None  # the validated answer as canonical JSON
    answer: dict[str, Any] | None = None  # the same, parsed
    provider: Provider | None = None
    cited: list[str] = field(default_factory=list)
    error: str | None = None
    fallback_reason: str | None = None  # "failure" or "budget" when not the first provider
    cached: bool = False
    rejected: list[tuple[Provider, str]] = field(default_factory=list)  # new this run
    skipped_for_budget: bool = False
    attempts: int = 0
    repairs: int = 0
    provider_failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)  # provider label -> calls made


class _BudgetSpent(Exception):
    """The run's budget cannot cover another call to a paid provider."""


class ChainServer:
    """Serves contexts through a step's provider chain; one instance per run, shared by
    the worker threads (its only shared state is the thread-safe budget)."""

    def __init__(self, step: ModelStep, budget: Budget) -> None:
        self.step = step
        self.budget = budget

    def serve(self, context: ContextInput, known_rejections: list[str]) -> Served:
        """Answer ``context``, starting after the providers whose rejection the cache
        remembers (``known_rejections``, their reasons, one per provider)."""
        started = time.perf_counter()
        served = Served(context)
        messages = self.step.prompt.messages(context.document)
        document = context.parsed()
        reasons = list(known_rejections)
        for position, provider in enumerate(self.step.providers):
            if position < len(known_rejections):
                continue
            try:
                accepted = self._ask(provider, messages, document, served, reasons)
            except _BudgetSpent:
                served.skipped_for_budget = True
                reasons.append(f"{provider.label}: skipped, the run's budget is spent")
                continue
            if accepted:
                if position:
                    served.fallback_reason = "budget" if served.skipped_for_budget else "failure"
                break
        else:
            served.error = "; ".join(reasons)
        served.latency_ms = (time.perf_counter() - started) * 1000
        return served

    def _ask(self, provider: Provider, messages: list[dict[str, Any]],
             document: dict[str, Any], served: Served, reasons: list[str]) -> bool:
        """Ask one provider (with one repair if it can take one); True once an answer is
        accepted."""
        conversation = messages
        calls = CALLS_PER_PROVIDER if provider.repairable else 1
        for call in range(calls):
            request = CompletionRequest(served.context.context_id, conversation, self.step.name,
                                        self.step.json_schema, document, self.step.timeout,
                                        self.step.max_output_tokens)
            try:
                completion = self._call(provider, request, served)
            except ProviderError as exc:
                served.provider_failures += 1
                reasons.append(exc.message)
                return False
            try:
                answer = self._check(completion, served.context)
            except OutputRejected as exc:
                reasons.append(f"{provider.label}: {exc.reason}")
                if call + 1 == calls:
                    served.rejected.append((provider, exc.reason))
                    return False
                served.repairs += 1
                conversation = repair_messages(messages, completion.text, exc.reason)
                continue
            served.answer = answer.model_dump(mode="json")
            served.output = canonical_json(served.answer)
            served.cited = cited_ids(answer, self.step.citations_field)
            served.provider = provider
            return True
        return False

    def _call(self, provider: Provider, request: CompletionRequest, served: Served
              ) -> Completion:
        """One call, paid for out of the budget; raises :class:`_BudgetSpent` when a paid
        provider's worst case no longer fits."""
        prices = self.step.prices
        reserved = 0.0
        if provider.paid:
            prompt = "".join(str(m["content"]) for m in request.messages)
            reserved = prices.cost(provider.name, provider.model, estimate_tokens(prompt),
                                   request.max_output_tokens)
            if not self.budget.reserve(reserved):
                raise _BudgetSpent
        served.attempts += 1
        served.calls[provider.label] = served.calls.get(provider.label, 0) + 1
        cost = 0.0
        try:
            completion = provider.complete(request)
            cost = prices.cost(provider.name, provider.model, completion.tokens_in,
                               completion.tokens_out)
        finally:
            self.budget.settle(reserved, cost)
        served.tokens_in += completion.tokens_in
        served.tokens_out += completion.tokens_out
        served.cost += cost
        return completion

    def _check(self, completion: Completion, context: ContextInput) -> Any:
        if completion.refusal:
            raise OutputRejected(f"the model refused ({completion.refusal[:200]})")
        return check_output(completion.text, self.step.output, self.step.citations_field,
                            context.provenance, self.step.min_citations)
