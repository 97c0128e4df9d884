"""Column lineage across every layer, and the trace from any column back to the sources.

Clean entities' lineage is read off their mappings; the context's and the model step's is
declared here, next to the code that builds them, in the same :class:`ColumnLineage`
shape. :meth:`LineageCatalog.trace` follows a column through those declarations, a model
answer to its context, the context to the clean columns it was assembled from, and each
clean column to the raw landing column (and so the source system column) it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from connectors import ConfigurationError
from normalization import (
    PROVENANCE_COLUMNS,
    ColumnLineage,
    EntityMapping,
    Resolution,
    column_lineage,
)

from .context import ContextSpec
from .models import ModelStep
from .models._step import LINEAGE_FIELDS
from .warehouse import raw_table_name

if TYPE_CHECKING:
    from .config import Config

# model_<step> columns other than the answer's that lineage traces to the context.
_FROM_CONTEXT = ("output", "cited", "content_hash")
_RECORDED_PER_CALL = tuple(name for name, _ in LINEAGE_FIELDS if name not in _FROM_CONTEXT)


def context_lineage(spec: ContextSpec) -> list[ColumnLineage]:
    """The columns of ``context_<name>`` and what each is built from: the document from
    every clean column the declaration reads (copied fields, links, filters, orderings,
    aggregates), the provenance from the ``_hw_*`` columns of every table with items."""
    table = spec.table
    read = spec.columns_read()
    document = tuple((t, c) for t, columns in read.items() for c in columns)
    items = [f"clean_{spec.root.entity}", *(f"clean_{s.entity}" for s in spec.sections)]
    provenance = tuple((t, c) for t in dict.fromkeys(items) for c in PROVENANCE_COLUMNS)
    root = f"clean_{spec.root.entity}"
    sections = ", ".join(s.name for s in spec.sections) or "no sections"

    def item(column: str, sources: Sequence[tuple[str, str]], transform: str,
             derived_from: tuple[str, ...] = ()) -> ColumnLineage:
        return ColumnLineage(table, column, tuple(sources), transform, derived_from)

    as_of = ([(f"clean_{spec.as_of.partition('.')[0]}", spec.as_of.partition(".")[2])]
             if isinstance(spec.as_of, str) else [])
    party = [(spec.crosswalk, "party_id")] if any(s.through_parties for s in spec.sections) \
        else []
    return [
        item("context_id", [(root, spec.root.key)], f"one context per {spec.root.entity}"),
        item("party_id", party, "the root's resolved party" if party else "none: no party "
             "links"),
        item("document", document, f"{spec.root.entity} with {sections} as JSON, trimmed to "
             f"{spec.budget} tokens by priority {list(spec.priorities)}"),
        item("provenance", provenance, "every clean record in the document, with the source, "
             "stream, run and extraction time it was landed with"),
        item("content_hash", document, "sha256 of document", ("document",)),
        item("tokens", document, "estimated tokens of document (4 characters a token)",
             ("document",)),
        item("trimmed", document, "what trimming dropped from document", ("document",)),
        item("as_of", as_of, f"latest {spec.as_of}: when the data is judged"
             if as_of else "the declared as_of"),
        item("run_id", [], "the run that built the context"),
        *document_paths(spec),
    ]


def document_paths(spec: ContextSpec) -> list[ColumnLineage]:
    """The lineage of each path inside the document (``document.open_tickets.priority``,
    ``document.counts.open_tickets``, ``document.orders_summary.total``): what a model
    step that reads only some fields depends on."""
    table = spec.table
    root = f"clean_{spec.root.entity}"
    found = [ColumnLineage(table, f"document.{spec.root.entity}.{field}", ((root, field),),
                           f"the {spec.root.entity}'s {field}, copied")
             for field in spec.root.fields]
    for section in spec.sections:
        source = f"clean_{section.entity}"
        chosen = spec.section_columns(section)
        found += [ColumnLineage(table, f"document.{section.name}.{field}", ((source, field),),
                                f"each {section.name} item's {field}, copied; items chosen "
                                f"by {', '.join(chosen)}")
                  for field in section.fields]
        linked = ((spec.crosswalk, "party_id"), (spec.crosswalk, "source_key")) \
            if section.through_parties else ()
        found.append(ColumnLineage(table, f"document.counts.{section.name}",
                                   (*((source, c) for c in chosen), *linked),
                                   f"number of {section.name} items before trimming"))
    for summary in spec.summaries:
        section = next(s for s in spec.sections if s.name == summary.section)
        source = f"clean_{section.entity}"
        for name, expression in summary.values.items():
            columns = [*spec.expression_columns(expression), *spec.section_columns(section)]
            found.append(ColumnLineage(
                table, f"document.{summary.name}.{name}",
                tuple((source, c) for c in dict.fromkeys(columns)),
                f"{expression if isinstance(expression, str) else 'aggregate'} over the "
                f"{section.name} items"))
    found += [ColumnLineage(table, f"document.{name}", (), f"constant {value!r}")
              for name, value in spec.constants.items()]
    return found


def model_lineage(step: ModelStep) -> list[ColumnLineage]:
    """The columns of ``model_<name>``: answers from the context (each field from the
    document paths the step declares it reads, else the whole document), facts of each
    call."""
    table, context = step.output_table, step.context
    lineage = [ColumnLineage(table, "context_id", ((context, "context_id"),), "copy")]
    for name in step.output.model_fields:
        used = step.field_lineage.get(name)
        sources = [(context, f"document.{path}") for path in used] if used \
            else [(context, "document")]
        transform = f"answered from {', '.join(used)}" if used else \
            "answered from the whole document"
        if name == step.citations_field:
            sources.append((context, "provenance"))
            transform += "; every id must be in the provenance of what the model saw"
        lineage.append(ColumnLineage(table, name, tuple(sources), transform))
    lineage += [
        ColumnLineage(table, "output", ((context, "document"),), "the answer as JSON"),
        ColumnLineage(table, "cited", ((context, "provenance"),),
                      "the provenance entries the answer cites"),
        ColumnLineage(table, "content_hash", ((context, "content_hash"),), "copy"),
    ]
    lineage += [ColumnLineage(table, name, (), "recorded for each call")
                for name in _RECORDED_PER_CALL]
    return lineage


def answered_by(step: ModelStep) -> str:
    """How a step answers: its provider chain, prompt and output model."""
    chain = " → ".join(p.label for p in step.providers)
    return (f"answers of {chain} to prompt {step.prompt.version}, validated against "
            f"{step.output.__name__}")


@dataclass(frozen=True)
class TraceStep:
    """One hop of a trace: a column's lineage, ``depth`` hops from where it started."""

    depth: int
    lineage: ColumnLineage


def resolution_lineage(resolution: Resolution) -> list[ColumnLineage]:
    """The columns of ``clean_<name>_xref``, the crosswalk of resolved parties."""
    table = f"clean_{resolution.name}_xref"
    keys = tuple((f"clean_{s.entity}", s.key) for s in resolution.sources)
    names = tuple((f"clean_{s.entity}", s.name) for s in resolution.sources)
    links = tuple((f"clean_{s.entity}", column) for s in resolution.sources
                  for column in s.links.values())
    systems = ", ".join(f"{s.system} ({s.entity})" for s in resolution.sources)
    return [
        ColumnLineage(table, "party_id", keys + links + names,
                      f"one stable id per {resolution.name} across {systems}: records join "
                      "first by the declared key links, then by normalized name where it is "
                      "unique in each system"),
        ColumnLineage(table, "system", (), "the system the record belongs to"),
        ColumnLineage(table, "entity", (), "the clean entity the record is in"),
        ColumnLineage(table, "source_key", keys, "the record's key in its entity"),
        ColumnLineage(table, "name", names, "the record's name as its system spells it"),
        ColumnLineage(table, "normalized_name", names, "name normalized: case, accents, "
                      "punctuation and legal-form words removed"),
        ColumnLineage(table, "matched_by", links + names, "how the record joined its party: "
                      "key (a declared link), name, or anchor"),
    ]


# Asset key layers (as the Dagster translator names them): table prefix, key suffix.
_LAYER_PREFIX = {"clean": ("clean_", ""), "quarantine": ("quarantine_", "_quarantine"),
                 "reference": ("ref_", ""), "context": ("context_", "_context"),
                 "model": ("model_", ""), "model_errors": ("model_errors_", "_errors"),
                 "model_attempts": ("model_attempts_", "_attempts")}


def table_of(name: str) -> str:
    """A warehouse table from an asset key (``raw/erp/orders``, ``clean/order``,
    ``context/account_context``) or a table name (returned as it is)."""
    parts = name.split("/")
    if parts[0] == "raw" and len(parts) == 3:
        return raw_table_name(parts[1], parts[2])
    if len(parts) == 2 and parts[0] in _LAYER_PREFIX:
        prefix, suffix = _LAYER_PREFIX[parts[0]]
        return prefix + parts[1].removesuffix(suffix)
    return name


class LineageCatalog:
    """Every table's column lineage, by warehouse table name."""

    def __init__(self, mappings: Iterable[EntityMapping] = (),
                 contexts: Iterable[ContextSpec] = (), steps: Iterable[ModelStep] = (),
                 landings: Mapping[str, str] | None = None,
                 resolution: Resolution | None = None) -> None:
        """``landings`` names what each raw table was landed from (``raw_erp__orders``:
        ``erp table orders``), the last hop of a trace."""
        self.landings = dict(landings or {})
        self.tables: dict[str, dict[str, ColumnLineage]] = {}
        for mapping in mappings:
            table = f"clean_{mapping.entity}"
            items = [replace(i, entity=table) for i in column_lineage(mapping)]
            items += [ColumnLineage(table, c, ((mapping.source, c),),
                                    "carried from landing") for c in PROVENANCE_COLUMNS]
            self.tables[table] = {i.column: i for i in items}
        if resolution is not None:
            self.tables[f"clean_{resolution.name}_xref"] = {
                i.column: i for i in resolution_lineage(resolution)}
        for spec in contexts:
            self.tables[spec.table] = {i.column: i for i in context_lineage(spec)}
        for step in steps:
            self._check_field_lineage(step)
            self.tables[step.output_table] = {i.column: i for i in model_lineage(step)}

    def _check_field_lineage(self, step: ModelStep) -> None:
        known = self.tables.get(step.context)
        if known is None:
            return
        for field, paths in step.field_lineage.items():
            unknown = [p for p in paths if f"document.{p}" not in known]
            if unknown:
                listing = ", ".join(c.removeprefix("document.") for c in known
                                    if c.startswith("document."))
                raise ConfigurationError(
                    f"model step {step.name!r}: field_lineage {field} names document paths "
                    f"{unknown} that {step.context} does not have; its paths: {listing}")

    def resolve(self, target: str) -> tuple[str, str | None]:
        """A table or its asset key (``order``, ``clean/order``, ``clean_order``,
        ``raw/erp/orders``, ``model/account_health``), optionally ``.column``, as
        (table, column)."""
        name, _, column = target.partition(".")
        table = table_of(name)
        candidates = [table] if table != name else [name, f"clean_{name}"]
        for table in candidates:
            if table in self.tables:
                if column and column not in self.tables[table]:
                    known = ", ".join(self.tables[table])
                    raise ConfigurationError(f"{table} has no column {column!r}; columns: "
                                             f"{known}")
                return table, column or None
            if table in self.landings:
                return table, column or None
        known = ", ".join([*sorted(self.tables), *sorted(self.landings)])
        raise ConfigurationError(f"no table {name!r} with lineage; tables: {known}")

    def _landed(self, table: str, column: str) -> ColumnLineage | None:
        if table not in self.landings or column.startswith("_hw_"):
            return None
        # Nested fields land flattened: address.city becomes address__city.
        return ColumnLineage(table, column, ((self.landings[table],
                                              column.replace("__", ".")),),
                             "landed by the connector")

    def columns(self, table: str) -> list[ColumnLineage]:
        if table not in self.tables and table in self.landings:
            return [ColumnLineage(table, "*", ((self.landings[table], "*"),),
                                  "landed by the connector: every column as the source "
                                  "has it (nested fields flattened as a__b)")]
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


def landings_of(config: Config) -> dict[str, str]:
    """What each declared stream's raw table is landed from (``erp table 'orders'``),
    as its connector describes it (no connection is made), for :class:`LineageCatalog`."""
    found = {}
    for name in config.connector_names():
        connector = config.build_connector(name)
        try:
            for stream in connector.streams:
                found[raw_table_name(name, stream.name)] = \
                    connector.describe_source(stream).label()
        finally:
            connector.close()
    return found


def catalog_of(config: Config) -> LineageCatalog:
    """The lineage of everything ``config`` declares: mappings, contexts, model steps,
    and the source object behind each declared stream."""
    spec = config.normalization_spec() if config.normalization.mappings else None
    return LineageCatalog(spec.mappings if spec else (), config.context_specs(),
                          config.model_steps(), landings_of(config),
                          spec.resolution if spec else None)


def render_trace(steps: Sequence[TraceStep]) -> str:
    """A trace as indented lines: ``table.column  ←  sources  transform``."""
    lines = []
    for step in steps:
        item = step.lineage
        label = f"{'  ' * step.depth}{item.entity}.{item.column}"
        lines.append(f"{label}  ←  {item.sources_text() or '-'}  [{item.transform}]")
    return "\n".join(lines)
