"""The plain-Python runner: a connector's streams into the warehouse, checkpoint by checkpoint.

Reading and writing overlap: a producer thread pulls batches from the connector while the
caller's thread merges the previous one (both release the GIL in Arrow, the drivers and
DuckDB), with at most ``prefetch`` batches in flight so memory stays bounded.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pyarrow as pa

from connectors import ConfigurationError, Connector, KeyRange, Stream, checkpoint_of

from .progress import Progress, Silent
from .warehouse import Provenance, Warehouse, raw_table_name

T = TypeVar("T")

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

    @property
    def key(self) -> str:
        return f"{self.connector}.{self.stream}"


def state_key(connector: str, stream: str) -> str:
    return f"{connector}.{stream}"


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
    waiting: list[pa.RecordBatch] = []

    def commit(checkpoint: dict[str, Any] | None) -> None:
        rows = sum(b.num_rows for b in waiting)
        if rows:
            data = waiting[0] if len(waiting) == 1 else pa.Table.from_batches(waiting)
            warehouse.merge(result.table, data, primary_key, provenance=provenance,
                            state_key=key if checkpoint is not None else None,
                            state=checkpoint)
        elif checkpoint is not None:
            warehouse.save_state(key, checkpoint, run_id)
        waiting.clear()
        result.rows += rows
        result.commits += 1
        result.state = checkpoint or {}
        progress.update(key, result.rows)
        if on_batch is not None:
            on_batch(result)

    pending_rows = 0
    checkpoint: dict[str, Any] | None = None
    for batch in prefetched(connector.read(declared, state), prefetch):
        carried = checkpoint_of(batch)
        checkpoint = carried if carried is not None else checkpoint
        result.batches += 1
        if batch.num_rows:
            waiting.append(batch)
            pending_rows += batch.num_rows
        due = pending_rows >= every.rows or (
            pending_rows and time.monotonic() - last_commit >= every.seconds)
        if due or (carried is not None and not batch.num_rows):
            commit(checkpoint)
            pending_rows = 0
            last_commit = time.monotonic()
    if waiting:
        commit(checkpoint)
    result.seconds = time.monotonic() - started
    return result


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
