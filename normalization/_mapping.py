"""How a raw landing table becomes a clean entity: declared, never run, here.

An :class:`EntityMapping` names the raw table it reads, the Pandera model of the entity it
produces, and one entry per clean column:

* :class:`From` takes one raw column through a chain of named cleaners
  (``From("ship_date", ("sentinel_to_null", {"values": ["1900-01-01"]}))``);
* :class:`Derived` computes a column from other clean columns with a polars expression and
  names those inputs, so lineage can follow it back;
* :class:`Lookup` adds columns from a reference table (another clean entity, or a reference
  such as FX rates) joined on declared keys.

The mapping is checked against its schema when it is built: every schema column is mapped
exactly once and every step names a known cleaner, so a typo fails at import time rather
than halfway through a run. Running a mapping is :func:`normalization.normalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandera.polars as pa
import polars as pl

from ._cleaners import Cleaner, find_cleaner
from ._errors import MappingError

StepSpec = str | tuple[str, Mapping[str, Any]] | Cleaner


@dataclass(frozen=True)
class Step:
    """One cleaner applied with its parameters."""

    cleaner: Cleaner
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: StepSpec | Step) -> Step:
        """A step from a cleaner name, ``(name, params)``, a :class:`Cleaner` or a step."""
        if isinstance(spec, Step):
            return spec
        if isinstance(spec, Cleaner):
            return cls(spec)
        if isinstance(spec, str):
            return cls(find_cleaner(spec))
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
            return cls(find_cleaner(spec[0]), dict(spec[1]))
        raise MappingError(
            f"a cleaning step is a cleaner name or (name, {{params}}), not {spec!r}"
        )

    def apply(self, expr: pl.Expr) -> pl.Expr:
        return self.cleaner.apply(expr, **self.params)

    @property
    def name(self) -> str:
        return self.cleaner.name

    def describe(self) -> str:
        if not self.params:
            return self.cleaner.name
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.cleaner.name}({args})"


def _short(value: Any) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 40 else text[:37] + "..."


class From:
    """A clean column read from one raw column through cleaning steps, in order."""

    def __init__(self, column: str, *steps: StepSpec | Step) -> None:
        self.column = column
        self.steps: tuple[Step, ...] = tuple(Step.of(s) for s in steps)

    def describe(self) -> str:
        return " → ".join(s.describe() for s in self.steps) or "copy"

    def __repr__(self) -> str:
        return f"From({self.column!r}: {self.describe()})"


class Derived:
    """A clean column computed from other clean columns (named in ``inputs``).

    ``expression`` is a polars expression over the clean columns, or a function returning
    one (for expressions built from parameters). ``transform`` says in words what it does;
    it is what lineage shows.
    """

    def __init__(self, expression: pl.Expr | Callable[[], pl.Expr], *, inputs: Iterable[str],
                 transform: str) -> None:
        self._expression = expression
        self.inputs = tuple(inputs)
        self.transform = transform
        if not self.inputs:
            raise MappingError(f"derived column ({transform}) must name its inputs")

    def expression(self) -> pl.Expr:
        expr = self._expression
        return expr if isinstance(expr, pl.Expr) else expr()

    def __repr__(self) -> str:
        return f"Derived({self.transform!r} from {list(self.inputs)})"


@dataclass(frozen=True)
class Lookup:
    """Columns taken from a reference table joined on keys (a left join: no row is lost).

    ``reference`` names the table the caller hands in (``references={name: table}``) and
    ``asset`` the table lineage should point to (default: the reference's name). ``on``
    maps cleaned (``From``) columns of this entity to key columns of the reference;
    ``columns`` maps new clean columns to reference columns. A reference with repeated keys
    is refused, since it would multiply rows. When ``required``, a row whose keys find no
    match is quarantined (check ``lookup <reference>``); otherwise its new columns are null.
    """

    reference: str
    on: Mapping[str, str]
    columns: Mapping[str, str]
    asset: str | None = None
    required: bool = True

    @property
    def lineage_asset(self) -> str:
        return self.asset or self.reference


@dataclass(frozen=True)
class EntityMapping:
    """Raw table ``source`` to the clean entity ``entity`` validated by ``schema``.

    ``primary_key`` and ``cursor`` are raw column names: rows repeating a key are
    de-duplicated keeping the one with the latest cursor before anything else happens.
    ``max_quarantine_share`` is the share of rows that may go to quarantine before the
    run counts as failed (the orchestrator reports it; the rows are written either way).
    """

    entity: str
    source: str
    schema: type[pa.DataFrameModel]
    primary_key: tuple[str, ...]
    columns: Mapping[str, From | Derived]
    cursor: str | None = None
    lookups: tuple[Lookup, ...] = ()
    max_quarantine_share: float = 0.05
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "primary_key", tuple(self.primary_key))
        object.__setattr__(self, "lookups", tuple(self.lookups))
        if not self.primary_key:
            raise MappingError(f"entity {self.entity!r}: mapping needs a primary_key")
        if not 0 <= self.max_quarantine_share <= 1:
            raise MappingError(
                f"entity {self.entity!r}: max_quarantine_share must be within 0..1, "
                f"got {self.max_quarantine_share}"
            )
        self._check_against_schema()

    @property
    def table_schema(self) -> pa.DataFrameSchema:
        return self.schema.to_schema()

    def dtypes(self) -> dict[str, pl.DataType]:
        """The polars type of each clean column, from the schema."""
        return {name: column.dtype.type for name, column in self.table_schema.columns.items()}

    def raw_columns(self) -> list[str]:
        """Raw columns the mapping reads: keys, cursor and every ``From`` source."""
        wanted = [*self.primary_key, *([self.cursor] if self.cursor else [])]
        wanted += [c.column for c in self.columns.values() if isinstance(c, From)]
        return list(dict.fromkeys(wanted))

    def clean_key(self) -> list[str]:
        """The clean columns read from the raw primary key: the entity's own key."""
        return [name for name, spec in self.columns.items()
                if isinstance(spec, From) and spec.column in self.primary_key]

    def lookup_columns(self) -> dict[str, Lookup]:
        return {name: lookup for lookup in self.lookups for name in lookup.columns}

    def _check_against_schema(self) -> None:
        declared = set(self.table_schema.columns)
        produced = list(self.columns) + list(self.lookup_columns())
        repeated = sorted({c for c in produced if produced.count(c) > 1})
        missing = sorted(declared - set(produced))
        extra = sorted(set(produced) - declared)
        problems = []
        if repeated:
            problems.append(f"columns mapped twice: {repeated}")
        if missing:
            problems.append(f"schema columns with no mapping: {missing}")
        if extra:
            problems.append(f"mapped columns the schema {self.schema.__name__} lacks: {extra}")
        known = set(produced)
        for name, spec in self.columns.items():
            if isinstance(spec, Derived):
                unknown = [i for i in spec.inputs if i not in known]
                if unknown:
                    problems.append(f"derived column {name!r} names unknown inputs {unknown}")
        for lookup in self.lookups:
            unknown = [c for c in lookup.on if not isinstance(self.columns.get(c), From)]
            if unknown:
                problems.append(f"lookup {lookup.reference!r} must join on From columns, "
                                f"not {unknown}")
        if problems:
            raise MappingError(f"entity {self.entity!r}: " + "; ".join(problems))
