"""What every benchmark here shares: children in fresh interpreters, peak RSS, medians."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass

CHILD_TIMEOUT_S = 1800


def peak_rss_mb() -> float:
    """This process's peak resident set so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, label: str, *args: str) -> dict:
    """Run ``script --child args...`` in a fresh interpreter; its last stdout line is JSON.

    Fails loudly with the child's stderr if it fails.
    """
    command = [sys.executable, script, "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{label} failed (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}{done.stdout[-1000:]}")
    return json.loads(lines[-1])


def time_command(command: list[str], *, stdout: int | None = None) -> float:
    """Wall-clock seconds of one external command (a database's own dump tool)."""
    import time

    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=stdout if stdout is not None else subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=CHILD_TIMEOUT_S)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Figures:
    """Medians of one method's repetitions."""

    method: str
    repetitions: int
    seconds: float
    low: float
    high: float
    peak_rss_mb: float | None  # the highest of the repetitions: a ceiling, not a typical run

    def rows_per_s(self, rows: int) -> float:
        return rows / self.seconds


def figures(method: str, runs: list[dict]) -> Figures:
    seconds = [r["seconds"] for r in runs]
    rss = [r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r]
    return Figures(method, len(runs), statistics.median(seconds), min(seconds), max(seconds),
                   max(rss) if rss else None)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
