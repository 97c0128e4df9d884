"""Where ``headwater run`` spends its wall clock on the 1M table: a diagnostic, not a target.

Run with no arguments (``.venv/bin/python bench/cli_breakdown.py``; about three minutes). It
lands ``hw_bench.t_1m`` (``sql_extract.py``'s table, built if missing) through the CLI's
own ``main`` into a fresh DuckDB file, in a fresh interpreter per repetition, with
timestamps taken around the steps of the command: the parent notes when it started the
process and when the process was gone, the child when its script began and around the
functions a run goes through (wrapped at run time; no product code changes). Plain
``headwater run`` processes alternate with the instrumented ones, so the cost of the
wrappers shows.

The parts, in the order they happen (medians of the repetitions):

- ``interpreter``: process start to the first line of the script (Python's own start-up);
- ``imports``: ``import pipelines.cli`` (what every command pays before ``main``);
- ``config``: argument parsing, logging set-up, reading the config file;
- ``warehouse open``: ``duckdb.connect`` and the state table;
- ``connector build``: ``SQLConnector`` (``create_engine``, which imports the dialect's
  driver);
- ``reflection``: from ``run_stream`` starting to the table reflected: the saved state,
  the first SQLAlchemy connection, listing tables, reflecting the table;
- ``adbc connect``: importing the ADBC driver and connecting (the reader thread);
- ``fill``: from the first chunk query to the first merge starting (the pipeline fills:
  nothing is written until ``COMMIT_ROWS`` rows have arrived);
- ``stream``: first merge start to the reader's last batch;
- ``drain``: the reader's last batch to the last merge's end;
- ``run_stream end``: the last merge's end to ``run_stream`` returning;
- ``after run_stream``: the summary's row count and closing the source connections;
- ``warehouse close``: closing the DuckDB file (its checkpoint);
- ``exit``: ``main`` returning to the process being gone (interpreter teardown).

The in-process ``headwater`` figure of ``sql_extract.py`` spans connector build to the end
of ``run_stream``; the parts outside that span are what the whole command adds.

Then it times, interleaved, the plain command beside variants that emulate proposals
without changing product code (wall clock and CPU of the whole process, medians):

- ``chunk 122880``: ``chunk_size = 122880`` in the config: one keyset chunk per commit
  (``COMMIT_ROWS``), so the first merge starts after one chunk, not two, and the last
  merge holds one chunk's rows;
- ``gc``: the CLI's ``main`` called from a wrapper that disables the cyclic garbage
  collector while ``pipelines.cli`` imports, then freezes what the imports made (so no
  later collection, and none at interpreter exit, walks those objects) and freezes again
  when ``main`` returns;
- ``gc + chunk 122880``: both.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

STARTED = time.time()

if TYPE_CHECKING:
    from sql_extract import Size

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPETITIONS = 5
TABLE = "t_1m"
ROWS = 1_000_000
ROW_GROUP = 122_880  # DuckDB's row group, and the runner's COMMIT_ROWS

# The `gc` variant: the console script's two lines with the collector kept out of the way.
GC_WRAPPER = """
import gc
import sys

gc.disable()
from pipelines.cli import main

gc.freeze()
gc.enable()
try:
    code = main()
finally:
    gc.freeze()
sys.exit(code)
"""

# (label, epoch seconds, thread name, that thread's CPU seconds so far)
MARKS: list[tuple[str, float, str, float]] = []


def mark(label: str) -> None:
    MARKS.append((label, time.time(), threading.current_thread().name, time.thread_time()))


def wrap(owner: object, name: str, label: str) -> None:
    """Mark the start and end of every call of ``owner.name``."""
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        mark(f"{label} start")
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"{label} end")

    setattr(owner, name, wrapped)


def wrap_generator(owner: object, name: str, label: str) -> None:
    """Mark when each call of the generator ``owner.name`` starts, yields first, ends."""
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        mark(f"{label} start")
        first = True
        for item in original(*args, **kwargs):
            if first:
                mark(f"{label} first")
                first = False
            yield item
        mark(f"{label} end")

    setattr(owner, name, wrapped)


def child_main(config: str) -> None:
    mark("script")
    import pipelines.cli as cli

    mark("imported")
    import sqlalchemy as sa

    from connectors.sql import SQLConnector, _arrow_native
    from pipelines.warehouse import DuckDBWarehouse

    for name, label in [("load_config", "config"), ("open_warehouse", "warehouse open"),
                        ("build_connector", "connector build"), ("run_stream", "run_stream")]:
        wrap(cli, name, label)
    wrap(sa.engine.Engine, "connect", "sa connect")
    wrap(SQLConnector, "table_names", "table names")
    wrap(SQLConnector, "reflect_table", "reflect")
    wrap(SQLConnector, "close", "connector close")
    wrap(_arrow_native.ArrowNativeReader, "_connection", "adbc connection")
    wrap_generator(_arrow_native.ArrowNativeReader, "fetch", "chunk")
    wrap(DuckDBWarehouse, "merge", "merge")
    wrap(DuckDBWarehouse, "row_count", "row count")
    wrap(DuckDBWarehouse, "close", "warehouse close")
    mark("main")
    status = cli.main(["--config", config, "run"])
    mark("returned")
    usage = os.times()
    print(json.dumps({"status": status, "started": STARTED, "marks": MARKS,
                      "cpu_s": usage.user + usage.system}))


def first(marks: list, label: str) -> float:
    return next(t for name, t, *_ in marks if name == label)


def last(marks: list, label: str) -> float:
    return [t for name, t, *_ in marks if name == label][-1]


def cpu(run: dict) -> dict[str, float]:
    """CPU seconds of the two threads that land the rows: the reader (the prefetch
    thread: ADBC fetching and decoding, the casts) and the merges (the main thread)."""
    m = run["marks"]
    reader = [c for name, _, thread, c in m if name == "chunk end" and thread != "MainThread"]
    starts = [c for name, _, _, c in m if name == "merge start"]
    ends = [c for name, _, _, c in m if name == "merge end"]
    return {"reader cpu": reader[-1], "merge cpu": sum(e - s for s, e in zip(starts, ends,
                                                                            strict=True)),
            "process cpu": run["cpu_s"]}


def parts(run: dict) -> dict[str, float]:
    """Seconds per part of one instrumented run (see the module docstring)."""
    m = run["marks"]
    chunk_ends = [t for name, t, *_ in m if name == "chunk end"]
    adbc = first(m, "adbc connection end") - first(m, "adbc connection start")
    return {
        "interpreter": run["started"] - run["spawned"],
        "imports": first(m, "imported") - first(m, "script"),
        "config": first(m, "config end") - first(m, "main"),
        "warehouse open": first(m, "warehouse open end") - first(m, "warehouse open start"),
        "connector build": first(m, "connector build end") - first(m, "connector build start"),
        "reflection": first(m, "reflect end") - first(m, "run_stream start"),
        "adbc connect": adbc,
        "fill": first(m, "merge start") - first(m, "reflect end") - adbc,
        "stream": chunk_ends[-1] - first(m, "merge start"),
        "drain": last(m, "merge end") - chunk_ends[-1],
        "run_stream end": first(m, "run_stream end") - last(m, "merge end"),
        "after run_stream": first(m, "warehouse close start") - first(m, "run_stream end"),
        "warehouse close": first(m, "warehouse close end") - first(m, "warehouse close start"),
        "exit": run["gone"] - first(m, "returned"),
    }


def spawn(command: list[str]) -> dict:
    """Run a command; its wall clock as epoch seconds around it, its last stdout line."""
    spawned = time.time()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    gone = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{command} failed:\n{done.stderr[-3000:]}")
    return {"spawned": spawned, "gone": gone, "stdout": done.stdout}


def main() -> None:
    from sql_extract import SIZES, ensure_table, write_config

    size = next(s for s in SIZES if s.table == TABLE)
    ensure_table(size)
    workdir = Path(tempfile.mkdtemp(prefix="hw_cli_breakdown_"))
    warehouse = workdir / "warehouse.duckdb"
    config = str(write_config(workdir / "headwater.toml", size, warehouse))
    headwater = str(Path(sys.executable).parent / "headwater")
    runs, plain = [], []
    try:
        for rep in range(1, REPETITIONS + 1):
            run, plain_seconds = measure_once(headwater, config, warehouse)
            runs.append(run)
            plain.append(plain_seconds)
            seconds = {**parts(run), **cpu(run)}
            print(f"rep {rep}: plain {plain_seconds:.2f} s, instrumented "
                  f"{run['gone'] - run['spawned']:.2f} s: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()), flush=True)
        report(runs, plain)
        print()
        compare_variants(headwater, config, workdir, size, warehouse)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def compare_variants(headwater: str, config: str, workdir: Path, size: Size,
                     warehouse: Path) -> None:
    """The plain command beside the emulated proposals, interleaved."""
    from _harness import time_process
    from sql_extract import write_config

    aligned = str(write_config(workdir / "aligned.toml", size, warehouse, chunk_size=ROW_GROUP))
    gc_run = [sys.executable, "-c", GC_WRAPPER]
    variants = {
        "as is": [headwater, "--config", config, "run"],
        f"chunk {ROW_GROUP}": [headwater, "--config", aligned, "run"],
        "gc": [*gc_run, "--config", config, "run"],
        f"gc + chunk {ROW_GROUP}": [*gc_run, "--config", aligned, "run"],
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for rep in range(1, REPETITIONS + 1):
        for name, command in variants.items():
            for leftover in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
                leftover.unlink(missing_ok=True)
            run = time_process(command, cwd=workdir)
            if f"{ROWS:,} rows -> raw_bench__t" not in run["stdout"]:
                raise SystemExit(f"{name} did not land {ROWS:,} rows:\n{run['stdout']}")
            results[name].append(run)
            print(f"  {name:<20} rep {rep}/{REPETITIONS}: {run['seconds']:.2f} s, "
                  f"CPU {run['cpu_s']:.2f} s, peak RSS {run['peak_rss_mb']:.0f} MB", flush=True)
    base = {k: statistics.median(r[k] for r in results["as is"]) for k in ("seconds", "cpu_s")}
    print(f"{'variant':<21} {'wall s':>7} {'vs as is':>9} {'CPU s':>7} {'vs as is':>9} "
          f"{'peak RSS MB':>12}")
    for name, runs in results.items():
        wall = statistics.median(r["seconds"] for r in runs)
        used = statistics.median(r["cpu_s"] for r in runs)
        print(f"{name:<21} {wall:>7.2f} {wall - base['seconds']:>+9.2f} {used:>7.2f} "
              f"{used - base['cpu_s']:>+9.2f} {max(r['peak_rss_mb'] for r in runs):>12.0f}")


def measure_once(headwater: str, config: str, warehouse: Path) -> tuple[dict, float]:
    """One plain ``headwater run``, then one instrumented, each into a fresh file."""
    runs = []
    for command in ([headwater, "--config", config, "run"],
                    [sys.executable, __file__, "--child", config]):
        for leftover in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
            leftover.unlink(missing_ok=True)
        runs.append(spawn(command))
    plain, run = runs
    if f"{ROWS:,} rows -> raw_bench__t" not in plain["stdout"]:
        raise SystemExit(f"headwater run did not land {ROWS:,} rows:\n{plain['stdout']}")
    report = json.loads(run["stdout"].strip().splitlines()[-1])
    if report["status"] != 0:
        raise SystemExit(f"the instrumented run failed:\n{run['stdout']}")
    return {**report, **run}, plain["gone"] - plain["spawned"]


def report(runs: list[dict], plain: list[float]) -> None:
    table = {k: statistics.median(parts(r)[k] for r in runs) for k in parts(runs[0])}
    threads = {k: statistics.median(cpu(r)[k] for r in runs) for k in cpu(runs[0])}
    print()
    print(f"{'part':<18} {'median s':>9}")
    for name, seconds in table.items():
        print(f"{name:<18} {seconds:>9.3f}")
    print(f"{'sum of parts':<18} {sum(table.values()):>9.3f}")
    print(f"{'instrumented wall':<18} "
          f"{statistics.median(r['gone'] - r['spawned'] for r in runs):>9.3f}")
    print(f"{'plain wall':<18} {statistics.median(plain):>9.3f}")
    for name, seconds in threads.items():
        print(f"{name:<18} {seconds:>9.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_main(sys.argv[2])
    else:
        main()
