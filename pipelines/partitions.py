"""Partitions of a stream: day windows of its cursor, or ranges of a key column.

A backfill runs each partition on its own (Dagster fans them out across workers). Each
partition lands under a stream lock and with checkpoints of its own
(``connector.stream@<partition>``), so a killed partition resumes where it stopped, a
rerun merges by primary key (nothing doubles), and partitions never wait for each other.

Key ranges split a key column at fixed values, for tables without a usable time column::

    partition = "key_range"
    partition_key = "id"
    partition_bounds = [1000000, 2000000]   # three ranges: below 1,000,000, up to
                                            # 2,000,000, and from there on
    # or
    partitions = 8                          # eight ranges of equal width over the key's
                                            # lowest..highest value

The outer ranges are open, so no row is ever outside every range. With ``partitions =
N`` the split values are computed the first time any partition of the stream runs and
kept in the state table (``connector.stream@split``): a table that grows later puts its
new keys in the last range instead of moving every range (``headwater state reset
connector.stream`` forgets them together with the checkpoints).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

from connectors import ConfigurationError, Connector, KeyRange

from .config import models
from .warehouse import Warehouse

# How long a partition waits for another one that is computing the split values.
SPLIT_LOCK_WAIT = 120.0


def partition_names(spec: models.PartitionSpec) -> list[str]:
    """The names of a key-range partitioning's ranges: ``1-of-8`` ... ``8-of-8``."""
    count = spec.count if spec.count is not None else len(spec.bounds or ()) + 1
    return [f"{i}-of-{count}" for i in range(1, count + 1)]


def split_key(connector: str, stream: str) -> str:
    """The state key under which computed split values are kept."""
    return f"{connector}.{stream}@split"


def key_range_of(spec: models.PartitionSpec, name: str, *, connector: Connector, stream: str,
                 warehouse: Warehouse, run_id: str) -> KeyRange:
    """The key range partition ``name`` reads (split values computed once if needed)."""
    names = partition_names(spec)
    if name not in names:
        raise ConfigurationError(f"stream {connector.name}.{stream} has no partition {name!r}; "
                                 f"its partitions are {names[0]} ... {names[-1]}")
    assert spec.key is not None
    splits = list(spec.bounds) if spec.bounds is not None else fixed_splits(
        spec, connector=connector, stream=stream, warehouse=warehouse, run_id=run_id)
    index = names.index(name)
    lows: list[Any] = [None, *splits]
    highs: list[Any] = [*splits, None]
    return KeyRange(spec.key, lows[index], highs[index])


def fixed_splits(spec: models.PartitionSpec, *, connector: Connector, stream: str,
                 warehouse: Warehouse, run_id: str) -> list[Any]:
    """The split values of ``partitions = N``: those saved by the first partition that
    ran, else computed now from the key's span at the source and saved."""
    key = split_key(connector.name, stream)
    with warehouse.stream_lock(key, run_id, wait=SPLIT_LOCK_WAIT):
        saved = warehouse.load_state(key)
        if saved and saved.get("column") == spec.key and saved.get("count") == spec.count:
            return list(saved["splits"])
        span = getattr(connector, "key_span", None)
        if span is None:
            raise ConfigurationError(
                f"connector {connector.name!r} ({connector.kind}) cannot measure the span of "
                f"{spec.key!r}: declare partition_bounds for stream {stream!r} instead of "
                "partitions")
        low, high = span(stream, spec.key)
        if low is None:
            raise ConfigurationError(
                f"stream {connector.name}.{stream} is empty, so its {spec.count} key ranges "
                f"cannot be split from the lowest and highest {spec.key!r}: land it once it "
                "has rows, or declare partition_bounds")
        assert spec.count is not None
        splits = even_splits(low, high, spec.count, f"{connector.name}.{stream}")
        warehouse.save_state(key, {"column": spec.key, "count": spec.count,
                                   "low": low, "high": high, "splits": splits}, run_id)
        return splits


def even_splits(low: Any, high: Any, count: int, where: str = "stream") -> list[Any]:
    """``count - 1`` split values cutting ``[low, high]`` into ranges of equal width
    (integers, decimals, floats, dates and timestamps). A span too narrow to cut that
    often repeats a value: the range between two equal values is empty."""
    if count <= 1:
        return []
    if isinstance(low, bool) or not isinstance(low, int | float | decimal.Decimal | dt.date):
        raise ConfigurationError(
            f"{where}: a key of type {type(low).__name__} cannot be cut into equal ranges; "
            "declare partition_bounds = [...] with the split values")
    width = high - low
    if isinstance(low, int):
        return [low + math.ceil((width + 1) * i / count) for i in range(1, count)]
    if isinstance(low, dt.datetime):
        return [low + width * i / count for i in range(1, count)]
    if isinstance(low, dt.date):
        return [low + dt.timedelta(days=math.ceil((width.days + 1) * i / count))
                for i in range(1, count)]
    return [low + width * i / count for i in range(1, count)]
