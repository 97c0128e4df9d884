"""The Dagster code location: headwater's pipeline specs as assets. The one wiring file.

Load it with ``dagster dev -m dagster_project.definitions`` (or ``dagster definitions
validate -m dagster_project.definitions``). It reads the same configuration as the
``headwater`` command: ``$HEADWATER_CONFIG``, ``./headwater.toml``, else the embedded demo.
A DuckDB warehouse takes one writing process at a time, so runs use the in-process
executor with it; a PostgreSQL warehouse runs steps in parallel processes.
"""

from __future__ import annotations

import os

from dagster import (
    Definitions,
    EnvVar,
    in_process_executor,
    multiprocess_executor,
)

from pipelines.cleaning import load_spec
from pipelines.config import load_config
from pipelines.context import ACCOUNT_CONTEXT
from pipelines.models.estate import account_health_step

from ._assets import clean_assets, parties_asset, raw_asset, reference_asset, source_specs
from ._automation import automation_sensor, new_data_sensors, schedules
from ._model_assets import context_asset, model_assets
from ._resources import HeadwaterResource
from ._translator import warehouse_kind


def _env(name: str) -> EnvVar | None:
    """An ``EnvVar`` when the variable is set: the UI shows its name, never its value."""
    return EnvVar(name) if os.environ.get(name) else None


def build_definitions() -> Definitions:
    config_path = os.environ.get("HEADWATER_CONFIG")
    config = load_config(config_path)
    spec = load_spec(config.normalization)
    store = warehouse_kind(config.warehouse_url)

    sources = [s for name, c in config.connectors.items() for s in source_specs(name, c)]
    raw = [raw_asset(name, c, stream, store) for name, c in config.connectors.items()
           for stream in c.get("streams", [])]
    references = [reference_asset(name, spec) for name in spec.reference_files]
    clean = [clean_assets(mapping, spec, store) for mapping in spec.mappings]
    parties = [a for a in [parties_asset(spec)] if a is not None]
    # The model step reads HEADWATER_LLM_* when the code location loads: with them set,
    # an OpenAI-compatible endpoint answers first, the local rules after it.
    models = [context_asset(ACCOUNT_CONTEXT, store), model_assets(account_health_step(), store)]

    return Definitions(
        assets=[*sources, *raw, *references, *clean, *parties, *models],
        schedules=schedules(config.connectors),
        sensors=[*new_data_sensors(config.connectors, config_path), automation_sensor()],
        resources={"headwater": HeadwaterResource(
            config_path=_env("HEADWATER_CONFIG"),
            warehouse_url=_env("HEADWATER_WAREHOUSE_URL"),
        )},
        executor=in_process_executor if store == "duckdb" else multiprocess_executor,
    )


defs = build_definitions()
