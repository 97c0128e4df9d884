"""The conformance suite every connector runs, ours and yours, in one line.

::

    from connectors.testing import conformance_suite

    TestMyConnector = conformance_suite(lambda: MyConnector(...))

The factory builds a fresh connector pointed at a live source with a few rows per stream;
set small batch or chunk sizes in it so reads span several batches. The suite checks:
``check()``; ``discover()``; a full read of every stream; batch types equal the
discovered types; primary keys unique and non-null; an incremental read from the saved
state returns nothing older than that state; and a read stopped after its first batch
and resumed from that batch's checkpoint loses and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from ._base import Connector
from ._state import checkpoint_of, without_checkpoint
from ._stream import Stream

ConnectorFactory = Callable[[], Connector]


def read_all(connector: Connector, stream: Stream | str, state: dict[str, Any] | None = None
             ) -> tuple[list[pa.RecordBatch], dict[str, Any] | None]:
    """Every batch of one read, and the state after the last one."""
    batches = list(connector.read(stream, state))
    final = checkpoint_of(batches[-1]) if batches else state
    return batches, final


def keys_of(batches: list[pa.RecordBatch], primary_key: tuple[str, ...]) -> list[tuple]:
    """Primary-key tuples of every row in ``batches``, in order."""
    keys: list[tuple] = []
    for batch in batches:
        if batch.num_rows:
            columns = [batch.column(k).to_pylist() for k in primary_key]
            keys.extend(zip(*columns, strict=True))
    return keys


class ConnectorConformance:
    """The tests; use :func:`conformance_suite` to bind them to a connector factory."""

    make_connector: ConnectorFactory

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        """The connector, opened as every caller of headwater's opens it (``with``)."""
        with type(self).make_connector() as connector:
            yield connector

    @pytest.fixture
    def streams(self, connector: Connector) -> list[Stream]:
        found = connector.discover()
        assert found, "discover() found no streams"
        return found

    def test_check(self, connector: Connector) -> None:
        assert connector.check() is None

    def test_discover_describes_every_declared_stream(self, connector: Connector,
                                                      streams: list[Stream]) -> None:
        found = {s.name: s for s in streams}
        for declared in connector.streams:
            assert declared.name in found, f"discover() lost stream {declared.name!r}"
        for stream in streams:
            assert stream.schema is not None and len(stream.schema) > 0, stream.name
            assert stream.primary_key, f"{stream.name}: no primary key discovered"
            missing = set(stream.primary_key) - set(stream.schema.names)
            assert not missing, f"{stream.name}: key columns {missing} not in the schema"

    def test_full_read_types_match_discovery(self, connector: Connector,
                                             streams: list[Stream]) -> None:
        for stream in streams:
            batches, _ = read_all(connector, stream.name)
            assert batches, f"{stream.name}: read() yielded nothing, not even a checkpoint"
            for batch in batches:
                assert without_checkpoint(batch.schema).equals(stream.schema), (
                    f"{stream.name}: batch types {batch.schema} differ from discovery "
                    f"{stream.schema}"
                )
                assert checkpoint_of(batch) is not None, f"{stream.name}: batch without state"

    def test_primary_keys_unique_and_not_null(self, connector: Connector,
                                              streams: list[Stream]) -> None:
        for stream in streams:
            batches, _ = read_all(connector, stream.name)
            for batch in batches:
                for key in stream.primary_key:
                    assert batch.column(key).null_count == 0, f"{stream.name}.{key} has nulls"
            keys = keys_of(batches, stream.primary_key)
            assert keys, f"{stream.name}: the test source should hold a few rows"
            assert len(keys) == len(set(keys)), f"{stream.name}: duplicate primary keys"

    def test_incremental_read_returns_nothing_older_than_state(
        self, connector: Connector, streams: list[Stream]
    ) -> None:
        for stream in streams:
            if stream.cursor_field is None:
                continue
            _, state = read_all(connector, stream.name)
            assert state is not None and "cursor" in state, f"{stream.name}: no cursor state"
            saved = state["cursor"]
            again, _ = read_all(connector, stream.name, state)
            window = stream.incremental.window(saved)
            for batch in again:
                values = [v for v in batch.column(stream.cursor_field).to_pylist()
                          if v is not None]
                older = [v for v in values if window.start is not None and v < window.start]
                assert not older, f"{stream.name}: rows older than the saved state: {older[:3]}"

    def test_resume_after_failure_loses_and_duplicates_nothing(
        self, connector: Connector, streams: list[Stream]
    ) -> None:
        for stream in streams:
            full, _ = read_all(connector, stream.name)
            expected = keys_of(full, stream.primary_key)
            first = next(iter(connector.read(stream.name)))
            delivered = keys_of([first], stream.primary_key)
            rest, _ = read_all(connector, stream.name, checkpoint_of(first))
            combined = delivered + keys_of(rest, stream.primary_key)
            assert sorted(set(combined)) == sorted(set(expected)), f"{stream.name}: rows lost"
            assert len(combined) == len(set(combined)), f"{stream.name}: rows duplicated"


def conformance_suite(factory: ConnectorFactory) -> type[ConnectorConformance]:
    """A pytest test class running the conformance suite against ``factory()``."""
    return type("ConnectorConformanceSuite", (ConnectorConformance,),
                {"make_connector": staticmethod(factory), "__test__": True})


ConnectorConformance.__test__ = False  # the unbound base is not collected

__all__ = ["ConnectorConformance", "conformance_suite", "keys_of", "read_all"]
