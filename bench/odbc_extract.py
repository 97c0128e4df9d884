"""How fast headwater reads through ODBC into Arrow, against plain pyodbc and the dumps.

Run with no arguments (``make bench``). It builds its own data: 1,000,000 rows x 12
columns in the local PostgreSQL (``hw_bench.t_1m``, shared with ``sql_extract.py``) and
the same table in the local MariaDB (database ``hw_bench``), each rebuilt only when
missing or stale. Then, per database, repetitions interleaved, it times:

- ``headwater``: ``ODBCConnector`` with default settings (the arrow-odbc fast path),
  every Arrow batch of the stream read;
- ``pyodbc``: what most teams write: ``cursor.execute("SELECT * ...")``, then
  ``fetchmany(100_000)`` into a pandas DataFrame per chunk, concatenated at the end;
- ``dump``: the database's own client, ``psql \\copy (...) TO '/dev/null'`` and
  ``mariadb --quick -e 'SELECT ...' > /dev/null``.

Both Python methods run in fresh subprocesses through the machine's ODBC drivers
(``PostgreSQL Unicode``, ``MariaDB Unicode``), so peak RSS is per method; each times
only the work, imports excluded. The last line is ``RESULT odbc_extract ...``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import figures, peak_rss_mb, run_child, time_command, verdict
from sql_extract import SCHEMA, SIZES, ensure_table

ROWS = 1_000_000
REPETITIONS = 3
PYODBC_CHUNK_ROWS = 100_000
TABLE = "t_1m"

# The targets set by the issue.
MIN_PG_VS_PYODBC = 2.5
MIN_MARIA_VS_PYODBC = 5.0
MAX_PEAK_RSS_MB = 400

CONNECTIONS = {
    "postgresql": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;"
                  "Uid=postgres;Pwd=",
    "mariadb": f"Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;Database={SCHEMA};"
               "Uid=root;Pwd=",
}

# The PostgreSQL table of sql_extract.py, column for column, in MariaDB's types.
MARIADB_COLUMNS = """
    id int NOT NULL PRIMARY KEY,
    account_id bigint NOT NULL,
    quantity int,
    amount decimal(12,2) NOT NULL,
    fx_rate decimal(18,6),
    score double,
    customer_name text NOT NULL,
    region_code char(8) NOT NULL,
    note varchar(40),
    order_date date NOT NULL,
    updated_at datetime(6) NOT NULL,
    is_active boolean NOT NULL
"""
MARIADB_VALUES = """
    seq,
    1000000000000 + (seq * 7919) % 5000000,
    CASE WHEN seq % 20 = 0 THEN NULL ELSE (seq * 31) % 1000 END,
    ((seq * 104729) % 100000000) / 100.0,
    CASE WHEN seq % 10 = 0 THEN NULL ELSE round(0.5 + ((seq * 7) % 1000000) / 666666.0, 6) END,
    ((seq * 2654435761) % 1000000) / 1000.0,
    CONCAT('Customer ', seq % 50000),
    CONCAT('R', LPAD(seq % 1000, 4, '0')),
    CASE WHEN seq % 7 = 0 THEN NULL ELSE MD5(seq) END,
    DATE '2015-01-01' + INTERVAL (seq % 3650) DAY,
    TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (seq * 37) SECOND,
    seq % 3 <> 0
"""
MARIADB_FINGERPRINT = hashlib.sha256((MARIADB_COLUMNS + MARIADB_VALUES).encode()).hexdigest()[:16]


def mariadb(sql: str) -> str:
    done = subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-B", "-e", sql],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def ensure_mariadb_table() -> None:
    """Build ``hw_bench.t_1m`` in MariaDB unless it exists with this definition."""
    qualified = f"{SCHEMA}.{TABLE}"
    mariadb(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
    found = mariadb("SELECT table_comment FROM information_schema.tables "
                    f"WHERE table_schema = '{SCHEMA}' AND table_name = '{TABLE}'")
    if found == f"{MARIADB_FINGERPRINT} rows={ROWS}":
        count = int(mariadb(f"SELECT count(*) FROM {qualified}"))
        if count == ROWS:
            print(f"mariadb {qualified}: present, {count:,} rows")
            return
    print(f"mariadb {qualified}: building {ROWS:,} rows ...", flush=True)
    started = time.perf_counter()
    mariadb(f"DROP TABLE IF EXISTS {qualified}; "
            f"CREATE TABLE {qualified} ({MARIADB_COLUMNS}) "
            f"COMMENT '{MARIADB_FINGERPRINT} rows={ROWS}'; "
            f"INSERT INTO {qualified} SELECT {MARIADB_VALUES} FROM {SCHEMA}.seq_1_to_{ROWS}")
    print(f"mariadb {qualified}: built in {time.perf_counter() - started:.1f} s", flush=True)


# -- children ------------------------------------------------------------------------------


def read_with_headwater(database: str) -> dict:
    from connectors import SQLTable
    from connectors.odbc import ODBCConnector

    schema = SCHEMA if database == "postgresql" else None
    started = time.perf_counter()
    connector = ODBCConnector("bench", CONNECTIONS[database],
                              [SQLTable(name="t", table=TABLE, db_schema=schema)])
    rows = sum(batch.num_rows for batch in connector.read("t"))
    seconds = time.perf_counter() - started
    fast = connector.plan(connector.stream("t")).fast
    connector.close()
    return {"seconds": seconds, "rows": rows, "fast_path": fast}


def read_with_pyodbc(database: str) -> dict:
    import pandas as pd
    import pyodbc

    started = time.perf_counter()
    conn = pyodbc.connect(CONNECTIONS[database])
    cursor = conn.cursor()
    cursor.execute(f"SELECT * FROM {SCHEMA}.{TABLE}")
    columns = [d[0] for d in cursor.description]
    frames = []
    while rows := cursor.fetchmany(PYODBC_CHUNK_ROWS):
        frames.append(pd.DataFrame.from_records(rows, columns=columns))
    frame = pd.concat(frames, ignore_index=True)
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "rows": len(frame)}


CHILDREN = {"headwater": read_with_headwater, "pyodbc": read_with_pyodbc}


def child_main(method: str, database: str) -> None:
    report = CHILDREN[method](database)
    if report["rows"] != ROWS:
        raise SystemExit(f"{method} on {database} read {report['rows']:,} rows, "
                         f"expected {ROWS:,}")
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))


# -- parent ----------------------------------------------------------------------------------


def dump(database: str) -> dict:
    if database == "postgresql":
        command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c",
                   f"\\copy (SELECT * FROM {SCHEMA}.{TABLE}) TO '/dev/null'"]
    else:
        command = ["mariadb", "--quick", "-h", "127.0.0.1", "-u", "root", "-N", "-B", "-e",
                   f"SELECT * FROM {SCHEMA}.{TABLE}"]
    with open("/dev/null", "wb") as sink:
        return {"seconds": time_command(command, stdout=sink.fileno())}


def measure(database: str) -> dict:
    dump(database)  # warm the cache
    runs: dict[str, list[dict]] = {"dump": [], "headwater": [], "pyodbc": []}
    for rep in range(1, REPETITIONS + 1):
        for method in runs:
            run = dump(database) if method == "dump" else run_child(
                __file__, f"{method} on {database}", method, database)
            runs[method].append(run)
            rss = f", peak RSS {run['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in run else ""
            print(f"  {database:<10} {method:<9} rep {rep}/{REPETITIONS}: "
                  f"{run['seconds']:.2f} s{rss}", flush=True)
    if not all(r["fast_path"] for r in runs["headwater"]):
        raise SystemExit(f"headwater did not take the Arrow fast path on {database}")
    return {method: figures(method, method_runs) for method, method_runs in runs.items()}


def main() -> None:
    ensure_table(next(s for s in SIZES if s.rows == ROWS))
    ensure_mariadb_table()
    results = {}
    for database in CONNECTIONS:
        print(f"measuring {database}: {ROWS:,} rows x 12 columns, {REPETITIONS} repetitions",
              flush=True)
        results[database] = measure(database)
    print()
    print(f"{'database':<10} {'method':<10} {'median s':>9} {'min-max s':>13} {'rows/s':>11} "
          f"{'peak RSS MB':>12}")
    for database, by_method in results.items():
        for f in by_method.values():
            rss = f"{f.peak_rss_mb:.0f}" if f.peak_rss_mb is not None else "-"
            print(f"{database:<10} {f.method:<10} {f.seconds:>9.2f} "
                  f"{f'{f.low:.2f}-{f.high:.2f}':>13} {f.rows_per_s(ROWS):>11,.0f} {rss:>12}")
    print()
    pg, maria = results["postgresql"], results["mariadb"]
    pg_ratio = pg["pyodbc"].seconds / pg["headwater"].seconds
    maria_ratio = maria["pyodbc"].seconds / maria["headwater"].seconds
    peak = max(pg["headwater"].peak_rss_mb, maria["headwater"].peak_rss_mb)
    print(f"target >= {MIN_PG_VS_PYODBC}x faster than pyodbc on PostgreSQL: {pg_ratio:.2f}x -> "
          f"{verdict(pg_ratio >= MIN_PG_VS_PYODBC)}")
    print(f"target >= {MIN_MARIA_VS_PYODBC}x faster than pyodbc on MariaDB: "
          f"{maria_ratio:.2f}x -> {verdict(maria_ratio >= MIN_MARIA_VS_PYODBC)}")
    print(f"target peak RSS <= {MAX_PEAK_RSS_MB} MB: {peak:.0f} MB -> "
          f"{verdict(peak <= MAX_PEAK_RSS_MB)}")
    for database, by_method in results.items():
        ratio = by_method["headwater"].seconds / by_method["dump"].seconds
        print(f"  {database}: headwater takes {ratio:.2f}x the dump's time")
    print(f"RESULT odbc_extract pg_vs_pyodbc={pg_ratio:.2f} maria_vs_pyodbc={maria_ratio:.2f} "
          f"peak_rss_mb={peak:.0f} "
          f"pg_rows_per_s={pg['headwater'].rows_per_s(ROWS):.0f} "
          f"maria_rows_per_s={maria['headwater'].rows_per_s(ROWS):.0f} "
          f"pg_vs_dump={pg['headwater'].seconds / pg['dump'].seconds:.2f} "
          f"maria_vs_dump={maria['headwater'].seconds / maria['dump'].seconds:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3])
    else:
        main()
