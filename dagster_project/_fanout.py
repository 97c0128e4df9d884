"""Fan-out jobs: every key-range partition of a stream landed in one run.

A backfill of the ``<connector>__<stream>_partitions`` job is one Dagster run per
partition: each run is a process of its own that loads the code location, submits its
one step and waits for it, which costs seconds per partition on top of the landing.
``<connector>__<stream>_fanout`` lands the same partitions as the steps of a single run:
the executor hands them to its workers at once (Celery workers on a broker, or parallel
processes), each step lands its key range under its own lock and checkpoints exactly as
the partition's run would (a retried or re-run step resumes where it stopped), and
reports a materialization of that partition of the raw asset, with its data version, as
soon as it is in. The connector's ``max_concurrent_reads`` pool applies to these steps
too.

Launch it like any job (``dagster job launch -j erp__orders_fanout``, or from the UI).
Only key-range partitions fan out this way: their number is fixed by the configuration,
where daily partitions grow every day (backfill those with the ``_partitions`` job).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetMaterialization,
    JobDefinition,
    OpExecutionContext,
    job,
    op,
)

from connectors import Connector, Stream
from pipelines.config import ConnectorConfig
from pipelines.partitions import partition_names

from ._assets import RETRY_POLICY, land, landing_of
from ._deploy import source_pool
from ._translator import HeadwaterTranslator

DATA_VERSION_TAG = "dagster/data_version"


def fanout_jobs(connectors: Mapping[str, tuple[ConnectorConfig, Connector, Sequence[Stream]]],
                translator: HeadwaterTranslator) -> list[JobDefinition]:
    """A fan-out job per stream partitioned by key range."""
    jobs = []
    for config, connector, streams in connectors.values():
        partitioned = config.partitions()
        for stream in streams:
            spec = partitioned.get(stream.name)
            if spec is not None and spec.kind == "key_range":
                jobs.append(fanout_job(config, connector, stream.name,
                                       partition_names(spec), translator))
    return jobs


def fanout_job(config: ConnectorConfig, connector: Connector, stream: str,
               partitions: Sequence[str], translator: HeadwaterTranslator) -> JobDefinition:
    """One run, one step per partition of ``stream``."""
    steps = [_land_step(config, connector, stream, partition, translator)
             for partition in partitions]

    @job(name=f"{config.name}__{stream}_fanout",
         description=f"land every partition of {config.name}.{stream} "
                     f"({partitions[0]} ... {partitions[-1]}) in one run, a step each",
         tags={"headwater/fanout": f"{config.name}.{stream}"})
    def _fanout() -> None:
        for step in steps:
            step()

    return _fanout


def _land_step(config: ConnectorConfig, connector: Connector, stream: str, partition: str,
               translator: HeadwaterTranslator) -> Any:
    key = translator.raw_key(config.name, stream)
    landing = landing_of(config, connector, stream)

    @op(name=f"land_{partition.replace('-', '_')}", required_resource_keys={"headwater"},
        retry_policy=RETRY_POLICY, pool=source_pool(config),
        description=f"land partition {partition} of {config.name}.{stream}")
    def _land(context: OpExecutionContext) -> None:
        version, metadata = land(context, context.resources.headwater, landing, translator,
                                 partition_key=partition)
        context.log_event(AssetMaterialization(
            asset_key=key, partition=partition, metadata=metadata,
            tags={DATA_VERSION_TAG: version},
            description=f"partition {partition}, landed by a fan-out step"))

    return _land
