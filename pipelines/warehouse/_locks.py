"""One writer per stream: who holds a stream, and the error a second run gets.

A run holds its stream's lock from loading the state to its last commit. Within one
process the lock is an entry in :data:`PROCESS_LOCKS` (two threads, or two warehouse
objects on the same database); across processes the warehouse adds its own (DuckDB lets
only one process open the file at all; PostgreSQL takes an advisory lock). A second run
of the same stream waits up to ``lock_wait`` seconds, then fails with one line naming the
run that holds it. Different streams never wait for each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from dataclasses import dataclass

from connectors import HeadwaterError

# Runs of one stream started close together (a schedule tick and a sensor, a retry
# racing the end of the run it retries) wait this long for the holder to finish; a run
# still going after that would land the same rows anyway, so the newcomer fails at once
# naming the holder rather than queueing unseen behind it.
DEFAULT_LOCK_WAIT = 5.0


class StreamLocked(HeadwaterError):
    """Another run is landing the same stream; this one waited ``lock_wait`` and gave up.

    Retriable: once the holder finishes, a new run continues from its checkpoint.
    """

    retriable = True


@dataclass(frozen=True)
class LockHolder:
    """The run that holds a stream: its id and since when, and where it runs."""

    run_id: str | None
    since: dt.datetime | None
    where: str

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id else "another run"
        since = f" since {self.since.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" \
            if self.since else ""
        return f"{run}{since} ({self.where})"


def stream_locked(key: str, holder: LockHolder, waited: float) -> StreamLocked:
    """The one-line error for a run that found ``key`` held by ``holder``."""
    return StreamLocked(
        f"stream {key} is being landed by {holder.describe()}; waited {waited:g}s. "
        "Let that run finish (or stop it), or set lock_wait on the warehouse URL to wait "
        "longer"
    )


class ProcessLocks:
    """Stream locks held by runs in this process, by (warehouse scope, stream key)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], LockHolder] = {}
        self._changed = threading.Condition()

    def acquire(self, scope: str, key: str, holder: LockHolder, deadline: float
                ) -> LockHolder | None:
        """Take the lock for ``holder``; the current holder if it is still held at
        ``deadline`` (a ``time.monotonic()`` value)."""
        with self._changed:
            while (scope, key) in self._held:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._held[(scope, key)]
                self._changed.wait(remaining)
            self._held[(scope, key)] = holder
            return None

    def holders(self, scope: str) -> dict[str, LockHolder]:
        """Stream key -> holder, of the locks held in ``scope`` now."""
        with self._changed:
            return {key: holder for (held_scope, key), holder in self._held.items()
                    if held_scope == scope}

    def release(self, scope: str, key: str) -> None:
        with self._changed:
            self._held.pop((scope, key), None)
            self._changed.notify_all()


PROCESS_LOCKS = ProcessLocks()


def lock_id(*parts: str) -> int:
    """A signed 64-bit number naming ``parts`` (a PostgreSQL advisory lock key)."""
    digest = hashlib.blake2b("\0".join(("headwater", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
