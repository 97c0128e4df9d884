"""Running a model step over a context table: cache, workers, persistence, judgement.

:func:`run_model_step` reads the step's context table, serves every context it can from
the cache (no request at all), and sends the rest through the provider chain on
``concurrency`` worker threads (the requests wait on the network, which releases the
GIL). Workers report each attempt and each validated answer as it happens; the calling
thread writes them at once (answers to ``model_cache``, attempts to
``model_attempts_<step>``), so a refused key, a crash or a kill keeps every answer
already paid for and the rerun asks only for the rest. At the end the run is judged:
if no more than ``max_fallback_share`` of the contexts fell back and no more than
``max_failure_share`` failed, ``model_<step>`` and ``model_errors_<step>`` are replaced
together; otherwise only the errors table is, the last good output stays, and
:class:`ModelStepFailed` names the top reasons.

The cache is walked in chain order, as serving would go: a cached answer of the first
provider is served; a provider whose answers were rejected for this context is passed
over while that rejection is in force (see :mod:`pipelines.models._cache`); a provider
with no entry is asked. So a context served by a fallback because an endpoint failed,
its circuit was open or the budget was spent is asked again next run.
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import orjson
import pyarrow as pa

from connectors import ConfigurationError

from ..warehouse import Warehouse, quote
from ._cache import CACHE_SCHEMA, CACHE_TABLE, ModelCache, cache_key
from ._calls import Attempt, Caller
from ._costs import Budget
from ._log import log
from ._providers import Provider
from ._report import ModelRun, Stopwatch
from ._serve import REJECTED_EARLIER, ChainServer, ContextInput, Served
from ._step import ModelStep
from ._tables import ATTEMPTS_KEY, ATTEMPTS_SCHEMA, attempt_row, error_table, output_table

Refresh = Literal["all", "fallbacks"]
REFRESH_CHOICES = ("all", "fallbacks")


def run_model_step(warehouse: Warehouse, step: ModelStep, run_id: str, *,
                   refresh: Refresh | None = None) -> ModelRun:
    """Answer every context of ``step.context`` and write the step's tables.

    ``refresh="all"`` asks every context again, ignoring the cache (new answers replace
    the cached ones); ``refresh="fallbacks"`` ignores remembered rejections, so every
    context that fell back or failed is asked of the first provider again.

    Raises :class:`ModelStepFailed` (the run attached as ``.run``; the output table
    keeps its last good rows) when too many contexts fell back or failed, and
    ``AuthenticationError`` if an endpoint refuses its key (after writing every answer
    received).
    """
    if refresh is not None and refresh not in REFRESH_CHOICES:
        raise ConfigurationError(f"refresh must be one of {REFRESH_CHOICES} or None, "
                                 f"got {refresh!r}")
    clock = Stopwatch()
    with clock("read"):
        contexts = read_contexts(warehouse, step.context)
    with clock("cache"):
        cache = ModelCache(step.name) if refresh == "all" else ModelCache.load(warehouse,
                                                                               step.name)
        now = dt.datetime.now(dt.UTC)
        lookups = [_look_up(step, cache, c, now, refresh is None) for c in contexts]
    budget, day_spent = _budget(warehouse, step)
    served: list[Served | None] = [hit for hit, _ in lookups]
    misses = [i for i, hit in enumerate(served) if hit is None]
    log.info("model step %r: %d contexts, %d from the cache, %d to ask (run %s)", step.name,
             len(contexts), len(contexts) - len(misses), len(misses), run_id)
    writer = _Writer(warehouse, step, cache, run_id)
    with clock("serve"):
        answers, caller = _serve_all(step, budget, writer,
                                     [(contexts[i], lookups[i][1]) for i in misses])
    for index, result in zip(misses, answers, strict=True):
        served[index] = result
    answered = [s for s in served if s is not None]
    outputs, errors = output_table(step, answered, run_id), error_table(answered, run_id)
    run = ModelRun(step, run_id, answered, budget, clock.seconds, cache.saved, outputs, errors,
                   _circuits(step, caller), day_spent, writer.seconds, refresh)
    failure = run.threshold_error()
    with clock("write"):
        if failure is None:
            cache.keep_rejections(warehouse, step.rejection_ttl)
            warehouse.replace_tables({step.output_table: outputs, step.errors_table: errors})
        else:
            warehouse.replace_tables({step.errors_table: errors})
    log.info("model step %r: %d answered (%d fell back, %d failed), %d from the cache, "
             "%d requests, cost %.6g, %.2f s", step.name, run.contexts - run.failed,
             run.fallbacks, run.failed, run.cache_hits, sum(run.calls.values()),
             budget.spent, sum(run.seconds.values()))
    if failure is not None:
        log.error("%s", failure.message)
        raise failure
    return run


def read_contexts(warehouse: Warehouse, table: str) -> list[ContextInput]:
    """The rows of a context table (see :mod:`pipelines.context`). Each one's
    provenance keeps only what the model is shown: the source ids its ``trimmed``
    column lists as dropped from the document are left out."""
    if table not in warehouse.tables():
        raise ConfigurationError(f"the warehouse has no context table {table!r}: build the "
                                 "contexts first (pipelines.context.build_contexts)")
    data = warehouse.read_table(table)
    trimmed = (data.column("trimmed").to_pylist() if "trimmed" in data.column_names
               else [None] * data.num_rows)
    rows = zip(*(data.column(n).to_pylist() for n in (
        "context_id", "content_hash", "document", "provenance")), trimmed, strict=True)
    contexts = []
    for context_id, digest, document, provenance, cut in rows:
        unseen = {sid for part in (orjson.loads(cut) if cut else ())
                  for sid in part.get("source_ids", ())}
        contexts.append(ContextInput(context_id, digest, document, {
            entry["source_id"]: entry for entry in orjson.loads(provenance)
            if entry["source_id"] not in unseen}))
    return contexts


def spent_today(warehouse: Warehouse, step: ModelStep) -> float:
    """What the step's requests cost since midnight UTC, from its attempts table."""
    if step.attempts_table not in warehouse.tables():
        return 0.0
    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spent = warehouse.query(
        f"SELECT coalesce(sum(cost), 0) AS spent FROM {quote(step.attempts_table)} "  # noqa: S608 - quoted name, a formatted date
        f"WHERE started_at >= CAST('{midnight.isoformat()}' AS TIMESTAMP WITH TIME ZONE)")
    return float(spent.column(0)[0].as_py() or 0.0)


def _budget(warehouse: Warehouse, step: ModelStep) -> tuple[Budget, float]:
    """The run's budget: the tighter of the run's and what is left of today's."""
    day_spent = spent_today(warehouse, step) if step.daily_budget is not None else 0.0
    limits = []
    if step.budget is not None:
        limits.append((step.budget, "the run's budget"))
    if step.daily_budget is not None:
        limits.append((max(0.0, step.daily_budget - day_spent),
                       f"today's budget ({step.daily_budget:g}, of which {day_spent:.6g} "
                       "was spent before this run)"))
    if not limits:
        return Budget(None), day_spent
    limit, source = min(limits)
    return Budget(limit, source), day_spent


def _key(step: ModelStep, provider: Provider, context: ContextInput) -> str:
    return cache_key(step.name, provider.name, provider.model, provider.endpoint,
                     step.prompt.version, step.fingerprint, context.content_hash)


def _look_up(step: ModelStep, cache: ModelCache, context: ContextInput, now: dt.datetime,
             trust_rejections: bool) -> tuple[Served | None, list[str]]:
    """Walk the chain as serving would, without calling: the first provider with a
    cached answer serves it (if it cites only what the model is shown), a provider with
    a rejection in force for this context is passed over, and the first provider with
    neither ends the walk (a miss: it must be asked). Returns the hit, or None and the
    reasons of the providers passed over."""
    passed: list[str] = []
    for provider in step.providers:
        entry = cache.get(_key(step, provider, context))
        if entry is None:
            break
        if entry.output is None:
            if not (trust_rejections and entry.rejected_until(now)):
                break
            passed.append(f"{provider.label}: {entry.rejection} (remembered from an earlier "
                          "run)")
            continue
        answer = orjson.loads(entry.output)
        cited = list(dict.fromkeys(answer.get(step.citations_field) or ()))
        if not context.provenance.keys() >= set(cited):
            break
        return Served(context, entry.output, answer, provider, cited, cached=True,
                      fallback_reason=REJECTED_EARLIER if passed else None), passed
    return None, passed


class _Writer:
    """Writes what the workers report, from the calling thread, as it arrives."""

    def __init__(self, warehouse: Warehouse, step: ModelStep, cache: ModelCache,
                 run_id: str) -> None:
        self.warehouse, self.step, self.cache, self.run_id = warehouse, step, cache, run_id
        self._attempts: list[dict[str, Any]] = []
        self.seconds = 0.0

    def prepare(self) -> None:
        """Create the cache and attempts tables before the first request, so that the
        first answer's write is as quick as the rest (a first write can cost the
        warehouse driver's lazy imports)."""
        self.warehouse.merge(CACHE_TABLE, CACHE_SCHEMA.empty_table(), ("cache_key",))
        self.warehouse.merge(self.step.attempts_table, ATTEMPTS_SCHEMA.empty_table(),
                             ATTEMPTS_KEY)

    def add(self, kind: str, served: Served, payload: Any) -> None:
        if kind == "attempt":
            self._attempts.append(attempt_row(served, payload, self.run_id))
            return
        provider, entry = payload
        self.cache.put(_key(self.step, provider, served.context), entry,
                       endpoint=provider.endpoint, prompt_version=self.step.prompt.version,
                       context_hash=served.context.content_hash, run_id=self.run_id)

    def flush(self) -> None:
        started = time.perf_counter()
        self.cache.flush(self.warehouse)  # the answers first: they were paid for
        if self._attempts:
            rows, self._attempts = self._attempts, []
            self.warehouse.merge(self.step.attempts_table,
                                 pa.RecordBatch.from_pylist(rows, ATTEMPTS_SCHEMA), ATTEMPTS_KEY)
        self.seconds += time.perf_counter() - started


def _serve_all(step: ModelStep, budget: Budget, writer: _Writer,
               work: list[tuple[ContextInput, list[str]]]) -> tuple[list[Served], Caller]:
    """Serve contexts on ``step.concurrency`` threads, writing what they report as it
    arrives; results in context order. An error that must stop the step (a refused API
    key) stops the workers, and is raised once everything received is written."""
    events: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()

    def record(served: Served, attempt: Attempt) -> None:
        served.log.append(attempt)
        attempt.number = len(served.log)
        events.put(("attempt", served, attempt))

    deadline_at = time.monotonic() + step.run_deadline if step.run_deadline else None
    caller = Caller(step, budget, record, deadline_at)
    if not work:
        return [], caller
    writer.prepare()
    server = ChainServer(step, caller, lambda kind, served, payload: events.put(
        (kind, served, payload)))
    pool = ThreadPoolExecutor(max_workers=step.concurrency,
                              thread_name_prefix=f"model-{step.name}")
    futures: list[Future[Served]] = []
    stopped_by: BaseException | None = None
    try:
        for context, passed in work:
            future = pool.submit(server.serve, context, passed)
            future.add_done_callback(lambda f: events.put(("done", None, f)))
            futures.append(future)
        finished = 0
        while finished < len(futures):
            batch = [events.get()]
            batch += _drain(events)
            for kind, served, payload in batch:
                if kind != "done":
                    writer.add(kind, served, payload)
                    continue
                finished += 1
                if stopped_by is None and not payload.cancelled() and payload.exception():
                    stopped_by = payload.exception()
                    _stop(caller, futures)
            writer.flush()
    except BaseException:
        _stop(caller, futures)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for kind, served, payload in _drain(events):
            if kind != "done":
                writer.add(kind, served, payload)
        writer.flush()
    if stopped_by is not None:
        raise stopped_by
    return [future.result() for future in futures], caller


def _drain(events: queue.SimpleQueue[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    drained = []
    while True:
        try:
            drained.append(events.get_nowait())
        except queue.Empty:
            return drained


def _stop(caller: Caller, futures: list[Future[Served]]) -> None:
    """Start no new context and cut the requests in flight short."""
    caller.abort.set()
    for future in futures:
        future.cancel()


def _circuits(step: ModelStep, caller: Caller) -> dict[str, dict[str, Any]]:
    """Per remote provider: how often its circuit opened, and why it failed for good."""
    return {provider.label: {"openings": breaker.openings, "failed": breaker.disabled}
            for provider, breaker in zip(step.providers, caller.breakers, strict=True)
            if provider.remote}
