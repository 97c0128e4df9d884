"""Raw landing tables into clean entities and their quarantine, in the warehouse.

For each mapping, in declaration order: read ``raw_<source>__<stream>``, normalize it, and
replace ``clean_<entity>`` and ``quarantine_<entity>`` together in one transaction. The
clean tables are rebuilt from the landed rows every time, so fixing a mapping and running
again re-processes every quarantined row without touching a source;
:func:`reprocess_quarantined` does the same for the quarantined rows alone.

Which mappings run is configured in ``[normalization]`` (nothing runs unless it names
them)::

    [normalization]
    mappings = ["my_estate.mappings"]     # modules: MAPPINGS, REFERENCES, REFERENCE_FILES,
                                          # PARTIES
    reference_files = { fx_rates = "data/fx_rates.csv" }   # overrides REFERENCE_FILES
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from connectors import ConfigurationError
from normalization import (
    EntityMapping,
    NormalizeResult,
    Resolution,
    ResolvedParties,
    normalize,
    resolve,
    source_key,
)

from .warehouse import DELETED_AT, Warehouse, quote


def clean_table(entity: str) -> str:
    return f"clean_{entity}"


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


def clean_entity(warehouse: Warehouse, mapping: EntityMapping, spec: NormalizationSpec, *,
                 run_id: str) -> NormalizeResult:
    """Normalize one entity from its landed raw table and replace its clean and
    quarantine tables atomically."""
    raw = _read(warehouse, mapping.source, f"land {mapping.source} first (headwater run)")
    result = normalize(mapping, raw, run_id=run_id, references=_references(warehouse, mapping,
                                                                           spec))
    warehouse.replace_tables({clean_table(mapping.entity): result.clean,
                              quarantine_table(mapping.entity): result.quarantine})
    return result


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
              entities: Sequence[str] | None = None,
              on_result: Callable[[NormalizeResult], None] | None = None) -> CleanRun:
    """Normalize ``entities`` (default: all, skipping those whose raw table was never
    landed), then resolve parties when every entity they need is clean."""
    run = CleanRun(run_id)
    run.references = land_reference_files(warehouse, spec)
    landed = set(warehouse.tables())
    chosen = [spec.mapping(e) for e in entities] if entities else [
        m for m in spec.mappings if m.source in landed]
    run.skipped += [f"entity {m.entity!r} skipped: its raw table {m.source} is not landed yet "
                    "(headwater run)" for m in spec.mappings
                    if not entities and m.source not in landed]
    for mapping in chosen:
        result = clean_entity(warehouse, mapping, spec, run_id=run_id)
        run.results.append(result)
        if on_result is not None:
            on_result(result)
    if spec.resolution is not None:
        run.parties = resolve_parties(warehouse, spec.resolution)
        if run.parties is None:
            run.skipped.append(f"party resolution {spec.resolution.name!r} skipped: it needs "
                               "the clean tables of "
                               f"{[s.entity for s in spec.resolution.sources]}")
    return run


def resolve_parties(warehouse: Warehouse, resolution: Resolution) -> ResolvedParties | None:
    """Write ``clean_<name>_xref``, the crosswalk of resolved parties, if every entity it
    reads is clean; ``None`` (nothing written) otherwise."""
    present = set(warehouse.tables())
    needed = {s.entity: clean_table(s.entity) for s in resolution.sources}
    if not set(needed.values()) <= present:
        return None
    resolved = resolve(resolution, {e: warehouse.read_table(t) for e, t in needed.items()})
    warehouse.replace_tables({clean_table(f"{resolution.name}_xref"): resolved.crosswalk})
    return resolved


def quarantined_share(warehouse: Warehouse, mapping: EntityMapping) -> tuple[int, int]:
    """(raw rows now in quarantine, raw rows) of an entity, from its stored tables."""
    quarantined = warehouse.query(
        f"SELECT count(DISTINCT source_key) FROM {quote(quarantine_table(mapping.entity))}"  # noqa: S608
    ).column(0)[0].as_py()
    return quarantined, warehouse.row_count(mapping.source)


def reprocess_quarantined(warehouse: Warehouse, mapping: EntityMapping,
                          spec: NormalizationSpec, *, run_id: str) -> NormalizeResult:
    """Normalize again only the raw rows now in quarantine (after a mapping or schema
    fix): rows that pass join the clean table, the rest replace their old quarantine
    rows. The landed raw table is read; no source is touched.

    The result describes the re-processed rows alone, so its threshold means nothing
    for the entity: judge that with :func:`quarantined_share`.
    """
    quarantine = pl.from_arrow(_read(warehouse, quarantine_table(mapping.entity),
                                     "normalize the entity first"))
    keys = quarantine.get_column("source_key").unique().implode()
    raw = pl.from_arrow(_read(warehouse, mapping.source, "land it first"))
    retried = raw.filter(source_key(mapping).is_in(keys))
    result = normalize(mapping, retried, run_id=run_id,
                       references=_references(warehouse, mapping, spec))
    passed = pl.from_arrow(result.clean)
    # Same columns and types, except what the warehouse renamed (DuckDB calls UTC Etc/UTC).
    clean = pl.from_arrow(warehouse.read_table(clean_table(mapping.entity))).cast(
        dict(passed.schema))
    merged = pl.concat([clean.join(passed, on=mapping.clean_key(), how="anti"), passed],
                       how="vertical_relaxed")
    kept = quarantine.filter(~pl.col("source_key").is_in(keys))
    warehouse.replace_tables({
        clean_table(mapping.entity): merged.to_arrow(),
        quarantine_table(mapping.entity): pa.concat_tables(
            [kept.to_arrow().cast(result.quarantine.schema), result.quarantine]),
    })
    return result
