"""What one run of a model step did: counts, money, reasons, and the step's judgement.

:class:`ModelRun` is what :func:`~pipelines.models.run_model_step` returns (and
:class:`ModelStepFailed` carries): :meth:`ModelRun.metadata` for the orchestrator's
materialization, :attr:`ModelRun.fallback_share`, :attr:`ModelRun.failure_share` and
:meth:`ModelRun.top_reasons` for a blocking check, :meth:`ModelRun.threshold_error` for
the verdict.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ._costs import Budget
from ._errors import ModelStepFailed
from ._serve import Served
from ._step import ModelStep

_TOP_REASONS = 3


@dataclass
class ModelRun:
    """What one run of a step did, for the orchestrator to publish (:meth:`metadata`)
    and judge (:attr:`fallback_share`, :meth:`top_reasons`, :meth:`threshold_error`)."""

    step: ModelStep
    run_id: str
    served: list[Served]
    budget: Budget
    seconds: dict[str, float]  # by phase: read, cache (load and lookups), serve, write
    cache_saved: int
    outputs: pa.Table = field(repr=False)
    errors: pa.Table = field(repr=False)
    circuits: dict[str, dict[str, Any]] = field(default_factory=dict)
    day_spent_before: float = 0.0
    persist_seconds: float = 0.0
    refresh: str | None = None

    @property
    def contexts(self) -> int:
        return len(self.served)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.served if s.error is not None)

    @property
    def failure_share(self) -> float:
        return self.failed / self.contexts if self.contexts else 0.0

    @property
    def fallbacks(self) -> int:
        """Contexts answered by a later provider than the first (failures not counted)."""
        return sum(1 for s in self.served if s.fell_back)

    @property
    def fallback_share(self) -> float:
        return self.fallbacks / self.contexts if self.contexts else 0.0

    def top_reasons(self, limit: int = _TOP_REASONS) -> list[tuple[str, int]]:
        """Why the first provider did not answer (contexts that fell back or failed),
        most frequent first, with counts."""
        return Counter(s.fallback_reason for s in self.served if s.fallback_reason
                       ).most_common(limit)

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.served if s.cached)

    @property
    def calls(self) -> Counter[str]:
        """Requests sent, by ``provider/model`` (HTTP retries included; cache hits none)."""
        total: Counter[str] = Counter()
        for served in self.served:
            total.update(served.calls)
        return total

    @property
    def retries(self) -> int:
        """Requests that repeated the one before them after it failed."""
        return sum(1 for s in self.served for before, after in zip(s.log, s.log[1:],
                                                                   strict=False)
                   if after.sent and before.outcome == "failed"
                   and (before.provider, before.call) == (after.provider, after.call))

    def threshold_error(self) -> ModelStepFailed | None:
        """The error this run fails with, if it fell back or failed too often."""
        step = self.step
        over_fallback = self.fallback_share > step.max_fallback_share
        over_failure = self.failure_share > step.max_failure_share
        if not (over_fallback or over_failure):
            return None
        first = step.providers[0].label
        reasons = ", ".join(f"{reason} ({count})" for reason, count in self.top_reasons())
        failed = [f" {circuit['failed']}" for circuit in self.circuits.values()
                  if circuit["failed"]]
        limits = []
        if over_fallback:
            limits.append(f"more than the {step.max_fallback_share:.0%} of fallbacks allowed "
                          "(max_fallback_share)")
        if over_failure:
            limits.append(f"more than the {step.max_failure_share:.0%} of failures allowed "
                          "(max_failure_share)")
        return ModelStepFailed(
            f"model step {step.name!r}: of {self.contexts} contexts, {self.fallbacks} "
            f"({self.fallback_share:.1%}) were answered by a fallback instead of {first} and "
            f"{self.failed} ({self.failure_share:.1%}) by no provider: "
            f"{' and '.join(limits)}; top reasons: {reasons}.{''.join(failed)} Every "
            f"attempt is in "
            f"{step.attempts_table}, the failures in {step.errors_table}; "
            f"{step.output_table} keeps its last good rows. Fix the provider and run again "
            "(refresh='fallbacks' also asks again where a rejection is remembered)", run=self)

    def metadata(self) -> dict[str, Any]:
        """Counts, tokens, cost, budget, reasons and latency of the run, JSON-ready."""
        latencies = sorted(s.latency_ms for s in self.served if not s.cached and s.attempts)
        served_by = Counter(s.provider.label for s in self.served if s.provider is not None)
        step = self.step
        return {
            "contexts": self.contexts, "rows": self.contexts - self.failed,
            "errors": self.failed, "failure_share": round(self.failure_share, 4),
            "max_failure_share": step.max_failure_share,
            "fallbacks": self.fallbacks, "fallback_share": round(self.fallback_share, 4),
            "max_fallback_share": step.max_fallback_share,
            "top_reasons": dict(self.top_reasons()),
            "cache_hits": self.cache_hits,
            "cache_hit_rate": round(self.cache_hits / self.contexts, 4) if self.contexts else 0.0,
            "cache_saved": self.cache_saved, "refresh": self.refresh,
            "calls": sum(self.calls.values()), "calls_by_provider": dict(self.calls),
            "retries": self.retries, "served_by": dict(served_by),
            "repairs": sum(s.repairs for s in self.served),
            "provider_failures": sum(s.provider_failures for s in self.served),
            "fallbacks_for_failure": sum(1 for s in self.served
                                         if s.fell_back and s.fallback_reason != "budget"),
            "fallbacks_for_budget": sum(1 for s in self.served if s.fallback_reason == "budget"),
            "circuits": self.circuits,
            "tokens_in": sum(s.tokens_in for s in self.served),
            "tokens_out": sum(s.tokens_out for s in self.served),
            "cost": round(sum(s.cost for s in self.served), 6),
            "budget": step.budget, "daily_budget": step.daily_budget,
            "budget_limit": self.budget.limit, "budget_spent": round(self.budget.spent, 6),
            "budget_day_spent_before": round(self.day_spent_before, 6),
            "budget_refused_calls": self.budget.refused,
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p95": round(percentile(latencies, 95), 1),
            "prompt_version": step.prompt.version, "concurrency": step.concurrency,
            "attempts_table": step.attempts_table,
            "seconds": round(sum(self.seconds.values()), 3),
            "seconds_by_phase": {k: round(v, 4) for k, v in self.seconds.items()},
            "persist_seconds": round(self.persist_seconds, 4),
        }


class Stopwatch:
    """Seconds spent per named phase of a run (``with clock("read"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of sorted ``values``; 0 when empty."""
    if not values:
        return 0.0
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]
