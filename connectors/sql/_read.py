"""One read of one SQL stream: phases, keyset position, retries and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from .._batching import empty_batch
from .._errors import DataContractError, RetriableSourceError
from .._incremental import MissingCursor
from .._state import with_checkpoint
from .._stream import Stream
from ._keyset import chunk_select
from ._plan import ReadPlan
from ._translate import translate_error

if TYPE_CHECKING:
    from ._relational import RelationalConnector

# Boundary keys kept in state for de-duplication at the saved cursor. Past this many
# rows sharing one cursor value, the warehouse merge alone removes the repeats.
MAX_BOUNDARY_KEYS = 1000


class StreamRead:
    """One read of one stream: phases, keyset position, retries and checkpoints."""

    def __init__(self, connector: RelationalConnector, stream: Stream, plan: ReadPlan,
                 state: dict[str, Any]) -> None:
        self.connector = connector
        self.stream = stream
        self.plan = plan
        self.saved_cursor = state.get("cursor")
        self.saved_boundary = [tuple(k) for k in state.get("boundary") or []]
        resume = state.get("resume") or {}
        self.resume_phase = resume.get("phase")
        self.after = resume.get("after")
        self.max_cursor = resume.get("max_cursor", self.saved_cursor)
        self.max_boundary = [tuple(k) for k in resume.get("max_boundary", self.saved_boundary)]
        inc = stream.incremental
        self.window = inc.window(self.saved_cursor) if inc else None
        self.key_range = getattr(stream, "key_range", None)

    def phases(self) -> list[str]:
        inc = self.stream.incremental
        phases = ["nulls"] if inc and inc.on_missing_cursor == MissingCursor.INCLUDE else []
        phases.append("rows")
        if self.resume_phase in phases:
            return phases[phases.index(self.resume_phase):]
        return phases

    def batches(self) -> Iterator[pa.RecordBatch]:
        inc = self.stream.incremental
        if not self.plan.key_enforced and self.connector.any_null_key(self.plan):
            raise DataContractError(
                f"stream {self.stream.name!r}: rows with a null in primary-key column(s) "
                f"{list(self.plan.primary_key)} exist; nulls cannot be read in resumable "
                "chunks or merged. Declare a primary key without nulls"
            )
        must_check = inc is not None and inc.on_missing_cursor == MissingCursor.FAIL
        if must_check and self.connector.any_null_cursor(self.plan):
            raise DataContractError(
                f"stream {self.stream.name!r}: rows with no {inc.cursor_field!r} value exist; "
                "fix the source or set on_missing_cursor to 'include' or 'skip'"
            )
        for phase in self.phases():
            if phase != self.resume_phase:
                self.after = None
            yield from self._read_phase(phase)
        yield with_checkpoint(empty_batch(self.plan.schema), self.final_state())

    def final_state(self) -> dict[str, Any]:
        if not self.stream.incremental:
            return {}
        return {"cursor": self.max_cursor, "boundary": [list(k) for k in self.max_boundary]}

    def _statement(self, phase: str) -> sa.Select:
        plan = self.plan
        cursor = plan.column(plan.cursor_field) if plan.cursor_field else None
        window = (self.window.start, self.window.end) if self.window else (None, None)
        return chunk_select(
            plan.source, plan.columns, [plan.column(k) for k in plan.order_key(phase)],
            limit=self.connector.chunk_size, after=self.after, cursor=cursor, window=window,
            null_cursor=phase == "nulls", key_range=self._key_range_bounds(),
        )

    def _key_range_bounds(self) -> tuple[Any, Any, Any] | None:
        if self.key_range is None:
            return None
        names = [f.name for f in self.plan.schema]
        column = self.connector.resolve_column(self.stream, self.key_range.column, names,
                                               "partition key column")
        return self.plan.column(column), self.key_range.start, self.key_range.end

    def _read_phase(self, phase: str) -> Iterator[pa.RecordBatch]:
        key_index = [self.plan.schema.get_field_index(k) for k in self.plan.order_key(phase)]
        failures = 0
        while True:
            rows_in_chunk = 0
            started_after = self.after
            try:
                for batch in self.connector.fetch(self._statement(phase), self.plan):
                    failures = 0
                    rows_in_chunk += batch.num_rows
                    self.after = [batch.column(i)[-1].as_py() for i in key_index]
                    if phase == "rows" and self.plan.cursor_field:
                        batch = self._track_cursor(batch)
                    yield with_checkpoint(batch, self.checkpoint(phase))
            except Exception as exc:
                if not _is_source_failure(exc):
                    raise
                error = translate_error(exc, self.connector.where)
                if not isinstance(error, RetriableSourceError):
                    raise error from exc
                failures += 1
                self.connector.reset_after_failure()
                self.connector.retrier.wait_or_raise(
                    failures, error, f"reading {self.stream.name!r}"
                )
                continue
            if rows_in_chunk < self.connector.chunk_size:
                return
            if self.after == started_after:
                raise DataContractError(
                    f"stream {self.stream.name!r}: a full chunk ended where it started "
                    f"(key {self.after!r}); the source does not order or compare the key "
                    "consistently. Declare a primary key of comparable columns"
                )

    def checkpoint(self, phase: str) -> dict[str, Any]:
        state: dict[str, Any] = {"resume": {"phase": phase, "after": self.after}}
        if self.stream.incremental:
            state["cursor"] = self.saved_cursor
            state["boundary"] = [list(k) for k in self.saved_boundary]
            state["resume"]["max_cursor"] = self.max_cursor
            state["resume"]["max_boundary"] = [list(k) for k in self.max_boundary]
        return state

    def _key_tuples(self, batch: pa.RecordBatch, mask: pa.Array) -> list[tuple]:
        keys = batch.filter(mask).select(list(self.plan.primary_key)).to_pylist()
        return [tuple(row[k] for k in self.plan.primary_key) for row in keys]

    def _track_cursor(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Drop rows already delivered at the saved cursor; track the new maximum."""
        cursor = batch.column(self.plan.cursor_field)
        if self.saved_boundary and self.saved_cursor is not None:
            at_saved = pc.fill_null(pc.equal(cursor, pa.scalar(self.saved_cursor, cursor.type)),
                                    False)
            if pc.any(at_saved).as_py():
                seen = set(self.saved_boundary)
                keys = batch.select(list(self.plan.primary_key)).to_pylist()
                flags = at_saved.to_pylist()
                keep = [not (flag and tuple(r.values()) in seen) for flag, r in zip(flags, keys,
                                                                                    strict=True)]
                batch = batch.filter(pa.array(keep))
                cursor = batch.column(self.plan.cursor_field)
        if batch.num_rows == 0:
            return batch
        last = cursor[-1].as_py()
        if self.max_cursor is not None and last < self.max_cursor:
            return batch  # re-read margin behind the saved cursor (lag): keep the maximum
        at_last = pc.fill_null(pc.equal(cursor, cursor[-1]), False)
        keys = self._key_tuples(batch, at_last)
        if last == self.max_cursor:
            seen = set(self.max_boundary)
            keys = self.max_boundary + [k for k in keys if k not in seen]
        self.max_cursor = last
        self.max_boundary = keys if len(keys) <= MAX_BOUNDARY_KEYS else []
        return batch


def _is_source_failure(exc: BaseException) -> bool:
    """Errors raised by talking to the source, as opposed to bugs or contract breaks.

    The fast paths raise their drivers' own errors (ADBC, arrow-odbc), not
    SQLAlchemy-wrapped ones.
    """
    if isinstance(exc, sa_exc.SQLAlchemyError | RetriableSourceError | OSError):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("adbc_driver", "arrow_odbc", "psycopg", "pymysql", "sqlite3",
                              "pyodbc"))
