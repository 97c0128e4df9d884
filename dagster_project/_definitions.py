"""One configuration into Dagster definitions: the wiring, in one function.

A DuckDB warehouse takes one writing process at a time, so runs use the in-process
executor with it; a PostgreSQL warehouse runs steps in parallel processes, or wherever
``[dagster] executor`` says (Celery workers, Kubernetes jobs: see ``_deploy``).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions, EnvVar

from connectors import Connector, Stream
from pipelines.config import EMBEDDED_ORIGIN, Config, ConnectorConfig, load_config

from ._assets import clean_assets, parties_asset, raw_asset, reference_asset, source_specs
from ._automation import automation_sensor, new_data_sensors, schedules
from ._deploy import executor_for, partition_jobs, pool_limits_sensor
from ._fanout import fanout_jobs
from ._model_assets import context_asset, model_assets
from ._resources import HeadwaterResource
from ._translator import HeadwaterTranslator, warehouse_kind


def _env(name: str) -> EnvVar | None:
    """An ``EnvVar`` when the variable is set: the UI shows its name, never its value."""
    return EnvVar(name) if os.environ.get(name) else None


def _declared_streams(config: Config) -> dict[str, tuple[ConnectorConfig, Connector,
                                                        tuple[Stream, ...]]]:
    """Each connector, built (not opened) to ask for its declared streams."""
    found = {}
    for name, connector_config in config.connectors.items():
        connector = connector_config.build()
        found[name] = (connector_config, connector, tuple(connector.streams))
    return found


def build_definitions(config: Config | str | Path | None = None, *,
                      translator: HeadwaterTranslator | None = None) -> Definitions:
    """The assets, checks, schedules, sensors and resource of one configuration.

    ``config`` is a loaded :class:`~pipelines.config.Config`, a path, or ``None`` for the
    usual lookup. Every connector, TOML or class, gives the same assets: a source node
    per table, endpoint or operation its streams read, and a raw asset per declared
    stream; then one clean and quarantine asset per mapping, the reference files and
    resolved parties, one asset per context and per model step.
    """
    translator = translator or HeadwaterTranslator()
    from_env = config is None and os.environ.get("HEADWATER_CONFIG")
    if not isinstance(config, Config):
        config = load_config(config)
    store = warehouse_kind(config.warehouse_url)
    connectors = _declared_streams(config)
    spec = config.normalization_spec() if config.normalization.mappings else None

    sources = [s for c, connector, _ in connectors.values()
               for s in source_specs(c, connector, translator)]
    raw = [raw_asset(c, connector, stream.name, store, translator)
           for c, connector, streams in connectors.values() for stream in streams]
    cleaning = []
    if spec is not None:
        cleaning += [reference_asset(name, spec, translator) for name in spec.reference_files]
        cleaning += [clean_assets(mapping, spec, store, translator) for mapping in spec.mappings]
        cleaning += [a for a in [parties_asset(spec, translator)] if a is not None]
    contexts = [context_asset(c, store, translator) for c in config.context_specs()]
    steps = [model_assets(step, store, translator) for step in config.model_steps()]
    by_name = {name: (c, streams) for name, (c, _, streams) in connectors.items()}
    jobs = [*partition_jobs(by_name, translator), *fanout_jobs(connectors, translator)]
    for _, connector, _ in connectors.values():
        connector.close()

    config_path = None if config.origin == EMBEDDED_ORIGIN else str(Path(config.origin).resolve())
    running = config.dagster.start_automation
    return Definitions(
        assets=[*sources, *raw, *cleaning, *contexts, *steps],
        schedules=schedules(by_name, translator, running),
        sensors=[*new_data_sensors(by_name, config_path, translator, running),
                 automation_sensor(running), *pool_limits_sensor(config.connectors)],
        jobs=jobs,
        resources={"headwater": HeadwaterResource(
            config_path=_env("HEADWATER_CONFIG") if from_env else config_path,
            warehouse_url=_env("HEADWATER_WAREHOUSE_URL"),
        )},
        executor=executor_for(config, store),
    )

