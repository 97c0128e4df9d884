"""Running a model step over a context table: cache, concurrency, tables, threshold.

:func:`run_model_step` reads the step's context table, serves every context it can from
the cache (no call at all), sends the rest through the provider chain on a bounded
thread pool (the calls wait on the network, which releases the GIL), then writes, in
this order: new answers to ``model_cache``, and ``model_<step>`` with
``model_errors_<step>`` together in one transaction. Only then is the failure share
checked, so a failed step leaves its reasons in the warehouse.

The cache is walked in chain order, as serving would go: a cached answer of the first
provider is served; a provider whose answers were rejected for this context (twice
invalid) is remembered as such and passed over, so a rerun does not pay for the same
failure twice; a provider with no entry is asked. So a context served by the fallback
because the budget was spent or the endpoint was down is asked again next run, and
configuring an endpoint after running offline takes effect at once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from connectors import ConfigurationError

from ..warehouse import Warehouse
from ._cache import CachedAnswer, ModelCache, cache_key
from ._costs import Budget
from ._errors import ModelStepFailed
from ._serve import ChainServer, ContextInput, Served
from ._step import ModelStep
from ._tables import error_table, output_table


@dataclass
class ModelRun:
    """What one run of a step did, for the orchestrator to publish (:meth:`metadata`)."""

    step: ModelStep
    run_id: str
    served: list[Served]
    budget: Budget
    seconds: dict[str, float]  # by phase: read, cache (load and lookups), serve, write
    cache_saved: int
    outputs: pa.Table = field(repr=False)
    errors: pa.Table = field(repr=False)

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
    def cache_hits(self) -> int:
        return sum(1 for s in self.served if s.cached)

    @property
    def calls(self) -> Counter[str]:
        """Provider calls made, by ``provider/model`` (cache hits make none)."""
        total: Counter[str] = Counter()
        for served in self.served:
            total.update(served.calls)
        return total

    def metadata(self) -> dict[str, Any]:
        """Counts, tokens, cost, budget and latency of the run, JSON-ready."""
        latencies = sorted(s.latency_ms for s in self.served if not s.cached and s.attempts)
        served_by = Counter(s.provider.label for s in self.served if s.provider is not None)
        return {
            "contexts": self.contexts, "rows": self.contexts - self.failed,
            "errors": self.failed, "failure_share": round(self.failure_share, 4),
            "max_failure_share": self.step.max_failure_share,
            "cache_hits": self.cache_hits,
            "cache_hit_rate": round(self.cache_hits / self.contexts, 4) if self.contexts else 0.0,
            "cache_saved": self.cache_saved,
            "calls": sum(self.calls.values()), "calls_by_provider": dict(self.calls),
            "served_by": dict(served_by),
            "repairs": sum(s.repairs for s in self.served),
            "provider_failures": sum(s.provider_failures for s in self.served),
            "fallbacks_for_failure": sum(1 for s in self.served if s.fallback_reason == "failure"),
            "fallbacks_for_budget": sum(1 for s in self.served if s.fallback_reason == "budget"),
            "tokens_in": sum(s.tokens_in for s in self.served),
            "tokens_out": sum(s.tokens_out for s in self.served),
            "cost": round(sum(s.cost for s in self.served), 6),
            "budget": self.step.budget, "budget_spent": round(self.budget.spent, 6),
            "budget_refused_calls": self.budget.refused,
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p95": round(percentile(latencies, 95), 1),
            "prompt_version": self.step.prompt.version, "concurrency": self.step.concurrency,
            "seconds": round(sum(self.seconds.values()), 3),
            "seconds_by_phase": {k: round(v, 4) for k, v in self.seconds.items()},
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


def run_model_step(warehouse: Warehouse, step: ModelStep, run_id: str) -> ModelRun:
    """Answer every context of ``step.context`` and write the step's tables.

    Raises :class:`ModelStepFailed` (tables written, the run attached as ``.run``) when
    more than ``step.max_failure_share`` of the contexts failed, and
    ``AuthenticationError`` at once if an endpoint refuses its key.
    """
    clock = Stopwatch()
    with clock("read"):
        contexts = read_contexts(warehouse, step.context)
    with clock("cache"):
        cache = ModelCache.load(warehouse, step.name)
        lookups = [_look_up(step, cache, c) for c in contexts]
    served: list[Served | None] = [hit for hit, _ in lookups]
    misses = [i for i, hit in enumerate(served) if hit is None]
    budget = Budget(step.budget)
    with clock("serve"):
        answers = _serve_all(step, budget, [(contexts[i], lookups[i][1]) for i in misses])
    for index, result in zip(misses, answers, strict=True):
        served[index] = result
        _remember(step, cache, result, run_id)
    answered = [s for s in served if s is not None]
    with clock("write"):
        saved = cache.save(warehouse)
        outputs, errors = output_table(step, answered, run_id), error_table(answered, run_id)
        warehouse.replace_tables({step.output_table: outputs, step.errors_table: errors})
    run = ModelRun(step, run_id, answered, budget, clock.seconds, saved, outputs, errors)
    if run.failure_share > step.max_failure_share:
        raise ModelStepFailed(
            f"model step {step.name!r}: {run.failed} of {run.contexts} contexts failed "
            f"({run.failure_share:.1%}, more than the {step.max_failure_share:.0%} allowed); "
            f"the reasons are in {step.errors_table}: fix the providers or rules and run again",
            run=run)
    return run


def read_contexts(warehouse: Warehouse, table: str) -> list[ContextInput]:
    """The rows of a context table (see :mod:`pipelines.context`)."""
    if table not in warehouse.tables():
        raise ConfigurationError(f"the warehouse has no context table {table!r}: build the "
                                 "contexts first (pipelines.context.build_contexts)")
    data = warehouse.read_table(table).select(
        ["context_id", "content_hash", "document", "provenance"])
    return [ContextInput(cid, digest, document,
                         {entry["source_id"]: entry for entry in orjson.loads(provenance)})
            for cid, digest, document, provenance in zip(
                *(data.column(i).to_pylist() for i in range(4)), strict=True)]


def _key(step: ModelStep, provider_name: str, model: str, context: ContextInput) -> str:
    return cache_key(step.name, provider_name, model, step.prompt.version, step.fingerprint,
                     context.content_hash)


def _look_up(step: ModelStep, cache: ModelCache, context: ContextInput
             ) -> tuple[Served | None, list[str]]:
    """Walk the chain as serving would, without calling: the first provider with a
    cached answer serves it (if it still cites only the context's sources), a provider
    remembered as rejected for this context is passed over, and the first provider with
    no entry ends the walk (a miss: it must be asked). Returns the hit, or None and the
    reasons of the providers passed over."""
    passed: list[str] = []
    for provider in step.providers:
        entry = cache.get(_key(step, provider.name, provider.model, context))
        if entry is None:
            break
        if entry.output is None:
            passed.append(f"{provider.label}: {entry.rejection} (remembered from an earlier run)")
            continue
        answer = orjson.loads(entry.output)
        cited = list(dict.fromkeys(answer[step.citations_field]))
        if not context.provenance.keys() >= set(cited):
            break
        fallback = "failure" if passed else None
        return Served(context, entry.output, answer, provider, cited, cached=True,
                      fallback_reason=fallback), passed
    return None, passed


def _serve_all(step: ModelStep, budget: Budget, work: list[tuple[ContextInput, list[str]]]
               ) -> list[Served]:
    """Serve contexts on ``step.concurrency`` threads, in their order. An error that must
    stop the step (a refused API key) cancels what has not started and is raised."""
    if not work:
        return []
    server = ChainServer(step, budget)
    with ThreadPoolExecutor(max_workers=step.concurrency,
                            thread_name_prefix=f"model-{step.name}") as pool:
        futures = [pool.submit(server.serve, context, passed) for context, passed in work]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            failed.result()  # raises its exception
        return [future.result() for future in futures]


def _remember(step: ModelStep, cache: ModelCache, served: Served, run_id: str) -> None:
    """Cache the answer served and the rejections met on the way."""
    entries = [(provider, None, reason) for provider, reason in served.rejected]
    if served.output is not None and served.provider is not None:
        entries.append((served.provider, served.output, None))
    for provider, output, rejection in entries:
        answered = output is not None
        cache.put(_key(step, provider.name, provider.model, served.context),
                  CachedAnswer(provider.name, provider.model, output, rejection,
                               served.tokens_in if answered else 0,
                               served.tokens_out if answered else 0,
                               served.cost if answered else 0.0),
                  prompt_version=step.prompt.version, context_hash=served.context.content_hash,
                  run_id=run_id)
