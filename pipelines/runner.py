"""The plain-Python runner: a connector's streams into the warehouse, checkpoint by checkpoint.

Reading and writing overlap: a producer thread pulls batches from the connector while the
caller's thread merges the previous one (both release the GIL in Arrow, the drivers and
DuckDB), with at most ``prefetch`` batches in flight so memory stays bounded.

Each commit is held to the stream's ``schema_contract`` before it lands (``_contract``).
A full-refresh stream mirrors its source: the transaction that ends a complete read also
removes (``deletes = "hard"``, the default) or marks (``"soft"``) the rows that read did
not bring. The runs of one read, resumed after a crash too, are recorded under the state
key ``<connector>.<stream>#full_read`` until it ends, so rows a killed run landed count
as read.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from connectors import ConfigurationError, Connector, KeyRange, Stream, checkpoint_of

from ._contract import hold_to_contract
from .progress import Progress, Silent
from .warehouse import Provenance, RowsGone, Warehouse, raw_table_name, rejects_table_name

T = TypeVar("T")
log = logging.getLogger("headwater.runner")

# Rows merged per transaction: a commit happens once this many rows wait. DuckDB writes
# whole row groups (122,880 rows) straight to compressed storage, and commits of about
# one or two row groups leave almost nothing for the checkpoint at close (bench/RESULTS.md).
COMMIT_ROWS = 122_880
# ... and at least this often (seconds) while batches arrive, so a run interrupted more
# often than it reads COMMIT_ROWS rows (a slow source, a short-lived worker) still keeps
# its progress; a fast load reaches COMMIT_ROWS first and commits as before.
COMMIT_SECONDS = 5.0


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class StreamResult:
    """What one stream's run did."""

    connector: str
    stream: str
    table: str
    rows: int = 0
    batches: int = 0
    commits: int = 0
    seconds: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)
    # Rows whose cursor is not past the saved one: re-read within the lag (late commits
    # land this way), merged by key without duplicating; None when it cannot be told.
    reread: int | None = None
    #: Rows the end of a full read removed (``deletes = "hard"``) or marked (``"soft"``)
    #: as no longer at the source.
    removed: int = 0
    deletes: str | None = None
    #: Changes the table took under ``schema_contract = "evolve"`` (added, widened).
    schema_changes: list[str] = field(default_factory=list)
    #: Values of new columns dropped under ``schema_contract = "discard_columns"``.
    discarded: dict[str, int] = field(default_factory=dict)
    #: Records sent to ``rejects_table`` under ``schema_contract = "discard_rows"``.
    rejected: int = 0
    rejects_table: str | None = None

    @property
    def key(self) -> str:
        return f"{self.connector}.{self.stream}"

    @property
    def new_rows(self) -> int:
        """Rows past the saved cursor (every row, for a first or full read)."""
        return self.rows - (self.reread or 0)


def state_key(connector: str, stream: str) -> str:
    return f"{connector}.{stream}"


def deletions_key(table: str) -> str:
    """The state entry that says when rows were last removed from or marked deleted in
    ``table``: incremental normalization rebuilds an entity after that (it reads only
    rows landed since its last run, and a delete lands none)."""
    return f"deletions.{table}"


def note_deletions(warehouse: Warehouse, table: str, run_id: str | None = None) -> None:
    warehouse.save_state(deletions_key(table), {"at": dt.datetime.now(dt.UTC)}, run_id)


def full_read_key(key: str) -> str:
    """Where the runs of a full read in progress are recorded."""
    return f"{key}#full_read"


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """Iterate ``items`` in a producer thread, at most ``depth`` items ahead."""
    if depth <= 0:
        yield from items
        return
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    break
            else:
                put(("done", None))
        except BaseException as exc:
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="headwater-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        stop.set()
        # Wait for the reader to let go of its connection before the caller closes it;
        # it stops at its next hand-off (or when its current query returns).
        thread.join()


def run_stream(
    connector: Connector,
    stream: str,
    warehouse: Warehouse,
    *,
    run_id: str | None = None,
    progress: Progress | None = None,
    prefetch: int = 2,
    commit_rows: int = COMMIT_ROWS,
    on_batch: Callable[[StreamResult], None] | None = None,
    window: tuple[Any, Any] | None = None,
    commit_seconds: float = COMMIT_SECONDS,
    lock_wait: float | None = None,
    key_range: KeyRange | None = None,
) -> StreamResult:
    """Land one stream in ``raw_<connector>__<stream>``, resuming from its saved state.

    Batches are merged together with the state after the last of them in one
    transaction once ``commit_rows`` rows are waiting, or a batch arrives
    ``commit_seconds`` after the last commit (and at the end). ``on_batch`` is called
    after each commit (progress hooks, fault-injection tests).

    The run is the stream's one writer: it holds the warehouse's stream lock from loading
    the state to its last commit. Another run of the same stream makes this one wait up
    to ``lock_wait`` seconds (default: the warehouse's ``lock_wait``), then raise
    ``StreamLocked`` naming that run.

    ``window`` reads one partition, cursor values in ``[start, end)``, instead of
    continuing from the stream's state; its checkpoints are kept under a key of its own
    (``connector.stream@start``), so a killed partition resumes and a backfill of many
    partitions never moves the stream's incremental cursor (partitions hold locks of
    their own, so they land side by side). ``key_range`` does the same for the rows of
    one range of a key column (``connector.stream@id[1000,2000)``), for SQL and ODBC
    streams without a usable time column.
    """
    declared = connector.stream(stream)
    run_id = run_id or new_run_id()
    key = state_key(connector.name, declared.name)
    if window is not None:
        declared = windowed(declared, window)
        key = f"{key}@{_bound_text(window[0])}"
    if key_range is not None:
        declared = key_ranged(connector, declared, key_range)
        key = f"{key}@{key_range.label()}"
    with warehouse.stream_lock(key, run_id, wait=lock_wait):
        return _land(connector, declared, warehouse, key, run_id, progress or Silent(),
                     prefetch, _Every(commit_rows, commit_seconds), on_batch)


@dataclass(frozen=True)
class _Every:
    """When the runner commits: every ``rows`` rows or ``seconds`` seconds."""

    rows: int
    seconds: float


def _land(connector: Connector, declared: Stream, warehouse: Warehouse, key: str, run_id: str,
          progress: Progress, prefetch: int, every: _Every,
          on_batch: Callable[[StreamResult], None] | None) -> StreamResult:
    result = StreamResult(connector.name, declared.name, raw_table_name(connector.name,
                                                                        declared.name))
    state = warehouse.load_state(key)
    extracted_at = dt.datetime.now(dt.UTC)
    provenance = Provenance(connector.name, declared.name, run_id, extracted_at)
    started = last_commit = time.monotonic()
    progress.start(key)
    primary_key = connector.primary_key(declared)
    ending = _begin_full_read(warehouse, declared, key, run_id, state, primary_key,
                              rejects_table_name(connector.name, declared.name),
                              connector.full_reads_mirror_source)
    result.deletes = ending.deletes if ending is not None else None
    landing = _Landing(connector, declared, warehouse, result, provenance, primary_key)

    def commit(checkpoint: dict[str, Any] | None, gone: RowsGone | None = None) -> None:
        landing.commit(key if checkpoint is not None else None, checkpoint, gone)
        progress.update(key, result.rows)
        if on_batch is not None:
            on_batch(result)

    pending_rows = 0
    checkpoint: dict[str, Any] | None = None
    behind = _RereadCounter(declared, state)
    held = False  # a checkpoint-only commit waiting to see whether the read goes on
    try:
        for batch in prefetched(connector.read(declared, state), prefetch):
            if held:
                held = False
                commit(checkpoint)
                pending_rows, last_commit = 0, time.monotonic()
            carried = checkpoint_of(batch)
            checkpoint = carried if carried is not None else checkpoint
            result.batches += 1
            if batch.num_rows:
                landing.waiting.append(batch)
                pending_rows += batch.num_rows
                behind.count(batch)
                progress.update(key, result.rows + pending_rows)
            due = pending_rows >= every.rows or (
                pending_rows and time.monotonic() - last_commit >= every.seconds)
            if ending is not None and carried is not None and not batch.num_rows and not due:
                held = True  # maybe the read's last batch: its commit ends the read
            elif due or (carried is not None and not batch.num_rows):
                commit(checkpoint)
                pending_rows = 0
                last_commit = time.monotonic()
    except BaseException:
        if held:  # the read failed after a checkpoint: keep what it covers, as ever
            commit(checkpoint)
        raise
    if ending is not None:
        commit(checkpoint if held or landing.waiting else None, ending)
    elif landing.waiting:
        commit(checkpoint)
    result.seconds = time.monotonic() - started
    result.reread = behind.rows
    return result


class _RereadCounter:
    """Counts the rows of an incremental read that are not past the saved cursor: the
    margin the lag re-reads. ``rows`` is None when the read did not start from a saved
    cursor or the comparison cannot be made."""

    def __init__(self, stream: Stream, state: dict[str, Any] | None) -> None:
        saved = (state or {}).get("cursor")
        self.field = stream.cursor_field if saved is not None else None
        self.saved = saved
        self.rows: int | None = 0 if self.field else None

    def count(self, batch: pa.RecordBatch) -> None:
        if self.rows is None or self.field not in batch.schema.names:
            self.rows = None
            return
        column = batch.column(self.field)
        try:
            past = pc.greater(column, pa.scalar(self.saved, type=column.type))
            self.rows += batch.num_rows - pc.sum(past.fill_null(True)).as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError,
                TypeError, ValueError):
            self.rows = None


def _begin_full_read(warehouse: Warehouse, declared: Stream, key: str, run_id: str,
                     state: dict[str, Any] | None, primary_key: tuple[str, ...],
                     rejects: str, mirrors: bool) -> RowsGone | None:
    """For a full-refresh stream that mirrors its source: record this run among the runs
    of the read in progress (before it lands a row), and what the end of the read
    removes: rows none of its runs landed or sent to ``rejects``. ``None`` for streams
    that keep every row."""
    mode = declared.deletes_mode
    if "@" in key:
        return None  # a partition (a window or key range) reads part of the source only
    if declared.deletes is None and not mirrors:
        mode = None  # a connector of a new kind says when its reads are complete
    if mode not in ("hard", "soft"):
        return None
    marker = full_read_key(key)
    runs = list((warehouse.load_state(marker) or {}).get("runs") or [])
    if not runs and (state or {}).get("resume"):
        log.warning("stream %s: resuming a read begun before its runs were recorded; rows "
                    "no longer at the source are removed at the end of the next full read",
                    key)
        return None
    if run_id not in runs:
        runs.append(run_id)
        warehouse.save_state(marker, {"runs": runs}, run_id)
    return RowsGone(mode, runs=tuple(runs), seen_in=(rejects,) if primary_key else (),
                    primary_key=primary_key, forget=(marker,))


class _Landing:
    """The commits of one run of one stream: waiting batches, held to the stream's
    schema contract, merged with their checkpoint."""

    def __init__(self, connector: Connector, declared: Stream, warehouse: Warehouse,
                 result: StreamResult, provenance: Provenance,
                 primary_key: tuple[str, ...]) -> None:
        self.declared, self.warehouse, self.result = declared, warehouse, result
        self.provenance, self.primary_key = provenance, primary_key
        self.where = f"connector {connector.name!r}, stream {declared.name!r}"
        self.rejects = rejects_table_name(connector.name, declared.name)
        self.waiting: list[pa.RecordBatch] = []
        self._settled_schema: pa.Schema | None = None  # landed with no change to hold

    def commit(self, state_key: str | None, state: dict[str, Any] | None,
               gone: RowsGone | None) -> None:
        data = _combined(self.waiting) if self.waiting else None
        if data is not None:
            data = self._held(data)
        table, result = self.result.table, self.result
        if gone is not None:
            written, removed = self.warehouse.remove_gone(
                table, gone, batch=data, primary_key=self.primary_key,
                provenance=self.provenance, state_key=state_key, state=state)
            result.removed += removed
            if removed:
                note_deletions(self.warehouse, table, self.provenance.run_id)
                log.info("%s: %d row(s) no longer at the source %s in %s", self.where,
                         removed, "removed" if gone.deletes == "hard" else "marked deleted",
                         table)
        elif data is not None:
            written = self.warehouse.merge(table, data, self.primary_key,
                                           provenance=self.provenance,
                                           state_key=state_key, state=state)
        else:
            written = 0
            if state_key is not None:
                self.warehouse.save_state(state_key, state or {}, self.provenance.run_id)
        self.waiting.clear()
        result.rows += written
        if data is not None or state_key is not None:  # not a removal on its own
            result.commits += 1
            result.state = state or {}

    def _held(self, data: pa.Table) -> pa.Table:
        """``data`` as the stream's schema contract lets it land; rejects merged first."""
        if self._settled_schema is not None and data.schema.equals(self._settled_schema):
            return data
        diff = self.warehouse.schema_changes(self.result.table, data.schema)
        held = hold_to_contract(self.declared.schema_contract, diff, data, where=self.where,
                                table=self.result.table, primary_key=self.primary_key)
        self.result.schema_changes += [c for c in held.changes
                                       if c not in self.result.schema_changes]
        for name, values in held.discarded.items():
            if name not in self.result.discarded:
                log.warning("%s: new column %r dropped (schema_contract = "
                            "\"discard_columns\")", self.where, name)
            self.result.discarded[name] = self.result.discarded.get(name, 0) + values
        if held.rejects is not None:
            self.warehouse.merge(self.rejects, held.rejects, self.primary_key,
                                 provenance=self.provenance)
            self.result.rejected += held.rejects.num_rows
            self.result.rejects_table = self.rejects
        if not diff:
            self._settled_schema = data.schema
        return held.data


def _combined(batches: list[pa.RecordBatch]) -> pa.RecordBatch | pa.Table:
    """Batches as one table; batches whose columns differ (a field that appeared in a
    later page) are joined with nulls where a batch lacks a column."""
    if len(batches) == 1:
        return pa.Table.from_batches(batches)
    first = batches[0].schema
    if all(b.schema.equals(first) for b in batches[1:]):
        return pa.Table.from_batches(batches)
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches],
                            promote_options="default")


def windowed(stream: Stream, window: tuple[Any, Any]) -> Stream:
    """``stream`` limited to cursor values in ``[start, end)``."""
    if stream.incremental is None:
        raise ConfigurationError(
            f"stream {stream.name!r} has no cursor, so it cannot be read by window; "
            "declare cursor = ... to partition it"
        )
    start, end = window
    return replace(stream, incremental=replace(stream.incremental, start=start, end=end))


def key_ranged(connector: Connector, stream: Stream, key_range: KeyRange) -> Stream:
    """``stream`` limited to the rows of ``key_range`` (SQL and ODBC streams)."""
    if not hasattr(stream, "key_range"):
        raise ConfigurationError(
            f"connector {connector.name!r}, stream {stream.name!r}: a {connector.kind} stream "
            "cannot be read by key range; partition it by day of its cursor "
            "(partition = \"daily\") instead"
        )
    return replace(stream, key_range=key_range)


def _bound_text(bound: Any) -> str:
    return bound.isoformat() if hasattr(bound, "isoformat") else str(bound)


def run_connector(
    connector: Connector,
    warehouse: Warehouse,
    streams: list[str] | None = None,
    **options: Any,
) -> list[StreamResult]:
    """Run ``streams`` (default: all) of one connector, one after another."""
    names = streams or [s.name for s in (connector.streams or connector.discover())]
    run_id = options.pop("run_id", None) or new_run_id()
    return [run_stream(connector, name, warehouse, run_id=run_id, **options) for name in names]
