"""How long headwater's commands take to start, beside the imports they cannot avoid.

Run with no arguments (``.venv/bin/python bench/startup.py``). It builds what it needs in
a temporary directory: a SQLite source (``items``: 1,000 rows with an ``updated_at``
cursor), a config file with that source and a DuckDB warehouse, and one ``headwater run``
that lands the rows. Then it times whole processes, start-up included, repetitions
interleaved by method after one warm-up round (not counted):

- ``import``: ``python -c "import sqlalchemy, pyarrow"``, the floor any SQL-to-Arrow
  command pays (the baseline of every ratio);
- ``help``: ``headwater --help``, the venv's console script;
- ``run_noop``: ``headwater --config <file> run`` on the incremental stream that has
  nothing new (each rerun must say ``no new rows``);
- ``dagster_load``: ``python -c "import dagster_project.definitions"`` with
  ``HEADWATER_CONFIG`` set to the same file: the code location load every Dagster
  process pays (the module builds its ``Definitions`` on import);
- ``dagster_validate``: ``dagster definitions validate -m dagster_project.definitions``,
  the same load through Dagster's own command.

Peak RSS is each process's ``ru_maxrss`` (its children included). Afterwards one more
``--help`` and one more rerun, in-process, list which heavy optional modules they
imported. The last line is the machine-readable ``RESULT startup ...`` summary.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import time_process, verdict

REPETITIONS = 7
SOURCE_ROWS = 1_000

# The target set by the issue: `headwater --help` at most this many times the bare imports.
MAX_HELP_VS_IMPORT = 1.5

# What a SQL `run` or `--help` should not import (issue 14).
HEAVY_MODULES = ("pyodbc", "arrow_odbc", "zeep", "adbc_driver_postgresql", "polars",
                 "pandera", "pandas", "dagster", "normalization")

BIN = Path(sys.executable).parent
HEADWATER = str(BIN / "headwater")
DAGSTER = str(BIN / "dagster")

# Run in a child interpreter: the CLI's main, then the heavy modules it left loaded.
LOADED_PROBE = """
import sys
from pipelines.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = {heavy!r}
print(" ".join(m for m in heavy if m in sys.modules) or "-")
"""


def build_estate(workdir: Path) -> Path:
    """The SQLite source, the config file, and the first run that lands the rows."""
    source = workdir / "source.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                     "amount NUMERIC(12, 2) NOT NULL, updated_at TIMESTAMP NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", [
            (i, f"item {i}", f"{i * 1.25:.2f}", f"2026-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}")
            for i in range(1, SOURCE_ROWS + 1)])
    config = workdir / "headwater.toml"
    config.write_text(f"""\
[warehouse]
url = "duckdb:///{workdir / 'warehouse.duckdb'}"

[connectors.src]
kind = "sql"
url = "sqlite:///{source}"

[[connectors.src.streams]]
table = "items"
cursor = "updated_at"
""", encoding="utf-8")
    first = time_process([HEADWATER, "--config", str(config), "run"], env=child_env(workdir),
                         cwd=workdir)
    if f"{SOURCE_ROWS:,} rows -> raw_src__items" not in first["stdout"]:
        raise SystemExit(f"the first run did not land {SOURCE_ROWS:,} rows:\n{first['stdout']}")
    print(f"landed {SOURCE_ROWS:,} rows from {source} in {first['seconds']:.2f} s")
    return config


def child_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment without anything that would pick another config or Dagster home."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HEADWATER_CONFIG", "HEADWATER_WAREHOUSE_URL", "DAGSTER_HOME")}
    return {**env, "DAGSTER_HOME": str(workdir / "dagster_home"), **extra}


def methods(workdir: Path, config: Path) -> dict[str, dict]:
    """Each method's command, environment, and a check of its output."""
    with_config = child_env(workdir, HEADWATER_CONFIG=str(config))
    plain = child_env(workdir)
    return {
        "import": {"command": [sys.executable, "-c", "import sqlalchemy, pyarrow"],
                   "env": plain},
        "help": {"command": [HEADWATER, "--help"], "env": plain, "expect": "usage: headwater"},
        "run_noop": {"command": [HEADWATER, "--config", str(config), "run"], "env": plain,
                     "expect": "src.items: no new rows"},
        "dagster_load": {"command": [sys.executable, "-c", "import dagster_project.definitions"],
                         "env": with_config},
        "dagster_validate": {"command": [DAGSTER, "definitions", "validate", "-m",
                                         "dagster_project.definitions"], "env": with_config},
    }


def run_once(name: str, method: dict, workdir: Path) -> dict:
    run = time_process(method["command"], env=method["env"], cwd=workdir)
    if "expect" in method and method["expect"] not in run["stdout"]:
        raise SystemExit(f"{name}: expected {method['expect']!r} in its output:\n"
                         f"{run['stdout'][-2000:]}")
    return run


def measure(workdir: Path, config: Path) -> dict[str, list[dict]]:
    chosen = methods(workdir, config)
    (workdir / "dagster_home").mkdir()
    for name, method in chosen.items():
        run_once(name, method, workdir)
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    for rep in range(1, REPETITIONS + 1):
        for name, method in chosen.items():
            run = run_once(name, method, workdir)
            runs[name].append(run)
            print(f"  {name:<16} rep {rep}/{REPETITIONS}: {run['seconds']:.3f} s, "
                  f"peak RSS {run['peak_rss_mb']:.0f} MB", flush=True)
    return runs


def loaded_heavy_modules(workdir: Path, config: Path, *args: str) -> str:
    probe = LOADED_PROBE.format(heavy=HEAVY_MODULES)
    run = time_process([sys.executable, "-c", probe, *args], env=child_env(workdir),
                       cwd=workdir)
    return run["stdout"].strip().splitlines()[-1]


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hw_startup_"))
    try:
        config = build_estate(workdir)
        print(f"measuring {REPETITIONS} repetitions of each, after a warm-up round", flush=True)
        runs = measure(workdir, config)
        help_loads = loaded_heavy_modules(workdir, config, "--help")
        run_loads = loaded_heavy_modules(workdir, config, "--config", str(config), "run")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    median = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    rss = {name: max(r["peak_rss_mb"] for r in rs) for name, rs in runs.items()}
    base = median["import"]
    print()
    print(f"{'method':<17} {'reps':>4} {'median s':>9} {'min-max s':>13} {'x import':>9} "
          f"{'peak RSS MB':>12}")
    for name, rs in runs.items():
        seconds = [r["seconds"] for r in rs]
        print(f"{name:<17} {len(rs):>4} {median[name]:>9.3f} "
              f"{f'{min(seconds):.3f}-{max(seconds):.3f}':>13} {median[name] / base:>9.2f} "
              f"{rss[name]:>12.0f}")
    print("whole processes, start-up included; peak RSS: the highest ru_maxrss of the "
          "repetitions.")
    print(f"heavy modules loaded by headwater --help: {help_loads}")
    print(f"heavy modules loaded by headwater run (nothing new): {run_loads}")
    print()
    ratio = {name: median[name] / base for name in median}
    print(f"target headwater --help <= {MAX_HELP_VS_IMPORT}x import sqlalchemy, pyarrow: "
          f"{ratio['help']:.2f}x -> {verdict(ratio['help'] <= MAX_HELP_VS_IMPORT)}")
    print(f"RESULT startup help_vs_import={ratio['help']:.2f} "
          f"run_noop_vs_import={ratio['run_noop']:.2f} "
          f"dagster_load_vs_import={ratio['dagster_load']:.2f} "
          f"dagster_validate_vs_import={ratio['dagster_validate']:.2f} "
          f"import_s={base:.3f} help_s={median['help']:.3f} "
          f"run_noop_s={median['run_noop']:.3f} dagster_load_s={median['dagster_load']:.3f} "
          f"dagster_validate_s={median['dagster_validate']:.3f} "
          f"import_rss_mb={rss['import']:.0f} help_rss_mb={rss['help']:.0f} "
          f"run_noop_rss_mb={rss['run_noop']:.0f} dagster_load_rss_mb={rss['dagster_load']:.0f} "
          f"dagster_validate_rss_mb={rss['dagster_validate']:.0f}")


if __name__ == "__main__":
    main()
