"""Raw landing tables into clean entities and their quarantine, in the warehouse.

For each mapping, in declaration order, only the raw rows landed since the entity's last
run are cleaned, validated and merged by key into ``clean_<entity>`` and
``quarantine_<entity>`` (a row that now passes leaves quarantine, a row that now fails
leaves the clean table), batch by batch, each batch in one transaction. Where the last
run stopped is a state entry, ``clean.<entity>``: the landing time (``_hw_extracted_at``)
from which the next run reads, taken before the raw table is read and moved back to the
start of any landing of it still going, less :data:`CLOCK_SKEW`, so a row committed while
a run reads is never skipped (at worst it is cleaned twice, which changes nothing).

The first run of an entity, and every run with ``full=True`` (``headwater normalize
--full``), rebuilds the tables from every landed row: the batches are written beside the
tables and replace them in one transaction, so fixing a mapping and running again with
``--full`` re-processes every row without touching a source; :func:`reprocess_quarantined`
does the same for the quarantined rows alone. Both paths read raw rows through
:func:`read_raw`, in batches of :data:`BATCH_ROWS` that keep every row of one key
together, so memory stays bounded however large the raw table grows.

Which mappings run is configured in ``[normalization]`` (nothing runs unless it names
them)::

    [normalization]
    mappings = ["my_estate.mappings"]     # modules: MAPPINGS, REFERENCES, REFERENCE_FILES,
                                          # PARTIES
    reference_files = { fx_rates = "data/fx_rates.csv" }   # overrides REFERENCE_FILES
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from connectors import ConfigurationError
from normalization import (
    PROVENANCE_COLUMNS,
    QUARANTINE_SCHEMA,
    EntityMapping,
    From,
    NormalizeResult,
    Resolution,
    ResolvedParties,
    as_polars,
    normalize,
    source_key,
)

from ._clean_changes import EXTRACTED_AT, clean_state_key, clean_table
from ._parties import resolve_parties
from .runner import deletions_key
from .warehouse import DELETED_AT, KeyedRows, Warehouse, quote, raw_table_name


def quarantine_table(entity: str) -> str:
    return f"quarantine_{entity}"


def reference_table(name: str) -> str:
    return f"ref_{name}"


@dataclass(frozen=True)
class NormalizationSpec:
    """What to normalize: mappings in order, where lookups read, and party resolution."""

    mappings: tuple[EntityMapping, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)  # lookup name -> table
    reference_files: Mapping[str, str] = field(default_factory=dict)  # name -> CSV location
    resolution: Resolution | None = None

    def mapping(self, entity: str) -> EntityMapping:
        for mapping in self.mappings:
            if mapping.entity == entity:
                return mapping
        known = ", ".join(m.entity for m in self.mappings)
        raise ConfigurationError(f"no entity {entity!r}; entities: {known}")


@dataclass
class CleanRun:
    """What one normalization run did, entity by entity."""

    run_id: str
    results: list[NormalizeResult] = field(default_factory=list)
    parties: ResolvedParties | None = None
    references: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # why an entity or step did not run

    @property
    def over_threshold(self) -> list[NormalizeResult]:
        return [r for r in self.results if r.over_threshold]


def land_reference_files(warehouse: Warehouse, spec: NormalizationSpec) -> dict[str, int]:
    """Load each reference CSV into ``ref_<name>``, every column as text (lookups cast
    to the entity's types, so rates and codes stay exact)."""
    return {reference_table(name): land_reference_file(warehouse, name, location)
            for name, location in spec.reference_files.items()}


def land_reference_file(warehouse: Warehouse, name: str, location: str) -> int:
    """Replace ``ref_<name>`` with the CSV at ``location``; the rows landed."""
    data = _read_csv(location)
    warehouse.replace_tables({reference_table(name): data})
    return data.num_rows


def _read_csv(location: str) -> pa.Table:
    try:
        content = Path(location).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the reference file {location!r}: "
                                 f"{exc.strerror}") from None
    return pl.read_csv(content, infer_schema=False).to_arrow()


# Raw rows cleaned per batch: a rebuild of millions of rows stays within a few hundred
# megabytes (bench/RESULTS.md), and an ordinary delta is one batch.
BATCH_ROWS = 100_000
# The clocks of the machines that land and clean may disagree by this much: an
# incremental run re-reads rows landed this long before its watermark (cleaning a row
# twice changes nothing; missing one would lose it downstream).
CLOCK_SKEW = dt.timedelta(seconds=60)


@dataclass
class EntityResult(NormalizeResult):
    """One entity's normalization over one or more batches: the counts of every batch,
    the quarantine rows written, and whether it read the delta or every landed row.

    ``clean`` holds no rows (they are in the warehouse): ``clean_rows`` counts them.
    """

    mode: str = "full"  # "full", or "incremental" (only rows landed since the last run)
    why_full: str = ""  # why a full run was needed
    batches: int = 0
    written: int = 0

    @property
    def clean_rows(self) -> int:
        return self.written

    def add(self, batch: NormalizeResult) -> None:
        self.batches += 1
        self.written += batch.clean_rows
        self.raw_rows += batch.raw_rows
        self.superseded_rows += batch.superseded_rows
        self.quarantined_rows += batch.quarantined_rows
        self.quarantine = pa.concat_tables([self.quarantine, batch.quarantine])
        for phase, seconds in batch.seconds.items():
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


def clean_entity(warehouse: Warehouse, mapping: EntityMapping, spec: NormalizationSpec, *,
                 run_id: str, full: bool = False, batch_rows: int = BATCH_ROWS
                 ) -> EntityResult:
    """Normalize one entity: the raw rows landed since its last run, merged by key into
    its clean and quarantine tables; every landed row, replacing both tables at once, on
    the first run or with ``full=True``."""
    started = time.perf_counter()
    references = _references(warehouse, mapping, spec)
    key = clean_state_key(mapping.entity)
    fingerprint = _fingerprint(mapping, references)
    saved = None if full else warehouse.load_state(key)
    why_full = "asked for" if full else _why_full(warehouse, mapping, saved, fingerprint)
    watermark = landing_watermark(warehouse, mapping.source)
    # epoch: the run that last rebuilt the entity (steps downstream re-read it whole
    # when it moves; see pipelines/_clean_changes.py)
    state = {"since": watermark, "fingerprint": fingerprint,
             "deletions": _deletions(warehouse, mapping),
             "epoch": saved.get("epoch") if saved and not why_full else run_id}
    result = _empty_result(mapping, run_id, "full" if why_full else "incremental")
    result.why_full = why_full
    if not why_full:
        assert saved is not None
        for raw in read_raw(warehouse, mapping, since=saved["since"], batch_rows=batch_rows):
            batch = normalize(mapping, raw, run_id=run_id, references=references)
            warehouse.replace_keyed(_replacing(mapping, raw, batch))
            result.add(batch)
        warehouse.save_state(key, state, run_id)
    else:
        _rebuild(warehouse, mapping, references, run_id, batch_rows, result)
        _finish_rebuild(warehouse, mapping, key, state, run_id)
    elapsed = time.perf_counter() - started
    result.seconds["read and write"] = max(0.0, elapsed - sum(result.seconds.values()))
    return result


def _fingerprint(mapping: EntityMapping, references: Mapping[str, pa.Table]) -> str:
    """What every clean row depends on besides its raw row: the mapping (columns,
    cleaners, lookups, schema) and the contents of the references it looks up."""
    parts = [repr(mapping.columns), repr(mapping.lookups), str(mapping.table_schema)]
    for name in sorted(references):
        frame = as_polars(references[name])
        parts.append(f"{name}:{frame.height}:{frame.hash_rows().sum() if frame.height else 0}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _why_full(warehouse: Warehouse, mapping: EntityMapping, saved: dict[str, Any] | None,
              fingerprint: str) -> str:
    """Why this run must rebuild the entity (empty: it can follow the change)."""
    if saved is None or "since" not in saved:
        return "first run"
    if not mapping.clean_key():
        return "the mapping maps no clean column from the raw key, so rows cannot be merged"
    present = set(warehouse.tables())
    if not {clean_table(mapping.entity), quarantine_table(mapping.entity)} <= present:
        return "the clean or quarantine table is missing"
    if saved.get("fingerprint") != fingerprint:
        return "the mapping or a reference it looks up changed"
    if _deletions(warehouse, mapping) != saved.get("deletions"):
        return f"rows were deleted from {mapping.source} since the last run"
    return ""


def _deletions(warehouse: Warehouse, mapping: EntityMapping) -> str | None:
    """When rows were last deleted from the entity's raw table (a run's state keeps the
    one it has taken in)."""
    at = (warehouse.load_state(deletions_key(mapping.source)) or {}).get("at")
    return at.isoformat() if hasattr(at, "isoformat") else at


def _empty_result(mapping: EntityMapping, run_id: str, mode: str) -> EntityResult:
    return EntityResult(
        entity=mapping.entity, source=mapping.source, run_id=run_id, clean=pa.table({}),
        quarantine=QUARANTINE_SCHEMA.empty_table(), raw_rows=0, superseded_rows=0,
        quarantined_rows=0, max_quarantine_share=mapping.max_quarantine_share, mode=mode)


def _building(table: str) -> str:
    """Where a rebuilt table is written before it replaces ``table``."""
    return f"_hw_build_{table}"


def _rebuild(warehouse: Warehouse, mapping: EntityMapping, references: dict[str, pa.Table],
             run_id: str, batch_rows: int, result: EntityResult) -> None:
    clean, quarantine = clean_table(mapping.entity), quarantine_table(mapping.entity)
    warehouse.drop_tables([_building(clean), _building(quarantine)])
    for raw in read_raw(warehouse, mapping, batch_rows=batch_rows, at_least_one=True):
        batch = normalize(mapping, raw, run_id=run_id, references=references)
        nothing = pa.table({})
        warehouse.replace_keyed({
            _building(clean): KeyedRows((), nothing, batch.clean),
            _building(quarantine): KeyedRows((), nothing, batch.quarantine),
        })
        result.add(batch)
        result.clean = batch.clean.slice(0, 0)


def _finish_rebuild(warehouse: Warehouse, mapping: EntityMapping, key: str,
                    state: dict[str, Any], run_id: str) -> None:
    clean, quarantine = clean_table(mapping.entity), quarantine_table(mapping.entity)
    warehouse.rename_tables({_building(clean): clean, _building(quarantine): quarantine},
                           state_key=key, state=state, run_id=run_id)


def _replacing(mapping: EntityMapping, raw: pa.Table, batch: NormalizeResult
               ) -> dict[str, KeyedRows]:
    """The clean and quarantine rows a batch replaces: every clean row and every
    quarantine row of a raw key the batch holds, whatever became of it now."""
    frame = as_polars(raw)
    return {
        clean_table(mapping.entity): KeyedRows(tuple(mapping.clean_key()),
                                               clean_keys(mapping, frame), batch.clean),
        quarantine_table(mapping.entity): KeyedRows(
            ("source_key",), frame.select(source_key(mapping)).unique().to_arrow(),
            batch.quarantine),
    }


def clean_keys(mapping: EntityMapping, raw: pl.DataFrame) -> pa.Table:
    """The clean keys that raw rows clean to: the key columns' own cleaning steps and
    cast, as the engine applies them (a row that fails elsewhere has its key all the
    same, so its earlier clean version can be found and removed)."""
    dtypes = mapping.dtypes()
    columns = []
    for name in mapping.clean_key():
        column = mapping.columns[name]
        assert isinstance(column, From)
        expr = pl.col(column.column)
        for step in column.steps:
            expr = step.apply(expr)
        columns.append(expr.cast(dtypes[name], strict=False).alias(name))
    return raw.select(columns).drop_nulls().unique().to_arrow()


def landing_watermark(warehouse: Warehouse, table: str) -> dt.datetime:
    """Where the next incremental run of ``table`` must start reading: now, or the start
    of a landing into it that is still going, less :data:`CLOCK_SKEW`."""
    now = dt.datetime.now(dt.UTC)
    going = [holder.since for stream, holder in warehouse.landings_in_flight().items()
             if holder.since is not None and _lands_in(stream, table)]
    return min([now, *going]) - CLOCK_SKEW


def _lands_in(stream_key: str, table: str) -> bool:
    connector, _, stream = stream_key.partition("@")[0].partition(".")
    return raw_table_name(connector, stream) == table


def read_raw(warehouse: Warehouse, mapping: EntityMapping, *,
             since: dt.datetime | None = None, batch_rows: int = BATCH_ROWS,
             at_least_one: bool = False) -> Iterator[pa.Table]:
    """The landed rows of ``mapping.source`` (only those landed at or after ``since``,
    if given), the columns the mapping reads with their provenance, in batches of about
    ``batch_rows`` rows that keep every row of one key in the same batch. The one place
    raw rows are read. ``at_least_one``: an empty batch when there is nothing, so a
    rebuild still creates its tables."""
    table = mapping.source
    if table not in warehouse.tables():
        raise ConfigurationError(f"the warehouse has no table {table!r}: land "
                                 f"{mapping.source} first (headwater run)")
    available = warehouse.query(f"SELECT * FROM {quote(table)} LIMIT 0").schema.names  # noqa: S608
    wanted = [*mapping.raw_columns(), *PROVENANCE_COLUMNS]
    columns = ", ".join(quote(c) for c in wanted if c in available) or "*"
    filters = [f"{quote(DELETED_AT)} IS NULL"] if DELETED_AT in available else []
    if since is not None:
        if EXTRACTED_AT not in available:
            raise ConfigurationError(f"{table} has no {EXTRACTED_AT} column, so its new rows "
                                     "cannot be told apart: normalize it with --full")
        filters.append(f"{quote(EXTRACTED_AT)} >= CAST('{since.astimezone(dt.UTC).isoformat()}'"
                       " AS TIMESTAMP WITH TIME ZONE)")
    yield from _batches(warehouse, table, mapping.primary_key, columns, filters, batch_rows,
                        at_least_one)


def read_clean(warehouse: Warehouse, mapping: EntityMapping, *,
               batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The stored rows of ``clean_<entity>`` in batches of about ``batch_rows`` (for
    checks over the whole table in bounded memory)."""
    key = tuple(mapping.clean_key())
    if not key:  # nothing to cut batches by: the table at once
        yield warehouse.read_table(clean_table(mapping.entity))
        return
    yield from _batches(warehouse, clean_table(mapping.entity), key, "*", [], batch_rows,
                        at_least_one=True)


def _batches(warehouse: Warehouse, table: str, key: Sequence[str], columns: str,
             filters: list[str], batch_rows: int, at_least_one: bool) -> Iterator[pa.Table]:
    rows = warehouse.query(f"SELECT count(*) FROM {quote(table)}"  # noqa: S608
                           + (f" WHERE {' AND '.join(filters)}" if filters else "")
                           ).column(0)[0].as_py()
    if not rows:
        if at_least_one:
            yield warehouse.query(f"SELECT {columns} FROM {quote(table)} LIMIT 0")  # noqa: S608
        return
    for batch_filter in _batch_filters(warehouse, table, key, filters, rows, batch_rows):
        parts = [*filters, *([batch_filter] if batch_filter else [])]
        clause = f" WHERE {' AND '.join(parts)}" if parts else ""
        yield warehouse.query(f"SELECT {columns} FROM {quote(table)}{clause}")  # noqa: S608


def _batch_filters(warehouse: Warehouse, table: str, key: Sequence[str], filters: list[str],
                   rows: int, batch_rows: int) -> list[str]:
    """SQL conditions that cut ``rows`` rows into batches of about ``batch_rows``, each
    key's rows in one batch: ranges of the first key column between its approximate
    quantiles (a range reads only its own part of a table stored in key order), else
    buckets of a hash of the whole key."""
    count = max(1, math.ceil(rows / batch_rows))
    if count == 1:
        return [""]
    first = key[0]
    where = " AND ".join(filters)
    fractions = [i / count for i in range(1, count)]
    cuts = sorted(set(warehouse.approx_quantiles(table, first, fractions, where)))
    literals = [_sql_literal(cut) for cut in cuts]
    if cuts and all(literal is not None for literal in literals):
        column = quote(first)
        bounds: list[str | None] = [None, *literals]
        ends: list[str | None] = [*literals, None]
        return [" AND ".join([*([f"{column} >= {low}"] if low else []),
                              *([f"{column} < {high}"] if high else [])])
                for low, high in zip(bounds, ends, strict=True)]
    bucket = warehouse.bucket_expression(key, count)
    return [f"{bucket} = {i}" for i in range(count)]


def _sql_literal(value: Any) -> str | None:
    """``value`` as an SQL literal both warehouses read, for the kinds of key that cut
    batches by range; ``None`` for other kinds (they are cut by hash)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | decimal.Decimal):
        return str(value) if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMP WITH TIME ZONE" if value.tzinfo else "TIMESTAMP"
        return f"CAST('{value.isoformat()}' AS {kind})"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return None


def _read(warehouse: Warehouse, table: str, remedy: str) -> pa.Table:
    if table not in warehouse.tables():
        raise ConfigurationError(f"the warehouse has no table {table!r}: {remedy}")
    return present_rows(warehouse.read_table(table))


def present_rows(rows: pa.Table) -> pa.Table:
    """The rows still at their source: those a soft delete marked (``_hw_deleted_at``
    set) are left out, with the column, so clean tables and contexts never hold them."""
    if DELETED_AT not in rows.column_names:
        return rows
    return rows.filter(pc.is_null(rows.column(DELETED_AT))).drop_columns([DELETED_AT])


def _references(warehouse: Warehouse, mapping: EntityMapping, spec: NormalizationSpec
                ) -> dict[str, pa.Table]:
    tables = {}
    for lookup in mapping.lookups:
        table = spec.references.get(lookup.reference, reference_table(lookup.reference))
        tables[lookup.reference] = _read(warehouse, table,
                                         f"the lookup {lookup.reference!r} of {mapping.entity} "
                                         "reads it; normalize or load it first")
    return tables


def clean_all(warehouse: Warehouse, spec: NormalizationSpec, *, run_id: str,
              entities: Sequence[str] | None = None, full: bool = False,
              on_result: Callable[[NormalizeResult], None] | None = None) -> CleanRun:
    """Normalize ``entities`` (default: all, skipping those whose raw table was never
    landed), incrementally unless ``full``, then resolve parties when every entity they
    need is clean."""
    run = CleanRun(run_id)
    run.references = land_reference_files(warehouse, spec)
    landed = set(warehouse.tables())
    chosen = [spec.mapping(e) for e in entities] if entities else [
        m for m in spec.mappings if m.source in landed]
    run.skipped += [f"entity {m.entity!r} skipped: its raw table {m.source} is not landed yet "
                    "(headwater run)" for m in spec.mappings
                    if not entities and m.source not in landed]
    for mapping in chosen:
        result = clean_entity(warehouse, mapping, spec, run_id=run_id, full=full)
        run.results.append(result)
        if on_result is not None:
            on_result(result)
    if spec.resolution is not None:
        run.parties = resolve_parties(warehouse, spec.resolution, full=full, run_id=run_id)
        if run.parties is None:
            run.skipped.append(f"party resolution {spec.resolution.name!r} skipped: it needs "
                               "the clean tables of "
                               f"{[s.entity for s in spec.resolution.sources]}")
    return run


def quarantined_share(warehouse: Warehouse, mapping: EntityMapping) -> tuple[int, int]:
    """(raw rows now in quarantine, raw rows) of an entity, from its stored tables."""
    quarantined = warehouse.query(
        f"SELECT count(DISTINCT source_key) FROM {quote(quarantine_table(mapping.entity))}"  # noqa: S608
    ).column(0)[0].as_py()
    return quarantined, warehouse.row_count(mapping.source)


def reprocess_quarantined(warehouse: Warehouse, mapping: EntityMapping,
                          spec: NormalizationSpec, *, run_id: str,
                          batch_rows: int = BATCH_ROWS) -> EntityResult:
    """Normalize again only the raw rows now in quarantine (after a mapping or schema
    fix): rows that pass join the clean table, the rest replace their old quarantine
    rows. The landed raw table is read; no source is touched.

    The result describes the re-processed rows alone, so its threshold means nothing
    for the entity: judge that with :func:`quarantined_share`.
    """
    quarantine = quarantine_table(mapping.entity)
    if quarantine not in warehouse.tables():
        raise ConfigurationError(f"the warehouse has no table {quarantine!r}: normalize the "
                                 "entity first")
    keys = warehouse.query(f"SELECT DISTINCT source_key FROM {quote(quarantine)}"  # noqa: S608
                           ).column(0).combine_chunks()
    references = _references(warehouse, mapping, spec)
    result = _empty_result(mapping, run_id, "quarantined")
    for raw in read_raw(warehouse, mapping, batch_rows=batch_rows):
        frame = as_polars(raw)
        retried = frame.filter(source_key(mapping).is_in(pl.Series(keys).implode()))
        if not retried.height:
            continue
        batch = normalize(mapping, retried, run_id=run_id, references=references)
        warehouse.replace_keyed(_replacing(mapping, retried.to_arrow(), batch))
        result.add(batch)
    if result.batches:
        # rows that left quarantine keep their landing time: steps downstream must read
        # the entity whole to see them
        key = clean_state_key(mapping.entity)
        state = warehouse.load_state(key)
        if state is not None:
            warehouse.save_state(key, {**state, "epoch": run_id}, run_id)
    return result
