"""Party resolution in the warehouse: the crosswalk ``clean_<name>_xref`` kept current.

The first resolution, and every one asked to be whole, links every clean record of the
declared entities (:func:`normalization.resolve`) and replaces the crosswalk. After that
a resolution follows the change. It starts from the records **touched** since the last
one: landed at or after their entity's mark (see ``_clean_changes``), new to the
crosswalk, or gone from their clean table. It adds every record whose party could depend
on those, until nothing more is added:

- the other members of their former parties (a party that loses a member may get
  another anchor, so another id);
- the records whose normalized name, old or new, is one of theirs (a name that became
  unique may now link, one that became shared no longer does);
- the records they link to by a declared key, and those that link to them.

Only those records are resolved again, with the same passes, so they get what a whole
resolution would give them. They replace their rows by ``(system, source_key)`` in one
transaction with the state entry ``parties.<name>``. Parties no change reaches keep
their rows and ids. A whole resolution is needed again when the declaration changed,
the crosswalk is missing, or an entity was rebuilt.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from connectors import ConfigurationError
from normalization import PartySource, Resolution, ResolvedParties, normalize_name, resolve

from ._canonical import canonical_json, content_hash
from ._clean_changes import (
    EXTRACTED_AT,
    Marks,
    changed_rows,
    changed_since,
    clean_marks,
    clean_table,
    crosswalk_table,
    in_utc,
)
from .warehouse import KeyedRows, Warehouse, quote


def parties_state_key(name: str) -> str:
    """The state entry of a party resolution."""
    return f"parties.{name}"


def resolve_parties(warehouse: Warehouse, resolution: Resolution, *, full: bool = False,
                    run_id: str | None = None) -> ResolvedParties | None:
    """Bring ``clean_<name>_xref`` up to date with the clean tables it reads (whole with
    ``full``); ``None`` (nothing written) if one of them is not there yet."""
    present = set(warehouse.tables())
    entities = [s.entity for s in resolution.sources]
    if not {clean_table(e) for e in entities} <= present:
        return None
    table, state_key = crosswalk_table(resolution.name), parties_state_key(resolution.name)
    marks = clean_marks(warehouse, entities)  # before the tables are read
    fingerprint = content_hash(canonical_json([repr(resolution)]))
    saved = None if full else warehouse.load_state(state_key)
    sinces = changed_since((saved or {}).get("marks"), marks, entities, None)
    why_full = "asked for" if full else _why_full(saved, fingerprint, table in present,
                                                  marks, sinces)
    frames = {s.entity: _records(warehouse, resolution.name, s) for s in resolution.sources}
    state = {"marks": marks, "fingerprint": fingerprint}
    if why_full:
        resolved = resolve(resolution, frames)
        warehouse.replace_tables({table: resolved.crosswalk})
        warehouse.save_state(state_key, state, run_id)
        resolved.why_full = why_full
        return resolved
    return _follow_change(warehouse, resolution, frames, sinces, state, run_id)


def _why_full(saved: dict[str, Any] | None, fingerprint: str, table_present: bool,
              marks: Marks, sinces: dict[str, Any]) -> str:
    """Why this resolution must read every record (empty: it can follow the change)."""
    if saved is None or "marks" not in saved:
        return "first run"
    if not table_present:
        return "the crosswalk table is missing"
    if saved.get("fingerprint") != fingerprint:
        return "the resolution's declaration changed"
    for entity, since in sinces.items():
        if since is None:
            return (f"{clean_table(entity)} was rebuilt" if entity in marks else
                    f"{clean_table(entity)} is not kept by normalization (no state entry "
                    f"clean.{entity}), so its changes cannot be told")
    return ""


def _records(warehouse: Warehouse, name: str, source: PartySource) -> pl.DataFrame:
    """The columns of one clean table that resolution reads, with landing times."""
    table = clean_table(source.entity)
    available = warehouse.query(f"SELECT * FROM {quote(table)} LIMIT 0").schema.names  # noqa: S608
    declared = [source.key, source.name, *source.links.values()]
    missing = [c for c in dict.fromkeys(declared) if c not in available]
    if missing:
        raise ConfigurationError(
            f"party resolution {name!r}: system {source.system!r} reads {missing} from "
            f"{table}, which has no such column; its columns: "
            f"{[c for c in available if not c.startswith('_hw_')]}")
    wanted = [*declared, EXTRACTED_AT]
    columns = ", ".join(quote(c) for c in dict.fromkeys(wanted) if c in available)
    frame = pl.from_arrow(warehouse.query(f"SELECT {columns} FROM {quote(table)}"))  # noqa: S608
    assert isinstance(frame, pl.DataFrame)
    return in_utc(frame)


def _member(system: str | pl.Expr, key: pl.Expr) -> pl.Expr:
    prefix = pl.lit(f"{system}:") if isinstance(system, str) else system + pl.lit(":")
    return pl.concat_str([prefix, key.cast(pl.String)]).alias("member")


def _follow_change(warehouse: Warehouse, resolution: Resolution,
                   frames: dict[str, pl.DataFrame], sinces: dict[str, Any],
                   state: dict[str, Any], run_id: str | None) -> ResolvedParties:
    table = crosswalk_table(resolution.name)
    old = pl.from_arrow(warehouse.query(
        f"SELECT party_id, system, source_key, normalized_name FROM {quote(table)}"))  # noqa: S608
    assert isinstance(old, pl.DataFrame)
    old = old.with_columns(_member(pl.col("system"), pl.col("source_key")))
    current, links, changed = _population(resolution, frames, sinces, old)
    members = current.get_column("member")
    touched = pl.concat([changed, members.filter(~members.is_in(old["member"].implode())),
                         old["member"].filter(~old["member"].is_in(members.implode()))])
    closure = _closure(touched.unique(), current, links, old)
    subset = {s.entity: frames[s.entity].filter(
                  _member(s.system, pl.col(s.key)).is_in(closure.implode()))
              for s in resolution.sources}
    resolved = resolve(resolution, subset)
    keys = old.select("system", "source_key", "member").vstack(current.select(
        "system", pl.col("key").alias("source_key"), "member")).filter(
        pl.col("member").is_in(closure.implode())).unique().drop("member")
    warehouse.replace_keyed({table: KeyedRows(("system", "source_key"), keys.to_arrow(),
                                              resolved.crosswalk)},
                            state_key=parties_state_key(resolution.name), state=state,
                            run_id=run_id)
    records, parties = warehouse.query(
        f"SELECT count(*), count(DISTINCT party_id) FROM {quote(table)}").to_pylist()[0].values()  # noqa: S608
    resolved.mode, resolved.records, resolved.parties = "incremental", records, parties
    return resolved


def _population(resolution: Resolution, frames: dict[str, pl.DataFrame],
                sinces: dict[str, Any], old: pl.DataFrame
                ) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """(every current record: member, system, key, normalized name; the declared-key
    links: member, target; the members landed since their entity's mark)."""
    known = old.select("member", pl.col("normalized_name").alias("known"))
    records, links, changed = [], [], []
    for source in resolution.sources:
        frame = frames[source.entity].drop_nulls(source.key).unique(subset=[source.key])
        member = _member(source.system, pl.col(source.key))
        changed.append(changed_rows(frame, sinces[source.entity]).select(member)["member"])
        rows = frame.select(member, pl.lit(source.system).alias("system"),
                            pl.col(source.key).cast(pl.String).alias("key"),
                            pl.col(source.name).cast(pl.String).alias("name"))
        for target, column in source.links.items():
            links.append(frame.select(member, _member(target, pl.col(column))
                                      .alias("target")).drop_nulls("target"))
        records.append(rows)
    current = pl.concat(records).join(known, on="member", how="left")
    # a record whose name did not change keeps its normalized name; the others are
    # normalized again (the clean rows of a changed name were landed since the mark)
    fresh = pl.concat(changed)
    needs = current.filter(pl.col("known").is_null() | pl.col("member").is_in(fresh.implode()))
    renamed = needs.select("member", pl.col("name").map_elements(
        normalize_name, return_dtype=pl.String).alias("normalized"))
    current = current.join(renamed, on="member", how="left").with_columns(
        pl.coalesce("normalized", "known").alias("normalized")).drop("known")
    empty = pl.DataFrame(schema={"member": pl.String, "target": pl.String})
    return current, pl.concat([empty, *links]), fresh


def _closure(touched: pl.Series, current: pl.DataFrame, links: pl.DataFrame,
             old: pl.DataFrame) -> pl.Series:
    """``touched`` and every record whose party may depend on them (module docstring)."""
    closure = touched
    while True:
        inside = closure.implode()
        parties = old.filter(pl.col("member").is_in(inside))["party_id"].implode()
        names = pl.concat([current.filter(pl.col("member").is_in(inside))["normalized"],
                           old.filter(pl.col("member").is_in(inside))["normalized_name"]
                           .alias("normalized")])
        names = names.filter(names.is_not_null() & (names != "")).implode()
        grown = pl.concat([
            closure,
            old.filter(pl.col("party_id").is_in(parties))["member"],
            current.filter(pl.col("normalized").is_in(names))["member"],
            links.filter(pl.col("member").is_in(inside))["target"].alias("member"),
            links.filter(pl.col("target").is_in(inside))["member"],
        ]).unique()
        if grown.len() == closure.len():
            return closure
        closure = grown


def parties_summary(name: str, resolved: ResolvedParties) -> str:
    """One line on what a resolution did, for the command line."""
    links = (f"{resolved.linked_by_key:,} linked by key, {resolved.linked_by_name:,} by name, "
             f"{resolved.ambiguous_names:,} ambiguous names left apart")
    if resolved.dangling_links:
        links += (f", {resolved.dangling_links:,} declared-key links naming no record "
                  "(left unlinked)")
    if resolved.mode == "incremental":
        return (f"{name}: {resolved.parties:,} parties from {resolved.records:,} records; "
                f"{resolved.crosswalk.num_rows:,} re-resolved after the change ({links})")
    return (f"{name}: {resolved.parties:,} resolved from {resolved.records:,} records "
            f"({links}; whole: {resolved.why_full or 'first run'})")
