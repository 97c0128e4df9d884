"""Rows deleted at the source: full-refresh streams mirror it (removed or marked in the
transaction that ends the read), incremental streams find them by reconciliation, a
killed reconciliation resumes without loss; in DuckDB and PostgreSQL warehouses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import ConfigurationError, Incremental, SQLConnector, SQLTable
from connectors.rest import RESTConnector, RESTStream
from headwater_demo.erp import build_erp
from pipelines.cleaning import clean_entity
from pipelines.cli import main
from pipelines.reconcile import reconcile_stream
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse, open_warehouse, quote
from tests.conftest import PG_URL, demo_normalization, scratch_warehouse

ROWS = 300


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path):
    with scratch_warehouse(request.param, tmp_path) as wh:
        yield wh


@pytest.fixture
def source(tmp_path) -> str:
    """A SQLite table of ``ROWS`` items, its cursor ``changed`` equal to the id."""
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    execute(url, "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, changed INTEGER)",
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "
            "INSERT INTO items SELECT i, 'item ' || i, i FROM n")
    return url


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def full_refresh(url: str, deletes: str | None = None, **options) -> SQLConnector:
    stream = SQLTable(name="items", table="items", deletes=deletes)
    return SQLConnector("src", url, [stream], chunk_size=options.pop("chunk_size", 50),
                        **options)


def incremental(url: str, reconcile: str | None = "hard", chunk_size: int = 50
                ) -> SQLConnector:
    stream = SQLTable(name="items", table="items", incremental=Incremental("changed"),
                      reconcile_deletes=reconcile)
    return SQLConnector("src", url, [stream], chunk_size=chunk_size)


def ids(warehouse, where: str = "") -> list[int]:
    sql = f'SELECT id FROM "raw_src__items" {where} ORDER BY id'
    return warehouse.query(sql).column(0).to_pylist()


# -- full refresh -------------------------------------------------------------------------


def test_a_row_deleted_at_the_source_is_removed_by_a_full_refresh(source, warehouse) -> None:
    with full_refresh(source) as connector:
        assert run_stream(connector, "items", warehouse).rows == ROWS
        execute(source, "DELETE FROM items WHERE id IN (7, 150)")
        result = run_stream(connector, "items", warehouse)
    assert (result.rows, result.removed, result.deletes) == (ROWS - 2, 2, "hard")
    assert ids(warehouse) == [i for i in range(1, ROWS + 1) if i not in (7, 150)]
    assert warehouse.load_state("src.items") == {}
    assert "src.items#full_read" not in warehouse.states()


def test_a_row_deleted_at_the_source_is_marked_by_a_soft_full_refresh(source, warehouse) -> None:
    with full_refresh(source, "soft") as connector:
        run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id = 9")
        marked = run_stream(connector, "items", warehouse)
        execute(source, "INSERT INTO items VALUES (9, 'back again', 9)")
        back = run_stream(connector, "items", warehouse)
    assert (marked.removed, back.removed) == (1, 0)
    assert ids(warehouse) == list(range(1, ROWS + 1))  # marked, not removed
    assert ids(warehouse, 'WHERE "_hw_deleted_at" IS NOT NULL') == []  # back at the source


def test_a_soft_delete_keeps_its_first_mark(source, warehouse) -> None:
    with full_refresh(source, "soft") as connector:
        run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id = 3")
        run_stream(connector, "items", warehouse)
        first = warehouse.query('SELECT "_hw_deleted_at" FROM "raw_src__items" WHERE id = 3')
        again = run_stream(connector, "items", warehouse)
        later = warehouse.query('SELECT "_hw_deleted_at" FROM "raw_src__items" WHERE id = 3')
    assert again.removed == 0 and first.equals(later)


def test_keep_leaves_deleted_rows_in_place(source, warehouse) -> None:
    with full_refresh(source, "keep") as connector:
        run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id = 5")
        assert run_stream(connector, "items", warehouse).removed == 0
    assert len(ids(warehouse)) == ROWS and "src.items#full_read" not in warehouse.states()


class Killed(Exception):
    """Stands for the process dying after a commit."""


def test_a_full_read_killed_and_resumed_keeps_what_the_killed_run_landed(source,
                                                                          warehouse) -> None:
    with full_refresh(source) as connector:
        run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id IN (20, 280)")

        def die_after_two_commits(result) -> None:
            if result.commits == 2:
                raise Killed

        with pytest.raises(Killed):
            run_stream(connector, "items", warehouse, commit_rows=50,
                       on_batch=die_after_two_commits)
        assert warehouse.load_state("src.items")["resume"]["after"] == [101]
        assert len(warehouse.load_state("src.items#full_read")["runs"]) == 1
        assert len(ids(warehouse)) == ROWS  # nothing removed before the read ends
        resumed = run_stream(connector, "items", warehouse, commit_rows=50)
    assert resumed.rows == ROWS - 2 - 100 and resumed.removed == 2
    assert ids(warehouse) == [i for i in range(1, ROWS + 1) if i not in (20, 280)]
    assert "src.items#full_read" not in warehouse.states()


def test_a_crash_in_the_last_commit_removes_nothing_and_saves_nothing(source) -> None:
    with full_refresh(source) as connector, DuckDBWarehouse(":memory:") as warehouse:
        run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id = 1")

        def crash(table: str) -> None:
            raise Killed

        warehouse._before_commit = crash
        with pytest.raises(Killed):
            run_stream(connector, "items", warehouse)
        del warehouse._before_commit
        assert len(ids(warehouse)) == ROWS and warehouse.load_state("src.items") == {}
        assert run_stream(connector, "items", warehouse).removed == 1


def test_normalization_and_contexts_leave_soft_deleted_rows_out(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    engine = sa.create_engine(url)
    build_erp(engine, orders=20)
    engine.dispose()
    stream = SQLTable(name="customers", table="Customer Master", deletes="soft")
    spec = demo_normalization()
    with SQLConnector("erp", url, [stream]) as connector, \
            DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        run_stream(connector, "customers", warehouse)
        gone = warehouse.query('SELECT "CUST_NO" FROM "raw_erp__customers" LIMIT 1')
        gone_no = gone.column(0)[0].as_py()
        execute(url, f"DELETE FROM \"Customer Master\" WHERE \"CUST_NO\" = '{gone_no}'")
        assert run_stream(connector, "customers", warehouse).removed == 1
        result = clean_entity(warehouse, spec.mapping("customer"), spec, run_id="n-1")
        clean = warehouse.read_table("clean_customer")
        raw = warehouse.row_count("raw_erp__customers")
    assert result.raw_rows == raw - 1
    assert gone_no.strip() not in clean.column("customer_no").to_pylist()
    assert "_hw_deleted_at" not in clean.column_names


# -- reconciliation -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_reconciliation_finds_rows_an_incremental_read_cannot_see(source, warehouse,
                                                                  mode) -> None:
    with incremental(source, mode) as connector:
        run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id IN (1, 77, 300)")
        assert run_stream(connector, "items", warehouse).rows == 0
        assert len(ids(warehouse)) == ROWS  # the incremental read cannot tell
        result = reconcile_stream(connector, "items", warehouse)
    assert (result.keys, result.removed, result.resumed) == (ROWS - 3, 3, False)
    if mode == "hard":
        assert len(ids(warehouse)) == ROWS - 3
    else:
        assert ids(warehouse, 'WHERE "_hw_deleted_at" IS NOT NULL') == [1, 77, 300]
    assert "_hw_keys_src__items" not in warehouse.tables()
    assert warehouse.load_state("src.items#reconcile")["last"]["keys"] == ROWS - 3


_RECONCILE_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from connectors import Incremental, SQLConnector, SQLTable
    from pipelines.reconcile import reconcile_stream
    from pipelines.warehouse import open_warehouse

    spec = json.loads(sys.argv[1])
    stream = SQLTable(name="items", table="items", incremental=Incremental("changed"),
                      reconcile_deletes="hard")

    def die(result):
        if result.chunks == spec["die_after"]:
            os.kill(os.getpid(), signal.SIGKILL)

    with SQLConnector("src", spec["source"], [stream], chunk_size=spec["chunk"]) as connector, \\
            open_warehouse(spec["warehouse"]) as warehouse:
        reconcile_stream(connector, "items", warehouse, on_chunk=die)
""")


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_a_reconciliation_killed_mid_scan_resumes_without_loss(source, tmp_path,
                                                               backend) -> None:
    schema = f"hw_wh_{uuid.uuid4().hex[:8]}"
    url = (f"duckdb:///{tmp_path / 'w.duckdb'}" if backend == "duckdb"
           else f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}")
    try:
        with incremental(source, chunk_size=20) as connector, open_warehouse(url) as warehouse:
            run_stream(connector, "items", warehouse)
        execute(source, "DELETE FROM items WHERE id IN (10, 250)")
        spec = {"source": source, "warehouse": url, "chunk": 20, "die_after": 5}
        child = subprocess.run([sys.executable, "-c", _RECONCILE_CHILD, json.dumps(spec)],
                               cwd=Path(__file__).resolve().parent.parent,
                               capture_output=True, text=True, timeout=120)
        assert child.returncode == -signal.SIGKILL, child.stderr
        # Meanwhile the source changes under the stopped scan: a row with a key the scan
        # has passed, landed by a run, must not be taken for deleted.
        execute(source, "INSERT INTO items VALUES (0, 'late', 1000)",
                "DELETE FROM items WHERE id = 260")
        with incremental(source, chunk_size=20) as connector, open_warehouse(url) as warehouse:
            scan = warehouse.load_state("src.items#reconcile")["scan"]
            assert scan["keys"] == 100 and scan["position"]["resume"]["after"] == [101]
            assert run_stream(connector, "items", warehouse).rows == 1
            result = reconcile_stream(connector, "items", warehouse)
            landed = ids(warehouse)
    finally:
        if backend == "postgres":
            engine = sa.create_engine(PG_URL)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE"))
            engine.dispose()
    assert result.resumed and result.keys == ROWS - 101 - 2  # the keys after 101 only
    assert result.removed == 3
    assert landed == [i for i in range(0, ROWS + 1) if i not in (10, 250, 260)]


def test_what_cannot_be_reconciled_says_why(source, warehouse) -> None:
    with full_refresh(source) as connector, \
            pytest.raises(ConfigurationError, match="is a full refresh"):
        reconcile_stream(connector, "items", warehouse)
    with incremental(source, reconcile=None) as connector, \
            pytest.raises(ConfigurationError, match="declare reconcile_deletes"):
        reconcile_stream(connector, "items", warehouse)
    with incremental(source) as connector, pytest.raises(ConfigurationError,
                                                         match="is not landed yet"):
        reconcile_stream(connector, "items", warehouse)
    with pytest.raises(ConfigurationError, match="a REST or SOAP source cannot"):
        RESTConnector("api", "http://127.0.0.1:1", [RESTStream(
            name="orders", path="/orders", primary_key=("id",),
            incremental=Incremental("updated_at"), reconcile_deletes="hard")])


def test_the_command_line_reconciles_and_reports(source, tmp_path, capsys) -> None:
    config = tmp_path / "headwater.toml"
    config.write_text(f"""
[warehouse]
url = "duckdb:///{tmp_path.as_posix()}/cli.duckdb"

[connectors.src]
kind = "sql"
url = "{source}"

[[connectors.src.streams]]
table = "items"
cursor = "changed"
reconcile_deletes = "soft"
""", "utf-8")
    assert main(["--config", str(config), "run"]) == 0
    execute(source, "DELETE FROM items WHERE id = 42")
    assert main(["--config", str(config), "reconcile"]) == 0
    out = capsys.readouterr().out
    assert (f"src.items: {ROWS - 1:,} keys scanned; 1 rows no longer at the source marked "
            "in raw_src__items") in out
