"""Column lineage: which raw columns each clean column came from, and how.

Lineage is read off the mapping, never written by hand, so it cannot drift from what runs.
A ``From`` column names its raw column and its cleaning steps; a ``Derived`` column names
the raw columns behind its inputs (followed through other derived columns) and says it
was derived from those inputs; a lookup column names the reference column and the raw
columns of its join keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ._mapping import Derived, EntityMapping, From


@dataclass(frozen=True)
class ColumnLineage:
    """One clean column of an entity: its sources and the transform between them."""

    entity: str
    column: str
    sources: tuple[tuple[str, str], ...]  # (table or asset, column)
    transform: str
    derived_from: tuple[str, ...] = ()  # clean columns a derived column is computed from
    description: str = ""

    @property
    def is_derived(self) -> bool:
        return bool(self.derived_from)

    def sources_text(self, label: Callable[[str], str] = str) -> str:
        """``table.column``, with several columns of one table as ``table.{a, b}``;
        ``label`` names a table the way the reader knows it (an asset key, say)."""
        by_table: dict[str, list[str]] = {}
        for table, column in self.sources:
            by_table.setdefault(label(table), []).append(column)
        return ", ".join(f"{table}.{columns[0]}" if len(columns) == 1
                         else f"{table}.{{{', '.join(columns)}}}"
                         for table, columns in by_table.items())


def column_lineage(mapping: EntityMapping) -> list[ColumnLineage]:
    """The lineage of every clean column of ``mapping``, in schema order."""
    schema = mapping.table_schema
    lookups = mapping.lookup_columns()
    found: dict[str, ColumnLineage] = {}

    def sources_of(name: str) -> tuple[tuple[str, str], ...]:
        return found[name].sources if name in found else ()

    for name, spec in mapping.columns.items():
        if isinstance(spec, From):
            found[name] = ColumnLineage(mapping.entity, name, ((mapping.source, spec.column),),
                                        spec.describe())
    for name, lookup in lookups.items():
        keys = [source for key in lookup.on for source in sources_of(key)]
        found[name] = ColumnLineage(
            mapping.entity, name,
            _unique([(lookup.lineage_asset, lookup.columns[name]), *keys]),
            f"lookup in {lookup.lineage_asset} on "
            + ", ".join(f"{mine} = {ref}" for mine, ref in lookup.on.items()),
            derived_from=tuple(lookup.on),
        )
    for name, spec in mapping.columns.items():
        if isinstance(spec, Derived):
            sources = [source for i in spec.inputs for source in sources_of(i)]
            found[name] = ColumnLineage(mapping.entity, name, _unique(sources), spec.transform,
                                        derived_from=spec.inputs)
    return [replace(found[name], description=schema.columns[name].description or "")
            for name in schema.columns]


def _unique(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(dict.fromkeys(pairs))


def render_lineage(lineage: Iterable[ColumnLineage]) -> str:
    """A plain-text table, ``column | from | transform``, one line per clean column."""
    rows = [("column", "from", "transform")]
    for item in lineage:
        column = f"{item.entity}.{item.column}"
        transform = item.transform
        if item.derived_from:
            transform += f" (derived from {', '.join(item.derived_from)})"
        rows.append((column, item.sources_text() or "-", transform))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a.ljust(widths[0])}  ←  {b.ljust(widths[1])}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
