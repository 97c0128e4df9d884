"""Faults: killed backends, crashes before commit, bad credentials, missing tables, dead hosts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors import (
    NO_RETRY,
    AuthenticationError,
    ConfigurationError,
    RetriableSourceError,
    Retrier,
    RetryPolicy,
    SQLConnector,
    SQLTable,
)
from connectors.odbc import ODBCConnector
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse
from tests.conftest import PG_URL

ROWS = 12_000
APP = "hw-fault-source"


@pytest.fixture
def big_pg_table(pg_db):
    with pg_db.engine.begin() as conn:
        conn.execute(sa.text(
            f'CREATE TABLE "{pg_db.schema}".items AS SELECT g AS id, '
            "(g * 1.25)::numeric(12,2) AS amount, md5(g::text) AS note, "
            "timestamp '2024-01-01' + g * interval '1 minute' AS changed "
            f"FROM generate_series(1, {ROWS}) g"
        ))
        conn.execute(sa.text(f'ALTER TABLE "{pg_db.schema}".items ADD PRIMARY KEY (id)'))
    return pg_db


def kill_source_backends() -> int:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        killed = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = :app AND pid <> pg_backend_pid()"
        ), {"app": APP}).scalar()
    engine.dispose()
    return killed


PG_ODBC = ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;"
           f"Uid=postgres;Pwd=;pqopt={{application_name={APP}}}")
# Each way of reading the source: the SQL connector (ADBC fast path, SQLAlchemy) and the
# ODBC connector (arrow-odbc fast path, pyodbc).
READERS = pytest.mark.parametrize(
    "reader", [("sql", True), ("sql", False), ("odbc", True), ("odbc", False)],
    ids=["sql-adbc", "sql-generic", "odbc-arrow", "odbc-pyodbc"],
)


def connector_for(db, retry, reader) -> SQLConnector | ODBCConnector:
    kind, fast_path = reader
    options = {"db_schema": db.schema, "chunk_size": 1000, "batch_size": 500,
               "retry": retry, "fast_path": fast_path}
    streams = [SQLTable(name="items", table="items")]
    if kind == "odbc":
        return ODBCConnector("src", PG_ODBC, streams, **options)
    return SQLConnector("src", f"{PG_URL}?application_name={APP}", streams, **options)


def assert_exactly_the_source_rows(warehouse) -> None:
    counts = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, min(id) AS lo, max(id) AS hi "
        "FROM raw_src__items"
    ).to_pylist()[0]
    assert counts == {"n": ROWS, "ids": ROWS, "lo": 1, "hi": ROWS}


@pytest.mark.postgres
@READERS
@pytest.mark.parametrize("kill_at_commit", [1, 4, 8])
def test_backend_killed_mid_read_is_retried_from_the_checkpoint(
    big_pg_table, tmp_path, reader, kill_at_commit
) -> None:
    retries: list[int] = []
    retrier = Retrier(RetryPolicy(max_attempts=4, base_delay=0.01),
                      on_retry=lambda attempt, exc, delay: retries.append(attempt))
    killed = []

    def kill(result) -> None:
        if result.commits == kill_at_commit:
            killed.append(kill_source_backends())

    with connector_for(big_pg_table, retrier, reader) as connector, \
            DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        result = run_stream(connector, "items", warehouse, commit_rows=1000, on_batch=kill)
        assert killed and killed[0] >= 1, "no source backend was running to kill"
        assert retries, "the read never noticed the killed backend"
        assert result.rows == ROWS
        assert_exactly_the_source_rows(warehouse)


@pytest.mark.postgres
@READERS
@pytest.mark.parametrize("kill_at_commit", [2, 7])
def test_killed_run_resumes_mid_table_on_rerun(big_pg_table, tmp_path, reader,
                                               kill_at_commit) -> None:
    def kill(result) -> None:
        if result.commits == kill_at_commit:
            kill_source_backends()

    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        with connector_for(big_pg_table, NO_RETRY, reader) as connector, \
                pytest.raises(RetriableSourceError, match="after 1 attempt"):
            run_stream(connector, "items", warehouse, commit_rows=1000, on_batch=kill)
        landed = warehouse.row_count("raw_src__items")
        assert 0 < landed < ROWS
        with connector_for(big_pg_table, NO_RETRY, reader) as connector:
            rerun = run_stream(connector, "items", warehouse, commit_rows=1000)
        assert rerun.rows == ROWS - landed, "the rerun did not start at the checkpoint"
        assert_exactly_the_source_rows(warehouse)


class CrashBeforeCommit(DuckDBWarehouse):
    """A warehouse that fails inside the transaction of its n-th merge."""

    def __init__(self, path, crash_at: int) -> None:
        super().__init__(path)
        self.crash_at = crash_at
        self.merges = 0

    def _before_commit(self, table: str) -> None:
        self.merges += 1
        if self.merges == self.crash_at:
            raise RuntimeError("injected crash after the merge, before the commit")


def test_crash_after_merge_before_commit_changes_neither_rows_nor_state(
    erp_db, tmp_path
) -> None:
    path = tmp_path / "w.duckdb"
    with erp_db.connector(chunk_size=50) as connector:
        warehouse = CrashBeforeCommit(path, crash_at=3)
        with pytest.raises(RuntimeError, match="injected crash"):
            run_stream(connector, "orders", warehouse, commit_rows=50)
        rows_after_two = warehouse.row_count("raw_erp__orders")
        state_after_two = warehouse.load_state("erp.orders")
        warehouse.close()
        assert rows_after_two == 100
        assert state_after_two["resume"]["after"][1] is not None
        with DuckDBWarehouse(path) as reopened:
            assert reopened.row_count("raw_erp__orders") == 100
            assert reopened.load_state("erp.orders") == state_after_two
            rerun = run_stream(connector, "orders", reopened, commit_rows=50)
            assert rerun.rows == 200
            assert reopened.row_count("raw_erp__orders") == 300


@pytest.mark.mariadb
def test_wrong_password_names_host_and_database_never_the_password() -> None:
    secret = "S3cret-Hunter2!"
    admin = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/test")
    with admin.begin() as conn:
        conn.execute(sa.text("DROP USER IF EXISTS 'hw_auth'@'%'"))
        conn.execute(sa.text("CREATE USER 'hw_auth'@'%' IDENTIFIED BY 'right-one'"))
    try:
        url = sa.URL.create("mysql+pymysql", username="hw_auth", password=secret,
                            host="127.0.0.1", port=3306, database="test")
        connector = SQLConnector("crm", url, retry=RetryPolicy(max_attempts=3, base_delay=0))
        with pytest.raises(AuthenticationError) as err:
            connector.check()
        message = str(err.value)
        assert "127.0.0.1" in message and "'test'" in message
        assert secret not in message and secret not in repr(err.value)
        assert "password" in message
        assert err.value.__cause__ is not None
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text("DROP USER IF EXISTS 'hw_auth'@'%'"))
        admin.dispose()


def test_unknown_table_error_lists_existing_tables(erp_db) -> None:
    stream = SQLTable(name="invoices", table="INVOICES")
    with erp_db.connector([stream]) as connector, pytest.raises(ConfigurationError) as err:
        connector.check()
    message = str(err.value)
    for table in ("Customer Master", "PRODUCTS", "orders", "ORDER LINES"):
        assert repr(table) in message


@pytest.mark.postgres
def test_unreachable_host_is_retried_a_bounded_number_of_times() -> None:
    sleeps: list[float] = []
    retrier = Retrier(RetryPolicy(max_attempts=3, base_delay=0.5, jitter=False),
                      sleep=sleeps.append)
    connector = SQLConnector("erp", "postgresql+psycopg://postgres@127.0.0.1:1/test",
                             retry=retrier)
    with pytest.raises(RetriableSourceError) as err:
        connector.check()
    assert sleeps == [0.5, 1.0]
    message = str(err.value)
    assert "after 3 attempt(s)" in message and "127.0.0.1:1" in message and "'test'" in message
