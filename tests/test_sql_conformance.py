"""The SQL connector passes the shared conformance suite on all three live databases."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors import SQLConnector
from connectors.testing import conformance_suite
from headwater_demo.erp import build_erp
from tests.conftest import ERP_STREAMS, MARIADB_SERVER_URL, PG_URL

SCHEMA = "hw_conformance"


@functools.cache
def sqlite_erp() -> str:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'erp.sqlite'}"
    build_erp(sa.create_engine(url), orders=120)
    return url


@functools.cache
def postgres_erp() -> str:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    build_erp(engine, orders=120, schema=SCHEMA)
    engine.dispose()
    return PG_URL


@functools.cache
def mariadb_erp() -> str:
    server = sa.create_engine(MARIADB_SERVER_URL)
    with server.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}"))
    server.dispose()
    url = f"mysql+pymysql://root@127.0.0.1:3306/{SCHEMA}"
    build_erp(sa.create_engine(url), orders=120)
    return url


TestSQLiteConformance = conformance_suite(
    lambda: SQLConnector("erp", sqlite_erp(), ERP_STREAMS, chunk_size=50, batch_size=20)
)
TestPostgresArrowConformance = pytest.mark.postgres(conformance_suite(
    lambda: SQLConnector("erp", postgres_erp(), ERP_STREAMS, db_schema=SCHEMA, chunk_size=50)
))
TestPostgresGenericConformance = pytest.mark.postgres(conformance_suite(
    lambda: SQLConnector("erp", postgres_erp(), ERP_STREAMS, db_schema=SCHEMA, chunk_size=50,
                         fast_path=False)
))
TestMariaDBConformance = pytest.mark.mariadb(conformance_suite(
    lambda: SQLConnector("erp", mariadb_erp(), ERP_STREAMS, chunk_size=50, batch_size=20)
))
