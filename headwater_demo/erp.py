"""The demo ERP database of the legacy estate, the same on SQLite, PostgreSQL and MariaDB.

Four tables carry the quirks real ERP schemas have, which are the point of the demo:

* identifiers that need quoting: ``Customer Master``, ``ORDER LINES`` and ``Cust Name``
  hold spaces, ``PRODUCTS`` is upper case next to a lower-case ``orders``, and
  ``orders.user`` is a reserved word;
* fixed-width CHAR keys and codes padded with trailing blanks (``'C00042  '``,
  ``'EU  '``). The padding is written explicitly so every database stores it; MariaDB
  still strips it on read unless the session sets ``PAD_CHAR_TO_FULL_LENGTH``;
* ``'Y'``/``'N'`` flags in CHAR(1) instead of booleans, and three-letter status codes;
* the sentinel date 1900-01-01 for "unknown" (``OPENED_DT``) and "not shipped"
  (``ship_date``) instead of NULL;
* money as integer cents next to exact NUMERIC prices, weights, quantities and discounts;
* free text with trailing blanks, empty strings, apostrophes and non-ASCII names;
* naive timestamps whose ``updated_at`` values are mostly distinct but tie in places, as
  a batch job stamping many rows at once leaves them: the edge case of incremental sync.
  They are declared ``DateTime``, which is TIMESTAMP WITHOUT TIME ZONE on PostgreSQL and
  DATETIME on MariaDB, whose TIMESTAMP would shift with the session time zone.

:func:`build_erp` drops, recreates and fills the tables from one ``random.Random(seed)``,
so a seed gives the same rows on every database. :func:`touch_erp` then plays a day of
activity on ``orders`` for an incremental run to pick up.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from ._parties import company_name
from ._shared import stamps_after

ERP_TABLES: tuple[str, ...] = ("Customer Master", "PRODUCTS", "orders", "ORDER LINES")

BASE_TIME = dt.datetime(2024, 1, 1)
SENTINEL_DATE = dt.date(1900, 1, 1)
STATUSES = ("NEW", "SHP", "CAN", "HLD")
PRODUCT_COUNT = 200
# Rows per executemany: large enough to amortise round trips, small enough to keep
# memory flat while a million orders stream through.
CHUNK_ROWS = 10_000

_ORDER_SPAN_DAYS = 730
_TIE_SHARE = 0.05  # share of rows stamped in the same second as the row before
_REGIONS = ("EU", "NA", "APAC", "LATM", "MEA")
_CLERKS = ("JSMITH", "mkowalski", "a.nguyen", "o'brien", "BATCH01", "SYSADM", "r.patel")
_PRODUCT_WORDS = ("Bolt", "Bracket", "Gasket", "Valve", "Flange", "Bearing", "Hose", "Seal")
_ZERO_DISCOUNT = Decimal("0.00")


def _numeric(precision: int, scale: int) -> sa.Numeric:
    # SQLite has no decimal type: SQLAlchemy binds the Decimal as a float, which SQLite
    # stores as REAL (or INTEGER when whole), and reads it back as a Decimal rounded to
    # ``scale``. Every value here has at most 12 significant digits, well inside the 15
    # a double keeps, so CAST(x AS TEXT) and the Decimal read back are exact. SQLAlchemy
    # 2.1 emits no warning for this; PostgreSQL and MariaDB store true NUMERIC.
    return sa.Numeric(precision, scale, asdecimal=True)


def erp_metadata(schema: str | None = None) -> sa.MetaData:
    """The four ERP tables, in :data:`ERP_TABLES` order, optionally in ``schema``."""
    metadata = sa.MetaData(schema=schema)
    sa.Table(
        "Customer Master",
        metadata,
        sa.Column("CUST_NO", sa.CHAR(8), primary_key=True),
        sa.Column("Cust Name", sa.String(60), nullable=False),
        sa.Column("ACTIVE_YN", sa.CHAR(1), nullable=False),
        sa.Column("OPENED_DT", sa.Date, nullable=False),
        sa.Column("CREDIT_LIMIT_CENTS", sa.BigInteger, nullable=False),
        sa.Column("REGION", sa.CHAR(4), nullable=False),
        sa.Column("Last_Update", sa.DateTime, nullable=False),
    )
    sa.Table(
        "PRODUCTS",
        metadata,
        sa.Column("SKU", sa.CHAR(10), primary_key=True),
        sa.Column("DESCRIPTION", sa.String(200), nullable=False),
        sa.Column("UNIT_PRICE", _numeric(12, 2), nullable=False),
        sa.Column("WEIGHT_KG", _numeric(10, 3), nullable=False),
        sa.Column("DISCONTINUED", sa.CHAR(1), nullable=False),
        sa.Column("UPDATED_AT", sa.DateTime, nullable=False),
    )
    sa.Table(
        "orders",
        metadata,
        sa.Column("order_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cust_no", sa.CHAR(8), nullable=False),
        sa.Column("order_date", sa.Date, nullable=False),
        sa.Column("ship_date", sa.Date, nullable=False),
        sa.Column("status", sa.CHAR(3), nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        sa.Column("user", sa.String(30), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "ORDER LINES",
        metadata,
        sa.Column("ORDER_NO", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("LINE_NO", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("SKU", sa.CHAR(10), nullable=False),
        sa.Column("QTY", _numeric(10, 3), nullable=False),
        sa.Column("UNIT_PRICE_CENTS", sa.Integer, nullable=False),
        sa.Column("DISCOUNT_PCT", _numeric(5, 2), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    return metadata


def build_erp(
    engine: sa.Engine, orders: int = 2_000, seed: int = 7, schema: str | None = None
) -> dict[str, int]:
    """Drop, recreate and fill the ERP tables; return the rows written per table.

    ``orders`` orders with one to five lines each, ``max(10, orders // 10)`` customers
    and 200 products, all drawn from ``random.Random(seed)``. Each table is written in
    one transaction, in executemany chunks of :data:`CHUNK_ROWS` rows.
    """
    if orders < 0:
        raise ValueError(f"orders must be zero or more, got {orders}")
    metadata = erp_metadata(schema)
    tables = _tables_by_name(metadata)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)

    rng = random.Random(seed)
    customers = _customer_rows(rng, max(10, orders // 10))
    products = _product_rows(rng, PRODUCT_COUNT)
    # Orders and lines are drawn together (an order's total is the sum of its lines) but
    # written in separate passes that replay the same random stream, so neither table
    # has to be held in memory.
    order_state = rng.getstate()
    cust_nos = [row["CUST_NO"] for row in customers]
    catalogue = [(row["SKU"], _cents(row["UNIT_PRICE"])) for row in products]

    def draw() -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        return _orders_and_lines(order_state, orders, cust_nos, catalogue)

    return {
        "Customer Master": _insert(engine, tables["Customer Master"], customers),
        "PRODUCTS": _insert(engine, tables["PRODUCTS"], products),
        "orders": _insert(engine, tables["orders"], (order for order, _ in draw())),
        "ORDER LINES": _insert(
            engine, tables["ORDER LINES"], (line for _, lines in draw() for line in lines)
        ),
    }


def touch_erp(
    engine: sa.Engine, changed: int, added: int, seed: int = 11, schema: str | None = None
) -> dict[str, int]:
    """Play a day of activity on ``orders``; return ``{"changed": n, "added": n}``.

    ``changed`` random existing orders (fewer if the table holds fewer) get a different
    status, and ``added`` new orders are entered with order numbers above the current
    maximum. Every row touched is stamped within the day after the latest ``updated_at``
    already stored, so all of them are newer than anything an earlier sync saw, and a
    few share a stamp. Order lines are left alone. One transaction.
    """
    if changed < 0 or added < 0:
        raise ValueError(f"changed and added must be zero or more, got {changed}, {added}")
    tables = _tables_by_name(erp_metadata(schema))
    orders, customers = tables["orders"], tables["Customer Master"]
    rng = random.Random(seed)
    with engine.begin() as conn:
        existing = conn.execute(
            sa.select(orders.c.order_no, orders.c.status).order_by(orders.c.order_no)
        ).all()
        latest = conn.scalar(sa.select(sa.func.max(orders.c.updated_at))) or BASE_TIME
        # Re-pad, as MariaDB hands CHAR values back without their trailing blanks, and
        # sort here: collations disagree on where blanks sort, and the draw must not.
        cust_nos = sorted(key.ljust(8) for key in conn.scalars(sa.select(customers.c.CUST_NO)))
        picked = rng.sample(existing, min(changed, len(existing)))
        stamps = stamps_after(rng, latest, len(picked) + added, _TIE_SHARE)
        updates = [
            {
                "new_order_no": row.order_no,
                "new_status": rng.choice([s for s in STATUSES if s != row.status]),
                "new_updated_at": stamp,
            }
            for row, stamp in zip(picked, stamps, strict=False)
        ]
        _execute_chunked(conn, _status_update(orders), updates)
        first_no = (existing[-1].order_no if existing else 0) + 1
        new_orders = [
            _new_order(rng, first_no + offset, cust_nos, stamp)
            for offset, stamp in enumerate(stamps[len(picked) :])
        ]
        _execute_chunked(conn, orders.insert(), new_orders)
    return {"changed": len(picked), "added": len(new_orders)}


def _tables_by_name(metadata: sa.MetaData) -> dict[str, sa.Table]:
    # metadata.tables is keyed "schema.name" when a schema is set.
    return {table.name: table for table in metadata.tables.values()}


def _insert(engine: sa.Engine, table: sa.Table, rows: Iterable[dict[str, Any]]) -> int:
    with engine.begin() as conn:
        return _execute_chunked(conn, table.insert(), rows)


def _execute_chunked(
    conn: sa.Connection, statement: sa.Executable, rows: Iterable[dict[str, Any]]
) -> int:
    written = 0
    remaining = iter(rows)
    while chunk := list(itertools.islice(remaining, CHUNK_ROWS)):
        conn.execute(statement, chunk)
        written += len(chunk)
    return written


def _status_update(orders: sa.Table) -> sa.Update:
    # Bind names differ from column names: SQLAlchemy reserves those for SET values.
    return (
        orders.update()
        .where(orders.c.order_no == sa.bindparam("new_order_no"))
        .values(status=sa.bindparam("new_status"), updated_at=sa.bindparam("new_updated_at"))
    )


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2))


def _scaled(units: int, scale: int) -> Decimal:
    """``units`` in steps of 10**-scale, carrying exactly ``scale`` decimal places."""
    return Decimal(units).scaleb(-scale)


def _stamp(rng: random.Random, day: dt.date, spread_days: int) -> dt.datetime:
    start = dt.datetime.combine(day, dt.time())
    return start + dt.timedelta(seconds=rng.randrange(spread_days * 86_400))


def _customer_rows(rng: random.Random, count: int) -> list[dict[str, Any]]:
    # Quirks are placed by position, not by chance, so even the smallest build has them.
    rows = []
    for number in range(1, count + 1):
        name = company_name(number)
        if number % 11 == 3:
            name += "   "  # keyed in from a fixed-width screen
        opened = SENTINEL_DATE if number % 20 == 7 else _days_after(rng, dt.date(1985, 1, 1))
        rows.append(
            {
                "CUST_NO": f"C{number:05d}".ljust(8),
                "Cust Name": name,
                "ACTIVE_YN": "N" if rng.random() < 0.1 else "Y",
                "OPENED_DT": opened,
                "CREDIT_LIMIT_CENTS": rng.randrange(100_000, 50_000_000_000, 100),
                "REGION": rng.choice(_REGIONS).ljust(4),
                "Last_Update": _stamp(rng, BASE_TIME.date(), 365),
            }
        )
    return rows


def _days_after(rng: random.Random, start: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange(14_000))


def _product_rows(rng: random.Random, count: int) -> list[dict[str, Any]]:
    rows = []
    for number in range(1, count + 1):
        description = "" if number % 25 == 0 else f"{rng.choice(_PRODUCT_WORDS)} type {number}"
        rows.append(
            {
                "SKU": f"SKU-{number:05d}".ljust(10),
                "DESCRIPTION": description,
                "UNIT_PRICE": _scaled(rng.randrange(50, 250_000), 2),
                "WEIGHT_KG": _scaled(rng.randrange(1, 2_000_000), 3),
                "DISCONTINUED": "Y" if rng.random() < 0.08 else "N",
                "UPDATED_AT": _stamp(rng, BASE_TIME.date(), 365),
            }
        )
    return rows


def _orders_and_lines(
    state: tuple[Any, ...],
    count: int,
    cust_nos: Sequence[str],
    catalogue: Sequence[tuple[str, int]],
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each order with its lines; ``state`` is the ``random.Random`` state to start from."""
    rng = random.Random()
    rng.setstate(state)
    previous_stamp = BASE_TIME
    for order_no in range(1, count + 1):
        order_date = BASE_TIME.date() + dt.timedelta(
            days=(order_no - 1) * _ORDER_SPAN_DAYS // count
        )
        stamp = _stamp(rng, order_date, 30)
        if order_no > 1 and rng.random() < _TIE_SHARE:
            stamp = previous_stamp
        previous_stamp = stamp
        lines = _lines(rng, order_no, catalogue, stamp)
        if rng.random() < 0.10:
            status, ship_date = rng.choice(("NEW", "HLD", "CAN")), SENTINEL_DATE
        else:
            status, ship_date = "SHP", order_date + dt.timedelta(days=rng.randint(1, 14))
        order = {
            "order_no": order_no,
            "cust_no": rng.choice(cust_nos),
            "order_date": order_date,
            "ship_date": ship_date,
            "status": status,
            "total_cents": sum(_line_amount_cents(line) for line in lines),
            "user": rng.choice(_CLERKS),
            "updated_at": stamp,
        }
        yield order, lines


def _lines(
    rng: random.Random, order_no: int, catalogue: Sequence[tuple[str, int]], stamp: dt.datetime
) -> list[dict[str, Any]]:
    lines = []
    for line_no in range(1, rng.randint(1, 5) + 1):
        sku, price_cents = rng.choice(catalogue)
        if rng.random() < 0.85:
            qty = _scaled(rng.randint(1, 48) * 1000, 3)  # whole units, still NUMERIC(10,3)
        else:
            qty = _scaled(rng.randrange(1, 100_000), 3)  # sold by weight
        discount = _ZERO_DISCOUNT if rng.random() < 0.7 else _scaled(rng.randrange(1, 5000), 2)
        lines.append(
            {
                "ORDER_NO": order_no,
                "LINE_NO": line_no,
                "SKU": sku,
                "QTY": qty,
                "UNIT_PRICE_CENTS": price_cents,
                "DISCOUNT_PCT": discount,
                "updated_at": stamp,
            }
        )
    return lines


def _line_amount_cents(line: dict[str, Any]) -> int:
    gross = line["QTY"] * line["UNIT_PRICE_CENTS"] * (100 - line["DISCOUNT_PCT"]) / 100
    return int(gross.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _new_order(
    rng: random.Random, order_no: int, cust_nos: Sequence[str], stamp: dt.datetime
) -> dict[str, Any]:
    # Entered today: not shipped yet, and its lines are still to come.
    return {
        "order_no": order_no,
        "cust_no": rng.choice(cust_nos),
        "order_date": stamp.date(),
        "ship_date": SENTINEL_DATE,
        "status": "NEW",
        "total_cents": rng.randrange(100, 5_000_000),
        "user": rng.choice(_CLERKS),
        "updated_at": stamp,
    }
