"""Retry policy: a value with a pure delay function, and the loop that applies it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ._errors import RetriableSourceError

T = TypeVar("T")

# Every retry of a source call is told here, at WARNING: a run that survived transient
# faults says so (the CLI prints it; the Dagster assets turn it into events and metadata).
RETRY_LOG = logging.getLogger("headwater.retries")


def report_retry(what: str, attempt: int, error: RetriableSourceError, delay: float) -> None:
    """Log one retry: what failed, which attempt, why, and the wait before the next."""
    RETRY_LOG.warning("%s: attempt %d failed (%s); retrying in %.1f s", what, attempt,
                      error.message, delay, extra={"headwater_retry": {
                          "what": what, "attempt": attempt, "error": error.message,
                          "delay": round(delay, 3)}})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter and a cap.

    ``delay(attempt)`` is pure given the random source: attempt ``n`` (1-based, the
    attempt that just failed) waits a uniform time in ``[0, min(max_delay,
    base_delay * 2 ** (n - 1))]``. A delay the server asked for (``Retry-After``)
    wins over the computed one.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt``."""
        if retry_after is not None:
            return max(0.0, float(retry_after))
        # Cap the exponent first: 2 ** 1100 overflows a float long after any cap applies.
        exponent = min(max(attempt - 1, 0), 64)
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** exponent))
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(0.0, ceiling)

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt is allowed after ``attempt`` attempts failed."""
        return attempt < self.max_attempts


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass
class Retrier:
    """Runs calls under a :class:`RetryPolicy`, retrying only retriable errors.

    ``sleep`` and ``rng`` are seams for tests; ``on_retry`` is told of each retry.
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None
    on_retry: Callable[[int, RetriableSourceError, float], None] | None = None

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Call ``fn`` until it succeeds, raises a non-retriable error, or attempts run out."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except RetriableSourceError as exc:
                self.wait_or_raise(attempt, exc, what)

    def wait_or_raise(self, attempt: int, exc: RetriableSourceError, what: str) -> None:
        """After failed ``attempt``, sleep before the next one or raise if none is left."""
        if not self.policy.should_retry(attempt):
            raise RetriableSourceError(
                f"{what} failed after {attempt} attempt(s): {exc.message}",
                retry_after=exc.retry_after,
            ) from exc
        seconds = self.policy.delay(attempt, exc.retry_after, self.rng)
        report_retry(what, attempt, exc, seconds)
        if self.on_retry is not None:
            self.on_retry(attempt, exc, seconds)
        self.sleep(seconds)
