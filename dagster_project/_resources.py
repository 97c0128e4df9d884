"""The one resource the assets use: the headwater configuration, its warehouse and its
connectors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from connectors import Connector
from pipelines.config import Config, load_config
from pipelines.warehouse import Warehouse, open_warehouse


class HeadwaterResource(ConfigurableResource):
    """Settings come in through ``EnvVar`` where they may hold secrets.

    ``config_path`` is the headwater TOML (default: ``$HEADWATER_CONFIG``,
    ``./headwater.toml``, then the embedded demo); ``warehouse_url`` overrides its
    ``[warehouse] url`` (give it as ``EnvVar("HEADWATER_WAREHOUSE_URL")``: a URL may
    carry a password). A connector is opened for the step that uses it and closed
    after, so a step brings up only the sources it reads.
    """

    config_path: str | None = None
    warehouse_url: str | None = None

    _config: Config | None = PrivateAttr(default=None)

    @property
    def config(self) -> Config:
        if self._config is None:
            config = load_config(self.config_path)
            if self.warehouse_url:
                config = replace(config, warehouse_url=self.warehouse_url)
            self._config = config
        return self._config

    @contextlib.contextmanager
    def warehouse(self) -> Iterator[Warehouse]:
        """The warehouse, open for one step (DuckDB allows one writing process)."""
        with open_warehouse(self.config.warehouse_url) as warehouse:
            yield warehouse

    @contextlib.contextmanager
    def connector(self, name: str) -> Iterator[Connector]:
        """The connector called ``name``, opened for the block and closed after."""
        with self.config.build_connector(name) as connector:
            yield connector
