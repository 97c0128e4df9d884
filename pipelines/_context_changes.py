"""What an incremental context build rebuilds: the roots a change touches.

A build keeps, in the state entry ``context.<name>``, the marks of the clean entities it
read (taken before it read them, see ``_clean_changes``) and a fingerprint of what every
document depends on (the declaration and ``as_of``). The next build rebuilds every
document when the fingerprint moved, else only those of the roots whose own row changed,
that link a changed record now, whose stored document cites a record that changed or
vanished, or whose document would now cite other records or belong to another party (a
party that gained or lost a member); documents of roots that are gone are deleted. An
entity rebuilt since the last build counts as changed whole.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from ._canonical import canonical_json, content_hash
from ._clean_changes import changed_rows

if TYPE_CHECKING:
    from .context import ContextSpec


def context_state_key(name: str) -> str:
    """The state entry of a context's incremental builds."""
    return f"context.{name}"


def context_fingerprint(spec: ContextSpec, as_of: dt.datetime | None) -> str:
    """What every document depends on: the declaration and ``as_of``."""
    return content_hash(canonical_json([repr(spec), as_of.isoformat() if as_of else ""]))


def why_full_build(saved: dict[str, Any] | None, fingerprint: str, table_present: bool) -> str:
    if saved is None or "since" not in saved:
        return "first build"
    if not table_present:
        return "the context table is missing"
    if saved.get("fingerprint") != fingerprint:
        return "the declaration or as_of changed"
    return ""


def affected_roots(spec: ContextSpec, frames: Mapping[str, pl.DataFrame], documents: Any,
                   stored: pa.Table, sinces: Mapping[str, dt.datetime | None]
                   ) -> tuple[set[str], set[str]]:
    """(roots to rebuild, documents to delete): the roots whose row changed (landed at
    or after its entity's ``sinces`` entry; ``None``: every row), that link a changed
    record now, whose stored document cites a changed or vanished record, or whose
    document would now cite other records or name another party; the documents of roots
    that are gone."""
    changed: set[str] = set()
    current: set[str] = set()
    for entity, key in [(spec.root.entity, spec.root.key),
                        *[(s.entity, s.key) for s in spec.sections]]:
        frame = frames[f"clean_{entity}"]
        current |= {f"{entity}:{k}" for k in frame.get_column(key).to_list()}
        recent = changed_rows(frame, sinces.get(entity)).get_column(key)
        changed |= {f"{entity}:{k}" for k in recent.to_list()}
    stored_rows = stored.to_pylist()
    cited = {row["context_id"]: {e["source_id"] for e in json.loads(row["provenance"])}
             for row in stored_rows}
    party = {row["context_id"]: row["party_id"] for row in stored_rows}
    touched = changed | (set().union(*cited.values()) - current if cited else set())
    now = documents.cites()
    affected = set()
    for root, ids in now.items():
        before = cited.get(root)
        if (before is None or not ids.isdisjoint(changed) or not before.isdisjoint(touched)
                or ids != before or documents.party_of.get(root) != party[root]):
            affected.add(root)
    return affected, set(cited) - set(now)
