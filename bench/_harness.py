"""What every benchmark here shares: children in fresh interpreters, peak RSS, medians."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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


def start_estate_server(module: str, args: list[str], ready: str, what: str
                        ) -> tuple[subprocess.Popen, str]:
    """Start ``python -m <module> <args>`` (a demo estate server) in its own session and
    read its banner up to the line holding ``ready``; return the process and the banner."""
    process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stdout is not None
    banner = ""
    while ready not in banner:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"{what} did not start (exit {process.poll()}): {banner!r}")
        banner += line
    return process, banner


def time_command(command: list[str], *, stdout: int | None = None) -> float:
    """Wall-clock seconds of one external command (a database's own dump tool)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=stdout if stdout is not None else subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=CHILD_TIMEOUT_S)
    return time.perf_counter() - started


def time_process(command: list[str], *, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> dict:
    """Wall-clock seconds and peak RSS of one whole command, start-up included.

    The peak is the ``ru_maxrss`` that ``wait4`` reports for the child: the largest of the
    process and the children it waited for. Returns ``seconds``, ``peak_rss_mb``,
    ``cpu_s`` (user + system, children included) and the command's ``stdout``; fails
    loudly with its output if it exits non-zero.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        # wait4 reaps the child itself (Popen.wait would discard its rusage), so the
        # timeout is a timer that kills it.
        killer = threading.Timer(CHILD_TIMEOUT_S, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed (exit {process.returncode}):\n"
                             f"{err.read().decode(errors='replace')[-3000:]}{stdout[-1000:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime, "stdout": stdout}


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


def interleaved(methods: dict[str, Callable[[], int]], repetitions: int, records: int
                ) -> dict[str, list[float]]:
    """Seconds of each method per repetition, the methods alternating so that background
    load spreads over all of them; each must return ``records``."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for rep in range(1, repetitions + 1):
        for name, method in methods.items():
            started = time.perf_counter()
            rows = method()
            seconds = time.perf_counter() - started
            if rows != records:
                raise SystemExit(f"{name} read {rows:,} records, expected {records:,}")
            times[name].append(seconds)
            print(f"  {name:<9} rep {rep}/{repetitions}: {seconds:.2f} s "
                  f"({records / seconds:,.0f} records/s)", flush=True)
    return times


def report_overhead(name: str, times: dict[str, list[float]], records: int, baseline: str,
                    target: float) -> None:
    """Print the medians, the verdict on ``target`` and the ``RESULT`` line of a
    framework-against-plain-client benchmark (``headwater`` against ``plain``)."""
    ours, plain = statistics.median(times["headwater"]), statistics.median(times["plain"])
    overhead = ours / plain - 1
    print()
    print(f"headwater: median {ours:.2f} s ({records / ours:,.0f} records/s); "
          f"{baseline}: median {plain:.2f} s ({records / plain:,.0f} records/s)")
    print(f"target overhead <= {target:.0%}: {overhead:.1%} -> {verdict(overhead <= target)}")
    print(f"RESULT {name} overhead={overhead:.3f} records_per_s={records / ours:.0f} "
          f"plain_records_per_s={records / plain:.0f} peak_rss_mb={peak_rss_mb():.0f}")
