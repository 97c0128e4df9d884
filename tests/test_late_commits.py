"""Late commits: a row whose ``updated_at`` was set before a run read past it, but whose
transaction committed after, is landed by the next run with default settings."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

from connectors import Incremental, SQLConnector, SQLTable
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("lag", "label"),
    [(None, "late"), (dt.timedelta(0), "original")],
    ids=["default-lag-lands-it", "no-lag-misses-it"],
)
def test_a_late_committed_row_is_landed_by_the_next_run(pg_db, tmp_path, lag, label) -> None:
    items = pg_db.table("items")
    with pg_db.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {items} (id integer PRIMARY KEY, label text, "
                             "updated_at timestamp NOT NULL)"))
        conn.execute(sa.text(f"INSERT INTO {items} SELECT g, 'original', "
                             "now() - interval '1 hour' + g * interval '1 second' "
                             "FROM generate_series(1, 3) g"))
    stream = SQLTable(name="items", table="items",
                      incremental=Incremental("updated_at", lag=lag))
    connector = SQLConnector("src", pg_db.url, [stream], db_schema=pg_db.schema)
    with connector, DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        assert run_stream(connector, "items", warehouse).rows == 3

        def labels() -> dict[int, str]:
            rows = warehouse.query('SELECT id, label FROM "raw_src__items"').to_pylist()
            assert len(rows) == 3, rows  # merged by key: never a second copy
            return {r["id"]: r["label"] for r in rows}

        with pg_db.engine.connect() as late:
            # updated_at = now() is the transaction's start time; it commits later, after
            # a run has read (and saved a cursor) past that time.
            late.execute(sa.text(f"UPDATE {items} SET label = 'late', updated_at = now() "
                                 "WHERE id = 1"))
            time.sleep(0.05)
            with pg_db.engine.begin() as prompt:
                prompt.execute(sa.text(f"UPDATE {items} SET label = 'prompt', "
                                       "updated_at = now() WHERE id = 2"))
            run_stream(connector, "items", warehouse)
            assert labels() == {1: "original", 2: "prompt", 3: "original"}
            late.commit()

        run_stream(connector, "items", warehouse)
        assert labels() == {1: label, 2: "prompt", 3: "original"}
