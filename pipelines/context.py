"""Context documents: what a model step reads about one entity, with where it came from.

A context is declared, not coded (:class:`ContextSpec`): a **root** entity (one document
per clean row of it), **sections** of related clean records, each linked to the root by
key (``on``), through the resolved parties (``through_parties``) or through another
section (``via``), filtered (``where``), ordered most important first (``order_by``) and
cut to the fields it contributes; **summaries** aggregate a section before trimming; and
**constants** are copied into every document. Filters, orderings and aggregates are SQL
expressions over the clean table's columns (run by polars; ``as_of``, the time the
context is judged at, is available as a column, and ``{name}`` is replaced by a
constant), or polars expressions when declared in Python.

Every item carries a ``source_id`` (``ticket:59``) that a model cites; the row's
``provenance`` lists every clean record behind the document with the source, stream,
run and extraction time it was landed with, so an answer leads back to the source rows.

Size is bounded. A document over its token budget loses items from the sections named
in ``priorities``, first section first, each losing its last (least important) items
first; summaries and counts are never trimmed, so a trimmed document still says how many
items there were. What was dropped is recorded in ``trimmed``. Tokens are estimated by
:func:`estimate_tokens`.

The document is canonical JSON and holds nothing that changes without the data changing
(no run ids, extraction times or wall-clock time), so its ``content_hash`` is stable
across reruns and the model cache can trust it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from connectors import ConfigurationError

from ._canonical import canonical_json, content_hash, estimate_tokens
from ._clean_changes import (
    CLEAN_LAG,
    changed_since,
    clean_marks,
    clean_table,
    crosswalk_table,
    in_utc,
)
from ._context_changes import (
    affected_roots,
    context_fingerprint,
    context_state_key,
    why_full_build,
)
from .warehouse import KeyedRows, Warehouse, quote

CONTEXT_SCHEMA = pa.schema([
    ("context_id", pa.string()), ("party_id", pa.string()),
    ("document", pa.string()), ("provenance", pa.string()), ("content_hash", pa.string()),
    ("tokens", pa.int64()), ("trimmed", pa.string()),
    ("as_of", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
])
PROVENANCE_FIELDS = ("_hw_source", "_hw_stream", "_hw_extracted_at", "_hw_run_id")
AS_OF_COLUMN = "as_of"
_ORDINAL = "_hw_ordinal"
_ROOT = "_hw_root"

# An expression: SQL text over the clean table's columns, a polars expression, or (for
# filters) a function of ``as_of`` returning one.
Expression = str | pl.Expr
Filter = str | pl.Expr | Callable[[dt.datetime | None], pl.Expr]


def context_table(name: str) -> str:
    return f"context_{name}"


@dataclass(frozen=True)
class Root:
    """The entity a context describes: one document per clean row of ``entity``,
    identified by ``key``; ``parties`` names its system in the party crosswalk, for
    sections linked ``through_parties``."""

    entity: str
    key: str
    fields: tuple[str, ...]
    parties: str | None = None
    where: Filter | None = None


@dataclass(frozen=True)
class Section:
    """A list of related clean records in each document.

    Exactly one link: ``on`` maps this entity's columns to the root's (``{"account_id":
    "account_id"}``); ``through_parties`` is ``(system, column)``: the records whose
    ``column`` is a record key of the root's party in ``system``; ``via`` is
    ``(section, {column: that section's column})``: the records linked to the items of an
    earlier section.
    """

    name: str
    entity: str
    key: str
    fields: tuple[str, ...]
    on: Mapping[str, str] | None = None
    through_parties: tuple[str, str] | None = None
    via: tuple[str, Mapping[str, str]] | None = None
    where: Filter | None = None
    order_by: tuple[Expression, ...] = ()
    descending: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        links = [x for x in (self.on, self.through_parties, self.via) if x is not None]
        if len(links) != 1:
            raise ConfigurationError(
                f"section {self.name!r}: give exactly one link: on = {{column = "
                f"\"root column\"}}, through_parties = {{system = ..., column = ...}} or "
                f"via = {{section = ..., on = {{...}}}} ({len(links)} given)")
        if self.descending and len(self.descending) != len(self.order_by):
            raise ConfigurationError(f"section {self.name!r}: descending needs one flag per "
                                     "order_by expression")

    @property
    def link_columns(self) -> tuple[str, ...]:
        if self.on is not None:
            return tuple(self.on)
        if self.through_parties is not None:
            return (self.through_parties[1],)
        assert self.via is not None
        return tuple(self.via[1])


@dataclass(frozen=True)
class Summary:
    """Aggregates of one section's items, before trimming (``{"total": "sum(total)"}``)."""

    name: str
    section: str
    values: Mapping[str, Expression]


@dataclass(frozen=True)
class ContextSpec:
    """A context declared as data (see the module docstring): table ``context_<name>``.

    ``as_of`` is the time the data is judged at: a fixed instant, ``"entity.column"``
    (the latest value of that clean column) or ``None``. ``parties`` names the party
    resolution whose crosswalk (``clean_<parties>_xref``) ``through_parties`` links read.
    """

    name: str
    root: Root
    sections: tuple[Section, ...] = ()
    summaries: tuple[Summary, ...] = ()
    budget: int = 1000
    priorities: tuple[str, ...] = ()
    as_of: dt.datetime | str | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    parties: str = "party"
    description: str = ""

    def __post_init__(self) -> None:
        problems = []
        names = [s.name for s in self.sections]
        if self.budget < 1:
            problems.append("budget must be positive")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            problems.append(f"sections {duplicated} are declared twice")
        unknown = sorted(set(self.priorities) - set(names))
        if unknown:
            problems.append(f"priorities name no section: {unknown} (sections: {names})")
        for index, section in enumerate(self.sections):
            if section.via is not None and section.via[0] not in names[:index]:
                problems.append(f"section {section.name!r} is linked via "
                                f"{section.via[0]!r}, which must be an earlier section")
            if section.through_parties is not None and self.root.parties is None:
                problems.append(f"section {section.name!r} is linked through parties: give "
                                "the root its system in the crosswalk (root parties = ...)")
        for summary in self.summaries:
            if summary.section not in names:
                problems.append(f"summary {summary.name!r} reads no section "
                                f"{summary.section!r} (sections: {names})")
        if isinstance(self.as_of, str) and "." not in self.as_of:
            problems.append(f"as_of {self.as_of!r} must be \"entity.column\"")
        if problems:
            raise ConfigurationError(f"context {self.name!r}: {'; '.join(problems)}")

    @property
    def table(self) -> str:
        return context_table(self.name)

    @property
    def crosswalk(self) -> str:
        return crosswalk_table(self.parties)

    def tables(self) -> list[str]:
        """The clean tables a build reads."""
        tables = [clean_table(self.root.entity)]
        tables += [clean_table(s.entity) for s in self.sections]
        if isinstance(self.as_of, str):
            tables.append(clean_table(self.as_of.partition(".")[0]))
        if any(s.through_parties for s in self.sections):
            tables.append(self.crosswalk)
        return list(dict.fromkeys(tables))

    def expression_columns(self, expression: Expression | Filter | None) -> list[str]:
        """The clean columns an expression of this context reads (``as_of`` aside)."""
        return [c for c in _names(expression, self) if c != AS_OF_COLUMN]

    def section_columns(self, section: Section) -> list[str]:
        """The columns that choose and order a section's items: its key, link, filter
        and ordering columns."""
        columns = [section.key, *section.link_columns,
                   *self.expression_columns(section.where)]
        for expression in section.order_by:
            columns += self.expression_columns(_ordering_text(expression))
        return list(dict.fromkeys(columns))

    def columns_read(self) -> dict[str, list[str]]:
        """Per clean table, the columns that shape the documents: copied fields, link
        keys, and the columns of filters, orderings and aggregates."""
        read: dict[str, list[str]] = defaultdict(list)
        root = clean_table(self.root.entity)
        read[root] += [self.root.key, *self.root.fields, *_names(self.root.where, self)]
        for section in self.sections:
            table = clean_table(section.entity)
            read[table] += [section.key, *section.link_columns, *section.fields,
                            *_names(section.where, self)]
            for expression in section.order_by:
                read[table] += _names(expression, self)
            if section.on is not None:
                read[root] += list(section.on.values())
            if section.through_parties is not None:
                read[self.crosswalk] += ["party_id", "system", "source_key"]
        for summary in self.summaries:
            entity = next(s.entity for s in self.sections if s.name == summary.section)
            for expression in summary.values.values():
                read[clean_table(entity)] += _names(expression, self)
        if isinstance(self.as_of, str):
            entity, _, column = self.as_of.partition(".")
            read[clean_table(entity)].append(column)
        return {t: [c for c in dict.fromkeys(cs) if c != AS_OF_COLUMN]
                for t, cs in read.items()}


def _expression(value: Expression | Filter, spec: ContextSpec, as_of: Any = None) -> pl.Expr:
    if isinstance(value, pl.Expr):
        return value
    if isinstance(value, str):
        try:
            return pl.sql_expr(value.format(**spec.constants))
        except (KeyError, IndexError) as exc:
            raise ConfigurationError(f"context {spec.name!r}: {value!r} names {exc}, which is "
                                     f"not a constant ({sorted(spec.constants)})") from None
        except Exception as exc:  # polars' SQL parser raises several kinds
            raise ConfigurationError(f"context {spec.name!r}: cannot read the SQL expression "
                                     f"{value!r} ({str(exc).splitlines()[0]})") from None
    return value(as_of)


def _names(value: Expression | Filter | None, spec: ContextSpec) -> list[str]:
    if value is None:
        return []
    if callable(value) and not isinstance(value, pl.Expr):
        value = value(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    return _expression(value, spec).meta.root_names()


def _ordering_text(text: Expression) -> Expression:
    """An ``order_by`` item without its ``ASC``/``DESC``."""
    if isinstance(text, str):
        words = text.rsplit(None, 1)
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            return words[0]
    return text


def _ordering(text: Expression, spec: ContextSpec) -> tuple[pl.Expr, bool]:
    """An ``order_by`` item: an expression and whether it sorts descending (SQL text
    may end in ``DESC`` or ``ASC``)."""
    if isinstance(text, str):
        words = text.rsplit(None, 1)
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            return _expression(words[0], spec), words[1].upper() == "DESC"
    return _expression(text, spec), False


@dataclass
class ContextRun:
    """What one build wrote: counts for the orchestrator's metadata.

    ``table`` holds the documents written by this build: all of them in a full build,
    the rebuilt ones in an incremental build (``mode``), where ``total`` counts the
    documents the context table holds afterwards and ``removed`` those deleted.
    """

    spec: ContextSpec
    run_id: str
    table: pa.Table
    as_of: dt.datetime | None
    seconds: float
    mode: str = "full"
    total: int | None = None
    removed: int = 0
    why_full: str = ""

    @property
    def contexts(self) -> int:
        return self.table.num_rows if self.total is None else self.total

    @property
    def trimmed(self) -> int:
        return sum(1 for t in self.table.column("trimmed").to_pylist() if t != "[]")

    @property
    def over_budget(self) -> int:
        return sum(1 for t in self.table.column("tokens").to_pylist() if t > self.spec.budget)

    def metadata(self) -> dict[str, Any]:
        tokens = self.table.column("tokens").to_pylist()
        provenance = sum(len(json.loads(p)) for p in self.table.column("provenance").to_pylist())
        return {"contexts": self.contexts, "rebuilt": self.table.num_rows,
                "removed": self.removed, "mode": self.mode,
                "full_because": self.why_full or None, "trimmed": self.trimmed,
                "over_budget": self.over_budget, "budget_tokens": self.spec.budget,
                "tokens_total": sum(tokens), "tokens_max": max(tokens, default=0),
                "provenance_entries": provenance,
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "seconds": round(self.seconds, 3)}


def trim_to_budget(document: dict[str, Any], budget: int, priorities: Iterable[str]
                   ) -> tuple[str, list[dict[str, Any]]]:
    """The document as canonical JSON within ``budget`` tokens if trimming can get it
    there, and what was dropped, section by section. ``document`` is not changed."""
    document = {**document}
    text = canonical_json(document)
    trimmed = []
    for section in priorities:
        items = list(document.get(section) or [])
        dropped = []
        while items and estimate_tokens(text) > budget:
            dropped.append(items.pop()["source_id"])
            document[section] = items
            text = canonical_json(document)
        if dropped:
            trimmed.append({"section": section, "dropped": len(dropped), "source_ids": dropped})
    return text, trimmed


def provenance_entry(entity: str, key: object, row: Mapping[str, Any]) -> dict[str, Any]:
    """Where one clean record came from, from its ``_hw_*`` columns."""
    extracted = row.get("_hw_extracted_at")
    return {"source_id": f"{entity}:{key}", "source_table": clean_table(entity),
            "source_key": str(key), "source": row.get("_hw_source"),
            "stream": row.get("_hw_stream"),
            "extracted_at": extracted.astimezone(dt.UTC).isoformat() if extracted else None,
            "run_id": row.get("_hw_run_id")}


def context_row(context_id: str, party_id: str | None, document: dict[str, Any],
                provenance: list[dict[str, Any]], spec: ContextSpec,
                as_of: dt.datetime | None, run_id: str) -> dict[str, Any]:
    """One row of a context table: the document trimmed to budget, hashed and sized."""
    text, trimmed = trim_to_budget(document, spec.budget, spec.priorities)
    return {"context_id": context_id, "party_id": party_id, "document": text,
            "provenance": canonical_json(provenance), "content_hash": content_hash(text),
            "tokens": estimate_tokens(text), "trimmed": canonical_json(trimmed),
            "as_of": as_of, "run_id": run_id}


def build_contexts(warehouse: Warehouse, spec: ContextSpec, run_id: str, *,
                   full: bool = False) -> ContextRun:
    """Build the context documents from the clean tables: only those of the roots whose
    records changed since the last build, merged by ``context_id`` into
    ``context_<name>``; every document, replacing the table whole, on the first build,
    with ``full=True``, or when something every document depends on changed (the
    declaration, ``as_of``). Run after normalization."""
    started = time.perf_counter()
    present = set(warehouse.tables())
    missing = [t for t in spec.tables() if t not in present]
    if missing:
        raise ConfigurationError(
            f"context {spec.name!r} reads {missing}, which the warehouse lacks: land and "
            "normalize their sources first (headwater run, headwater normalize)")
    watermark = dt.datetime.now(dt.UTC) - CLEAN_LAG
    entities = [spec.root.entity, *[s.entity for s in spec.sections]]
    marks = clean_marks(warehouse, entities)  # before the tables are read
    frames = {t: in_utc(pl.from_arrow(warehouse.read_table(t))) for t in spec.tables()}
    _check_columns(spec, frames)
    as_of = _as_of(spec, frames)
    documents = _Documents(spec, frames, as_of)
    fingerprint = context_fingerprint(spec, as_of)
    saved = None if full else warehouse.load_state(context_state_key(spec.name))
    why_full = why_full_build(saved, fingerprint, spec.table in present)
    state = {"since": watermark, "fingerprint": fingerprint, "marks": marks}
    if why_full:
        rows = [context_row(context_id, party, document, provenance, spec, as_of, run_id)
                for context_id, party, document, provenance in documents.build()]
        table = pa.Table.from_pylist(rows, schema=CONTEXT_SCHEMA)
        warehouse.replace_tables({spec.table: table})
        warehouse.save_state(context_state_key(spec.name), state, run_id)
        return ContextRun(spec, run_id, table, as_of, time.perf_counter() - started,
                          why_full=why_full)
    assert saved is not None
    stored = warehouse.query(
        f"SELECT context_id, party_id, provenance FROM {quote(spec.table)}")  # noqa: S608
    sinces = changed_since(saved.get("marks"), marks, entities, saved["since"])
    affected, removed = affected_roots(spec, frames, documents, stored, sinces)
    rows = [context_row(context_id, party, document, provenance, spec, as_of, run_id)
            for context_id, party, document, provenance in documents.build(affected)]
    table = pa.Table.from_pylist(rows, schema=CONTEXT_SCHEMA)
    keys = pa.table({"context_id": pa.array(sorted(affected | removed), pa.string())})
    warehouse.replace_keyed({spec.table: KeyedRows(("context_id",), keys, table)},
                            state_key=context_state_key(spec.name), state=state,
                            run_id=run_id)
    total = stored.num_rows + len(affected - set(stored.column("context_id").to_pylist())) \
        - len(removed)
    return ContextRun(spec, run_id, table, as_of, time.perf_counter() - started,
                      mode="incremental", total=total, removed=len(removed))


def _check_columns(spec: ContextSpec, frames: Mapping[str, pl.DataFrame]) -> None:
    for table, columns in spec.columns_read().items():
        unknown = [c for c in columns if c not in frames[table].columns]
        if unknown:
            raise ConfigurationError(
                f"context {spec.name!r}: {table} has no column(s) {unknown}; its columns: "
                f"{[c for c in frames[table].columns if not c.startswith('_hw_')]}")


def _as_of(spec: ContextSpec, frames: Mapping[str, pl.DataFrame]) -> dt.datetime | None:
    if not isinstance(spec.as_of, str):
        return spec.as_of
    entity, _, column = spec.as_of.partition(".")
    values = frames[clean_table(entity)].get_column(column)
    return values.max() if values.len() else None  # type: ignore[return-value]


class _Documents:
    """The documents of one context, root by root: ``(context_id, party_id, document,
    provenance)``."""

    def __init__(self, spec: ContextSpec, frames: Mapping[str, pl.DataFrame],
                 as_of: dt.datetime | None) -> None:
        self.spec, self.as_of = spec, as_of
        self.roots = self._prepared(frames[clean_table(spec.root.entity)], spec.root.where,
                                    (spec.root.key,), (False,)).to_dicts()
        self.party_of: dict[str, str] = {}
        self.members: dict[tuple[str, str], list[str]] = defaultdict(list)
        if any(s.through_parties for s in spec.sections):
            for row in frames[spec.crosswalk].iter_rows(named=True):
                if row["system"] == spec.root.parties:
                    self.party_of[str(row["source_key"])] = row["party_id"]
                self.members[(row["party_id"], row["system"])].append(str(row["source_key"]))
        self.frames = {s.name: self._section_frame(s, frames[clean_table(s.entity)])
                       for s in spec.sections}
        self._links: tuple[dict[str, list[dict]], dict[str, list[list[int]]]] | None = None

    def _prepared(self, frame: pl.DataFrame, where: Filter | None,
                  order: Sequence[Expression], descending: Sequence[bool]) -> pl.DataFrame:
        """``frame`` filtered and ordered, numbered in that order (``_hw_ordinal``)."""
        added = AS_OF_COLUMN not in frame.columns
        if added:
            frame = frame.with_columns(pl.lit(self.as_of, pl.Datetime("us", "UTC"))
                                       .alias(AS_OF_COLUMN))
        if where is not None:
            try:
                frame = frame.filter(_expression(where, self.spec, self.as_of))
            except pl.exceptions.PolarsError as exc:
                raise ConfigurationError(f"context {self.spec.name!r}: the filter {where!r} "
                                         f"fails: {str(exc).splitlines()[0]}") from None
        if order:
            pairs = [_ordering(o, self.spec) for o in order]
            flags = list(descending) if descending else [d for _, d in pairs]
            frame = frame.sort([e for e, _ in pairs], descending=flags, nulls_last=True)
        if added:
            frame = frame.drop(AS_OF_COLUMN)
        return frame.with_row_index(_ORDINAL)

    def _section_frame(self, section: Section, frame: pl.DataFrame) -> pl.DataFrame:
        return self._prepared(frame, section.where, section.order_by or (section.key,),
                              section.descending)

    def _linkage(self) -> tuple[dict[str, list[dict]], dict[str, list[list[int]]]]:
        """Each section's rows, and per section and root the indices of its items."""
        if self._links is None:
            spec = self.spec
            rows = {name: frame.to_dicts() for name, frame in self.frames.items()}
            groups = {s.name: self._groups(s, rows[s.name]) for s in spec.sections}
            items_of: dict[str, list[list[int]]] = {}
            for section in spec.sections:
                items_of[section.name] = [
                    self._linked(section, index, root, groups, items_of, rows)
                    for index, root in enumerate(self.roots)]
            self._links = rows, items_of
        return self._links

    def cites(self) -> dict[str, set[str]]:
        """Per root, the ``source_id`` of every record its document would hold now."""
        rows, items_of = self._linkage()
        spec = self.spec
        ids_of = {s.name: [f"{s.entity}:{row[s.key]}" for row in rows[s.name]]
                  for s in spec.sections}
        cited = {}
        for index, root in enumerate(self.roots):
            key = root[spec.root.key]
            ids = {f"{spec.root.entity}:{key}"}
            for section in spec.sections:
                section_ids = ids_of[section.name]
                ids.update(section_ids[i] for i in items_of[section.name][index])
            cited[str(key)] = ids
        return cited

    def build(self, only: set[str] | None = None
              ) -> Iterable[tuple[str, str | None, dict[str, Any], list[dict]]]:
        """``(context_id, party_id, document, provenance)`` of every root, or of the
        roots in ``only``."""
        spec = self.spec
        rows, items_of = self._linkage()
        summaries = {summary.name: self._summaries(summary, items_of[summary.section])
                     for summary in spec.summaries}
        for index, root in enumerate(self.roots):
            key = root[spec.root.key]
            if only is not None and str(key) not in only:
                continue
            document: dict[str, Any] = {spec.root.entity: _item(spec.root.entity, key, root,
                                                                 spec.root.fields)}
            provenance = [provenance_entry(spec.root.entity, key, root)]
            counts = {}
            for section in spec.sections:
                chosen = [rows[section.name][i] for i in items_of[section.name][index]]
                document[section.name] = [_item(section.entity, r[section.key], r,
                                                section.fields) for r in chosen]
                provenance += [provenance_entry(section.entity, r[section.key], r)
                               for r in chosen]
                counts[section.name] = len(chosen)
            for name, values in summaries.items():
                document[name] = values[index]
            document["counts"] = counts
            document.update(spec.constants)
            yield str(key), self.party_of.get(str(key)), document, _unique(provenance)

    def _groups(self, section: Section, rows: list[dict[str, Any]]
                ) -> dict[tuple[Any, ...], list[int]]:
        columns = section.link_columns
        grouped: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for index, row in enumerate(rows):
            value = tuple(row[c] for c in columns)
            if section.through_parties is not None:
                value = tuple(str(v) for v in value)
            grouped[value].append(index)
        return grouped

    def _linked(self, section: Section, index: int, root: dict[str, Any],
                groups: Mapping[str, dict[tuple[Any, ...], list[int]]],
                items_of: Mapping[str, list[list[int]]], rows: Mapping[str, list[dict]]
                ) -> list[int]:
        """Indices of the section rows linked to one root, in the section's order."""
        mine = groups[section.name]
        if section.on is not None:
            found = list(mine.get(tuple(root[c] for c in section.on.values()), []))
        elif section.through_parties is not None:
            system = section.through_parties[0]
            party = self.party_of.get(str(root[self.spec.root.key]))
            found = [i for member in self.members.get((party, system), []) if party
                     for i in mine.get((member,), [])]
        else:
            assert section.via is not None
            other, on = section.via
            parents = items_of[other][index]
            found = [i for p in parents
                     for i in mine.get(tuple(rows[other][p][c] for c in on.values()), [])]
        return sorted(set(found))

    def _summaries(self, summary: Summary, linked: list[list[int]]) -> list[dict[str, Any]]:
        """One dict of aggregates per root, over its items of ``summary.section``."""
        frame = self.frames[summary.section]
        expressions = {name: _expression(value, self.spec)
                       for name, value in summary.values.items()}
        pairs = pl.DataFrame({_ROOT: [i for i, items in enumerate(linked) for _ in items],
                              _ORDINAL: [o for items in linked for o in items]},
                             schema={_ROOT: pl.UInt32, _ORDINAL: pl.UInt32})
        try:
            grouped = pairs.join(frame, on=_ORDINAL).group_by(_ROOT).agg(**expressions)
            empty = frame.clear().select(**expressions).to_dicts()[0]
        except pl.exceptions.PolarsError as exc:
            raise ConfigurationError(f"context {self.spec.name!r}: summary {summary.name!r} "
                                     f"fails: {str(exc).splitlines()[0]}") from None
        by_root = {row.pop(_ROOT): row for row in grouped.to_dicts()}
        return [by_root.get(i, empty) for i in range(len(linked))]


def _item(entity: str, key: Any, row: Mapping[str, Any], fields: Sequence[str]
          ) -> dict[str, Any]:
    """A document item: the row's ``source_id`` and the fields it contributes."""
    return {"source_id": f"{entity}:{key}", **{name: row[name] for name in fields}}


def _unique(provenance: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for entry in provenance:
        seen.setdefault(entry["source_id"], entry)
    return list(seen.values())
