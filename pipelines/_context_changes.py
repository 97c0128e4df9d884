"""What an incremental context build rebuilds: the roots a change touches.

A build keeps, in the state entry ``context.<name>``, where it stopped (a landing time of
clean rows, less :data:`CLEAN_LAG`) and a fingerprint of what every document depends on
(the declaration, ``as_of``, the party crosswalk). The next build rebuilds every document
when the fingerprint moved, else only those of the roots whose own row changed, that
link a changed record now, or whose stored document cites a record that changed or
vanished; documents of roots that are gone are deleted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from ._canonical import canonical_json, content_hash

if TYPE_CHECKING:
    from .context import ContextSpec

# Clean rows carry the landing time of their raw row: a build re-reads the changes of this
# long before its own start (clocks of machines may disagree; a row landed while the last
# build read is never missed, at worst rebuilt twice).
CLEAN_LAG = dt.timedelta(seconds=60)


def context_state_key(name: str) -> str:
    """The state entry of a context's incremental builds."""
    return f"context.{name}"


def context_fingerprint(spec: ContextSpec, frames: Mapping[str, pl.DataFrame],
                        as_of: dt.datetime | None) -> str:
    """What every document depends on: the declaration, ``as_of`` and the crosswalk."""
    parts = [repr(spec), as_of.isoformat() if as_of else ""]
    if any(s.through_parties for s in spec.sections):
        crosswalk = frames[spec.crosswalk].select("party_id", "system", "source_key")
        parts.append(str(crosswalk.sort(crosswalk.columns).hash_rows().sum()))
    return content_hash(canonical_json(parts))


def why_full_build(saved: dict[str, Any] | None, fingerprint: str, table_present: bool) -> str:
    if saved is None or "since" not in saved:
        return "first build"
    if not table_present:
        return "the context table is missing"
    if saved.get("fingerprint") != fingerprint:
        return "the declaration, as_of or the party crosswalk changed"
    return ""


def affected_roots(spec: ContextSpec, frames: Mapping[str, pl.DataFrame], documents: Any,
                   stored: pa.Table, since: dt.datetime) -> tuple[set[str], set[str]]:
    """(roots to rebuild, documents to delete): the roots whose row changed, that link
    a changed record now, or whose stored document cites a changed or vanished record;
    the documents of roots that are gone."""
    changed: set[str] = set()
    current: set[str] = set()
    for entity, key in [(spec.root.entity, spec.root.key),
                        *[(s.entity, s.key) for s in spec.sections]]:
        frame = frames[f"clean_{entity}"]
        current |= {f"{entity}:{k}" for k in frame.get_column(key).to_list()}
        if "_hw_extracted_at" in frame.columns:
            recent = frame.filter(pl.col("_hw_extracted_at") >= since).get_column(key)
            changed |= {f"{entity}:{k}" for k in recent.to_list()}
        else:
            changed |= {f"{entity}:{k}" for k in frame.get_column(key).to_list()}
    cited = {row["context_id"]: {e["source_id"] for e in json.loads(row["provenance"])}
             for row in stored.to_pylist()}
    vanished = set().union(*cited.values()) - current if cited else set()
    roots = {str(r[spec.root.key]) for r in documents.roots}
    affected = {root for root in roots
                if f"{spec.root.entity}:{root}" in changed or root not in cited}
    affected |= {root for root, ids in cited.items()
                 if root in roots and ids & (changed | vanished)}
    affected |= documents.roots_citing(changed)
    return affected, set(cited) - roots
