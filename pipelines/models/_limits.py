"""What keeps a run's requests to one provider bounded, shared by its worker threads.

* :class:`CircuitBreaker` (one per provider per run): after ``failures`` consecutive
  failed requests (errors, timeouts, rejected answers) no request goes to the provider
  for ``cooldown`` seconds; then one probe request is let through, whose outcome closes
  or reopens it. A provider that failed fast (a 4xx other than 408/409/429) is closed
  for the rest of the run.
* :class:`RetryGate` (one per provider per run): the ``Retry-After`` one thread was told
  holds back every thread.
* :class:`UsageLimiter` (one per provider, across runs): at most ``rpm`` requests and
  ``tpm`` tokens (prompt estimate plus the output limit, as OpenAI counts them) in any
  60 seconds; the pure core is :func:`window_wait`.

Every wait is bounded by the caller's deadline and ends early when the run aborts.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from connectors import ConfigurationError

CIRCUIT_OPEN = "circuit open"
PROVIDER_FAILED = "provider failed"


class CircuitBreaker:
    """Stops calling a provider that keeps failing (see the module docstring)."""

    def __init__(self, failures: int, cooldown: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.cooldown, self._clock = failures, cooldown, clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self.openings = 0
        #: Why the provider is out for the rest of the run (it failed fast), if it is.
        self.disabled: str | None = None

    def admit(self) -> str | None:
        """None if a request may go now; else the reason it may not."""
        with self._lock:
            if self.disabled is not None:
                return PROVIDER_FAILED
            if self._opened_at is None:
                return None
            if self._probing or self._clock() - self._opened_at < self.cooldown:
                return CIRCUIT_OPEN
            self._probing = True  # half open: this request is the probe
            return None

    def record(self, ok: bool) -> bool:
        """Count a request's outcome; True if this failure opened the circuit."""
        with self._lock:
            if ok:
                self._consecutive, self._opened_at, self._probing = 0, None, False
                return False
            self._consecutive += 1
            if self._probing or (self._opened_at is None
                                 and self._consecutive >= self.failures):
                self._opened_at, self._probing = self._clock(), False
                self.openings += 1
                return True
            return False

    def disable(self, reason: str) -> bool:
        """Close the provider for the rest of the run; True the first time."""
        with self._lock:
            first = self.disabled is None
            self.disabled = self.disabled or reason
            return first

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self.disabled is not None or self._opened_at is not None


class RetryGate:
    """The earliest moment the provider may be asked again, shared by every thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._not_before = 0.0

    def hold(self, seconds: float) -> None:
        """The provider asked for ``seconds`` of quiet (``Retry-After``)."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def wait(self, deadline: float, abort: threading.Event) -> bool:
        """Wait until the provider may be asked; False if that is past ``deadline`` or
        the run aborts meanwhile."""
        with self._lock:
            until = self._not_before
        now = self._clock()
        if until <= now:
            return True
        if until > deadline:
            return False
        return not abort.wait(until - now)


def window_wait(recent: Sequence[tuple[float, int]], now: float, need: int, limit: int,
                per_seconds: float) -> float:
    """Seconds to wait before ``need`` more units fit under ``limit`` in any
    ``per_seconds`` window, given ``recent`` (start time, units) oldest first;
    ``inf`` if ``need`` alone is over the limit."""
    if need > limit:
        return math.inf
    inside = [(t, units) for t, units in recent if t > now - per_seconds]
    used = sum(units for _, units in inside)
    for started, units in inside:
        if used + need <= limit:
            break
        used -= units
        if used + need <= limit:
            return started + per_seconds - now
    return 0.0


class UsageLimiter:
    """At most ``rpm`` requests and ``tpm`` tokens a minute (``None``: no limit)."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None, *,
                 per_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if (rpm is not None and rpm < 1) or (tpm is not None and tpm < 1):
            raise ConfigurationError(f"rpm and tpm must be positive, got rpm={rpm} tpm={tpm}")
        self.rpm, self.tpm, self.per_seconds, self._clock = rpm, tpm, per_seconds, clock
        self._lock = threading.Lock()
        self._requests: deque[tuple[float, int]] = deque()
        self._tokens: deque[tuple[float, int]] = deque()

    def acquire(self, tokens: int, deadline: float, abort: threading.Event) -> float | None:
        """Wait until a request of ``tokens`` fits and record it; the seconds waited, or
        None if it cannot fit by ``deadline`` (nothing recorded)."""
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                self._forget(now)
                wait = 0.0
                if self.rpm is not None:
                    wait = window_wait(self._requests, now, 1, self.rpm, self.per_seconds)
                if self.tpm is not None:
                    wait = max(wait, window_wait(self._tokens, now, tokens, self.tpm,
                                                 self.per_seconds))
                if wait <= 0:
                    self._requests.append((now, 1))
                    self._tokens.append((now, tokens))
                    return now - started
            if now + wait > deadline or abort.wait(wait):
                return None

    def _forget(self, now: float) -> None:
        for window in (self._requests, self._tokens):
            while window and window[0][0] <= now - self.per_seconds:
                window.popleft()

    def __repr__(self) -> str:
        return f"UsageLimiter(rpm={self.rpm}, tpm={self.tpm})"
