"""Running a mapping: de-duplicate, clean, look up, derive, validate lazily, split.

Every raw row ends in exactly one place: the clean table, the quarantine (with one row per
failure: column, check, value, source key, run id), or superseded by a later version of
the same key. :attr:`NormalizeResult.reconciles` checks that arithmetic, so a run can
prove it lost nothing.

Failures are found in two places. Cleaning finds values it cannot read: a converting
cleaner (or the cast to the schema's type) that turns a present value into null reports
the step's name and the raw value. Pandera then validates the cleaned frame lazily and
reports every failed check with its row. A failed cleaning step is not reported again
as the ``not_nullable`` failure it causes downstream.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandera.errors
import polars as pl
import pyarrow as pa

from ._cleaners import Cleaner
from ._errors import MappingError, QuarantineThresholdExceeded, SourceShapeError
from ._mapping import Derived, EntityMapping, From, Lookup, Step

PROVENANCE_COLUMNS = ("_hw_source", "_hw_stream", "_hw_extracted_at", "_hw_run_id")
QUARANTINE_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("entity", pa.string()),
    ("source", pa.string()),
    ("source_key", pa.string()),
    ("column", pa.string()),
    ("check", pa.string()),
    ("value", pa.string()),
    ("quarantined_at", pa.timestamp("us", tz="UTC")),
])

_ROW = "__hw_row"
_FAIL = "__hw_fail__"
_VALUE = "__hw_value__"
_HIT = "__hw_hit__"
_NEXT = "__hw_next__"

Frame = pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatch | Any


@dataclass(frozen=True)
class _FailureSource:
    """Where one kind of cleaning failure is flagged and which value it reports."""

    flag: str  # column holding the failed check's name, null where nothing failed
    column: str  # the clean column the failure is reported against
    value: str  # column whose value (as text) the quarantine row shows
    from_raw: bool = False  # the value column is in the raw frame, not the cleaned one


@dataclass
class NormalizeResult:
    """What normalizing one entity produced, with the counts that must reconcile."""

    entity: str
    source: str
    run_id: str
    clean: pa.Table
    quarantine: pa.Table
    raw_rows: int
    superseded_rows: int
    quarantined_rows: int
    max_quarantine_share: float
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def clean_rows(self) -> int:
        return self.clean.num_rows

    @property
    def failures(self) -> int:
        return self.quarantine.num_rows

    @property
    def reconciles(self) -> bool:
        """Raw rows = clean + quarantined + superseded: nothing vanished."""
        return self.raw_rows == self.clean_rows + self.quarantined_rows + self.superseded_rows

    @property
    def quarantine_share(self) -> float:
        considered = self.raw_rows - self.superseded_rows
        return self.quarantined_rows / considered if considered else 0.0

    @property
    def over_threshold(self) -> bool:
        return self.quarantine_share > self.max_quarantine_share

    def reasons(self) -> dict[tuple[str, str], int]:
        """Failures per (column, check), most frequent first."""
        pairs = zip(self.quarantine.column("column").to_pylist(),
                    self.quarantine.column("check").to_pylist(), strict=True)
        return dict(Counter(pairs).most_common())

    def describe_reasons(self, limit: int = 3) -> str:
        top = list(self.reasons().items())[:limit]
        return ", ".join(f"{column}: {check} ({n:,})" for (column, check), n in top) or "none"

    def threshold_error(self) -> QuarantineThresholdExceeded | None:
        """The error to report when too many rows were quarantined, else ``None``."""
        if not self.over_threshold:
            return None
        return QuarantineThresholdExceeded(
            self.entity, self.quarantined_rows, self.raw_rows - self.superseded_rows,
            self.max_quarantine_share, self.describe_reasons(),
        )

    def raise_for_threshold(self) -> None:
        """Raise :class:`QuarantineThresholdExceeded` if too many rows were quarantined."""
        error = self.threshold_error()
        if error is not None:
            raise error


def as_polars(data: Frame) -> pl.DataFrame:
    """Arrow tables and batches, polars and pandas frames, as one polars frame."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        frame = pl.from_arrow(data)
        assert isinstance(frame, pl.DataFrame)
        return frame
    if type(data).__module__.split(".")[0] == "pandas":
        return pl.from_pandas(data)
    raise TypeError(
        f"normalize takes an Arrow table or batch, a polars or a pandas frame, "
        f"not {type(data).__name__}"
    )


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def normalize(
    mapping: EntityMapping,
    raw: Frame,
    *,
    run_id: str | None = None,
    references: dict[str, Frame] | None = None,
) -> NormalizeResult:
    """Turn raw rows into the clean entity and its quarantine, reporting what went where.

    ``references`` holds the tables the mapping's lookups read, by reference name.
    Raises :class:`MappingError` for a lookup whose reference is missing or repeats keys,
    and :class:`SourceShapeError` when ``raw`` lacks a column the mapping reads.
    """
    run_id = run_id or new_run_id()
    timer = _Timer()
    frame = as_polars(raw)
    _check_shape(mapping, frame)
    raw_rows = frame.height
    frame = _latest_per_key(frame, mapping).with_row_index(_ROW)
    timer.lap("deduplicate")

    cleaned, failure_sources = _clean(mapping, frame)
    timer.lap("clean")
    cleaned, lookup_failures = _look_up(mapping, cleaned, references or {})
    cleaned, derived_failures = _derive(mapping, cleaned)
    failure_sources += lookup_failures + derived_failures
    timer.lap("enrich")

    checked = _validation_failures(mapping, cleaned)
    timer.lap("validate")

    failures = _collect_failures(cleaned, frame, failure_sources, checked)
    failing_rows = failures.get_column(_ROW).unique()
    keep = [*mapping.table_schema.columns, *[c for c in PROVENANCE_COLUMNS if c in cleaned.columns]]
    clean = cleaned.filter(~pl.col(_ROW).is_in(failing_rows.implode())).select(keep)
    quarantine = _quarantine_table(mapping, frame, failures, run_id)
    timer.lap("split")
    return NormalizeResult(
        entity=mapping.entity, source=mapping.source, run_id=run_id,
        clean=clean.to_arrow(), quarantine=quarantine,
        raw_rows=raw_rows, superseded_rows=raw_rows - frame.height,
        quarantined_rows=failing_rows.len(),
        max_quarantine_share=mapping.max_quarantine_share, seconds=timer.laps,
    )


class _Timer:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = self.laps.get(phase, 0.0) + now - self._last
        self._last = now


def _check_shape(mapping: EntityMapping, frame: pl.DataFrame) -> None:
    missing = [c for c in mapping.raw_columns() if c not in frame.columns]
    if missing:
        raise SourceShapeError(
            f"entity {mapping.entity!r}: {mapping.source} lacks column(s) {missing} that the "
            f"mapping reads; it has {frame.columns}. Land the stream again or fix the mapping"
        )


def _latest_per_key(frame: pl.DataFrame, mapping: EntityMapping) -> pl.DataFrame:
    """One row per raw primary key: the one with the latest cursor (else the last one)."""
    keys = list(mapping.primary_key)
    distinct = frame.get_column(keys[0]).n_unique() if len(keys) == 1 else \
        frame.select(pl.struct(keys).n_unique()).item()
    if distinct == frame.height:
        return frame
    if not mapping.cursor:
        return frame.unique(subset=keys, keep="last", maintain_order=True)
    # Latest by cursor, ties to the later row; the survivors keep their original order.
    return (frame.with_row_index(_ROW)
            .sort(mapping.cursor, _ROW, nulls_last=False)
            .unique(subset=keys, keep="last")
            .sort(_ROW).drop(_ROW))


def _clean(mapping: EntityMapping, frame: pl.DataFrame
           ) -> tuple[pl.DataFrame, list[_FailureSource]]:
    """Apply each ``From`` column's steps and the cast to its schema type, flagging the
    first step that turned a present value into null.

    Steps run in stages, step ``k`` of every column at once (polars runs the columns in
    parallel), and each stage's result is materialized before the next: the failure flags
    then compare two stored columns for nulls instead of evaluating a step twice.
    """
    dtypes = mapping.dtypes()
    chains = {name: [*spec.steps, _cast_step(dtypes[name])]
              for name, spec in mapping.columns.items() if isinstance(spec, From)}
    keep = [_ROW, *[c for c in PROVENANCE_COLUMNS if c in frame.columns]]
    work = frame.select(*keep, *[pl.col(mapping.columns[name].column).alias(name)  # type: ignore[union-attr]
                                 for name in chains])
    failed = {name: pl.lit(None, pl.String) for name in chains}
    for stage in range(max(map(len, chains.values()), default=0)):
        current = {name: chain[stage] for name, chain in chains.items() if stage < len(chain)}
        work = work.with_columns(step.apply(pl.col(name)).alias(_NEXT + name)
                                 for name, step in current.items())
        updates = []
        for name, step in current.items():
            if not step.cleaner.nulls_on_purpose:
                lost = pl.col(name).is_not_null() & pl.col(_NEXT + name).is_null()
                failed[name] = pl.when(lost).then(pl.lit(step.describe())).otherwise(failed[name])
            updates.append(pl.col(_NEXT + name).alias(name))
        # Flags are evaluated before the values move on: they compare this stage's input
        # with its output.
        work = work.with_columns(
            *[failed[name].alias(_FAIL + name) for name in current
              if not current[name].cleaner.nulls_on_purpose],
        ).with_columns(updates).drop(_NEXT + name for name in current)
        failed = {name: pl.col(_FAIL + name) if (_FAIL + name) in work.columns else flag
                  for name, flag in failed.items()}
    work = work.with_columns(flag.alias(_FAIL + name) for name, flag in failed.items()
                             if (_FAIL + name) not in work.columns)
    sources = [_FailureSource(_FAIL + name, name, mapping.columns[name].column, from_raw=True)  # type: ignore[union-attr]
               for name in chains]
    return work, sources


def _cast_step(dtype: pl.DataType) -> Step:
    """The last step of every cleaned column: a non-strict cast to the schema's type, so
    a value that does not fit becomes null and is reported as this step's failure."""
    return Step(Cleaner(f"cast to {dtype}", lambda expr: expr.cast(dtype, strict=False),
                        nulls_on_purpose=False, description=f"cast to {dtype}"))


def _look_up(mapping: EntityMapping, cleaned: pl.DataFrame, references: dict[str, Frame]
             ) -> tuple[pl.DataFrame, list[_FailureSource]]:
    dtypes = mapping.dtypes()
    sources = []
    for number, lookup in enumerate(mapping.lookups):
        if lookup.reference not in references:
            raise MappingError(
                f"entity {mapping.entity!r}: lookup needs the reference {lookup.reference!r}; "
                f"given: {sorted(references)}"
            )
        table = _reference_table(mapping, lookup, as_polars(references[lookup.reference]),
                                 cleaned, dtypes)
        hit = f"{_HIT}{number}"
        cleaned = cleaned.join(table.with_columns(pl.lit(True).alias(hit)),
                               on=list(lookup.on), how="left", maintain_order="left")
        if lookup.required:
            first = next(iter(lookup.on))
            flag = f"{_FAIL}lookup{number}"
            present = pl.all_horizontal([pl.col(c).is_not_null() for c in lookup.on])
            cleaned = cleaned.with_columns(
                pl.when(present & pl.col(hit).is_null())
                .then(pl.lit(f"lookup {lookup.reference}"))
                .otherwise(pl.lit(None, pl.String)).alias(flag)
            )
            sources.append(_FailureSource(flag, first, first))
        cleaned = cleaned.drop(hit)
    return cleaned, sources


def _reference_table(mapping: EntityMapping, lookup: Lookup, reference: pl.DataFrame,
                     cleaned: pl.DataFrame, dtypes: dict[str, pl.DataType]) -> pl.DataFrame:
    wanted = [*lookup.on.values(), *lookup.columns.values()]
    missing = [c for c in wanted if c not in reference.columns]
    if missing:
        raise MappingError(f"entity {mapping.entity!r}: reference {lookup.reference!r} lacks "
                           f"column(s) {missing}")
    renamed = reference.select(
        *[pl.col(ref).cast(cleaned.schema[mine], strict=False).alias(mine)
          for mine, ref in lookup.on.items()],
        *[pl.col(ref).cast(dtypes[mine], strict=False).alias(mine)
          for mine, ref in lookup.columns.items()],
    )
    if renamed.select(pl.struct(list(lookup.on)).is_duplicated().any()).item():
        raise MappingError(
            f"entity {mapping.entity!r}: reference {lookup.reference!r} repeats keys "
            f"{list(lookup.on.values())}; a lookup needs one row per key"
        )
    return renamed


def _derive(mapping: EntityMapping, cleaned: pl.DataFrame
            ) -> tuple[pl.DataFrame, list[_FailureSource]]:
    dtypes = mapping.dtypes()
    sources = []
    for name, spec in mapping.columns.items():
        if not isinstance(spec, Derived):
            continue
        value = spec.expression()
        final = value.cast(dtypes[name], strict=False)
        failed = value.is_not_null() & final.is_null()
        cleaned = cleaned.with_columns(
            final.alias(name),
            pl.when(failed).then(pl.lit(f"cast to {dtypes[name]}"))
            .otherwise(pl.lit(None, pl.String)).alias(_FAIL + name),
            pl.when(failed).then(value.cast(pl.String, strict=False))
            .otherwise(pl.lit(None, pl.String)).alias(_VALUE + name),
        )
        sources.append(_FailureSource(_FAIL + name, name, _VALUE + name))
    return cleaned, sources


def _validation_failures(mapping: EntityMapping, cleaned: pl.DataFrame) -> pl.DataFrame:
    """Pandera's failure cases as (row, column, check, value); schema-level failures,
    which no row can be blamed for, raise."""
    columns = list(mapping.table_schema.columns)
    try:
        mapping.schema.validate(cleaned.select(columns), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return pl.DataFrame(schema={_ROW: pl.UInt32, "column": pl.String, "check": pl.String,
                                    "value": pl.String})
    unplaced = cases.filter(pl.col("index").is_null())
    if unplaced.height:
        summary = "; ".join(f"{c}: {k}" for c, k in
                            unplaced.select("column", "check").unique().iter_rows())
        raise MappingError(
            f"entity {mapping.entity!r}: the cleaned frame does not fit its schema "
            f"({summary}); the mapping's cleaners must produce the schema's types"
        )
    rows = cleaned.get_column(_ROW)
    return cases.select(
        pl.col("index").map_batches(lambda index: rows.gather(index), return_dtype=rows.dtype)
        .alias(_ROW),
        pl.col("column").cast(pl.String),
        pl.col("check").cast(pl.String),
        pl.col("failure_case").cast(pl.String).alias("value"),
    )


def _collect_failures(cleaned: pl.DataFrame, frame: pl.DataFrame,
                      sources: list[_FailureSource], checked: pl.DataFrame) -> pl.DataFrame:
    """Every failure as (row, column, check, value); a validation failure on a column
    whose cleaning already failed in that row is the same failure, reported once."""
    found = []
    for source in sources:
        failed = cleaned.filter(pl.col(source.flag).is_not_null())
        if not failed.height:
            continue
        values = frame.join(failed.select(_ROW), on=_ROW, how="semi") if source.from_raw \
            else failed
        found.append(
            failed.select(_ROW, pl.lit(source.column).alias("column"),
                          pl.col(source.flag).alias("check"))
            .join(values.select(_ROW, pl.col(source.value).cast(pl.String, strict=False)
                                .alias("value")), on=_ROW, how="left")
        )
    cleaning = pl.concat(found) if found else checked.clear()
    validation = checked.join(cleaning.select(_ROW, "column"), on=[_ROW, "column"], how="anti")
    return pl.concat([cleaning, validation]).sort(_ROW, "column", maintain_order=True)


def source_key(mapping: EntityMapping) -> pl.Expr:
    """A raw row's primary key as the JSON text quarantine rows carry (``{"id":7}``)."""
    return pl.struct(list(mapping.primary_key)).struct.json_encode().alias("source_key")


def _quarantine_table(mapping: EntityMapping, frame: pl.DataFrame, failures: pl.DataFrame,
                      run_id: str) -> pa.Table:
    keys = frame.join(failures.select(_ROW).unique(), on=_ROW, how="semi").select(
        _ROW, source_key(mapping)
    )
    now = dt.datetime.now(dt.UTC)
    table = failures.join(keys, on=_ROW, how="left").select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(mapping.entity).alias("entity"),
        pl.lit(mapping.source).alias("source"),
        "source_key", "column", "check", "value",
        pl.lit(now, pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    return table.to_arrow().cast(QUARANTINE_SCHEMA)
