"""Adding a connector is subclassing a kind base and declaring streams."""

from __future__ import annotations

import sys

import sqlalchemy as sa

from connectors import Incremental, SQLConnector, SQLTable
from headwater_demo.erp import build_erp
from pipelines.config import read_config
from pipelines.runner import run_connector
from pipelines.warehouse import DuckDBWarehouse


class LegacyERP(SQLConnector):
    """A concrete connector is class attributes only."""

    name = "legacy"
    streams = (
        SQLTable(name="orders", table="orders", incremental=Incremental("updated_at")),
        SQLTable(name="lines", table="ORDER LINES"),
    )


def test_a_subclass_declares_everything_as_class_attributes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    counts = build_erp(sa.create_engine(url), orders=50)

    class PointedERP(LegacyERP):
        pass

    PointedERP.url = url
    with PointedERP() as connector, DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        assert connector.name == "legacy"
        results = run_connector(connector, warehouse)
    assert [r.rows for r in results] == [counts["orders"], counts["ORDER LINES"]]
    assert [r.table for r in results] == ["raw_legacy__orders", "raw_legacy__lines"]


def test_the_config_can_name_a_users_connector_class(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    build_erp(sa.create_engine(url), orders=10)
    config = read_config(f'[warehouse]\nurl = "duckdb:///{tmp_path}/w.duckdb"\n'
                         f'[connectors.mine]\nclass = "{__name__}:LegacyERP"\nurl = "{url}"\n',
                         "test", None)
    connector = config.build_connector("mine")
    assert isinstance(connector, LegacyERP) and connector.name == "mine"
    assert sys.modules[__name__].LegacyERP.name == "legacy"
    connector.check()
    connector.close()
