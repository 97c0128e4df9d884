"""Serving one context: the provider chain and the repairs.

:class:`ChainServer` is what a worker thread runs per context the cache could not
answer. From the first provider the cache holds no rejection for, in chain order: ask
for an answer (through :class:`~pipelines.models._calls.Caller`, which bounds, prices
and records every request); validate it against the schema and what the model saw; if
it is rejected, send it back with the reason up to ``max_repairs`` times (rules get one
call: they would answer the same). A provider that gives up (a skip, a failure, answers
still invalid) passes the context to the next one; the reason the first provider gave
up is the context's ``fallback_reason``. If no provider answers, the context fails with
every provider's reason.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._canonical import canonical_json
from ._cache import CachedAnswer
from ._calls import Attempt, Caller, GaveUp
from ._errors import OutputRejected
from ._guard import check_output, cited_ids, repair_messages
from ._providers import Completion, CompletionRequest, Provider
from ._step import ModelStep

REJECTED_EARLIER = "rejected earlier"


@dataclass
class ContextInput:
    """One row of the context table, as the step reads it. ``provenance`` holds what
    the model is shown: the entries of the items left in the (trimmed) document."""

    context_id: str
    content_hash: str
    document: str
    provenance: dict[str, dict[str, Any]]  # source_id -> provenance entry

    def parsed(self) -> dict[str, Any]:
        return orjson.loads(self.document)


@dataclass
class Served:
    """What happened to one context: its answer (or why there is none), its attempts
    and its cost."""

    context: ContextInput
    output: str | None = None  # the validated answer as canonical JSON
    answer: dict[str, Any] | None = None  # the same, parsed
    provider: Provider | None = None
    cited: list[str] = field(default_factory=list)
    error: str | None = None
    fallback_reason: str | None = None  # why the first provider did not answer
    cached: bool = False
    rejected: list[tuple[Provider, str]] = field(default_factory=list)  # new this run
    log: list[Attempt] = field(default_factory=list)
    repairs: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0

    @property
    def attempts(self) -> int:
        """Requests sent for this context this run (HTTP retries included)."""
        return sum(1 for a in self.log if a.sent)

    @property
    def calls(self) -> dict[str, int]:
        """Requests sent, by provider label."""
        calls: dict[str, int] = {}
        for attempt in self.log:
            if attempt.sent:
                calls[attempt.provider.label] = calls.get(attempt.provider.label, 0) + 1
        return calls

    @property
    def provider_failures(self) -> int:
        return sum(1 for a in self.log if a.outcome == "failed")

    @property
    def fell_back(self) -> bool:
        """Answered, but not by the first provider."""
        return self.fallback_reason is not None and self.error is None


# What a worker tells the run as it happens: ("attempt", served, Attempt) or
# ("answer" | "rejection", served, (provider, CachedAnswer)).
Emit = Callable[[str, Served, Any], None]


class ChainServer:
    """Serves contexts through a step's provider chain; one instance per run, shared by
    the worker threads (its shared state is the thread-safe :class:`Caller`)."""

    def __init__(self, step: ModelStep, caller: Caller, emit: Emit) -> None:
        self.step, self.caller, self.emit = step, caller, emit

    def serve(self, context: ContextInput, known_rejections: list[str]) -> Served:
        """Answer ``context``, starting after the providers whose rejection the cache
        remembers (``known_rejections``, their reasons, one per provider)."""
        started = time.perf_counter()
        served = Served(context)
        messages = self.step.prompt.messages(context.document)
        document = context.parsed()
        reasons = list(known_rejections)
        first_reason = REJECTED_EARLIER if known_rejections else None
        for position, provider in enumerate(self.step.providers):
            if position < len(known_rejections):
                self.caller.record(served, Attempt(
                    provider, "answer", "skipped", REJECTED_EARLIER, known_rejections[position],
                    started_at=dt.datetime.now(dt.UTC)))
                continue
            reason = self._ask(position, provider, messages, document, served, reasons)
            if reason is None:
                served.fallback_reason = first_reason
                break
            first_reason = first_reason or reason
        else:
            served.error = "; ".join(reasons)
            served.fallback_reason = first_reason
        served.latency_ms = (time.perf_counter() - started) * 1000
        return served

    def _ask(self, position: int, provider: Provider, messages: list[dict[str, Any]],
             document: dict[str, Any], served: Served, reasons: list[str]) -> str | None:
        """Ask one provider, repairing rejected answers; None once an answer is
        accepted, else the reason it gave up."""
        conversation = messages
        answers = 1 + (self.step.max_repairs if provider.repairable else 0)
        for number in range(answers):
            request = CompletionRequest(served.context.context_id, conversation, self.step.name,
                                        self.step.json_schema, document, self.step.timeout,
                                        self.step.max_output_tokens)
            call = f"repair {number}" if number else "answer"
            try:
                sent = self.caller.send(position, provider, request, served, call)
            except GaveUp as gave:
                reasons.append(gave.detail)
                return gave.reason
            self._bill(served, sent.completion, sent.attempt.cost)
            try:
                answer = self._check(sent.completion, served.context)
            except OutputRejected as exc:
                self.caller.judged(position, provider, ok=False)
                self._judge(served, sent.attempt, "rejected", exc.kind, exc.reason)
                reasons.append(f"{provider.label}: {exc.reason}")
                if number + 1 == answers:
                    served.rejected.append((provider, exc.reason))
                    self.emit("rejection", served, (provider, CachedAnswer(
                        provider.name, provider.model, None, exc.reason, 0, 0, 0.0)))
                    return exc.kind
                served.repairs += 1
                conversation = repair_messages(messages, sent.completion.text, exc.reason)
                continue
            self.caller.judged(position, provider, ok=True)
            self._judge(served, sent.attempt, "accepted", None, None)
            served.answer = answer.model_dump(mode="json")
            served.output = canonical_json(served.answer)
            served.cited = cited_ids(answer, self.step.citations_field)
            served.provider = provider
            self.emit("answer", served, (provider, CachedAnswer(
                provider.name, provider.model, served.output, None, served.tokens_in,
                served.tokens_out, served.cost)))
            return None
        raise AssertionError("unreachable: the last answer returns")

    def _judge(self, served: Served, attempt: Attempt, outcome: str, reason: str | None,
               detail: str | None) -> None:
        attempt.outcome, attempt.reason, attempt.detail = outcome, reason, detail
        self.caller.record(served, attempt)

    @staticmethod
    def _bill(served: Served, completion: Completion, cost: float) -> None:
        served.tokens_in += completion.tokens_in
        served.tokens_out += completion.tokens_out
        served.cost += cost

    def _check(self, completion: Completion, context: ContextInput) -> Any:
        if completion.refusal:
            raise OutputRejected(f"the model refused ({completion.refusal[:200]})", "refused")
        return check_output(completion.text, self.step.output, self.step.citations_field,
                            context.provenance, self.step.min_citations)
