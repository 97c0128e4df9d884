"""The one resource the assets use: the headwater configuration, its warehouse and its
connectors, with the demo estate served for the length of a run when it says so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from connectors import Connector
from pipelines.config import Config, build_connector, load_config
from pipelines.demo import build_estate, serving_estate
from pipelines.warehouse import Warehouse, open_warehouse


class HeadwaterResource(ConfigurableResource):
    """Settings come in through ``EnvVar`` where they may hold secrets.

    ``config_path`` is the headwater TOML (default: ``$HEADWATER_CONFIG``,
    ``./headwater.toml``, then the embedded demo); ``warehouse_url`` overrides its
    ``[warehouse] url`` (give it as ``EnvVar("HEADWATER_WAREHOUSE_URL")``: a URL may
    carry a password); ``serve_estate`` builds the demo ERP if missing and serves the
    demo CRM and logistics service while the run lasts, when the configuration asks.
    """

    config_path: str | None = None
    warehouse_url: str | None = None
    serve_estate: bool = True

    _config: Config | None = PrivateAttr(default=None)
    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._stack = contextlib.ExitStack()
        config = load_config(self.config_path)
        if self.warehouse_url:
            config = replace(config, warehouse_url=self.warehouse_url)
        if self.serve_estate:
            if config.estate.get("erp"):
                build_estate(config, None, force=False)
            config = self._stack.enter_context(serving_estate(config))
        self._config = config

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @contextlib.contextmanager
    def warehouse(self) -> Iterator[Warehouse]:
        """The warehouse, open for one step (DuckDB allows one writing process)."""
        with open_warehouse(self.config.warehouse_url) as warehouse:
            yield warehouse

    @contextlib.contextmanager
    def connector(self, name: str) -> Iterator[Connector]:
        with build_connector(name, self.config.connectors[name]) as connector:
            yield connector
