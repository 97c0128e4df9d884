"""The demo ERP: the same quirky rows on SQLite, PostgreSQL and MariaDB, and a day of activity."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from headwater_demo.erp import ERP_TABLES, build_erp, erp_metadata, touch_erp

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
ORDERS = 300
SEED = 7
SENTINEL = dt.date(1900, 1, 1)
NUMERIC_COLUMNS = {
    ("PRODUCTS", "UNIT_PRICE"): (12, 2),
    ("PRODUCTS", "WEIGHT_KG"): (10, 3),
    ("ORDER LINES", "QTY"): (10, 3),
    ("ORDER LINES", "DISCOUNT_PCT"): (5, 2),
}
BACKENDS = [
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@dataclass(frozen=True)
class ErpDatabase:
    """A built ERP: where it lives and what ``build_erp`` reported."""

    engine: sa.Engine
    schema: str | None
    counts: dict[str, int]

    def table(self, name: str) -> sa.Table:
        return {t.name: t for t in erp_metadata(self.schema).tables.values()}[name]

    def rows(self, name: str) -> list[sa.Row[Any]]:
        """Every row of table ``name``, sorted in Python so collations cannot differ."""
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(self.table(name))).all(), key=tuple)


def _keep_char_padding(engine: sa.Engine) -> None:
    # MariaDB strips CHAR padding on read unless the session asks to keep it.
    @sa.event.listens_for(engine, "connect")
    def _set_sql_mode(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',PAD_CHAR_TO_FULL_LENGTH')")


@contextlib.contextmanager
def _database(backend: str, name: str, tmp_dir: Path) -> Iterator[tuple[sa.Engine, str | None]]:
    """An empty place for the ERP: a SQLite file, a PostgreSQL schema, a MariaDB database.

    MariaDB gets a database of its own (its schemas) rather than sharing ``test``, so
    other suites creating an ``orders`` table there cannot collide with this one.
    """
    cascade = backend == "postgres"  # MariaDB drops a database with its tables
    if backend == "sqlite":
        engine, schema = sa.create_engine(f"sqlite:///{tmp_dir / name}.db"), None
    else:
        engine = sa.create_engine(POSTGRES_URL if backend == "postgres" else MARIADB_URL)
        schema = name
        if backend == "mariadb":
            _keep_char_padding(engine)
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=cascade, if_exists=True))
            conn.execute(sa.schema.CreateSchema(schema))
    try:
        yield engine, schema
    finally:
        if schema is not None:
            with engine.begin() as conn:
                conn.execute(sa.schema.DropSchema(schema, cascade=cascade, if_exists=True))
        engine.dispose()


@contextlib.contextmanager
def _built(backend: str, name: str, tmp_dir: Path) -> Iterator[ErpDatabase]:
    with _database(backend, name, tmp_dir) as (engine, schema):
        counts = build_erp(engine, orders=ORDERS, seed=SEED, schema=schema)
        yield ErpDatabase(engine, schema, counts)


@pytest.fixture(scope="module")
def sqlite_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpDatabase]:
    with _built("sqlite", "erp", tmp_path_factory.mktemp("estate")) as erp:
        yield erp


@pytest.fixture(scope="module")
def postgres_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpDatabase]:
    with _built("postgres", "hw_estate_test", tmp_path_factory.mktemp("estate")) as erp:
        yield erp


@pytest.fixture(scope="module")
def mariadb_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErpDatabase]:
    with _built("mariadb", "hw_estate_test", tmp_path_factory.mktemp("estate")) as erp:
        yield erp


@pytest.fixture(params=BACKENDS)
def erp(request: pytest.FixtureRequest) -> ErpDatabase:
    return request.getfixturevalue(f"{request.param}_erp")


def _scalar(erp: ErpDatabase, statement: sa.Executable) -> Any:
    with erp.engine.connect() as conn:
        return conn.scalar(statement)


def test_tables_and_columns_keep_their_legacy_names() -> None:
    metadata = erp_metadata("elsewhere")
    assert [t.name for t in metadata.tables.values()] == list(ERP_TABLES)
    assert ERP_TABLES == ("Customer Master", "PRODUCTS", "orders", "ORDER LINES")
    assert {t.schema for t in metadata.tables.values()} == {"elsewhere"}
    columns = {t.name: [c.name for c in t.columns] for t in metadata.tables.values()}
    assert columns["Customer Master"] == [
        "CUST_NO",
        "Cust Name",
        "ACTIVE_YN",
        "OPENED_DT",
        "CREDIT_LIMIT_CENTS",
        "REGION",
        "Last_Update",
    ]
    assert columns["PRODUCTS"] == [
        "SKU",
        "DESCRIPTION",
        "UNIT_PRICE",
        "WEIGHT_KG",
        "DISCONTINUED",
        "UPDATED_AT",
    ]
    assert columns["orders"] == [
        "order_no",
        "cust_no",
        "order_date",
        "ship_date",
        "status",
        "total_cents",
        "user",
        "updated_at",
    ]
    assert columns["ORDER LINES"] == [
        "ORDER_NO",
        "LINE_NO",
        "SKU",
        "QTY",
        "UNIT_PRICE_CENTS",
        "DISCOUNT_PCT",
        "updated_at",
    ]


def test_reported_counts_match_the_tables(erp: ErpDatabase) -> None:
    assert erp.counts["Customer Master"] == ORDERS // 10
    assert erp.counts["PRODUCTS"] == 200
    assert erp.counts["orders"] == ORDERS
    assert ORDERS <= erp.counts["ORDER LINES"] <= 5 * ORDERS
    for name in ERP_TABLES:
        assert (
            _scalar(erp, sa.select(sa.func.count()).select_from(erp.table(name)))
            == (erp.counts[name])
        )


def test_reflection_sees_the_declared_types(erp: ErpDatabase) -> None:
    inspector = sa.inspect(erp.engine)
    assert set(ERP_TABLES) <= set(inspector.get_table_names(schema=erp.schema))
    for (table, column), precision_scale in NUMERIC_COLUMNS.items():
        reflected = {c["name"]: c["type"] for c in inspector.get_columns(table, erp.schema)}
        assert isinstance(reflected[column], sa.Numeric)
        assert (reflected[column].precision, reflected[column].scale) == precision_scale


def test_char_values_keep_their_padding(erp: ErpDatabase) -> None:
    customers = erp.rows("Customer Master")
    assert all(len(row.CUST_NO) == 8 and row.CUST_NO.endswith("  ") for row in customers)
    assert {row.REGION for row in customers} <= {"EU  ", "NA  ", "APAC", "LATM", "MEA "}
    assert "EU  " in {row.REGION for row in customers}
    assert all(len(row.SKU) == 10 for row in erp.rows("PRODUCTS"))
    assert all(len(row.cust_no) == 8 for row in erp.rows("orders"))
    assert all(len(row.SKU) == 10 for row in erp.rows("ORDER LINES"))


@pytest.mark.mariadb
def test_mariadb_strips_char_padding_unless_told_not_to(mariadb_erp: ErpDatabase) -> None:
    plain = sa.create_engine(MARIADB_URL)
    try:
        with plain.connect() as conn:
            keys = conn.scalars(sa.select(mariadb_erp.table("Customer Master").c.CUST_NO)).all()
    finally:
        plain.dispose()
    assert keys and all(len(key) == 6 for key in keys)


def test_free_text_keeps_its_oddities(erp: ErpDatabase) -> None:
    names = {row._mapping["Cust Name"] for row in erp.rows("Customer Master")}
    assert "Müller GmbH" in names
    assert any(name.endswith("   ") for name in names)
    assert "" in {row.DESCRIPTION for row in erp.rows("PRODUCTS")}
    assert "o'brien" in {row.user for row in erp.rows("orders")}


def test_sentinel_dates_stand_for_unknown(erp: ErpDatabase) -> None:
    customers, orders = erp.table("Customer Master"), erp.table("orders")
    for column in (customers.c.OPENED_DT, orders.c.ship_date):
        sentinels = _scalar(erp, sa.select(sa.func.count()).where(column == SENTINEL))
        assert 0 < sentinels < _scalar(erp, sa.select(sa.func.count(column)))


def test_order_stamps_are_mostly_distinct_with_some_ties(erp: ErpDatabase) -> None:
    updated_at = erp.table("orders").c.updated_at
    tied = sa.select(updated_at).group_by(updated_at).having(sa.func.count() > 1).subquery()
    assert _scalar(erp, sa.select(sa.func.count()).select_from(tied)) > 0
    distinct = _scalar(erp, sa.select(sa.func.count(sa.distinct(updated_at))))
    assert distinct > 0.8 * ORDERS


def test_numeric_values_read_back_exact(erp: ErpDatabase) -> None:
    with erp.engine.connect() as conn:
        for (table, column), (_, scale) in NUMERIC_COLUMNS.items():
            value = erp.table(table).c[column]
            pairs = conn.execute(sa.select(value, sa.cast(value, sa.Text))).all()
            assert all(isinstance(number, Decimal) for number, _ in pairs)
            assert {number.as_tuple().exponent for number, _ in pairs} == {-scale}
            # SQLite's text drops trailing zeros ('12.5'), yet the value is the same.
            assert all(Decimal(text) == number for number, text in pairs)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_every_database_holds_the_same_rows(
    sqlite_erp: ErpDatabase, other: str, request: pytest.FixtureRequest
) -> None:
    server_erp: ErpDatabase = request.getfixturevalue(f"{other}_erp")
    assert server_erp.counts == sqlite_erp.counts
    for name in ERP_TABLES:
        server_rows = [tuple(row) for row in server_erp.rows(name)]
        assert server_rows == [tuple(row) for row in sqlite_erp.rows(name)], name


def test_the_seed_decides_the_rows(tmp_path: Path) -> None:
    rows = {}
    for label, seed in (("first", SEED), ("again", SEED), ("other", SEED + 1)):
        with _database("sqlite", label, tmp_path) as (engine, _):
            build_erp(engine, orders=50, seed=seed)
            rows[label] = [tuple(row) for row in ErpDatabase(engine, None, {}).rows("orders")]
    assert rows["first"] == rows["again"]
    assert rows["first"] != rows["other"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_day_of_activity_changes_and_adds_orders(backend: str, tmp_path: Path) -> None:
    with _built(backend, "hw_estate_touch", tmp_path) as erp:
        before = {row.order_no: row for row in erp.rows("orders")}
        latest = max(row.updated_at for row in before.values())

        assert touch_erp(erp.engine, changed=25, added=10, schema=erp.schema) == {
            "changed": 25,
            "added": 10,
        }

        after = {row.order_no: row for row in erp.rows("orders")}
        changed = [no for no in before if tuple(after[no]) != tuple(before[no])]
        added = sorted(set(after) - set(before))
        assert len(changed) == 25
        assert all(after[no].status != before[no].status for no in changed)
        assert added == list(range(ORDERS + 1, ORDERS + 11))
        assert all(after[no].updated_at > latest for no in changed + added)
        assert len(erp.rows("ORDER LINES")) == erp.counts["ORDER LINES"]  # lines untouched
