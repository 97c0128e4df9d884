"""One answer from one provider: the requests it takes, each bounded and recorded.

:class:`Caller` is shared by a run's worker threads. Before each request to a remote
provider it checks, in order: the run is not stopping and its deadline not passed; the
provider's shared ``Retry-After`` has passed; its rate limits (requests and tokens a
minute) have room; the budget can reserve the request's worst case (paid providers);
the provider's circuit is closed. Any "no" skips the provider for this context with
that reason. The request then runs under its wall deadline (``ModelStep.timeout``, cut
to the run deadline); a retriable failure is retried under the provider's policy
within ``max_elapsed``, each retry another request through the same checks. Every
request and every skip becomes an :class:`Attempt`, emitted at once for the run to
write, so what was paid is on record even if the process dies next.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from connectors import AuthenticationError

from .._canonical import estimate_tokens
from ._costs import Budget, worst_case_prompt_tokens
from ._errors import ProviderError
from ._limits import PROVIDER_FAILED, CircuitBreaker, RetryGate
from ._log import log
from ._providers import Completion, CompletionRequest, Provider
from ._step import ModelStep

RUN_DEADLINE = "run deadline"
BUDGET = "budget"
ABORTED = "aborted"


@dataclass
class Attempt:
    """One row of ``model_attempts_<step>``: a request (or a provider skipped), what
    came of it and what it cost. ``outcome`` is ``accepted``, ``rejected`` (an answer
    that failed validation), ``failed`` (no answer) or ``skipped`` (no request sent);
    ``reason`` a short label to count by, ``detail`` the whole message."""

    provider: Provider
    call: str  # "answer", "repair 1", ...
    outcome: str = "failed"
    reason: str | None = None
    detail: str | None = None
    status: int | None = None
    request_id: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    started_at: dt.datetime | None = None
    number: int = 0  # position in the context's chain of attempts, from 1

    @property
    def sent(self) -> bool:
        return self.outcome != "skipped"


class GaveUp(Exception):
    """The provider gives no answer for this context: ``reason`` (a label) and
    ``detail`` (a message naming the provider)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class Sent:
    """An answer received: the completion and its attempt (outcome not yet judged)."""

    completion: Completion
    attempt: Attempt


class Caller:
    """Sends requests for a run (see the module docstring). ``record(served, attempt)``
    is called for every attempt, from the worker thread that made it."""

    def __init__(self, step: ModelStep, budget: Budget, record: Callable[[Any, Attempt], None],
                 deadline_at: float | None = None) -> None:
        self.step, self.budget, self._record = step, budget, record
        self.deadline_at = deadline_at
        self.abort = threading.Event()
        self.breakers = [CircuitBreaker(step.breaker_failures, step.breaker_cooldown)
                         for _ in step.providers]
        self.gates = [RetryGate() for _ in step.providers]
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()

    def record(self, served: Any, attempt: Attempt) -> None:
        self._record(served, attempt)

    def send(self, position: int, provider: Provider, request: CompletionRequest,
             served: Any, call: str) -> Sent:
        """The provider's answer to ``request`` (not yet validated), or :class:`GaveUp`."""
        if not provider.remote:
            return self._ask_locally(provider, request, served, call)
        began = time.monotonic()
        until = min(began + provider.max_elapsed, self.deadline_at or math.inf)
        failure: ProviderError | None = None
        number = 0
        while True:
            reserved = self._admit(position, provider, request, served, call, until, failure)
            number += 1
            try:
                return self._request(position, provider, request, served, call, reserved)
            except ProviderError as exc:
                failure = exc
                self._after_failure(position, provider, exc, number, until)

    def judged(self, position: int, provider: Provider, ok: bool) -> None:
        """Count a received answer's validation in the provider's circuit breaker."""
        if provider.remote and self.breakers[position].record(ok):
            self._circuit_opened(provider, "its answers were rejected")

    # -- before a request ---------------------------------------------------------------

    def _admit(self, position: int, provider: Provider, request: CompletionRequest,
               served: Any, call: str, until: float, failure: ProviderError | None) -> float:
        """Wait for and check everything a request needs; the budget reserved for it.
        Raises :class:`GaveUp` (recording a skipped attempt) when it may not go."""
        reason, detail, reserved = self._refusal(position, provider, request, until)
        if reason is None:
            return reserved
        self.record(served, Attempt(provider, call, "skipped", reason, detail,
                                    started_at=dt.datetime.now(dt.UTC)))
        if failure is not None:  # a retry refused: the failure is why it gave up
            raise GaveUp(failure.reason, f"{failure.message} ({reason}: not retried)")
        raise GaveUp(reason, f"{provider.label}: skipped ({detail})")

    def _refusal(self, position: int, provider: Provider, request: CompletionRequest,
                 until: float) -> tuple[str | None, str, float]:
        if self.abort.is_set():
            return ABORTED, "the run is stopping", 0.0
        if self.deadline_at is not None and time.monotonic() >= self.deadline_at:
            self._warn_once(RUN_DEADLINE, "model step %r: the run deadline (%s s) passed; "
                            "the remaining contexts go to the next provider",
                            self.step.name, self.step.run_deadline)
            return RUN_DEADLINE, f"the run deadline of {self.step.run_deadline} s passed", 0.0
        if not self.gates[position].wait(until, self.abort):
            return "rate limited", "the endpoint's Retry-After ends past the deadline", 0.0
        if provider.limiter is not None:
            tokens = estimate_tokens("".join(str(m["content"]) for m in request.messages))
            if provider.limiter.acquire(tokens + request.max_output_tokens, until,
                                        self.abort) is None:
                return "rate limited", f"{provider.limiter!r} has no room before the deadline", 0.0
        reserved = 0.0
        if provider.paid:
            reserved = self.step.prices.cost(
                provider.name, provider.model,
                worst_case_prompt_tokens(request.messages, self.step.schema_bytes),
                request.max_output_tokens)
            if not self.budget.reserve(reserved, until, self.abort):
                self._warn_once(BUDGET, "model step %r: %s (%s) cannot cover another request "
                                "to %s; the remaining contexts go to the next provider",
                                self.step.name, self.budget.source, self.budget.limit,
                                provider.label)
                return BUDGET, (f"{self.budget.source} ({self.budget.limit}) cannot cover "
                                f"the worst case of another request ({reserved:.6g})"), 0.0
        refused = self.breakers[position].admit()
        if refused is not None:
            self.budget.settle(reserved, 0.0)
            disabled = self.breakers[position].disabled
            return refused, disabled if refused == PROVIDER_FAILED and disabled else refused, 0.0
        return None, "", reserved

    # -- the request --------------------------------------------------------------------

    def _request(self, position: int, provider: Provider, request: CompletionRequest,
                 served: Any, call: str, reserved: float) -> Sent:
        deadline = time.monotonic() + self.step.timeout
        if self.deadline_at is not None:
            deadline = min(deadline, self.deadline_at)
        attempt = Attempt(provider, call, started_at=dt.datetime.now(dt.UTC))
        started = time.perf_counter()
        try:
            completion = provider.complete(replace(request, deadline=deadline, abort=self.abort))
        except (ProviderError, AuthenticationError) as exc:
            self.budget.settle(reserved, 0.0)
            attempt.latency_ms = (time.perf_counter() - started) * 1000
            attempt.reason = getattr(exc, "reason", "authentication")
            attempt.detail = exc.message
            attempt.status = getattr(exc, "status", None)
            attempt.request_id = getattr(exc, "request_id", None)
            self.record(served, attempt)
            if isinstance(exc, AuthenticationError):
                self.breakers[position].disable(exc.message)
            raise
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        cost = self.step.prices.cost(provider.name, provider.model, completion.tokens_in,
                                     completion.tokens_out)
        self.budget.settle(reserved, cost)
        attempt.status, attempt.request_id = completion.status, completion.request_id
        attempt.tokens_in, attempt.tokens_out = completion.tokens_in, completion.tokens_out
        attempt.cost = cost
        if provider.paid and cost > reserved * (1 + 1e-9) + 1e-12:
            self._overbilled(position, provider, cost, reserved)
        return Sent(completion, attempt)

    def _after_failure(self, position: int, provider: Provider, exc: ProviderError,
                       number: int, until: float) -> None:
        """Count a failed request; return if it is to be retried (after the wait), else
        raise :class:`GaveUp`."""
        breaker = self.breakers[position]
        if exc.reason != ABORTED and breaker.record(False):
            self._circuit_opened(provider, exc.message)
        if exc.fatal and breaker.disable(exc.message):
            log.error("model step %r: %s fails fast and is not asked again this run: %s",
                      self.step.name, provider.label, exc.message)
        if exc.retry_after:
            self.gates[position].hold(exc.retry_after)
        policy = provider.retry
        if not exc.retriable or exc.fatal or not policy.should_retry(number):
            raise GaveUp(exc.reason, exc.message)
        delay = policy.delay(number, exc.retry_after)
        if time.monotonic() + delay > until:
            raise GaveUp(exc.reason, f"{exc.message} (no time left for a retry in "
                                     f"{delay:.1f} s)")
        log.info("model step %r: %s failed (%s); retry %d in %.2f s", self.step.name,
                 provider.label, exc.message, number, delay)
        if provider.on_retry is not None:
            provider.on_retry(number, exc, delay)
        if self.abort.wait(delay):
            raise GaveUp(ABORTED, f"{exc.message} (the run is stopping)")

    def _ask_locally(self, provider: Provider, request: CompletionRequest, served: Any,
                     call: str) -> Sent:
        attempt = Attempt(provider, call, started_at=dt.datetime.now(dt.UTC))
        started = time.perf_counter()
        try:
            completion = provider.complete(request)
        except ProviderError as exc:
            attempt.latency_ms = (time.perf_counter() - started) * 1000
            attempt.reason, attempt.detail = exc.reason, exc.message
            self.record(served, attempt)
            raise GaveUp(exc.reason, exc.message) from None
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        return Sent(completion, attempt)

    # -- telling ------------------------------------------------------------------------

    def _circuit_opened(self, provider: Provider, last: str) -> None:
        log.warning("model step %r: circuit open for %s after %d consecutive failures "
                    "(last: %s); its contexts go to the next provider for %s s",
                    self.step.name, provider.label, self.step.breaker_failures, last,
                    self.step.breaker_cooldown)

    def _overbilled(self, position: int, provider: Provider, cost: float, reserved: float
                    ) -> None:
        message = (f"{provider.label} billed {cost:.6g} for one request whose worst case "
                   f"was {reserved:.6g}: its usage counts cannot be right, or the price "
                   "table is wrong; it is not asked again this run")
        if self.breakers[position].disable(message):
            log.error("model step %r: %s", self.step.name, message)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        with self._warned_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message, *args)
