"""How fast headwater lands a PostgreSQL table in DuckDB, against the fastest peers.

Run with no arguments (``make bench``). It builds its own data in the local PostgreSQL
(schema ``hw_bench``, one table per size, generated server-side and rebuilt only when
missing or stale), then for each size times, repetitions interleaved by method:

Whole processes, start-up included (what a user compares), wall clock of the command:

- ``copy``: the database's own dump, ``psql \\copy (SELECT ...) TO '/dev/null'``;
- ``cli``: ``headwater --config <file> run`` (the venv's console script) from a config
  file written to a temporary directory, into a fresh DuckDB file each repetition;
- ``duckdb_pg``: DuckDB's own C++ scanner: a Python script (imports included) that
  loads DuckDB 1.4.4's ``postgres`` extension, ``ATTACH``es the database and runs
  ``CREATE TABLE t AS SELECT * FROM pg.hw_bench.<table>`` into a fresh DuckDB file. The
  extension cannot be downloaded here, so the bench builds (once, cached under
  ``~/.cache/headwater-bench/duckdb144``) a throwaway venv with ``duckdb==1.4.4`` and
  the registry package ``duckdb-ext-postgres==1.4.4.20260205``, and points
  ``extension_directory`` at the extensions that package ships.

In-process, in fresh subprocesses so that peak RSS is per method; each child times only
the work (its up-front imports excluded; modules the library loads lazily while running
are included) and prints its result, with its own ``ru_maxrss``, as JSON on its last
stdout line:

- ``headwater``: ``SQLConnector`` + ``run_stream`` into a fresh DuckDB file, with
  provenance columns and state, default settings (PostgreSQL goes through ADBC);
- ``pandas``: ``pandas.read_sql(..., chunksize=100_000)`` over a streaming SQLAlchemy
  psycopg connection, each chunk inserted into DuckDB through its DataFrame scan.

Medians are reported. The last line is the machine-readable ``RESULT sql_extract ...``
summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _duckdb_pg import DuckDBScanner, duckdb_scanner
from _harness import CHILD_TIMEOUT_S, peak_rss_mb, time_process, verdict
from _harness import run_child as run_script_child

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SA_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = "hw_bench"
PANDAS_CHUNK_ROWS = 100_000

# The targets set by the issues. Issue 2's 1.5x the dump (in-process) was beyond every
# tool measured here; issue 14 replaced it with a target against DuckDB's own scanner.
MAX_VS_DUCKDB_PG = 1.25
MIN_VS_PANDAS = 3.0
MAX_PEAK_RSS_MB = 400
# "Flat" peak memory: the 5M run may use at most this much more than the 1M run.
MAX_RSS_GROWTH = 1.10


@dataclass(frozen=True)
class Size:
    """One table size and how often each method runs on it."""

    rows: int
    repetitions: int
    methods: tuple[str, ...]

    @property
    def table(self) -> str:
        return f"t_{self.rows // 1_000_000}m"

    @property
    def label(self) -> str:
        return f"{self.rows // 1_000_000}M"


SIZES = (
    Size(1_000_000, 5, ("copy", "cli", "duckdb_pg", "headwater", "pandas")),
    # pandas at 5M is optional in the issue; see RESULTS.md for why it is left out.
    Size(5_000_000, 2, ("copy", "headwater")),
)

# Twelve columns in the mix of a typical ERP fact table: integer key, bigint, int, two
# exact decimals, a float, three text-like (text, blank-padded char, varchar), a date, a
# timestamptz and a boolean; some columns carry NULLs.
COLUMNS = """
    id integer NOT NULL,
    account_id bigint NOT NULL,
    quantity integer,
    amount numeric(12,2) NOT NULL,
    fx_rate numeric(18,6),
    score double precision,
    customer_name text NOT NULL,
    region_code char(8) NOT NULL,
    note varchar(40),
    order_date date NOT NULL,
    updated_at timestamptz NOT NULL,
    is_active boolean NOT NULL
"""
VALUES = """
    g,
    1000000000000 + (g::bigint * 7919) % 5000000,
    CASE WHEN g % 20 = 0 THEN NULL ELSE (g * 31) % 1000 END,
    ((g::bigint * 104729) % 100000000) / 100.0,
    CASE WHEN g % 10 = 0 THEN NULL ELSE round(0.5 + ((g::bigint * 7) % 1000000) / 666666.0, 6) END,
    ((g::bigint * 2654435761) % 1000000) / 1000.0,
    'Customer ' || (g % 50000),
    'R' || lpad((g % 1000)::text, 4, '0'),
    CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END,
    date '2015-01-01' + g % 3650,
    timestamptz '2020-01-01 00:00:00+00' + g * interval '37 seconds',
    g % 3 <> 0
"""
# Stored as the table comment: a changed definition rebuilds the table.
FINGERPRINT = hashlib.sha256((COLUMNS + VALUES).encode()).hexdigest()[:16]


# -- data ------------------------------------------------------------------------------


def ensure_table(size: Size) -> None:
    """Build ``hw_bench.<table>`` unless it exists with this definition and row count."""
    import psycopg

    qualified = f"{SCHEMA}.{size.table}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        found = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')",
                             [qualified]).fetchone()[0]
        if found == f"{FINGERPRINT} rows={size.rows}":
            count = conn.execute(f"SELECT count(*) FROM {qualified}").fetchone()[0]
            if count == size.rows:
                print(f"{qualified}: present, {count:,} rows")
                return
        print(f"{qualified}: building {size.rows:,} rows ...", flush=True)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"DROP TABLE IF EXISTS {qualified}")
            conn.execute(f"CREATE TABLE {qualified} ({COLUMNS})")
            conn.execute(f"INSERT INTO {qualified} SELECT {VALUES} "
                         f"FROM generate_series(1, {size.rows}) AS g")
            conn.execute(f"ALTER TABLE {qualified} ADD PRIMARY KEY (id)")
            conn.execute(f"COMMENT ON TABLE {qualified} IS '{FINGERPRINT} rows={size.rows}'")
        # Freezing sets hint bits now, so no measured read pays for writing them.
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {qualified}")
        print(f"{qualified}: built in {time.perf_counter() - started:.1f} s", flush=True)


# -- children: each runs one method once and reports JSON on its last line ---------------


def land_with_headwater(table: str, rows: int, workdir: Path) -> dict:
    """The public API, default settings: connector, DuckDB warehouse, run_stream."""
    from connectors import SQLConnector, SQLTable
    from pipelines.runner import run_stream
    from pipelines.warehouse import DuckDBWarehouse

    import_rss = peak_rss_mb()
    started = time.perf_counter()
    connector = SQLConnector("bench", SA_URL,
                             [SQLTable(name="t", table=table, db_schema=SCHEMA)])
    with DuckDBWarehouse(workdir / "warehouse.duckdb") as wh:
        result = run_stream(connector, "t", wh)
        seconds = time.perf_counter() - started
        landed = wh.row_count(result.table)
        columns = wh.query(f"SELECT * FROM {result.table} LIMIT 0").column_names
        state = wh.load_state("bench.t")
        closing = time.perf_counter()
    close_seconds = time.perf_counter() - closing
    connector.close()
    if landed != rows or result.rows != rows:
        raise SystemExit(f"headwater landed {landed:,} rows (reported {result.rows:,}), "
                         f"expected {rows:,}")
    if "_hw_run_id" not in columns or state is None:
        raise SystemExit("headwater landed no provenance columns or no state")
    return {"seconds": seconds, "close_seconds": close_seconds, "rows": landed,
            "import_rss_mb": import_rss, "commits": result.commits}


def land_with_pandas(table: str, rows: int, workdir: Path) -> dict:
    """What most teams write: chunked read_sql, each chunk appended through DuckDB.

    With read_sql's defaults NUMERIC and nullable integer columns land as DOUBLE: less
    exact work than headwater does, so this yardstick flatters pandas.
    """
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    import_rss = peak_rss_mb()
    started = time.perf_counter()
    engine = sa.create_engine(SA_URL)
    con = duckdb.connect(str(workdir / "pandas.duckdb"))
    query = sa.text(f"SELECT * FROM {SCHEMA}.{table}")
    with engine.connect() as conn:
        streaming = conn.execution_options(stream_results=True)
        for i, chunk in enumerate(pd.read_sql(query, streaming, chunksize=PANDAS_CHUNK_ROWS)):
            con.register("chunk_df", chunk)
            if i == 0:
                con.execute("CREATE TABLE t AS SELECT * FROM chunk_df")
            else:
                con.execute("INSERT INTO t SELECT * FROM chunk_df")
            con.unregister("chunk_df")
    seconds = time.perf_counter() - started
    landed = con.execute("SELECT count(*) FROM t").fetchone()[0]
    closing = time.perf_counter()
    con.close()
    close_seconds = time.perf_counter() - closing
    engine.dispose()
    if landed != rows:
        raise SystemExit(f"pandas path landed {landed:,} rows, expected {rows:,}")
    return {"seconds": seconds, "close_seconds": close_seconds, "rows": landed,
            "import_rss_mb": import_rss}


CHILDREN = {"headwater": land_with_headwater, "pandas": land_with_pandas}


def child_main(method: str, table: str, rows: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"hw_bench_{method}_"))
    try:
        report = CHILDREN[method](table, rows, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))


# -- whole processes: a user's commands, start-up included --------------------------------

@dataclass(frozen=True)
class WholeProcesses:
    """What the whole-process methods need: a scratch directory, headwater's config per
    table, and the DuckDB scanner's venv."""

    workdir: Path
    scanner: DuckDBScanner

    def warehouse(self, method: str) -> Path:
        return self.workdir / f"{method}.duckdb"

    def fresh(self, method: str) -> Path:
        """The method's DuckDB file, removed (with its WAL) so each repetition starts empty."""
        path = self.warehouse(method)
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        return path

    def config(self, size: Size) -> Path:
        """``headwater.toml`` landing ``hw_bench.<table>`` into the ``cli`` DuckDB file."""
        return write_config(self.workdir / f"headwater_{size.table}.toml", size,
                            self.warehouse("cli"))


def write_config(path: Path, size: Size, warehouse: Path, **options: int) -> Path:
    """A config file landing ``hw_bench.<table>`` as stream ``bench.t`` into ``warehouse``;
    ``options`` are further keys of the connector (``chunk_size = ...``)."""
    extra = "".join(f"{key} = {value}\n" for key, value in options.items())
    path.write_text(f"""\
[warehouse]
url = "duckdb:///{warehouse}"

[connectors.bench]
kind = "sql"
url = "{SA_URL}"
schema = "{SCHEMA}"
{extra}
[[connectors.bench.streams]]
name = "t"
table = "{size.table}"
""", encoding="utf-8")
    return path


def time_cli(size: Size, whole: WholeProcesses) -> dict:
    """``headwater --config <file> run`` into a fresh DuckDB file."""
    whole.fresh("cli")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HEADWATER_CONFIG", "HEADWATER_WAREHOUSE_URL")}
    headwater = str(Path(sys.executable).parent / "headwater")
    run = time_process([headwater, "--config", str(whole.config(size)), "run"], env=env,
                       cwd=whole.workdir)
    expected = f"bench.t: {size.rows:,} rows -> raw_bench__t"
    if expected not in run["stdout"]:
        raise SystemExit(f"headwater run did not land {size.rows:,} rows:\n{run['stdout']}")
    return {"seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"]}


def time_duckdb_pg(size: Size, whole: WholeProcesses) -> dict:
    """DuckDB 1.4.4's postgres scanner: ATTACH, then CREATE TABLE AS SELECT * ..."""
    scanner = whole.scanner
    run = time_process(scanner.command(whole.fresh("duckdb_pg"), f"{SCHEMA}.{size.table}"),
                       cwd=whole.workdir)
    report = json.loads(run["stdout"].strip().splitlines()[-1])
    if report["rows"] != size.rows:
        raise SystemExit(f"DuckDB's scanner landed {report['rows']:,} rows, "
                         f"expected {size.rows:,}")
    if not str(report["loaded_from"]).startswith(str(scanner.extension_directory)):
        raise SystemExit(f"DuckDB loaded the postgres extension from {report['loaded_from']}, "
                         f"not from {scanner.extension_directory}")
    return {"seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"]}


WHOLE_PROCESSES = {"cli": time_cli, "duckdb_pg": time_duckdb_pg}


# -- parent ------------------------------------------------------------------------------


def time_copy(table: str) -> dict:
    """Wall clock of the server's own text COPY to a client that throws it away."""
    command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c",
               f"\\copy (SELECT * FROM {SCHEMA}.{table}) TO '/dev/null'"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=CHILD_TIMEOUT_S)
    return {"seconds": time.perf_counter() - started}


def run_child(method: str, size: Size) -> dict:
    """Run one method in a fresh interpreter; fail loudly with its stderr if it fails."""
    return run_script_child(__file__, f"{method} on {size.label}", method, size.table,
                            str(size.rows))


def run_method(method: str, size: Size, whole: WholeProcesses) -> dict:
    if method == "copy":
        return time_copy(size.table)
    if method in WHOLE_PROCESSES:
        return WHOLE_PROCESSES[method](size, whole)
    return run_child(method, size)


def measure(size: Size, whole: WholeProcesses) -> dict[str, list[dict]]:
    """Every method on one size, repetitions interleaved; one warm-up COPY first."""
    time_copy(size.table)
    runs: dict[str, list[dict]] = {m: [] for m in size.methods}
    for rep in range(1, size.repetitions + 1):
        for method in size.methods:
            run = run_method(method, size, whole)
            runs[method].append(run)
            extra = (f" (+{run['close_seconds']:.2f} s closing DuckDB)"
                     if "close_seconds" in run else "")
            extra += f", peak RSS {run['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in run else ""
            print(f"  {size.label} {method:<9} rep {rep}/{size.repetitions}: "
                  f"{run['seconds']:.2f} s{extra}", flush=True)
    return runs


@dataclass(frozen=True)
class Summary:
    """Medians of one method on one size."""

    size: Size
    method: str
    repetitions: int
    seconds: float
    low: float
    high: float
    peak_rss_mb: float | None  # the highest of the repetitions: a ceiling, not a typical run
    close_seconds: float | None

    @property
    def rows_per_s(self) -> float:
        return self.size.rows / self.seconds


def summarize(size: Size, method: str, runs: list[dict]) -> Summary:
    seconds = [r["seconds"] for r in runs]
    rss = [r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r]
    close = [r["close_seconds"] for r in runs if "close_seconds" in r]
    return Summary(size, method, len(runs), statistics.median(seconds), min(seconds),
                   max(seconds), max(rss) if rss else None,
                   statistics.median(close) if close else None)


def print_table(summaries: list[Summary]) -> None:
    print()
    print(f"{'size':<5} {'method':<10} {'reps':>4} {'median s':>9} {'min-max s':>13} "
          f"{'rows/s':>11} {'peak RSS MB':>12} {'close s':>8}")
    for s in summaries:
        rss = f"{s.peak_rss_mb:.0f}" if s.peak_rss_mb is not None else "-"
        close = f"{s.close_seconds:.2f}" if s.close_seconds is not None else "-"
        print(f"{s.size.label:<5} {s.method:<10} {s.repetitions:>4} {s.seconds:>9.2f} "
              f"{f'{s.low:.2f}-{s.high:.2f}':>13} {s.rows_per_s:>11,.0f} {rss:>12} {close:>8}")
    print("median s: copy, cli and duckdb_pg: the whole command, start-up and closing "
          "included; headwater and pandas: connector construction (or engine creation) to "
          "the last row written, imports and DuckDB close not included; close s: closing "
          "the DuckDB file afterwards; peak RSS: the process's ru_maxrss, imports included, "
          "highest of the repetitions.")
    print()


def main() -> None:
    summaries: dict[tuple[str, str], Summary] = {}
    for size in SIZES:
        ensure_table(size)
    whole = WholeProcesses(Path(tempfile.mkdtemp(prefix="hw_bench_whole_")), duckdb_scanner())
    try:
        for size in SIZES:
            print(f"measuring {size.label} ({size.rows:,} rows x 12 columns), "
                  f"{size.repetitions} repetitions", flush=True)
            for method, runs in measure(size, whole).items():
                summaries[size.label, method] = summarize(size, method, runs)
    finally:
        shutil.rmtree(whole.workdir, ignore_errors=True)
    print_table(list(summaries.values()))
    report(summaries)


def report(summaries: dict[tuple[str, str], Summary]) -> None:
    """The verdicts on the targets and the ``RESULT`` line."""
    copy, headwater = summaries["1M", "copy"], summaries["1M", "headwater"]
    cli, duckdb_pg = summaries["1M", "cli"], summaries["1M", "duckdb_pg"]
    pandas, headwater_5m = summaries["1M", "pandas"], summaries["5M", "headwater"]
    vs_duckdb_pg = cli.seconds / duckdb_pg.seconds
    cli_vs_copy = cli.seconds / copy.seconds
    vs_copy = headwater.seconds / copy.seconds
    vs_pandas = pandas.seconds / headwater.seconds
    rss_1m, rss_5m = headwater.peak_rss_mb, headwater_5m.peak_rss_mb
    print(f"target headwater run <= {MAX_VS_DUCKDB_PG}x DuckDB's postgres scanner (whole "
          f"processes): {vs_duckdb_pg:.2f}x -> {verdict(vs_duckdb_pg <= MAX_VS_DUCKDB_PG)}")
    print(f"  headwater run: {cli_vs_copy:.2f}x the dump; DuckDB's scanner: "
          f"{duckdb_pg.seconds / copy.seconds:.2f}x the dump; in-process landing: "
          f"{vs_copy:.2f}x the dump (issue 2's 1.5x, replaced by the target above)")
    with_close = (headwater.seconds + headwater.close_seconds) / copy.seconds
    print(f"  (in-process with closing the DuckDB file counted too: {with_close:.2f}x)")
    print(f"target >= {MIN_VS_PANDAS}x faster than pandas: {vs_pandas:.2f}x -> "
          f"{verdict(vs_pandas >= MIN_VS_PANDAS)}")
    print(f"target peak RSS <= {MAX_PEAK_RSS_MB} MB: {rss_1m:.0f} MB at 1M, {rss_5m:.0f} MB "
          f"at 5M -> {verdict(max(rss_1m, rss_5m) <= MAX_PEAK_RSS_MB)}")
    print(f"target peak RSS flat 1M -> 5M (<= {MAX_RSS_GROWTH:.2f}x): {rss_5m / rss_1m:.2f}x -> "
          f"{verdict(rss_5m <= rss_1m * MAX_RSS_GROWTH)}")
    print(f"RESULT sql_extract vs_duckdb_pg={vs_duckdb_pg:.2f} cli_vs_copy={cli_vs_copy:.2f} "
          f"vs_copy={vs_copy:.2f} vs_pandas={vs_pandas:.2f} "
          f"peak_rss_mb={rss_1m:.0f} peak_rss_5m_mb={rss_5m:.0f} "
          f"rows_per_s={headwater.rows_per_s:.0f} cli_s={cli.seconds:.2f} "
          f"duckdb_pg_s={duckdb_pg.seconds:.2f} copy_s={copy.seconds:.2f} "
          f"cli_peak_rss_mb={cli.peak_rss_mb:.0f} "
          f"duckdb_pg_peak_rss_mb={duckdb_pg.peak_rss_mb:.0f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
