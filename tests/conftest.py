"""Shared fixtures: the demo ERP on live SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import Incremental, SQLConnector, SQLTable
from connectors.odbc import ODBCConnector
from headwater_demo.erp import build_erp

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
ERP_STREAMS = (
    SQLTable(name="customers", table="Customer Master", incremental=Incremental("Last_Update")),
    SQLTable(name="products", table="PRODUCTS", incremental=Incremental("UPDATED_AT")),
    SQLTable(name="orders", table="orders", incremental=Incremental("updated_at")),
    SQLTable(name="order_lines", table="ORDER LINES", incremental=Incremental("updated_at")),
)


@dataclass
class LiveDatabase:
    """An empty, private database (or schema) on one backend, dropped afterwards."""

    backend: str
    url: str
    schema: str | None
    engine: sa.Engine

    def connector(self, streams=ERP_STREAMS, **options) -> SQLConnector:
        return SQLConnector("erp", self.url, streams, db_schema=self.schema, **options)

    @property
    def odbc_connection_string(self) -> str:
        """The same database through the machine's ODBC driver for its backend."""
        if self.backend == "sqlite":
            return f"Driver={{SQLite3}};Database={self.engine.url.database}"
        if self.backend == "postgresql":
            return ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;"
                    "Uid=postgres;Pwd=")
        return (f"Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;"
                f"Database={self.engine.url.database};Uid=root;Pwd=")

    def odbc(self, streams=ERP_STREAMS, **options) -> ODBCConnector:
        return ODBCConnector("erp", self.odbc_connection_string, streams,
                             db_schema=self.schema, **options)

    def table(self, name: str) -> str:
        """A name usable in raw SQL written by a test, quoted by the dialect."""
        quote = self.engine.dialect.identifier_preparer.quote
        return f"{quote(self.schema)}.{quote(name)}" if self.schema else quote(name)


def _private_database(backend: str, tmp_path) -> Iterator[LiveDatabase]:
    name = f"hw_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.sqlite'}"
        engine = sa.create_engine(url)
        yield LiveDatabase(backend, url, None, engine)
        engine.dispose()
    elif backend == "postgresql":
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        try:
            yield LiveDatabase(backend, PG_URL, name, engine)
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
            engine.dispose()
    else:
        server = sa.create_engine(MARIADB_SERVER_URL)
        with server.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
        url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
        engine = sa.create_engine(url)
        try:
            yield LiveDatabase(backend, url, None, engine)
        finally:
            engine.dispose()
            with server.begin() as conn:
                conn.execute(sa.text(f"DROP DATABASE `{name}`"))
            server.dispose()


@pytest.fixture(params=BACKENDS)
def live_db(request, tmp_path) -> Iterator[LiveDatabase]:
    """An empty private database on each backend in turn."""
    yield from _private_database(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def erp_db(request, tmp_path) -> Iterator[LiveDatabase]:
    """The demo ERP (300 orders) in a private database on each backend in turn."""
    for db in _private_database(request.param, tmp_path):
        build_erp(db.engine, orders=300, schema=db.schema)
        yield db


@pytest.fixture
def pg_db(tmp_path) -> Iterator[LiveDatabase]:
    yield from _private_database("postgresql", tmp_path)


def demo_config(root, *, extra: str = "", replace: dict[str, str] | None = None):
    """The embedded demo configuration with its files under ``root``, written to
    ``root/headwater.toml``; ``replace`` edits its text, ``extra`` is appended."""
    from pipelines.config import embedded_config_text

    text = embedded_config_text()
    text = text.replace(".headwater/", f"{Path(root).as_posix()}/")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = Path(root) / "headwater.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + extra, "utf-8")
    return path


@dataclass
class Interrupted:
    """What a command line printed before and after its Ctrl-C."""

    banner: list[str]
    returncode: int
    stdout: str
    stderr: str


def serve_then_interrupt(module: str, *args: str, banner_lines: int,
                         probe: Callable[[list[str]], None], timeout: float = 5) -> Interrupted:
    """Run ``python -m module args``; once it has printed ``banner_lines`` lines, hand them
    to ``probe`` (which talks to the server they announce), then press Ctrl-C and wait."""
    with subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:
        try:
            out = process.stdout
            banner = [out.readline() for _ in range(banner_lines)] if out else []
            probe(banner)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return Interrupted(banner, process.returncode, stdout, stderr)


def demo_normalization():
    """The demo estate's normalization spec, as the embedded configuration declares it."""
    from pipelines.config import EMBEDDED_ORIGIN, embedded_config_text, read_config

    return read_config(embedded_config_text(), EMBEDDED_ORIGIN, None).normalization_spec()


@contextlib.contextmanager
def scratch_warehouse(kind: str, tmp_path: Path) -> Iterator[Any]:
    """A warehouse for one test: a DuckDB file in ``tmp_path`` (``kind`` "duckdb"), or a
    private PostgreSQL schema, dropped afterwards."""
    from pipelines.warehouse import DuckDBWarehouse, open_warehouse, quote

    if kind == "duckdb":
        with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
            yield warehouse
        return
    schema = f"hw_wh_{uuid.uuid4().hex[:8]}"
    try:
        with open_warehouse(f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}"
                            ) as warehouse:
            yield warehouse
    finally:
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE"))
        engine.dispose()
