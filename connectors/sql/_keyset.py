"""Keyset chunk queries: pure functions from a plan position to a SELECT.

Chunks are ordered by the key (cursor first for incremental streams, then the primary
key) and start strictly after the last key delivered, so a run can resume from any
checkpoint without skipping or repeating a row. The lexicographic predicate is spelled
with AND/OR rather than row-value comparison, which SQL Server, Oracle and DB2 lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement


def after_key(columns: Sequence[ColumnElement], values: Sequence[Any]) -> ColumnElement[bool]:
    """``(c1, c2, ...) > (v1, v2, ...)`` in lexicographic order."""
    if len(columns) != len(values) or not columns:
        raise ValueError("key columns and values must have the same, non-zero length")
    terms = []
    for i, (column, value) in enumerate(zip(columns, values, strict=True)):
        equal_prefix = [c == v for c, v in zip(columns[:i], values[:i], strict=True)]
        terms.append(sa.and_(*equal_prefix, column > value))
    return sa.or_(*terms)


def chunk_select(
    source: sa.FromClause,
    columns: Sequence[ColumnElement],
    order_key: Sequence[ColumnElement],
    *,
    limit: int,
    after: Sequence[Any] | None = None,
    cursor: ColumnElement | None = None,
    window: tuple[Any, Any] = (None, None),
    null_cursor: bool = False,
    key_range: tuple[ColumnElement, Any, Any] | None = None,
) -> sa.Select:
    """One chunk of a keyset read.

    ``null_cursor`` selects the rows whose cursor is null (ordered by primary key);
    otherwise rows inside ``window`` = ``(start, end)`` on ``cursor``, if given.
    ``key_range`` = ``(column, start, end)`` keeps the rows of one partition.
    """
    stmt = sa.select(*columns).select_from(source)
    if key_range is not None:
        column, low, high = key_range
        if low is not None:
            stmt = stmt.where(column >= low)
        if high is not None:
            stmt = stmt.where(column < high)
    if cursor is not None:
        if null_cursor:
            stmt = stmt.where(cursor.is_(None))
        else:
            start, end = window
            if start is not None:
                stmt = stmt.where(cursor >= start)
            if end is not None:
                stmt = stmt.where(cursor < end)
            stmt = stmt.where(cursor.is_not(None))
    if after is not None:
        stmt = stmt.where(after_key(order_key, after))
    return stmt.order_by(*order_key).limit(limit)
