"""Why one model answer says what it says: the answer, the source rows it cites, and each
cited value's path back to the source column.

An answer row (``model_<step>``) keeps the provenance entries it cites. For each, the
clean record is read back, the fields the context gave the model for that entity are
shown with their values, and each value is traced through the column lineage (clean
column, raw landing column, source table, endpoint or operation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors import ConfigurationError

from .context import ContextSpec
from .lineage import LineageCatalog
from .models import ModelStep
from .warehouse import Warehouse

SAMPLE_ANSWERS = 10


@dataclass
class CitedRow:
    """One source record an answer cites, with the values the model was shown."""

    source_id: str
    table: str
    key: str
    system: str | None
    stream: str | None
    extracted_at: str | None
    values: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)  # field -> path to the source


@dataclass
class Explanation:
    """One answer of a model step and the rows behind it."""

    step: str
    context_id: str
    answer: dict[str, Any]
    provider: str
    cited: list[CitedRow]


class Explainer:
    """Explains answers of one step, reading each clean table it needs once."""

    def __init__(self, warehouse: Warehouse, step: ModelStep, catalog: LineageCatalog,
                 context: ContextSpec | None = None) -> None:
        self.warehouse, self.step, self.catalog, self.context = (warehouse, step, catalog,
                                                                 context)
        self._tables: dict[str, pa.Table] = {}
        if step.output_table not in warehouse.tables():
            raise ConfigurationError(f"the warehouse has no {step.output_table}: run the "
                                     f"model step first (headwater model {step.name})")
        self.answers = warehouse.read_table(step.output_table)

    def context_ids(self, limit: int | None = None) -> list[str]:
        ids = self.answers.column("context_id").to_pylist()
        return ids[:limit] if limit is not None else ids

    def explain(self, context_id: str) -> Explanation:
        rows = self.answers.filter(pc.equal(self.answers.column("context_id"),
                                            str(context_id))).to_pylist()
        if not rows:
            sample = ", ".join(self.context_ids(5))
            raise ConfigurationError(f"{self.step.output_table} has no answer for "
                                     f"{context_id!r}; answers exist for {sample}, ...")
        row = rows[0]
        answer = {name: row[name] for name in self.step.output.model_fields if name in row}
        cited = [self._cited(entry) for entry in json.loads(row["cited"] or "[]")]
        return Explanation(self.step.name, str(context_id), answer,
                           f"{row['provider']}/{row['model']}", cited)

    def _cited(self, entry: dict[str, Any]) -> CitedRow:
        table = entry["source_table"]
        entity = table.removeprefix("clean_")
        key_column, fields = self._shown(entity)
        cited = CitedRow(entry["source_id"], table, entry["source_key"], entry.get("source"),
                         entry.get("stream"), entry.get("extracted_at"))
        record = self._record(table, key_column, entry["source_key"])
        if record is None:
            cited.values = {"(record)": "no longer in " + table}
            return cited
        landed = record.get("_hw_extracted_at")
        cited.system = cited.system or record.get("_hw_source")
        cited.stream = cited.stream or record.get("_hw_stream")
        cited.extracted_at = cited.extracted_at or (landed.isoformat() if landed else None)
        for name in fields or [c for c in record if not c.startswith("_hw_")]:
            cited.values[name] = record.get(name)
            cited.paths[name] = self._path(table, name)
        return cited

    def _shown(self, entity: str) -> tuple[str | None, list[str]]:
        """The key column of ``entity`` and the fields the context shows of it."""
        spec = self.context
        if spec is None:
            return None, []
        if spec.root.entity == entity:
            return spec.root.key, list(spec.root.fields)
        for section in spec.sections:
            if section.entity == entity:
                return section.key, list(section.fields)
        return None, []

    def _record(self, table: str, key_column: str | None, key: str) -> dict[str, Any] | None:
        if table not in self._tables:
            if table not in self.warehouse.tables():
                return None
            self._tables[table] = self.warehouse.read_table(table)
        data = self._tables[table]
        column = key_column if key_column in data.column_names else data.column_names[0]
        found = data.filter(pc.equal(pc.cast(data.column(column), pa.string()), key))
        return found.to_pylist()[0] if found.num_rows else None

    def _path(self, table: str, column: str) -> str:
        """``raw_crm__tickets.priority ← crm GET /api/tickets.priority``: the hops below
        the clean column, first source of each."""
        hops = []
        where, name = table, column
        for _ in range(8):
            steps = self.catalog.trace(where, name)
            if not steps or not steps[0].lineage.sources:
                break
            where, name = steps[0].lineage.sources[0]
            hops.append(f"{where}.{name}")
        return " ← ".join(hops)


def render_explanation(explanation: Explanation) -> str:
    """The explanation as text: the answer, then each cited record with its values and
    where each value came from."""
    lines = [f"{explanation.step} answer for {explanation.context_id} "
             f"(by {explanation.provider}):"]
    lines += [f"  {name} = {value}" for name, value in explanation.answer.items()]
    lines.append(f"cites {len(explanation.cited)} source record(s):")
    for cited in explanation.cited:
        origin = ", ".join(x for x in (cited.system and f"{cited.system}.{cited.stream}",
                                       cited.extracted_at and f"landed {cited.extracted_at}")
                           if x)
        lines.append(f"  {cited.source_id}  ({cited.table} key {cited.key}; {origin})")
        width = max((len(name) for name in cited.values), default=0)
        for name, value in cited.values.items():
            path = cited.paths.get(name)
            lines.append(f"      {name.ljust(width)} = {value!s:<24}"
                         + (f"  ← {path}" if path else ""))
    return "\n".join(lines)
