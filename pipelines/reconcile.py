"""Reconciliation: the rows of an incremental stream that its source no longer holds.

An incremental read sees only rows that changed, never the ones deleted. A stream that
declares ``reconcile_deletes = "hard" | "soft"`` can be reconciled on a schedule of its
own: a key-only scan of the source (``Connector.read_keys``: ``SELECT key ORDER BY key``
in keyset chunks) lands every key in ``_hw_keys_<connector>__<stream>``, chunk by chunk,
each chunk with its checkpoint under the state key ``<connector>.<stream>#reconcile``; a
killed scan resumes from there. Once the scan is complete, one transaction removes (or
marks with ``_hw_deleted_at``) the landed rows whose key it did not find, drops the keys
table and records the outcome.

Only rows landed before the scan began are judged, so a row landed between a killed scan
and its resumption is never taken for deleted. The scan holds the stream as a run does
(``Warehouse.stream_lock``): runs of the stream wait for it, as for each other.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors import ConfigurationError, Connector, checkpoint_of, without_checkpoint

from .runner import new_run_id, note_deletions, state_key
from .warehouse import RowsGone, Warehouse, raw_table_name


def reconcile_key(key: str) -> str:
    """Where a stream's reconciliation keeps its progress."""
    return f"{key}#reconcile"


def keys_table_name(connector: str, stream: str) -> str:
    """Where a reconciliation lands the keys its scan found."""
    return f"_hw_keys_{connector}__{stream}"


@dataclass
class ReconcileResult:
    """What one reconciliation did: keys scanned (by this run), rows removed or marked."""

    connector: str
    stream: str
    table: str
    deletes: str
    keys: int = 0
    chunks: int = 0
    removed: int = 0
    resumed: bool = False
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.connector}.{self.stream}"


def reconcile_stream(connector: Connector, stream: str, warehouse: Warehouse, *,
                     run_id: str | None = None, lock_wait: float | None = None,
                     on_chunk: Callable[[ReconcileResult], None] | None = None
                     ) -> ReconcileResult:
    """Find the landed rows of ``stream`` that its source no longer holds, and remove or
    mark them as the stream's ``reconcile_deletes`` says; resumes a scan that was
    stopped. ``on_chunk`` is called after each chunk of keys is stored."""
    declared = connector.stream(stream)
    where = f"connector {connector.name!r}, stream {declared.name!r}"
    if declared.full_refresh:
        raise ConfigurationError(
            f"{where} is a full refresh: every complete read removes the rows no longer at "
            "the source (deletes), so there is nothing to reconcile"
        )
    if declared.reconcile_deletes is None:
        raise ConfigurationError(
            f"{where}: declare reconcile_deletes = \"hard\" or \"soft\" on the stream to "
            "reconcile it (what becomes of rows no longer at the source)"
        )
    key = state_key(connector.name, declared.name)
    table = raw_table_name(connector.name, declared.name)
    keys_table = keys_table_name(connector.name, declared.name)
    run_id = run_id or new_run_id()
    started = time.monotonic()
    with warehouse.stream_lock(key, run_id, wait=lock_wait):
        tables = set(warehouse.tables())
        if table not in tables:
            raise ConfigurationError(f"{where}: {table} is not landed yet, so there is "
                                     "nothing to reconcile; run the stream first")
        scan = _scan_to_resume(warehouse, reconcile_key(key), keys_table in tables)
        if scan is None:
            warehouse.drop_table(keys_table)
            scan = {"started_at": dt.datetime.now(dt.UTC), "position": None, "keys": 0}
        result = ReconcileResult(connector.name, declared.name, table,
                                 declared.reconcile_deletes, resumed=scan["position"] is not None)
        primary_key = connector.primary_key(declared)
        for batch in connector.read_keys(declared, scan["position"]):
            carried = checkpoint_of(batch)
            if carried is None and not batch.num_rows:
                continue
            scan = {**scan, "position": carried if carried is not None else scan["position"],
                    "keys": scan["keys"] + batch.num_rows}
            keys = batch.replace_schema_metadata(without_checkpoint(batch.schema).metadata)
            warehouse.merge(keys_table, keys, primary_key, state_key=reconcile_key(key),
                            state={"scan": scan})
            result.keys += batch.num_rows
            result.chunks += 1
            if on_chunk is not None:
                on_chunk(result)
        gone = RowsGone(declared.reconcile_deletes, keys_table=keys_table,
                        primary_key=primary_key, before=scan["started_at"], drop=(keys_table,))
        done = {"last": {"finished_at": dt.datetime.now(dt.UTC), "keys": scan["keys"],
                         "run_id": run_id}}
        settled = warehouse.remove_gone(table, gone, state_key=reconcile_key(key), state=done)
        result.removed = settled.removed
        if settled.removed:
            note_deletions(warehouse, table, run_id)
    result.seconds = time.monotonic() - started
    return result


def _scan_to_resume(warehouse: Warehouse, key: str, keys_landed: bool
                    ) -> dict[str, Any] | None:
    """The scan a stopped reconciliation left, if its keys are still there."""
    saved = (warehouse.load_state(key) or {}).get("scan")
    return saved if saved and keys_landed else None
