"""Progress lines for long reads: rows so far and the rate, at most once a second."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class Progress:
    """Prints ``<stream>: <rows> rows, <rate> rows/s`` lines to ``out``."""

    def __init__(self, out: TextIO | None = None, interval: float | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        # HEADWATER_PROGRESS_SECONDS sets how often (default: once a second).
        self.interval = interval if interval is not None else float(
            os.environ.get("HEADWATER_PROGRESS_SECONDS") or 1.0)
        self._started: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def start(self, key: str) -> None:
        now = time.monotonic()
        self._started[key] = now
        self._last[key] = now

    def update(self, key: str, rows: int) -> None:
        now = time.monotonic()
        if now - self._last.get(key, 0.0) < self.interval:
            return
        self._last[key] = now
        elapsed = max(now - self._started.get(key, now), 1e-9)
        print(f"  {key}: {rows:,} rows, {rows / elapsed:,.0f} rows/s", file=self.out, flush=True)



class Silent(Progress):
    """A progress reporter that prints nothing."""

    def update(self, key: str, rows: int) -> None:
        pass
