"""Column lineage across every layer, and the trace from any column back to the sources.

Clean entities' lineage is read off their mappings; the context's and the model step's is
declared here, next to the code that builds them, in the same :class:`ColumnLineage`
shape. :meth:`LineageCatalog.trace` follows a column through those declarations, a model
answer to its context, the context to the clean columns it was assembled from, and each
clean column to the raw landing column (and so the source system column) it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors import ConfigurationError
from normalization import PROVENANCE_COLUMNS, ColumnLineage, EntityMapping, column_lineage

from .config import stream_name
from .context import DOCUMENT_FIELDS, SELECTING_FIELDS, ContextSpec
from .models import ModelStep
from .models._step import LINEAGE_FIELDS
from .warehouse import raw_table_name

# model_<step> columns other than the answer's that lineage traces to the context.
_FROM_CONTEXT = ("output", "cited", "content_hash")
_RECORDED_PER_CALL = tuple(name for name, _ in LINEAGE_FIELDS if name not in _FROM_CONTEXT)


def context_lineage(spec: ContextSpec) -> list[ColumnLineage]:
    """The columns of ``context_<name>`` and what each is built from."""
    table = spec.table
    document = tuple((t, c) for fields in (DOCUMENT_FIELDS, SELECTING_FIELDS)
                     for t, columns in fields.items() for c in columns)
    # Every table a document copies fields from has its records in the provenance.
    provenance = tuple((t, c) for t in DOCUMENT_FIELDS for c in PROVENANCE_COLUMNS)

    def item(column: str, sources: Sequence[tuple[str, str]], transform: str,
             derived_from: tuple[str, ...] = ()) -> ColumnLineage:
        return ColumnLineage(table, column, tuple(sources), transform, derived_from)

    return [
        item("context_id", [("clean_account", "account_id")], "one context per CRM account"),
        item("party_id", [("clean_party_xref", "party_id")], "the account's resolved party"),
        item("account_id", [("clean_account", "account_id")], "copy"),
        item("document", document, "account, its party's ERP customers and orders, open "
             f"tickets and late shipments as JSON, trimmed to {spec.budget} tokens by "
             f"priority {list(spec.priorities)}"),
        item("provenance", provenance, "every clean record in the document, with the source, "
             "stream, run and extraction time it was landed with"),
        item("content_hash", document, "sha256 of document", ("document",)),
        item("tokens", document, "estimated tokens of document (4 characters a token)",
             ("document",)),
        item("trimmed", document, "what trimming dropped from document", ("document",)),
        item("as_of", [("clean_shipment", "updated_at")], "latest shipment update: when "
             "lateness is judged"),
        item("run_id", [], "the run that built the context"),
    ]


def model_lineage(step: ModelStep) -> list[ColumnLineage]:
    """The columns of ``model_<name>``: answers from the context, facts of each call."""
    table, context = step.output_table, step.context
    chain = " → ".join(p.label for p in step.providers)
    answered = f"answer of {chain} to prompt {step.prompt.version}, validated against " \
               f"{step.output.__name__}"
    lineage = [ColumnLineage(table, "context_id", ((context, "context_id"),), "copy")]
    for name in step.output.model_fields:
        sources = [(context, "document")]
        transform = answered
        if name == step.citations_field:
            sources.append((context, "provenance"))
            transform += "; every id must be in the context's provenance"
        lineage.append(ColumnLineage(table, name, tuple(sources), transform))
    lineage += [
        ColumnLineage(table, "output", ((context, "document"),), answered + " (raw JSON)"),
        ColumnLineage(table, "cited", ((context, "provenance"),),
                      "the provenance entries the answer cites"),
        ColumnLineage(table, "content_hash", ((context, "content_hash"),), "copy"),
    ]
    lineage += [ColumnLineage(table, name, (), "recorded for each call")
                for name in _RECORDED_PER_CALL]
    return lineage


@dataclass(frozen=True)
class TraceStep:
    """One hop of a trace: a column's lineage, ``depth`` hops from where it started."""

    depth: int
    lineage: ColumnLineage


class LineageCatalog:
    """Every table's column lineage, by warehouse table name."""

    def __init__(self, mappings: Iterable[EntityMapping] = (),
                 contexts: Iterable[ContextSpec] = (), steps: Iterable[ModelStep] = (),
                 landings: Mapping[str, str] | None = None) -> None:
        """``landings`` names what each raw table was landed from (``raw_erp__orders``:
        ``erp table orders``), the last hop of a trace."""
        self.landings = dict(landings or {})
        self.tables: dict[str, dict[str, ColumnLineage]] = {}
        for mapping in mappings:
            items = column_lineage(mapping)
            items += [ColumnLineage(mapping.entity, c, ((mapping.source, c),),
                                    "carried from landing") for c in PROVENANCE_COLUMNS]
            self.tables[f"clean_{mapping.entity}"] = {i.column: i for i in items}
        for spec in contexts:
            self.tables[spec.table] = {i.column: i for i in context_lineage(spec)}
        for step in steps:
            self.tables[step.output_table] = {i.column: i for i in model_lineage(step)}

    def resolve(self, target: str) -> tuple[str, str | None]:
        """``order``, ``clean/order``, ``clean_order``, ``context/account`` or
        ``model_account_health``, optionally ``.column``, as (table, column)."""
        name, _, column = target.partition(".")
        layer, slash, rest = name.partition("/")
        candidates = [f"{layer}_{rest}"] if slash else [name, f"clean_{name}"]
        for table in candidates:
            if table in self.tables:
                if column and column not in self.tables[table]:
                    known = ", ".join(self.tables[table])
                    raise ConfigurationError(f"{table} has no column {column!r}; columns: "
                                             f"{known}")
                return table, column or None
        known = ", ".join(sorted(self.tables))
        raise ConfigurationError(f"no table {name!r} with lineage; tables: {known}")

    def _landed(self, table: str, column: str) -> ColumnLineage | None:
        if table not in self.landings or column.startswith("_hw_"):
            return None
        # Nested fields land flattened: address.city becomes address__city.
        return ColumnLineage(table, column, ((self.landings[table],
                                              column.replace("__", ".")),),
                             "landed by the connector")

    def columns(self, table: str) -> list[ColumnLineage]:
        return list(self.tables[table].values())

    def trace(self, table: str, column: str) -> list[TraceStep]:
        """``table.column`` and, depth first, every column it comes from that has
        lineage of its own, down to raw landing and reference columns."""
        steps: list[TraceStep] = []
        seen: set[tuple[str, str]] = set()

        def visit(where: str, name: str, depth: int) -> None:
            item = self.tables.get(where, {}).get(name) or self._landed(where, name)
            if item is None or (where, name) in seen:
                return
            seen.add((where, name))
            steps.append(TraceStep(depth, item))
            for source_table, source_column in item.sources:
                visit(source_table, source_column, depth + 1)

        visit(table, column, 0)
        return steps


def landings_of(connectors: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """What each configured stream's raw table is landed from, for :class:`LineageCatalog`."""
    found = {}
    for name, spec in connectors.items():
        for stream in spec.get("streams", []):
            what = (f"table {stream['table']!r}" if "table" in stream
                    else f"GET {stream['path']}" if "path" in stream
                    else f"operation {stream['operation']}" if "operation" in stream
                    else "query")
            found[raw_table_name(name, stream_name(stream))] = \
                f"{name} {what}"
    return found


def render_trace(steps: Sequence[TraceStep]) -> str:
    """A trace as indented lines: ``table.column  ←  sources  transform``."""
    lines = []
    for step in steps:
        item = step.lineage
        label = f"{'  ' * step.depth}{item.entity}.{item.column}"
        lines.append(f"{label}  ←  {item.sources_text() or '-'}  [{item.transform}]")
    return "\n".join(lines)
