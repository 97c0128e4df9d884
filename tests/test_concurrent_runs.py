"""One writer per stream: concurrent runs of one stream, of several streams, racing first
runs, on PostgreSQL (separate processes) and DuckDB (processes and threads)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse, StreamLocked, open_warehouse, quote
from tests._landing import Finished, Paced, run_together
from tests._reliability import record
from tests.conftest import PG_URL

pytestmark = pytest.mark.reliability

ROWS = 2000
# About two seconds of landing: long enough that a second run always meets the first.
STEADY = {"rows": ROWS, "batch": 100, "pause": 0.1}


def spec(warehouse: str, stream: str = "items", **options: Any) -> dict[str, Any]:
    return {"warehouse": warehouse, "stream": stream, "run_id": f"run-{uuid.uuid4().hex[:8]}",
            "source": STEADY, "commit_rows": 100, **options}


@pytest.fixture
def pg_warehouse_url():
    """A PostgreSQL warehouse URL whose schema does not exist yet (dropped afterwards)."""
    schema = f"hw_cc_{uuid.uuid4().hex[:8]}"
    yield f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE"))
    engine.dispose()


def landed(url: str, table: str = "raw_paced__items") -> dict[str, int]:
    with open_warehouse(url) as warehouse:
        return warehouse.query(
            f"SELECT count(*) AS n, count(DISTINCT id) AS ids FROM {quote(table)}"
        ).to_pylist()[0]


def tally(case: str, warehouse: str, runs: int, outcome: str,
          landings: list[dict[str, int]]) -> None:
    """Record one concurrency case for RELIABILITY.md: rows and distinct ids landed (over
    every table the case wrote), and the rows beyond one per id."""
    rows, ids = sum(c["n"] for c in landings), sum(c["ids"] for c in landings)
    record("concurrent", case, warehouse=warehouse, runs=runs, outcome=outcome, rows=rows,
           ids=ids, duplicated=rows - ids)


def exits(runs: list[Finished]) -> str:
    return "exit " + ", ".join(str(r.returncode) for r in sorted(runs,
                                                                  key=lambda r: r.returncode))


def one_error_line(finished: Finished) -> str:
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_second_run_of_a_stream_on_postgres_fails_naming_the_first(
    pg_warehouse_url, tmp_path
) -> None:
    specs = [spec(pg_warehouse_url, lock_wait=0) for _ in range(2)]
    runs = run_together(specs, tmp_path)

    assert sorted(r.returncode for r in runs) == [0, 1], [r.stderr for r in runs]
    winner = next(r for r in runs if r.returncode == 0)
    loser = next(r for r in runs if r.returncode == 1)
    line = one_error_line(loser)
    named = winner.report["run_id"] in line and "PostgreSQL backend pid" in line
    tally("two runs of one stream, lock_wait = 0", "postgresql", 2,
          f"{exits(runs)}; the second {'named' if named else 'did not name'} the first "
          "(run id, since, backend pid)", [landed(pg_warehouse_url)])
    assert line.startswith(f"headwater: error: stream paced.items is being landed by run "
                           f"{winner.report['run_id']} since "), line
    assert "UTC (PostgreSQL backend pid " in line and "waited 0s" in line
    assert winner.report["rows"] == ROWS
    assert landed(pg_warehouse_url) == {"n": ROWS, "ids": ROWS}
    with open_warehouse(pg_warehouse_url) as warehouse:  # released: nothing left behind
        assert warehouse.row_count("_headwater_locks") == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_a_second_run_of_a_stream_on_postgres_waits_for_the_first(
    pg_warehouse_url, tmp_path
) -> None:
    runs = run_together([spec(pg_warehouse_url, lock_wait=60) for _ in range(2)], tmp_path)

    ok = [r.report for r in runs if r.report]
    ended = sorted(ok, key=lambda r: r["ended"])
    tally("two runs of one stream, lock_wait = 60", "postgresql", 2,
          f"{exits(runs)}; the one that ended last landed "
          f"{ended[-1]['rows'] if len(ended) == 2 else '?'} rows (it resumed from the state)",
          [landed(pg_warehouse_url)])
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    first, second = sorted((r.report for r in runs), key=lambda r: r["ended"])
    assert (first["rows"], second["rows"]) == (ROWS, 0)  # the second resumed from the state
    assert landed(pg_warehouse_url) == {"n": ROWS, "ids": ROWS}


@pytest.mark.slow
@pytest.mark.postgres
def test_different_streams_land_side_by_side_on_postgres(pg_warehouse_url, tmp_path) -> None:
    runs = run_together([spec(pg_warehouse_url, "a", lock_wait=0),
                         spec(pg_warehouse_url, "b", lock_wait=0)], tmp_path)

    tables = ("raw_paced__a", "raw_paced__b")
    reports = [r.report for r in runs if r.report]
    overlap = len(reports) == 2 and max(reports[0]["commits"][0], reports[1]["commits"][0]) < \
        min(reports[0]["commits"][-1], reports[1]["commits"][-1])
    tally("two streams at once, lock_wait = 0", "postgresql", 2,
          f"{exits(runs)}; commits {'interleaved' if overlap else 'did not interleave'}",
          [landed(pg_warehouse_url, t) for t in tables])
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    a, b = (r.report for r in runs)
    # Each committed many times over about two seconds; their commits interleave.
    assert len(a["commits"]) > 5 and len(b["commits"]) > 5
    assert max(a["commits"][0], b["commits"][0]) < min(a["commits"][-1], b["commits"][-1])
    for table in ("raw_paced__a", "raw_paced__b"):
        assert landed(pg_warehouse_url, table) == {"n": ROWS, "ids": ROWS}


@pytest.mark.slow
@pytest.mark.postgres
def test_racing_first_runs_create_the_schema_and_tables_once(pg_warehouse_url, tmp_path
                                                            ) -> None:
    quick = {"rows": ROWS, "batch": 250, "pause": 0.01}
    # Three partitions of one stream (overlapping: ids 500-700 and 1000-1200 are landed
    # by two writers at once) and three other streams, all into a schema not there yet.
    windows = [(1, 701), (500, 1201), (1000, ROWS + 1)]
    specs = [{**spec(pg_warehouse_url, window=w, lock_wait=0), "source": quick}
             for w in windows]
    specs += [{**spec(pg_warehouse_url, s, lock_wait=0), "source": quick} for s in "abc"]

    runs = run_together(specs, tmp_path)

    tables = ("raw_paced__items", "raw_paced__a", "raw_paced__b", "raw_paced__c")
    clean = sum(1 for r in runs if r.returncode == 0 and not r.stderr)
    tally("six racing first runs (overlapping partitions, new schema)", "postgresql",
          len(runs), f"{exits(runs)}; {clean} of {len(runs)} without a word on stderr",
          [landed(pg_warehouse_url, t) for t in tables])
    assert [(r.returncode, r.stderr) for r in runs] == [(0, "")] * len(specs)
    for table in tables:
        assert landed(pg_warehouse_url, table) == {"n": ROWS, "ids": ROWS}
    with open_warehouse(pg_warehouse_url) as warehouse:
        keys = warehouse.query(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.indisprimary AND n.nspname = current_schema() ORDER BY 1"
        ).column(0).to_pylist()
    assert keys == ["_headwater_locks", "_headwater_state", "raw_paced__a", "raw_paced__b",
                    "raw_paced__c", "raw_paced__items"]


@pytest.mark.slow
def test_a_second_process_on_a_duckdb_warehouse_is_refused_naming_the_holder(tmp_path
                                                                              ) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    runs = run_together([spec(url, lock_wait=0) for _ in range(2)], tmp_path)

    refused = [r.stderr for r in runs if r.returncode == 1]
    tally("two processes on one DuckDB file", "duckdb", 2,
          f"{exits(runs)}; the second " + ("was refused naming the holding PID" if refused and
                                           "(PID " in refused[0] else "was not refused"),
          [landed(url)])
    assert sorted(r.returncode for r in runs) == [0, 1], [r.stderr for r in runs]
    winner = next(r for r in runs if r.returncode == 0)
    line = one_error_line(next(r for r in runs if r.returncode == 1))
    assert line.startswith("headwater: error: cannot open the DuckDB warehouse"), line
    assert f"(PID {winner.pid})" in line
    assert landed(url) == {"n": ROWS, "ids": ROWS}


@pytest.mark.parametrize("wait", [0, 30], ids=["fails-at-once", "waits"])
def test_two_runs_of_a_stream_in_one_process_on_duckdb(tmp_path, wait) -> None:
    path = tmp_path / "w.duckdb"
    outcomes: dict[str, Any] = {}
    started = threading.Barrier(2, timeout=30)

    def land(run_id: str) -> None:
        connector = Paced(rows=ROWS, batch=100, pause=0.05)
        started.wait()  # both open the file at once, too
        try:
            with DuckDBWarehouse(path) as warehouse:  # a warehouse object of its own
                outcomes[run_id] = run_stream(connector, "items", warehouse, run_id=run_id,
                                              lock_wait=wait).rows
        except Exception as exc:
            outcomes[run_id] = exc

    threads = [threading.Thread(target=land, args=(f"run-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    results = sorted(outcomes.values(), key=lambda o: isinstance(o, StreamLocked))
    said = ", ".join(type(o).__name__ if isinstance(o, Exception) else f"{o} rows"
                     for o in results)
    tally(f"two runs of one stream in one process, lock_wait = {wait}", "duckdb", 2, said,
          [landed(f"duckdb:///{path}")])
    if wait:
        assert sorted(results) == [0, ROWS], results
    else:
        assert results[0] == ROWS and isinstance(results[1], StreamLocked)
        holder = next(k for k, v in outcomes.items() if v == ROWS)
        message = str(results[1])
        assert message.startswith(f"stream paced.items is being landed by run {holder} since ")
        assert "UTC (in this process); waited 0s" in message and "\n" not in message
    assert landed(f"duckdb:///{path}") == {"n": ROWS, "ids": ROWS}


@pytest.mark.postgres
def test_the_lock_is_per_stream_and_released_after_a_failed_run(pg_warehouse_url) -> None:
    # Two sessions of one process that do not know they share a warehouse (different
    # host names): only PostgreSQL's advisory lock stands between them.
    elsewhere = pg_warehouse_url.replace("127.0.0.1", "localhost")
    with open_warehouse(pg_warehouse_url) as first, open_warehouse(elsewhere) as other:
        with first.stream_lock("paced.items", "run-1"), other.stream_lock("paced.a", "run-2"):
            started = time.monotonic()
            with pytest.raises(StreamLocked) as refused:
                other.stream_lock("paced.items", "run-3", wait=0.5).__enter__()
            assert time.monotonic() - started >= 0.5
        assert "by run run-1 since " in str(refused.value)
        assert "(PostgreSQL backend pid " in str(refused.value)
        assert "waited 0.5s" in str(refused.value)
        with pytest.raises(RuntimeError), first.stream_lock("paced.items", "run-4"):
            raise RuntimeError("the run failed")
        with other.stream_lock("paced.items", "run-5", wait=0):
            assert other.query('SELECT run_id FROM "_headwater_locks"').to_pylist() == [
                {"run_id": "run-5"}]
