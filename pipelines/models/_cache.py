"""The model cache: answers already paid for, kept in the warehouse between runs.

An entry is keyed by the step, the provider and model, the prompt's version and
fingerprint (its text and the output schema) and the content hash of the context
document. It holds either the provider's validated answer, or the reason its answers
were rejected (two invalid answers for that context), so that a rerun neither pays again
for an answer nor for a failure that will repeat. Unchanged context under an unchanged
prompt is never sent again; a changed document, prompt or model misses for exactly the
contexts concerned. Entries live in the warehouse table ``model_cache`` (merged by key),
so they survive processes and are shared by every run against that warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..warehouse import Warehouse

CACHE_TABLE = "model_cache"
CACHE_SCHEMA = pa.schema([
    ("cache_key", pa.string()), ("step", pa.string()), ("provider", pa.string()),
    ("model", pa.string()), ("prompt_version", pa.string()), ("content_hash", pa.string()),
    ("output", pa.string()), ("rejection", pa.string()), ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()), ("cost", pa.float64()), ("run_id", pa.string()),
    ("cached_at", pa.timestamp("us", tz="UTC")),
])


def cache_key(step: str, provider: str, model: str, prompt_version: str, fingerprint: str,
              context_hash: str) -> str:
    """The key of one answer: equal inputs give equal keys, any change another key."""
    parts = orjson.dumps([step, provider, model, prompt_version, fingerprint, context_hash])
    return hashlib.sha256(parts).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """An answer as first received (``output``, JSON) with what it cost then, or why
    the provider's answers for that context were rejected (``rejection``)."""

    provider: str
    model: str
    output: str | None
    rejection: str | None
    tokens_in: int
    tokens_out: int
    cost: float


class ModelCache:
    """One step's cached answers, loaded once per run; new ones are saved at its end."""

    def __init__(self, step: str, entries: dict[str, CachedAnswer] | None = None) -> None:
        self.step = step
        self._entries = entries or {}
        self._new: list[dict] = []

    @classmethod
    def load(cls, warehouse: Warehouse, step: str) -> ModelCache:
        """The cached answers of ``step`` in ``warehouse`` (none if it has no cache yet)."""
        if CACHE_TABLE not in warehouse.tables():
            return cls(step)
        table = warehouse.read_table(CACHE_TABLE)
        table = table.filter(pc.equal(table.column("step"), step))
        columns = [table.column(n).to_pylist() for n in (
            "cache_key", "provider", "model", "output", "rejection", "tokens_in", "tokens_out",
            "cost")]
        return cls(step, {key: CachedAnswer(*rest) for key, *rest in zip(*columns, strict=True)})

    def get(self, key: str) -> CachedAnswer | None:
        return self._entries.get(key)

    def put(self, key: str, answer: CachedAnswer, *, prompt_version: str, context_hash: str,
            run_id: str) -> None:
        """Remember a new answer (call from one thread; saved by :meth:`save`)."""
        self._entries[key] = answer
        self._new.append({
            "cache_key": key, "step": self.step, "provider": answer.provider,
            "model": answer.model, "prompt_version": prompt_version,
            "content_hash": context_hash, "output": answer.output,
            "rejection": answer.rejection,
            "tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out,
            "cost": answer.cost, "run_id": run_id, "cached_at": dt.datetime.now(dt.UTC)})

    def save(self, warehouse: Warehouse) -> int:
        """Merge the answers added since loading into ``model_cache``; their count."""
        if self._new:
            warehouse.merge(CACHE_TABLE, pa.RecordBatch.from_pylist(self._new, CACHE_SCHEMA),
                            ("cache_key",))
        saved, self._new = len(self._new), []
        return saved

    def __len__(self) -> int:
        return len(self._entries)
