"""The one incremental vocabulary shared by every kind of connector.

A stream that syncs incrementally names a cursor field. Each run reads the window
``[start, end)``: ``start`` is the saved cursor minus ``lag`` (or the configured start on
the first run), ``end`` is open unless configured. Rows exactly at the saved cursor that
were already delivered are recognised by primary key and not delivered again. Rows whose
cursor is missing follow ``on_missing_cursor``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
class Incremental:
    """How a stream syncs incrementally.

    ``lag`` re-reads a margin behind the saved cursor, for sources whose cursor values
    commit out of order (a ``timedelta`` for timestamps, a number for sequences).
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
        start = saved_cursor - self.lag if self.lag else saved_cursor
        floor = _like(self.start, saved_cursor)
        if floor is not None and start < floor:
            start = floor
        return Window(start, _like(self.end, saved_cursor))


def _like(bound: Any, cursor: Any) -> Any:
    """A configured date bound as a datetime when the cursor holds datetimes (a TOML
    date such as ``start = 2024-01-01`` for a timestamp column)."""
    if (isinstance(bound, dt.date) and not isinstance(bound, dt.datetime)
            and isinstance(cursor, dt.datetime)):
        return dt.datetime.combine(bound, dt.time(), tzinfo=cursor.tzinfo)
    return bound
