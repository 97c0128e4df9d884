"""The one incremental vocabulary shared by every kind of connector.

A stream that syncs incrementally names a cursor field. Each run reads the window
``[start, end)``: ``start`` is the saved cursor minus ``lag`` (or the configured start on
the first run), ``end`` is open unless configured; unless a lag is given, a timestamp
cursor re-reads :data:`DEFAULT_TIMESTAMP_LAG` behind the saved cursor. Rows exactly at the
saved cursor that were already delivered are recognised by primary key and not delivered
again. Rows whose cursor is missing follow ``on_missing_cursor``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._errors import DataContractError


class MissingCursor(StrEnum):
    """What to do with a row whose cursor field is null or absent."""

    INCLUDE = "include"  # deliver it on every run (the merge keeps it single)
    SKIP = "skip"  # never deliver it
    FAIL = "fail"  # stop the stream with a DataContractError


@dataclass(frozen=True)
class Window:
    """A half-open cursor interval ``[start, end)``; ``None`` means unbounded."""

    start: Any = None
    end: Any = None

    def contains(self, value: Any) -> bool:
        if value is None:
            return False
        if self.start is not None and value < self.start:
            return False
        return self.end is None or value < self.end


@dataclass(frozen=True)
class KeyRange:
    """Rows whose ``column`` lies in ``[start, end)`` (``None``: unbounded on that side):
    one partition of a table read by key range, for tables without a usable time column.

    A stream given a key range reads only those rows, in the same keyset chunks and with
    the same checkpoints as a whole read.
    """

    column: str
    start: Any = None
    end: Any = None

    def label(self) -> str:
        """``id[1000,2000)``: names the partition in state keys and messages."""
        return f"{self.column}[{_bound_text(self.start)},{_bound_text(self.end)})"


def _bound_text(bound: Any) -> str:
    if bound is None:
        return ""
    return bound.isoformat() if hasattr(bound, "isoformat") else str(bound)


# A transaction that sets ``updated_at = now()`` commits some time later; a run that read
# past that time in between never sees the row unless the next run re-reads a margin.
# Five minutes covers ordinary transactions and clock skew between application servers;
# re-read rows are merged by primary key, so the margin costs a re-read, not duplicates.
DEFAULT_TIMESTAMP_LAG = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Incremental:
    """How a stream syncs incrementally.

    ``lag`` re-reads a margin behind the saved cursor, for sources whose cursor values
    commit out of order (a ``timedelta`` for timestamps, a number for sequences). Left
    unset, a timestamp cursor gets :data:`DEFAULT_TIMESTAMP_LAG` and any other cursor
    none; ``lag=0`` (or a zero ``timedelta``) turns the margin off.
    """

    cursor_field: str
    start: Any = None
    end: Any = None
    lag: Any = None
    on_missing_cursor: MissingCursor = MissingCursor.INCLUDE

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_missing_cursor", MissingCursor(self.on_missing_cursor))

    def window(self, saved_cursor: Any = None) -> Window:
        """The window to read given the cursor saved by the last completed run."""
        if saved_cursor is None:
            return Window(self.start, self.end)
        lag = self.lag_for(saved_cursor)
        start = saved_cursor - lag if lag else saved_cursor
        floor = _like(self.start, saved_cursor)
        if floor is not None and start < floor:
            start = floor
        return Window(start, _like(self.end, saved_cursor))

    def lag_for(self, saved_cursor: Any) -> Any:
        """The lag behind ``saved_cursor``: the configured one, else the default for
        its kind (timestamps only: a date or a sequence has no commit-time skew)."""
        if self.lag is not None:
            return self.lag
        return DEFAULT_TIMESTAMP_LAG if isinstance(saved_cursor, dt.datetime) else None


def _like(bound: Any, cursor: Any) -> Any:
    """A configured date bound as a datetime when the cursor holds datetimes (a TOML
    date such as ``start = 2024-01-01`` for a timestamp column)."""
    if (isinstance(bound, dt.date) and not isinstance(bound, dt.datetime)
            and isinstance(cursor, dt.datetime)):
        return dt.datetime.combine(bound, dt.time(), tzinfo=cursor.tzinfo)
    return bound


# Boundary keys kept in state for de-duplication at the saved cursor. Past this many
# records sharing one cursor value, the warehouse merge alone removes the repeats.
MAX_BOUNDARY_KEYS = 1000


class CursorTracker:
    """Record-at-a-time incremental bookkeeping for connectors that see dicts (REST, SOAP).

    :meth:`admit` says whether a record belongs in this run: inside the window, and not
    one already delivered at the saved cursor (recognised by its key in ``boundary``).
    It also tracks the largest cursor seen and the keys of the records at it, which
    become the next run's saved cursor and boundary (:meth:`state`).
    """

    def __init__(self, incremental: Incremental, saved_cursor: Any = None,
                 boundary: list[Any] | None = None, *, resume: dict[str, Any] | None = None
                 ) -> None:
        self.incremental = incremental
        self.saved_cursor = saved_cursor
        self.boundary = {tuple(k) for k in boundary or []}
        self.window = incremental.window(saved_cursor)
        resume = resume or {}
        self.max_cursor = resume.get("max_cursor", saved_cursor)
        self.max_keys = [tuple(k) for k in resume.get("max_boundary", boundary or [])]
        self._overflow = False
        self._bounds_fitted = False

    def admit(self, cursor: Any, key: tuple) -> bool:
        """Whether to deliver a record with ``cursor`` and primary ``key``."""
        if cursor is None:
            policy = self.incremental.on_missing_cursor
            if policy == MissingCursor.FAIL:
                raise_missing(self.incremental.cursor_field, key)
            return policy == MissingCursor.INCLUDE
        if isinstance(cursor, dt.datetime) and not self._bounds_fitted:
            # A configured date bound compares with datetime cursors as midnight.
            self.window = Window(_like(self.window.start, cursor), _like(self.window.end, cursor))
            self._bounds_fitted = True
        if not self.window.contains(cursor):
            return False
        if cursor == self.saved_cursor and key in self.boundary:
            return False
        self._observe(cursor, key)
        return True

    def _observe(self, cursor: Any, key: tuple) -> None:
        if self.max_cursor is None or cursor > self.max_cursor:
            self.max_cursor, self.max_keys, self._overflow = cursor, [key], False
        elif cursor == self.max_cursor and not self._overflow and key not in self.max_keys:
            if len(self.max_keys) < MAX_BOUNDARY_KEYS:
                self.max_keys.append(key)
            else:  # too many to keep: the merge removes the repeats
                self.max_keys, self._overflow = [], True

    def resume(self) -> dict[str, Any]:
        """The running maximum, for a checkpoint taken mid-read."""
        return {"max_cursor": self.max_cursor, "max_boundary": [list(k) for k in self.max_keys]}

    def saved(self) -> dict[str, Any]:
        """The cursor and boundary this run started from (a checkpoint keeps them)."""
        return {"cursor": self.saved_cursor, "boundary": [list(k) for k in self.boundary]}

    def state(self) -> dict[str, Any]:
        """The state a completed run saves: the new cursor and its boundary keys."""
        return {"cursor": self.max_cursor, "boundary": [list(k) for k in self.max_keys]}


def raise_missing(cursor_field: str, key: tuple) -> None:
    raise DataContractError(
        f"record {key!r} has no {cursor_field!r} value; fix the source or set "
        "on_missing_cursor to 'include' or 'skip'"
    )
