"""The differential type matrix: every type of every database, on every read path.

For PostgreSQL, MariaDB and SQLite, one table per column type (``type_matrix_cases``)
holds edge values and a NULL. Each read path (SQLAlchemy with ``fast_path=False``, ADBC
on PostgreSQL, arrow-odbc and pyodbc through ``ODBCConnector``) must discover the
documented Arrow type, read every value equal to the database's own text rendering of it,
and land the same values in a DuckDB warehouse through the runner. A value that cannot
land in the documented type stops the read with a ``DataContractError`` naming
connector, stream, column and key, and lands exactly once the stream declares the
override the message names.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors import DataContractError, SQLConnector, SQLTable
from connectors.odbc import ODBCConnector
from pipelines.runner import run_stream
from pipelines.warehouse import open_warehouse, quote
from tests.conftest import PG_URL, LiveDatabase, _private_database
from tests.type_matrix_cases import CASES, PATHS, TEXT_SQL, Case
from tests.type_matrix_values import actual_values, expected_value

pytestmark = pytest.mark.filterwarnings(
    # MariaDB notes the CHAR padding it was asked to keep as a truncation on some inserts.
    "ignore:.*Data truncated.*"
)
# The session the reference text is printed in: UTC, and CHAR padding kept on MariaDB
# (as the connectors keep it).
SESSION = {"postgresql": ["SET TIME ZONE 'UTC'"],
           "mariadb": ["SET SESSION sql_mode = CONCAT(@@sql_mode, ',PAD_CHAR_TO_FULL_LENGTH')"],
           "sqlite": []}
MARKS = {"postgresql": [pytest.mark.postgres], "mariadb": [pytest.mark.mariadb], "sqlite": []}
CONNECTOR = "tm"


def _params() -> list:
    return [
        pytest.param(backend, path, case, marks=MARKS[backend],
                     id=f"{backend}-{path}-{case.name}")
        for backend, cases in CASES.items() for path in PATHS[backend] for case in cases
    ]


def _stream(case: Case, **options) -> SQLTable:
    return SQLTable(name=f"tm_{case.name}", table=f"tm_{case.name}", **options)


class MatrixSource:
    """One backend's case tables, the text the database prints for each value, and a
    connector and a DuckDB warehouse per read path (built when first asked for)."""

    def __init__(self, db: LiveDatabase, root) -> None:
        self.db = db
        self.root = root
        self.cases = CASES[db.backend]
        self.connectors: dict[str, SQLConnector | ODBCConnector] = {}
        self.warehouses: dict[str, object] = {}
        self.texts: dict[str, dict[int, str | None]] = {}
        self._create_tables()

    def _create_tables(self) -> None:
        db = self.db
        percent = db.backend in ("postgresql", "mariadb")  # drivers with %-style markers
        with db.engine.begin() as conn:
            if db.backend == "postgresql":
                conn.exec_driver_sql(
                    f"CREATE TYPE {db.table('tm_mood')} AS ENUM ('sad', 'ok')")
            for case in self.cases:
                table = db.table(f"tm_{case.name}")
                ddl = case.ddl.format(schema=quote(db.schema or ""))
                conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v {ddl})")
                rows = ", ".join(f"({i}, {v})" for i, v in enumerate([*case.values, "NULL"], 1))
                insert = f"INSERT INTO {table} (id, v) VALUES {rows}"
                conn.exec_driver_sql(insert.replace("%", "%%") if percent else insert)
        with db.engine.connect() as conn:
            for statement in SESSION[db.backend]:
                conn.exec_driver_sql(statement)
            for case in self.cases:
                render = case.text.format("v") if case.text else TEXT_SQL[db.backend]("v")
                rows = conn.exec_driver_sql(
                    f"SELECT id, CASE WHEN v IS NULL THEN NULL ELSE {render} END "
                    f"FROM {db.table(f'tm_{case.name}')} ORDER BY id"
                ).fetchall()
                self.texts[case.name] = dict(rows)

    def connector(self, path: str, streams=None) -> SQLConnector | ODBCConnector:
        if streams is not None or path not in self.connectors:
            streams = streams or [_stream(c) for c in self.cases]
            db = self.db
            if path in ("sqlalchemy", "adbc"):
                made = SQLConnector(CONNECTOR, db.url, streams, db_schema=db.schema,
                                    fast_path=path == "adbc")
            else:
                made = ODBCConnector(CONNECTOR, db.odbc_connection_string, streams,
                                     db_schema=db.schema, fast_path=path == "arrow-odbc")
            if streams is not None and path in self.connectors:
                return made
            self.connectors[path] = made
        return self.connectors[path]

    def warehouse(self, path: str):
        if path not in self.warehouses:
            self.warehouses[path] = open_warehouse(f"duckdb:///{self.root / path}.duckdb")
        return self.warehouses[path]

    def expected(self, case: Case, arrow: pa.DataType) -> dict[int, object]:
        return {i: expected_value(text, arrow) for i, text in self.texts[case.name].items()}

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        for warehouse in self.warehouses.values():
            warehouse.close()


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Iterator[dict[str, MatrixSource]]:
    """The case tables of each backend, created when a test first needs them."""
    with contextlib.ExitStack() as stack:

        class Lazy(dict):
            def __missing__(self, backend: str) -> MatrixSource:
                root = tmp_path_factory.mktemp(f"matrix_{backend}")
                db = stack.enter_context(contextlib.contextmanager(_private_database)(
                    backend, root))
                source = MatrixSource(db, root)
                stack.callback(source.close)
                self[backend] = source
                return source

        yield Lazy()


def _landing(t: pa.DataType) -> pa.DataType:
    """The type as a warehouse stores it: text and binary whatever their offsets' width."""
    return {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}.get(t, t)


def _landed(table: pa.Table) -> dict[int, object]:
    return dict(zip(table.column("id").to_pylist(), actual_values(table.column("v")),
                    strict=True))


def _read(connector, stream: str) -> pa.Table:
    batches = [b for b in connector.read(stream) if b.num_rows]
    assert batches, f"{stream}: nothing read"
    return pa.Table.from_batches(batches)


@pytest.mark.parametrize(("backend", "path", "case"), _params())
def test_every_value_lands_as_the_database_prints_it(sources, backend, path, case) -> None:
    source = sources[backend]
    stream = f"tm_{case.name}"
    if path not in case.fails:
        _assert_lands_exactly(source, source.connector(path), path, stream, case, case.arrow)
        return
    _assert_fails_naming_where(source.connector(path), stream)
    with source.connector(path, [_stream(case, column_types=case.override)]) as declared:
        _assert_lands_exactly(source, declared, path, stream, case, case.override_arrow)


def _assert_lands_exactly(source: MatrixSource, connector, path: str, stream: str,
                          case: Case, arrow: pa.DataType) -> None:
    discovered = next(s for s in connector.discover() if s.name == stream).schema
    assert _landing(discovered.field("v").type) == _landing(arrow), f"{stream}: {discovered}"
    expected = source.expected(case, arrow)
    assert _landed(_read(connector, stream)) == expected
    warehouse = source.warehouse(path)
    result = run_stream(connector, stream, warehouse)
    assert result.rows == len(expected)
    landed = warehouse.query(f"SELECT id, v FROM {quote(result.table)} ORDER BY id")
    assert _landed(landed) == expected


# The path a connector takes by default: where a PostgreSQL warehouse's landing is checked.
DEFAULT_PATH = {"postgresql": "adbc", "mariadb": "sqlalchemy", "sqlite": "sqlalchemy"}


@pytest.fixture(scope="module")
def pg_warehouses():
    """A PostgreSQL warehouse per source backend, each in a private schema dropped
    afterwards."""
    schemas: list[str] = []

    class Lazy(dict):
        def __missing__(self, backend: str):
            schemas.append(f"hw_wh_{uuid.uuid4().hex[:10]}")
            self[backend] = open_warehouse(
                f"postgresql://postgres@127.0.0.1:5432/test?schema={schemas[-1]}")
            return self[backend]

    warehouses = Lazy()
    try:
        yield warehouses
    finally:
        for warehouse in warehouses.values():
            warehouse.close()
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            for schema in schemas:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(("backend", "case"), [
    pytest.param(backend, case, marks=MARKS[backend], id=f"{backend}-{case.name}")
    for backend, cases in CASES.items() for case in cases
])
def test_every_type_lands_in_a_postgresql_warehouse(sources, pg_warehouses, backend,
                                                    case) -> None:
    source = sources[backend]
    pg_warehouse = pg_warehouses[backend]
    path = DEFAULT_PATH[backend]
    stream = f"tm_{case.name}"
    with contextlib.ExitStack() as stack:
        connector = source.connector(path)
        arrow = case.arrow
        if path in case.fails:
            connector = stack.enter_context(
                source.connector(path, [_stream(case, column_types=case.override)]))
            arrow = case.override_arrow
        result = run_stream(connector, stream, pg_warehouse)
    expected = source.expected(case, arrow)
    assert result.rows == len(expected)
    landed = pg_warehouse.query(f"SELECT id, v FROM {quote(result.table)} ORDER BY id")
    assert _landed(landed) == expected


def _assert_fails_naming_where(connector, stream: str) -> None:
    with pytest.raises(DataContractError) as failure:
        list(connector.read(stream))
    message = str(failure.value)
    for part in (f"connector {CONNECTOR!r}", f"stream {stream!r}", "column 'v'", "id="):
        assert part in message, message
    assert "column_types" in message, message


def test_the_matrix_covers_every_path_of_every_database() -> None:
    assert set(PATHS["postgresql"]) == {"sqlalchemy", "adbc", "arrow-odbc", "pyodbc"}
    assert {"sqlalchemy", "arrow-odbc", "pyodbc"} <= set(PATHS["mariadb"]) & set(PATHS["sqlite"])
    names = {b: {c.name for c in cases} for b, cases in CASES.items()}
    assert {"double", "real", "numeric_50_20", "money", "interval", "json", "uuid",
            "int_array", "enum", "timestamptz", "bytea", "boolean"} <= names["postgresql"]
    assert {"float", "double", "real", "decimal_65_30", "year", "set", "enum",
            "time_range"} <= names["mariadb"]
