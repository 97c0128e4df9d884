"""The runner: commits, checkpoints and failures in the reading thread."""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors import Connector, Stream, with_checkpoint
from pipelines.runner import prefetched, run_stream
from pipelines.warehouse import DuckDBWarehouse

SCHEMA = pa.schema([("id", pa.int64())])


class Scripted(Connector):
    """Yields a scripted list of (ids, state-or-None) batches, or raises mid-way."""

    name = "scripted"
    streams = (Stream("items", primary_key=("id",)),)

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
