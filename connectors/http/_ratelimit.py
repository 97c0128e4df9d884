"""A proactive rate limit: at most ``requests`` per ``per_seconds``, per source.

The core is pure (:func:`wait_needed` over the times of recent requests); the limiter
around it is thread-safe and sleeps through a seam so tests need no clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence


def wait_needed(recent: Sequence[float], now: float, requests: int, per_seconds: float) -> float:
    """Seconds to wait before another request may start at ``now``.

    ``recent`` holds the start times of earlier requests, oldest first. A request may
    start when fewer than ``requests`` started within the last ``per_seconds``.
    """
    inside = [t for t in recent if t > now - per_seconds]
    if len(inside) < requests:
        return 0.0
    # The oldest request that still counts must leave the interval first.
    return inside[-requests] + per_seconds - now


class RateLimit:
    """At most ``requests`` requests in any ``per_seconds`` interval (sliding window)."""

    def __init__(self, requests: int, per_seconds: float = 1.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if requests < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs requests >= 1 and per_seconds > 0")
        self.requests = requests
        self.per_seconds = per_seconds
        self._clock, self._sleep = clock, sleep
        self._recent: deque[float] = deque(maxlen=requests)
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a request may start, record it, and return the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                delay = wait_needed(self._recent, now, self.requests, self.per_seconds)
                if delay <= 0:
                    self._recent.append(now)
                    return waited
                self._sleep(delay)
                waited += delay

    def __repr__(self) -> str:
        return f"RateLimit({self.requests} per {self.per_seconds:g} s)"
