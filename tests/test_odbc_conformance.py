"""The ODBC connector passes the conformance suite through three real ODBC drivers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors.odbc import ODBCConnector
from connectors.testing import conformance_suite
from tests.conftest import ERP_STREAMS
from tests.test_sql_conformance import SCHEMA, mariadb_erp, postgres_erp, sqlite_erp


def sqlite_odbc() -> str:
    return f"Driver={{SQLite3}};Database={sa.make_url(sqlite_erp()).database}"


def postgres_odbc() -> str:
    postgres_erp()
    return "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres"


def mariadb_odbc() -> str:
    mariadb_erp()
    return f"Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;Database={SCHEMA};Uid=root"


def suite(connection_string, *, fast: bool, schema: str | None = None):
    return conformance_suite(lambda: ODBCConnector(
        "erp", connection_string(), ERP_STREAMS, db_schema=schema, chunk_size=50,
        batch_size=20, fast_path=fast,
    ))


TestSQLiteArrowODBCConformance = suite(sqlite_odbc, fast=True)
TestSQLitePyODBCConformance = suite(sqlite_odbc, fast=False)
TestPostgresArrowODBCConformance = pytest.mark.postgres(
    suite(postgres_odbc, fast=True, schema=SCHEMA))
TestPostgresPyODBCConformance = pytest.mark.postgres(
    suite(postgres_odbc, fast=False, schema=SCHEMA))
TestMariaDBArrowODBCConformance = pytest.mark.mariadb(suite(mariadb_odbc, fast=True))
TestMariaDBPyODBCConformance = pytest.mark.mariadb(suite(mariadb_odbc, fast=False))
