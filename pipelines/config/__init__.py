"""Configuration: one TOML file, parsed once into typed settings every layer reads.

Lookup order: ``--config PATH``, ``$HEADWATER_CONFIG``, ``./headwater.toml``, and finally
the embedded default, the demo estate (``headwater_demo/demo.toml``). With a file of your
own, only what it declares exists.

String values may reference the environment as ``${NAME}`` or ``${NAME:-default}``.
Every value taken from the environment (but a URL, which is not a secret), every key named
like a credential (``password``, ``client_secret``, ``token``, ``api_key``, ...) and every
password inside a URL or an ODBC connection string is registered for redaction before
anything can print it. Unknown keys,
wrong types and missing keys are errors of one line naming the key path (and the closest
valid key). ``"package.module:NAME"`` references (connector classes, mappings, contexts,
model steps, their output models and rules) import with the file's folder importable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from connectors import ConfigurationError, Connector

from . import _models as models
from ._connectors import ConnectorConfig, incremental, retry_policy, stream_name
from ._load import parse
from ._models import ContextDeclaration, DagsterSettings, ModelDeclaration, NormalizationSpecModel
from ._references import import_module, load_reference

if TYPE_CHECKING:
    from ..cleaning import NormalizationSpec
    from ..context import ContextSpec
    from ..models import ModelStep

# The embedded default: a data file of the demo package, read when no file is given.
EMBEDDED_PACKAGE = "headwater_demo"
EMBEDDED_FILE = "demo.toml"
EMBEDDED_ORIGIN = "(embedded demo)"

__all__ = [
    "EMBEDDED_ORIGIN",
    "Config",
    "ConnectorConfig",
    "embedded_config_text",
    "import_module",
    "incremental",
    "load_config",
    "load_reference",
    "models",
    "read_config",
    "retry_policy",
    "stream_name",
]


@dataclass(frozen=True)
class Config:
    """A loaded configuration: the warehouse, the connectors (checked, not yet built),
    and the declarations of mappings, contexts and model steps."""

    warehouse_url: str
    connectors: dict[str, ConnectorConfig]
    normalization: NormalizationSpecModel = field(default_factory=NormalizationSpecModel)
    contexts: dict[str, ContextDeclaration] = field(default_factory=dict)
    models: dict[str, ModelDeclaration] = field(default_factory=dict)
    origin: str = EMBEDDED_ORIGIN
    folder: Path | None = None
    dagster: DagsterSettings = field(default_factory=DagsterSettings)

    def connector_names(self) -> list[str]:
        return list(self.connectors)

    def connector(self, name: str) -> ConnectorConfig:
        try:
            return self.connectors[name]
        except KeyError:
            known = ", ".join(self.connectors) or "(none)"
            raise ConfigurationError(f"no connector {name!r} in {self.origin}; connectors: "
                                     f"{known}") from None

    def build_connector(self, name: str) -> Connector:
        """A new connector (use it in a ``with`` block, which opens and closes it)."""
        return self.connector(name).build()

    def normalization_spec(self) -> NormalizationSpec:
        from ._declarations import normalization_spec

        return normalization_spec(self.normalization, self.folder, self.origin)

    def context_specs(self) -> list[ContextSpec]:
        from ._declarations import context_spec

        return [context_spec(name, declared, self.folder, self.origin)
                for name, declared in self.contexts.items()]

    def model_steps(self) -> list[ModelStep]:
        from ._declarations import model_step

        return [model_step(name, declared, self.folder, self.origin)
                for name, declared in self.models.items()]


def embedded_config_text() -> str:
    try:
        return resources.files(EMBEDDED_PACKAGE).joinpath(EMBEDDED_FILE).read_text("utf-8")
    except ModuleNotFoundError:
        raise ConfigurationError("no configuration given and the embedded demo is not "
                                 "installed: pass --config PATH or write ./headwater.toml"
                                 ) from None


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load the configuration (see the module docstring for the lookup order);
    ``overrides`` are ``key.path=value`` settings applied on top of the file."""
    chosen = path or os.environ.get("HEADWATER_CONFIG") or None
    if chosen is None and Path("headwater.toml").exists():
        chosen = "headwater.toml"
    if chosen is None:
        return read_config(embedded_config_text(), EMBEDDED_ORIGIN, None, overrides)
    file = Path(chosen)
    if not file.is_file():
        raise ConfigurationError(f"config file {str(file)!r} does not exist")
    return read_config(file.read_text("utf-8"), str(file), file.resolve().parent, overrides)


def read_config(text: str, origin: str, folder: Path | None, overrides: Sequence[str] = ()
                ) -> Config:
    """A configuration from TOML ``text`` (``folder``: where its references import from)."""
    parsed, connectors = parse(text, origin, folder, overrides)
    return Config(parsed.warehouse.url, connectors, parsed.normalization, parsed.contexts,
                  parsed.models, origin, folder, parsed.dagster)
