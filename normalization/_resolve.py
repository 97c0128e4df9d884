"""Cross-source entity resolution: one stable id for the same party in several systems.

The demo's customer is an ERP customer, a CRM account and a logistics consignee under
three keys. :func:`resolve` links them in two passes and records how each link was made:

1. declared keys: a column of one system that holds another system's key (the CRM keeps
   the ERP customer number) links the two records when that key exists;
2. normalized names: records whose names agree after normalization (Unicode NFKC, case,
   punctuation, spacing, spelled-out legal forms) are linked only when the name is unique
   within each system involved and the link would not put two records of one system
   into one party. An ambiguous name links nothing and is counted.

Each party's id is derived from its anchor, the member from the earliest system in the
declaration with the smallest key, so the id survives reruns as long as the anchor does.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from ._engine import Frame, as_polars
from ._errors import MappingError

_PUNCTUATION = re.compile(r"[^\w\s]")
_LEGAL_FORMS = {"limited": "ltd", "incorporated": "inc", "corporation": "corp",
                "company": "co", "gesellschaft": "ges", "societe": "ste"}
CROSSWALK_SCHEMA = pa.schema([
    ("party_id", pa.string()), ("system", pa.string()), ("entity", pa.string()),
    ("source_key", pa.string()), ("name", pa.string()), ("normalized_name", pa.string()),
    ("matched_by", pa.string()),
])


@dataclass(frozen=True)
class PartySource:
    """One system's view of a party: the clean entity, its key and name columns, and
    ``links``, columns holding another system's key (``{"erp": "erp_customer_no"}``)."""

    system: str
    entity: str
    key: str
    name: str
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """A resolved entity (``name``) and the systems it is assembled from, anchor first."""

    name: str
    sources: tuple[PartySource, ...]

    def __post_init__(self) -> None:
        systems = [s.system for s in self.sources]
        unknown = {t for s in self.sources for t in s.links} - set(systems)
        if len(set(systems)) != len(systems) or unknown:
            raise MappingError(f"resolution {self.name!r}: systems must be unique and links "
                               f"must name declared systems (unknown: {sorted(unknown)})")


@dataclass
class ResolvedParties:
    """The crosswalk (one row per source record) and what the passes did.

    An incremental resolution (``mode``) re-resolves only the records a change can
    affect: ``crosswalk`` and the link counts describe those, ``parties`` counts every
    party afterwards and ``records`` every record; ``why_full`` says why a resolution
    read every record.
    """

    crosswalk: pa.Table
    parties: int
    linked_by_key: int
    linked_by_name: int
    ambiguous_names: int
    dangling_links: int
    mode: str = "full"
    why_full: str = ""
    records: int = -1

    def __post_init__(self) -> None:
        if self.records < 0:
            self.records = self.crosswalk.num_rows


def normalize_name(name: str | None) -> str:
    """A name as compared across systems: "Müller  GmbH." and "MÜLLER GMBH" agree."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", name).casefold().replace("&", " and ")
    text = _PUNCTUATION.sub(" ", text)
    return " ".join(_LEGAL_FORMS.get(word, word) for word in text.split())


class _Parties:
    """Union-find over "system:key" members, remembering how each member was linked."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.systems: dict[str, set[str]] = {}
        self.how: dict[str, str] = {}

    def add(self, member: str, system: str) -> None:
        self.parent.setdefault(member, member)
        self.systems.setdefault(member, {system})

    def root(self, member: str) -> str:
        while self.parent[member] != member:
            self.parent[member] = self.parent[self.parent[member]]
            member = self.parent[member]
        return member

    def link(self, a: str, b: str, how: str, exclusive: bool) -> bool:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return False
        if exclusive and self.systems[ra] & self.systems[rb]:
            return False
        self.parent[rb] = ra
        self.systems[ra] |= self.systems.pop(rb)
        self.how.setdefault(b, how)
        self.how.setdefault(a, how)
        return True


def resolve(resolution: Resolution, tables: Mapping[str, Frame]) -> ResolvedParties:
    """Link the records of ``tables`` (clean entity name -> frame) into parties."""
    members: dict[str, dict[str, Any]] = {}
    parties = _Parties()
    keys_by_system: dict[str, set[str]] = {}
    for source in resolution.sources:
        if source.entity not in tables:
            raise MappingError(f"resolution {resolution.name!r} needs the clean "
                               f"{source.entity!r} table; given {sorted(tables)}")
        frame = as_polars(tables[source.entity])
        wanted = [source.key, source.name, *source.links.values()]
        # in key order: links are made in the same order however the table was stored
        rows = (frame.select(pl.col(c).cast(pl.String) for c in dict.fromkeys(wanted))
                .unique(subset=[source.key], keep="first", maintain_order=True)
                .drop_nulls(source.key).sort(source.key))
        keys_by_system[source.system] = set(rows.get_column(source.key))
        for row in rows.iter_rows(named=True):
            member = f"{source.system}:{row[source.key]}"
            members[member] = {"system": source.system, "entity": source.entity,
                               "key": row[source.key], "name": row[source.name],
                               "links": {t: row[c] for t, c in source.links.items()}}
            parties.add(member, source.system)

    linked_by_key = dangling = 0
    for member, row in members.items():
        for target, value in row["links"].items():
            if value is None:
                continue
            if value in keys_by_system[target]:
                linked_by_key += parties.link(f"{target}:{value}", member, "key", exclusive=False)
            else:
                dangling += 1

    by_name: dict[str, list[str]] = defaultdict(list)
    for member, row in members.items():
        row["normalized"] = normalize_name(row["name"])
        if row["normalized"]:
            by_name[row["normalized"]].append(member)
    linked_by_name = ambiguous = 0
    for group in by_name.values():
        systems = [members[m]["system"] for m in group]
        if len(set(systems)) < 2:
            continue
        if len(set(systems)) != len(systems):
            ambiguous += 1
            continue
        for other in group[1:]:
            linked_by_name += parties.link(group[0], other, "name", exclusive=True)

    return ResolvedParties(_crosswalk(resolution, members, parties), len(parties.systems),
                           linked_by_key, linked_by_name, ambiguous, dangling)


def _crosswalk(resolution: Resolution, members: dict[str, dict[str, Any]],
               parties: _Parties) -> pa.Table:
    order = {s.system: i for i, s in enumerate(resolution.sources)}
    clusters: dict[str, list[str]] = defaultdict(list)
    for member in members:
        clusters[parties.root(member)].append(member)
    rows = []
    for cluster in clusters.values():
        anchor = min(cluster, key=lambda m: (order[members[m]["system"]], members[m]["key"]))
        digest = hashlib.sha1(anchor.encode("utf-8"), usedforsecurity=False).hexdigest()
        party_id = f"{resolution.name}-{digest[:12]}"
        for member in sorted(cluster):
            row = members[member]
            rows.append({"party_id": party_id, "system": row["system"], "entity": row["entity"],
                         "source_key": row["key"], "name": row["name"],
                         "normalized_name": row["normalized"],
                         "matched_by": "anchor" if member == anchor
                         else parties.how.get(member, "anchor")})
    rows.sort(key=lambda r: (r["party_id"], order[r["system"]], r["source_key"]))
    return pa.Table.from_pylist(rows, schema=CROSSWALK_SCHEMA)
