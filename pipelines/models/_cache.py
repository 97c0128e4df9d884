"""The model cache: answers already paid for, kept in the warehouse between runs.

An entry is keyed by the step, the provider, its model and the endpoint it answers from
(a base URL; the rules' version), the prompt's version and fingerprint (its text and the
output schema) and the content hash of the context document. Only answers that passed
validation are stored as answers, each as soon as it arrives, so a run that is killed
or stops on a refused key keeps every answer it paid for and the rerun asks only for
the rest. Unchanged context under an unchanged prompt and endpoint is never sent again;
a changed document, prompt, model or endpoint misses for exactly the contexts concerned.

An entry may instead remember why a provider's answers for that context were rejected
(invalid after every repair), so a rerun does not pay for the same failure again. A
rejection is never served as an answer: it only lets the chain pass that provider by,
and only until it expires (``ModelStep.rejection_ttl`` after a successful run; a
rejection written by a run that failed or was killed never takes effect, since its
cause may have been the endpoint rather than the context). ``refresh`` on
:func:`~pipelines.models.run_model_step` ignores the cache or its rejections for one
run; :func:`clear_model_cache` deletes a step's entries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..warehouse import Warehouse

CACHE_TABLE = "model_cache"
CACHE_SCHEMA = pa.schema([
    ("cache_key", pa.string()), ("step", pa.string()), ("provider", pa.string()),
    ("model", pa.string()), ("endpoint", pa.string()), ("prompt_version", pa.string()),
    ("content_hash", pa.string()), ("output", pa.string()), ("rejection", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()), ("cost", pa.float64()),
    ("run_id", pa.string()), ("cached_at", pa.timestamp("us", tz="UTC")),
    ("expires_at", pa.timestamp("us", tz="UTC")),
])


def cache_key(step: str, provider: str, model: str, endpoint: str, prompt_version: str,
              fingerprint: str, context_hash: str) -> str:
    """The key of one answer: equal inputs give equal keys, any change another key."""
    parts = orjson.dumps([step, provider, model, endpoint, prompt_version, fingerprint,
                          context_hash])
    return hashlib.sha256(parts).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """An answer as first received (``output``, JSON) with what it cost then, or why
    the provider's answers for that context were rejected (``rejection``, in force until
    ``expires_at``; never if that is None)."""

    provider: str
    model: str
    output: str | None
    rejection: str | None
    tokens_in: int
    tokens_out: int
    cost: float
    expires_at: dt.datetime | None = None

    def rejected_until(self, now: dt.datetime) -> bool:
        """Whether this is a rejection still in force at ``now``."""
        return self.output is None and self.expires_at is not None and self.expires_at > now


class ModelCache:
    """One step's cached answers, loaded once per run. New entries are recorded by
    :meth:`put` and written by :meth:`flush`, which the run calls as answers arrive."""

    def __init__(self, step: str, entries: dict[str, CachedAnswer] | None = None) -> None:
        self.step = step
        self._entries = entries or {}
        self._unsaved: list[dict[str, Any]] = []
        self._rejections: list[dict[str, Any]] = []  # written this run, not yet in force
        self.saved = 0

    @classmethod
    def load(cls, warehouse: Warehouse, step: str) -> ModelCache:
        """The cached answers of ``step`` in ``warehouse`` (none if it has no cache yet)."""
        if CACHE_TABLE not in warehouse.tables():
            return cls(step)
        table = warehouse.read_table(CACHE_TABLE)
        table = table.filter(pc.equal(table.column("step"), step))
        names = ("cache_key", "provider", "model", "output", "rejection", "tokens_in",
                 "tokens_out", "cost", "expires_at")
        columns = [table.column(n).to_pylist() if n in table.column_names
                   else [None] * table.num_rows for n in names]
        return cls(step, {key: CachedAnswer(*rest) for key, *rest in zip(*columns, strict=True)})

    def get(self, key: str) -> CachedAnswer | None:
        return self._entries.get(key)

    def put(self, key: str, answer: CachedAnswer, *, endpoint: str, prompt_version: str,
            context_hash: str, run_id: str) -> None:
        """Remember a new entry (from one thread; written by :meth:`flush`). A rejection
        is written without an expiry: :meth:`keep_rejections` puts it in force."""
        self._entries[key] = answer
        row = {"cache_key": key, "step": self.step, "provider": answer.provider,
               "model": answer.model, "endpoint": endpoint, "prompt_version": prompt_version,
               "content_hash": context_hash, "output": answer.output,
               "rejection": answer.rejection, "tokens_in": answer.tokens_in,
               "tokens_out": answer.tokens_out, "cost": answer.cost, "run_id": run_id,
               "cached_at": dt.datetime.now(dt.UTC), "expires_at": None}
        self._unsaved.append(row)
        if answer.output is None:
            self._rejections.append(row)

    def flush(self, warehouse: Warehouse) -> int:
        """Merge the entries recorded since the last flush into ``model_cache``."""
        if not self._unsaved:
            return 0
        rows, self._unsaved = self._unsaved, []
        warehouse.merge(CACHE_TABLE, pa.RecordBatch.from_pylist(rows, CACHE_SCHEMA),
                        ("cache_key",))
        self.saved += len(rows)
        return len(rows)

    def keep_rejections(self, warehouse: Warehouse, ttl: float) -> int:
        """Put this run's rejections in force for ``ttl`` seconds (after a run that
        succeeded); their count."""
        if not self._rejections or ttl <= 0:
            return 0
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
        rows = [{**row, "expires_at": until} for row in self._rejections]
        self._rejections = []
        warehouse.merge(CACHE_TABLE, pa.RecordBatch.from_pylist(rows, CACHE_SCHEMA),
                        ("cache_key",))
        return len(rows)

    def __len__(self) -> int:
        return len(self._entries)


def clear_model_cache(warehouse: Warehouse, step: str, *, rejections_only: bool = False
                      ) -> int:
    """Delete the cached entries of ``step`` (only its remembered rejections with
    ``rejections_only``); the number deleted. The next run asks again for what they
    held."""
    if CACHE_TABLE not in warehouse.tables():
        return 0
    table = warehouse.read_table(CACHE_TABLE)
    doomed = pc.equal(table.column("step"), step)
    if rejections_only:
        doomed = pc.and_(doomed, pc.is_null(table.column("output")))
    doomed = pc.fill_null(doomed, False)
    deleted = pc.sum(doomed.cast(pa.int64())).as_py() or 0
    if deleted:
        warehouse.replace_tables({CACHE_TABLE: table.filter(pc.invert(doomed))})
    return deleted
