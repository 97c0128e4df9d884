"""The runner: commits, checkpoints and failures in the reading thread."""

from __future__ import annotations

import signal
import time

import pyarrow as pa
import pytest

from connectors import Connector, Stream, with_checkpoint
from pipelines.runner import COMMIT_SECONDS, prefetched, run_stream
from pipelines.warehouse import DuckDBWarehouse
from tests._landing import Paced, start_together

SCHEMA = pa.schema([("id", pa.int64())])


class Scripted(Connector):
    """Yields a scripted list of (ids, state-or-None) batches, or raises mid-way."""

    name = "scripted"
    streams = (Stream("items", primary_key=("id",)),)
    full_reads_mirror_source = True  # each script is the whole source

    def __init__(self, script) -> None:
        super().__init__()
        self.script = script

    def check(self) -> None:
        return None

    def discover(self):
        return list(self.streams)

    def read(self, stream, state=None):
        for step in self.script:
            if isinstance(step, Exception):
                raise step
            ids, checkpoint = step
            batch = pa.RecordBatch.from_pydict({"id": ids}, schema=SCHEMA)
            yield batch if checkpoint is None else with_checkpoint(batch, checkpoint)


def test_a_batch_without_a_checkpoint_keeps_the_last_state(tmp_path) -> None:
    connector = Scripted([([1, 2], {"after": 2}), ([3], None)])
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        result = run_stream(connector, "items", warehouse, commit_rows=1)
        assert result.rows == 3 and result.commits == 2
        assert warehouse.load_state("scripted.items") == {"after": 2}


def test_a_failure_in_the_reader_reaches_the_caller_after_earlier_commits(tmp_path) -> None:
    connector = Scripted([([1], {"after": 1}), ([2], {"after": 2}),
                          RuntimeError("source fell over")])
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        with pytest.raises(RuntimeError, match="source fell over"):
            run_stream(connector, "items", warehouse, commit_rows=1)
        assert warehouse.row_count("raw_scripted__items") == 2
        assert warehouse.load_state("scripted.items") == {"after": 2}


def test_prefetch_stops_and_closes_the_source_when_the_consumer_stops() -> None:
    closed = []

    def source():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    items = prefetched(source(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed == [True]


def test_commits_by_time_as_well_as_by_rows(tmp_path) -> None:
    connector = Paced(rows=1000, batch=50, pause=0.05)  # about one second
    states: list[dict] = []
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        result = run_stream(connector, "items", warehouse, commit_rows=10**9,
                            commit_seconds=0.2,
                            on_batch=lambda r: states.append(warehouse.load_state("paced.items")))
    assert result.rows == 1000
    assert 3 <= result.commits <= 10
    assert states[0]["after"] < 1000 and states[-1] == {"after": 1000}


@pytest.mark.slow
def test_a_run_killed_after_a_few_seconds_has_committed_its_progress(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    # 20 s at 2,000 rows a second: far fewer than COMMIT_ROWS by the time it is killed.
    paced = {"rows": 40_000, "batch": 100, "pause": 0.05}
    killed_after = COMMIT_SECONDS + 2
    run = {"warehouse": url, "stream": "items", "run_id": "run-killed", "source": paced}
    with start_together([run], tmp_path) as (child,):
        time.sleep(killed_after)
        child.send_signal(signal.SIGKILL)
        child.wait()
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        kept = warehouse.row_count("raw_paced__items")
        assert 0 < kept < paced["rows"]
        assert warehouse.load_state("paced.items") == {"after": kept}
        rest = run_stream(Paced(rows=40_000, batch=1000, pause=0), "items", warehouse)
        assert rest.rows == paced["rows"] - kept
        assert warehouse.query(
            'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM "raw_paced__items"'
        ).to_pylist() == [{"n": 40_000, "ids": 40_000}]


def test_a_connector_of_a_new_kind_keeps_rows_unless_it_says_its_reads_are_complete(
        tmp_path) -> None:
    class Partial(Scripted):
        full_reads_mirror_source = False  # reads only what is new, by a checkpoint of its own

    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        assert run_stream(Partial([([1, 2], {"after": 2})]), "items", warehouse).deletes is None
        second = run_stream(Partial([([3], {"after": 3})]), "items", warehouse)
        assert (second.removed, warehouse.row_count("raw_scripted__items")) == (0, 3)


def test_a_full_refresh_that_fails_keeps_its_last_checkpoint_and_removes_nothing(tmp_path
                                                                                ) -> None:
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        first = run_stream(Scripted([([1, 2, 3], {"after": 3})]), "items", warehouse)
        assert (first.rows, first.removed, first.deletes) == (3, 0, "hard")
        failing = Scripted([([1], {"after": 1}), ([], {"after": 1}),
                            RuntimeError("source fell over")])
        with pytest.raises(RuntimeError, match="source fell over"):
            run_stream(failing, "items", warehouse)
        assert warehouse.load_state("scripted.items") == {"after": 1}
        assert warehouse.row_count("raw_scripted__items") == 3  # nothing removed
        assert len(warehouse.load_state("scripted.items#full_read")["runs"]) == 1
        ended = run_stream(Scripted([([1, 2], {"after": 2})]), "items", warehouse)
        assert ended.removed == 1  # 3 is gone from the source; 1 (failed run) and 2 read
        assert warehouse.load_state("scripted.items#full_read") is None
