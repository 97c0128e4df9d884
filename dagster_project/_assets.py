"""Asset factories: pipeline specs in, Dagster assets out, with no pipeline logic here.

Each asset calls one pipelines function (``run_stream``, ``clean_entity``, ...) and turns
what it returns into metadata. Failures are sorted once, in :func:`failing_fast`: a
configuration, credential or data-contract error fails the step at once, without
burning retries; anything else (a dropped connection, a 503 burst) is left to the
retry policy, and the retried step resumes from the stream's checkpoint.
"""


import contextlib
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandera.errors
import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Backoff,
    DataVersion,
    Failure,
    FreshnessPolicy,
    Jitter,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    RetryPolicy,
    asset,
    multi_asset,
)

from connectors import (
    AuthenticationError,
    ConfigurationError,
    Connector,
    DataContractError,
    dumps_state,
    redact,
)
from normalization import (
    CROSSWALK_SCHEMA,
    EntityMapping,
    NormalizationError,
    column_lineage,
)
from pipelines._parties import crosswalk_table
from pipelines.cleaning import (
    NormalizationSpec,
    clean_entity,
    clean_table,
    land_reference_file,
    quarantine_table,
    read_clean,
    reference_table,
    resolve_parties,
)
from pipelines.config import ConnectorConfig, models
from pipelines.lineage import resolution_lineage
from pipelines.runner import run_stream
from pipelines.warehouse import quote, raw_table_name

from ._deploy import AFTER_UPSTREAM, partition_arguments, partitions_definition, source_pool
from ._metadata import (
    LINEAGE_TABLE,
    arrow_column_schema,
    column_lineage_value,
    described_schema,
    emit_openlineage,
    lineage_table,
    markdown,
    pandera_column_schema,
    pandera_fields,
    phase_seconds,
    reasons_table,
)
from ._observe import raw_lineage, retries_seen, source_observation
from ._resources import HeadwaterResource
from ._translator import HeadwaterTranslator, code_version

RETRY_POLICY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL,
                           jitter=Jitter.PLUS_MINUS)
FATAL = (AuthenticationError, ConfigurationError, DataContractError, NormalizationError)
EAGER = AFTER_UPSTREAM


@contextlib.contextmanager
def failing_fast() -> Iterator[None]:
    """Turn errors that a retry cannot fix into a ``Failure`` that is not retried."""
    try:
        yield
    except FATAL as exc:
        raise Failure(description=f"{type(exc).__name__}: {redact(str(exc))}",
                      allow_retries=False) from exc


def source_specs(config: ConnectorConfig, connector: Connector,
                 translator: HeadwaterTranslator) -> list[AssetSpec]:
    """External nodes for the tables, endpoints and operations a connector's declared
    streams read, as the connector describes them."""
    found: dict[AssetKey, AssetSpec] = {}
    for stream in connector.streams:
        identity = connector.describe_source(stream)
        key = translator.source_key(identity)
        kind = translator.source_kind(identity)
        found[key] = AssetSpec(
            key, group_name=translator.connector_group(config), kinds={kind},
            owners=translator.owners(config), tags=translator.tags(config),
            metadata=translator.source_metadata(identity),
            description=f"{kind} {identity.object_kind} {identity.object} at "
                        f"{identity.location}")
    return list(found.values())


def partitions_for(spec: models.PartitionSpec | None) -> PartitionsDefinition | None:
    """Daily or key-range partitions for a stream declared with ``partition``."""
    return partitions_definition(spec)


def raw_asset(config: ConnectorConfig, connector: Connector, stream: str, warehouse: str,
              translator: HeadwaterTranslator) -> AssetsDefinition:
    """One stream landed in ``raw_<connector>__<stream>``, partitioned by day or by key
    range if declared."""
    name = config.name
    table = raw_table_name(name, stream)
    partitions = partitions_for(config.partitions().get(stream))
    landing = landing_of(config, connector, stream)
    identity, declared = landing.identity, connector.stream(stream)

    @asset(
        key=translator.raw_key(name, stream), deps=[translator.source_key(identity)],
        group_name=translator.connector_group(config),
        kinds={translator.source_kind(identity), warehouse}, owners=translator.owners(config),
        tags=translator.tags(config),
        code_version=code_version(config.kind, config.cls and config.cls.__qualname__,
                                  repr(declared)),
        retry_policy=RETRY_POLICY, partitions_def=partitions, pool=source_pool(config),
        description=f"{name}.{stream} landed in {table} from {identity.label()}",
        metadata={"table": table}, freshness_policy=None if partitions else freshness(config),
    )
    def _raw(context: AssetExecutionContext, headwater: HeadwaterResource
             ) -> Iterator[Any]:
        version, metadata = land(context, headwater, landing, translator)
        yield MaterializeResult(data_version=DataVersion(version), metadata=metadata)

    return _raw


@dataclass(frozen=True)
class Landing:
    """What a step landing one stream needs to know of it, taken at definition time."""

    config: ConnectorConfig
    stream: str
    identity: Any  # the connector's SourceIdentity of the stream
    incremental: bool
    naive: bool  # SQL sources compare with naive timestamps read as UTC


def landing_of(config: ConnectorConfig, connector: Connector, stream: str) -> Landing:
    return Landing(config, stream, connector.describe_source(stream),
                   connector.stream(stream).incremental is not None,
                   connector.kind in ("sql", "odbc"))


def land(context: Any, headwater: HeadwaterResource, landing: Landing,
         translator: HeadwaterTranslator, partition_key: str | None = None
         ) -> tuple[str, dict[str, Any]]:
    """Land one stream (its partition ``partition_key``, default the run's) as a step
    of ``context`` (an asset's or an op's): the raw table's data version and the
    materialization's metadata. The source node's observation is logged here."""
    name, stream = landing.config.name, landing.stream
    table = raw_table_name(name, stream)
    with failing_fast(), retries_seen(context) as retries, \
            headwater.connector(name) as source, headwater.warehouse() as store:
        part = partition_arguments(context, landing.config.partitions().get(stream),
                                   source=source, stream=stream, warehouse=store,
                                   naive=landing.naive, partition_key=partition_key)
        result = run_stream(source, stream, store, run_id=context.run.run_id, **part)
        landed = table in store.tables()  # not yet, when no window had rows so far
        rows = store.row_count(table) if landed else 0
        empty = f"SELECT * FROM {quote(table)} LIMIT 0"  # noqa: S608
        schema = store.query(empty).schema if landed else None
        seen = source.source_columns(stream)
    version = _data_version(rows, result, landing.incremental, context.run.run_id)
    identity = landing.identity
    context.log_event(source_observation(identity, seen, translator,
                                         translator.raw_key(name, stream).to_user_string()))
    return version, {
        "dagster/row_count": rows,
        **({"dagster/column_schema": arrow_column_schema(schema),
            **raw_lineage(schema, identity, translator)} if schema else {}),
        "rows read": result.rows,
        "rows new": result.new_rows,
        "rows re-read (lag margin)": result.reread or 0,
        "rows no longer at the source": result.removed,
        "schema changes": MetadataValue.json(result.schema_changes),
        "new-column values dropped": MetadataValue.json(result.discarded),
        "records rejected": result.rejected,
        "batches": result.batches,
        "commits": result.commits,
        "retry count": context.retry_number,
        **retries.metadata(),
        **phase_seconds({"read and merge": result.seconds}),
        "state": MetadataValue.json(json.loads(dumps_state(result.state))),
        "table": table,
    }


def _data_version(rows: int, result: Any, incremental: bool, run_id: str) -> str:
    """The raw table's data version, which changes exactly when rows may have changed.
    An incremental stream's table is described by its row count and saved cursor: a run
    that lands nothing new (rows re-read within the lag margin included) keeps the
    version of the run before, so nothing downstream runs again for it. A full-refresh
    stream re-reads every row, so each run is a new version."""
    if not incremental:
        return code_version(result.table, run_id)
    return code_version(result.table, rows, dumps_state(result.state))


DEFAULT_FRESHNESS_HOURS = 24


def freshness(config: ConnectorConfig) -> FreshnessPolicy:
    """Stale after ``freshness_hours`` (default 24) without a new landing; a warning at
    half that."""
    hours = float(config.settings.freshness_hours or DEFAULT_FRESHNESS_HOURS)
    return FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=hours),
                                       warn_window=dt.timedelta(hours=hours / 2))


def reference_asset(name: str, spec: NormalizationSpec, translator: HeadwaterTranslator
                    ) -> AssetsDefinition:
    """A reference file (FX rates) landed as ``ref_<name>``."""
    table = reference_table(name)

    @asset(key=translator.asset_key(table), group_name="reference", kinds={"csv"},
           code_version=code_version(spec.reference_files[name]),
           description=f"reference data from {spec.reference_files[name]}",
           automation_condition=EAGER)
    def _reference(headwater: HeadwaterResource) -> MaterializeResult:
        with failing_fast(), headwater.warehouse() as store:
            rows = land_reference_file(store, name, spec.reference_files[name])
        return MaterializeResult(metadata={"dagster/row_count": rows})

    return _reference


def clean_assets(mapping: EntityMapping, spec: NormalizationSpec, warehouse: str,
                 translator: HeadwaterTranslator) -> AssetsDefinition:
    """``clean_<entity>`` and ``quarantine_<entity>``, written together, with a blocking
    schema check and a warning check on the quarantine rate."""
    entity = mapping.entity
    clean_key, quarantine_key = translator.asset_key(clean_table(entity)), \
        translator.asset_key(quarantine_table(entity))
    lineage = column_lineage(mapping)
    deps = [translator.asset_key(mapping.source)] + [
        translator.asset_key(spec.references.get(lookup.reference,
                                                 reference_table(lookup.reference)))
        for lookup in mapping.lookups]
    group = translator.entity_group(mapping)
    version = code_version(repr(mapping.columns), repr(mapping.lookups),
                           str(mapping.table_schema))
    shown = {"dagster/column_schema": pandera_column_schema(mapping),
             "dagster/column_lineage": column_lineage_value(lineage, translator),
             LINEAGE_TABLE: lineage_table(lineage, translator)}
    checks = [
        AssetCheckSpec("schema_rules", asset=clean_key, blocking=True,
                       description=f"every stored row passes {mapping.schema.__name__}'s "
                                   "hard rules (types, nulls, uniqueness, ranges)"),
        AssetCheckSpec("quarantine_rate", asset=clean_key,
                       description=f"at most {mapping.max_quarantine_share:.0%} of rows "
                                   "quarantined"),
    ]

    @multi_asset(
        name=f"clean_{entity}",
        specs=[
            AssetSpec(clean_key, deps=deps, group_name=group, kinds={"polars", "pandera",
                                                                     warehouse},
                      code_version=version, automation_condition=EAGER, metadata=shown,
                      description=markdown(mapping.schema.__doc__) or f"clean {entity}"),
            AssetSpec(quarantine_key, deps=deps, group_name=group, kinds={"pandera", warehouse},
                      code_version=version, automation_condition=EAGER,
                      description=f"{entity} rows that failed cleaning or validation, one "
                                  "row per failure with the reason"),
        ],
        check_specs=checks,
    )
    def _clean(context: AssetExecutionContext, headwater: HeadwaterResource) -> Iterator[Any]:
        with failing_fast(), headwater.warehouse() as store:
            result = clean_entity(store, mapping, spec, run_id=context.run.run_id)
            stored = store.row_count(clean_table(entity))
            quarantined = store.row_count(quarantine_table(entity))
            broken: Counter[str] = Counter()
            for batch in read_clean(store, mapping):  # bounded memory, however large
                broken.update(stored_rule_failures(mapping, batch))
            emit_openlineage(context.run.run_id, store.url, clean_table(entity),
                             pandera_fields(mapping), lineage)
        yield MaterializeResult(asset_key=clean_key, metadata={
            **shown,
            "dagster/row_count": stored,
            "rows read": result.raw_rows,
            "rows clean": result.clean_rows,
            "rows quarantined": result.quarantined_rows,
            "rows superseded": result.superseded_rows,
            "quarantine share": MetadataValue.float(round(result.quarantine_share, 6)),
            "quarantine reasons": reasons_table(result),
            "retry count": context.retry_number,
            **phase_seconds(result.seconds),
        })
        yield MaterializeResult(asset_key=quarantine_key, metadata={
            "dagster/row_count": quarantined,
            "rows quarantined": result.quarantined_rows,
            "quarantine reasons": reasons_table(result),
        })
        yield AssetCheckResult(asset_key=clean_key, check_name="schema_rules",
                               passed=not broken, metadata={"failures": sum(broken.values()),
                                                            "by rule": json.dumps(broken)})
        yield AssetCheckResult(
            asset_key=clean_key, check_name="quarantine_rate", severity=AssetCheckSeverity.WARN,
            passed=not result.over_threshold,
            metadata={"share": MetadataValue.float(round(result.quarantine_share, 6)),
                      "threshold": MetadataValue.float(mapping.max_quarantine_share)})
        too_many = result.threshold_error()
        if too_many is not None:
            raise Failure(description=str(too_many), allow_retries=False) from too_many

    return _clean


def stored_rule_failures(mapping: EntityMapping, table: Any) -> dict[str, int]:
    """Failures per rule when the stored clean table is validated again."""
    frame = pl.from_arrow(table).select(list(mapping.table_schema.columns))
    # The warehouse may name a type differently (DuckDB's UTC is "Etc/UTC"): same values.
    frame = frame.cast(mapping.dtypes())  # type: ignore[arg-type]
    try:
        mapping.schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        counts = exc.failure_cases.group_by("column", "check").len()
        return {f"{c}: {k}": n for c, k, n in counts.iter_rows()}
    return {}


def parties_asset(spec: NormalizationSpec, translator: HeadwaterTranslator
                  ) -> AssetsDefinition | None:
    """The crosswalk of resolved parties, after the entities it reads."""
    resolution = spec.resolution
    if resolution is None:
        return None
    deps = [translator.asset_key(clean_table(s.entity)) for s in resolution.sources]
    table = crosswalk_table(resolution.name)
    key = translator.asset_key(table)
    lineage = resolution_lineage(resolution)
    shown = {"dagster/column_schema": described_schema(
                 CROSSWALK_SCHEMA, {i.column: i.transform for i in lineage}),
             "dagster/column_lineage": column_lineage_value(lineage, translator),
             LINEAGE_TABLE: lineage_table(lineage, translator)}

    @asset(key=key, deps=deps, group_name="parties", kinds={"polars"},
           code_version=code_version(repr(resolution)), automation_condition=EAGER,
           metadata=shown,
           description=f"one stable {resolution.name}_id per {resolution.name} across "
                       + ", ".join(s.system for s in resolution.sources)
                       + f": which records of each system are the same {resolution.name} "
                         "(it decides, for instance, which orders belong to an account)")
    def _parties(context: AssetExecutionContext, headwater: HeadwaterResource
                 ) -> MaterializeResult:
        with failing_fast(), headwater.warehouse() as store:
            resolved = resolve_parties(store, resolution, run_id=context.run.run_id)
        if resolved is None:
            raise Failure(description="the entities the parties are resolved from are not "
                                      "clean yet", allow_retries=False)
        return MaterializeResult(metadata={
            **shown,
            "dagster/row_count": resolved.records,
            "parties": resolved.parties, "mode": resolved.mode,
            "why resolved whole": resolved.why_full or None,
            "records re-resolved": resolved.crosswalk.num_rows,
            "linked by key": resolved.linked_by_key,
            "linked by name": resolved.linked_by_name,
            "ambiguous names": resolved.ambiguous_names,
            "dangling links": resolved.dangling_links,
        })

    return _parties
