"""Beyond one machine: executors, partitions, source pools and automation, from the config.

Everything here is chosen by configuration; the assets are the same on every engine
(docs/deploy.md):

- ``[dagster] executor`` picks where steps run: in-process or parallel processes on this
  machine, Celery workers on a broker (``dagster-celery``), or Kubernetes jobs
  (``dagster-k8s``). :func:`celery_app` is the app the Celery workers run
  (``dagster_project.worker``).
- A stream's ``partition`` (``daily`` or ``key_range``) becomes its asset's partitions
  and a ``<connector>__<stream>_partitions`` job to backfill them; each partition lands
  with its own lock and checkpoints (:mod:`pipelines.partitions`). Key ranges also get a
  fan-out job that lands them all as the steps of one run (``_fanout``).
- ``max_concurrent_reads`` of a connector is a Dagster concurrency pool
  (``source/<connector>``) on its raw assets; the ``headwater_pool_limits`` sensor keeps
  the instance's limit of each pool equal to the configuration.
- Assets downstream of raw tables wait until every partition they read has landed and no
  backfill of them is still going (:data:`AFTER_UPSTREAM`), so a backfill of N partitions
  cleans once, not N times.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AutomationCondition,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    ExecutorDefinition,
    PartitionsDefinition,
    SensorEvaluationContext,
    SkipReason,
    StaticPartitionsDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
    sensor,
)

from connectors import ConfigurationError, Connector, Stream
from pipelines.config import Config, ConnectorConfig, models
from pipelines.partitions import key_range_of, partition_names
from pipelines.warehouse import Warehouse

from ._translator import HeadwaterTranslator

# Celery settings of the executor and the workers alike. A step's message is acknowledged
# when the step ends, not when a worker takes it, so a worker killed mid-step hands the
# step back to the broker and another worker runs it again (resuming from the
# partition's checkpoint); one step per worker process at a time.
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}

# Everything downstream of landed tables: eager, and not while a backfill of an upstream
# partition is still going (a backfill's queued partitions are not yet "in progress").
# An upstream counts as updated only when its data version changed: a tick that lands no
# new rows re-runs nothing downstream (see _assets._data_version).
AFTER_UPSTREAM = (
    AutomationCondition.eager().replace(
        "any_deps_updated",
        AutomationCondition.any_deps_match(
            AutomationCondition.data_version_changed()
            | AutomationCondition.will_be_requested()
        ).with_label("any_deps_data_changed"))
    & ~AutomationCondition.any_deps_match(AutomationCondition.backfill_in_progress())
).with_label("eager on new data, once every upstream partition is in")


# -- executors ------------------------------------------------------------------------------


def executor_for(config: Config, warehouse: str) -> ExecutorDefinition:
    """The executor ``[dagster] executor`` names (``auto``: in-process on DuckDB, which
    takes one writer, parallel processes on PostgreSQL)."""
    settings = config.dagster
    chosen = settings.executor
    if chosen == "auto":
        chosen = "in_process" if warehouse == "duckdb" else "multiprocess"
    if chosen != "in_process" and warehouse == "duckdb":
        raise ConfigurationError(
            f"{config.origin}: dagster.executor = {chosen!r} needs a warehouse that many "
            "processes can write (PostgreSQL); a DuckDB file takes one writer. Set "
            "[warehouse] url = \"postgresql://...\" or executor = \"in_process\"")
    if chosen == "in_process":
        return in_process_executor
    if chosen == "multiprocess":
        limit = settings.max_concurrent
        return multiprocess_executor.configured({"max_concurrent": limit}) if limit \
            else multiprocess_executor
    if chosen == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_executor_config(settings),
                                          name="headwater_celery")
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(dict(settings.k8s), name="headwater_k8s")


def celery_executor_config(settings: models.DagsterSettings) -> dict[str, Any]:
    """The Celery executor's configuration (the workers must use the same)."""
    return {"broker": settings.broker, "backend": settings.backend,
            "config_source": {**CELERY_SETTINGS, "task_default_queue": settings.queue}}


def celery_app(config: Config | None = None) -> Any:
    """The Celery app a worker runs: the configuration's broker and backend, and the task
    that executes one Dagster step (``celery --app dagster_project.worker worker``)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task
    from kombu import Queue

    from pipelines.config import load_config

    config = config or load_config()
    settings = config.dagster
    if settings.executor != "celery":
        raise ConfigurationError(
            f"{config.origin}: a Celery worker needs [dagster] executor = \"celery\" and "
            "broker = \"amqp://...\" (the configuration the runs use); it has executor = "
            f"{settings.executor!r}")
    executor = CeleryExecutor.for_cli(**celery_executor_config(settings))
    app = make_app(executor.app_args())
    # The queue the executor sends steps to (make_app declares only "dagster"), with the
    # same arguments the sending side declares it with.
    app.conf.task_queues = [Queue(settings.queue, routing_key=f"{settings.queue}.#",
                                  queue_arguments={"x-max-priority": 10})]
    create_task(app)
    return app


# -- partitions -----------------------------------------------------------------------------


def partitions_definition(spec: models.PartitionSpec | None) -> PartitionsDefinition | None:
    """Daily partitions of a cursor, or one partition per key range."""
    if spec is None:
        return None
    if spec.kind == "daily":
        assert spec.start is not None
        return DailyPartitionsDefinition(start_date=spec.start.isoformat(), timezone="UTC")
    return StaticPartitionsDefinition(partition_names(spec))


def partition_arguments(context: AssetExecutionContext, spec: models.PartitionSpec | None, *,
                        source: Connector, stream: str, warehouse: Warehouse, naive: bool,
                        partition_key: str | None = None) -> dict[str, Any]:
    """How ``run_stream`` reads the partition of this step (``partition_key``, default
    the run's): ``window=`` (a day of the cursor) or ``key_range=``; nothing for an
    unpartitioned stream."""
    if spec is None:
        return {}
    if spec.kind == "daily":
        start, end = context.partition_time_window
        start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        if naive:  # SQL sources compare with naive timestamps read as UTC
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        return {"window": (start, end)}
    partition_key = partition_key or context.partition_key
    key_range = key_range_of(spec, partition_key, connector=source, stream=stream,
                             warehouse=warehouse, run_id=context.run.run_id)
    context.log.info(f"{source.name}.{stream} partition {partition_key}: {key_range.label()}")
    return {"key_range": key_range}


def partition_jobs(connectors: Mapping[str, tuple[ConnectorConfig, Sequence[Stream]]],
                   translator: HeadwaterTranslator) -> list[Any]:
    """A job per partitioned stream, to backfill its partitions (one run each):
    ``dagster job backfill -j erp__orders_partitions --all``."""
    jobs = []
    for name, (config, streams) in connectors.items():
        partitioned = config.partitions()
        for stream in streams:
            if stream.name in partitioned:
                jobs.append(define_asset_job(
                    f"{name}__{stream.name}_partitions",
                    selection=AssetSelection.assets(translator.raw_key(name, stream.name)),
                    description=f"land {name}.{stream.name}, one run per partition"))
    return jobs


# -- source concurrency ---------------------------------------------------------------------


def source_pool(config: ConnectorConfig) -> str | None:
    """The concurrency pool of a connector's raw assets, if it declares a budget."""
    return f"source/{config.name}" if config.settings.max_concurrent_reads else None


def pool_limits(connectors: Mapping[str, ConnectorConfig]) -> dict[str, int]:
    """Pool name -> the ``max_concurrent_reads`` it allows."""
    return {pool: c.settings.max_concurrent_reads for c in connectors.values()
            if (pool := source_pool(c)) and c.settings.max_concurrent_reads}


def apply_pool_limits(instance: Any, limits: Mapping[str, int]) -> dict[str, int]:
    """Set each pool's limit in the Dagster instance; the pools that changed."""
    storage = instance.event_log_storage
    changed = {}
    for pool, limit in limits.items():
        if storage.get_concurrency_info(pool).slot_count != limit:
            storage.set_concurrency_slots(pool, limit)
            changed[pool] = limit
    return changed


def pool_limits_sensor(connectors: Mapping[str, ConnectorConfig]) -> list[Any]:
    """A sensor (on by default) that keeps the instance's pool limits equal to the
    connectors' ``max_concurrent_reads``; none when no connector declares one."""
    limits = pool_limits(connectors)
    if not limits:
        return []
    shown = ", ".join(f"{pool} = {limit}" for pool, limit in limits.items())

    @sensor(name="headwater_pool_limits", minimum_interval_seconds=30,
            default_status=DefaultSensorStatus.RUNNING,
            description=f"keeps the source concurrency pools at {shown}")
    def _pools(context: SensorEvaluationContext) -> SkipReason:
        changed = apply_pool_limits(context.instance, limits)
        if changed:
            return SkipReason("pool limits set: " + ", ".join(
                f"{pool} = {limit}" for pool, limit in changed.items()))
        return SkipReason(f"pool limits in force: {shown}")

    return [_pools]
