"""The conformance suite catches broken connectors (it is only useful if it can fail)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors import Connector, Incremental, Stream, with_checkpoint
from connectors.testing import ConnectorConformance, conformance_suite

SCHEMA = pa.schema([("id", pa.int64()), ("changed", pa.int64())])
ROWS = [{"id": i, "changed": 10 * i} for i in range(1, 8)]


class ListConnector(Connector):
    """Rows from a list, in batches of two, checkpointed by id; bugs switchable."""

    name = "list"
    streams = (Stream("items", primary_key=("id",), incremental=Incremental("changed"),
                      schema=SCHEMA),)

    def __init__(self, *, ignore_state=False, duplicate=False, read_type=None) -> None:
        super().__init__()
        self.ignore_state = ignore_state
        self.duplicate = duplicate
        self.read_schema = pa.schema([("id", read_type or pa.int64()), ("changed", pa.int64())])

    def check(self) -> None:
        return None

    def discover(self):
        return list(self.streams)

    def read(self, stream, state=None):
        state = {} if self.ignore_state else dict(state or {})
        after = state.get("after", 0)
        cursor = state.get("cursor")
        rows = [r for r in ROWS if r["id"] > after and (cursor is None or r["changed"] > cursor)]
        if self.duplicate:
            rows = rows + rows[:1]
        for start in range(0, len(rows), 2):
            chunk = rows[start:start + 2]
            batch = pa.RecordBatch.from_pylist(chunk, schema=self.read_schema)
            yield with_checkpoint(batch, {"after": chunk[-1]["id"], "cursor": cursor})
        last = max((r["changed"] for r in rows), default=cursor)
        empty = pa.RecordBatch.from_pylist([], schema=self.read_schema)
        yield with_checkpoint(empty, {"cursor": last})


TestWorkingListConnector = conformance_suite(ListConnector)


def run_suite_test(name: str, connector: Connector) -> None:
    suite = conformance_suite(lambda: connector)()
    method = getattr(suite, name)
    if "streams" in method.__code__.co_varnames:
        method(connector, connector.discover())
    else:
        method(connector)


@pytest.mark.parametrize(
    ("broken", "failing_test", "message"),
    [
        (ListConnector(ignore_state=True), "test_resume_after_failure_loses_and_duplicates_nothing",
         "duplicated"),
        (ListConnector(duplicate=True), "test_primary_keys_unique_and_not_null", "duplicate"),
        (ListConnector(read_type=pa.int32()), "test_full_read_types_match_discovery",
         "differ from discovery"),
    ],
    ids=["ignores-state", "repeats-a-key", "types-drift"],
)
def test_the_suite_fails_a_broken_connector(broken, failing_test, message) -> None:
    with pytest.raises(AssertionError, match=message):
        run_suite_test(failing_test, broken)


def test_the_unbound_base_is_not_collected() -> None:
    assert ConnectorConformance.__test__ is False
    assert conformance_suite(ListConnector).__test__ is True
