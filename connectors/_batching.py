"""Batching of dict records into Arrow record batches with declared or discovered types.

For hooks that yield one record at a time (REST pages, SOAP responses, ODBC rows):
the batcher collects them into columns and builds each batch with the stream's schema,
so every batch of a stream has the same types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from ._errors import DataContractError


class RecordBatcher:
    """Collects dict records into record batches of at most ``batch_size`` rows.

    With ``schema=None`` the types are inferred from the first batch and then held for
    the rest of the stream. Fields not in a declared schema raise
    :class:`DataContractError` unless ``extra="ignore"``.
    """

    def __init__(
        self,
        schema: pa.Schema | None = None,
        batch_size: int = 10_000,
        extra: str = "error",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if extra not in ("error", "ignore"):
            raise ValueError("extra must be 'error' or 'ignore'")
        self.schema = schema
        self.batch_size = batch_size
        self.extra = extra
        self._rows: list[Mapping[str, Any]] = []

    def add(self, record: Mapping[str, Any]) -> pa.RecordBatch | None:
        """Add one record; return a full batch when one is ready."""
        self._rows.append(record)
        if len(self._rows) >= self.batch_size:
            return self.flush()
        return None

    def flush(self) -> pa.RecordBatch | None:
        """Return the collected records as a batch (``None`` if there are none)."""
        if not self._rows:
            return None
        rows, self._rows = self._rows, []
        if self.schema is None:
            self.schema = pa.Table.from_pylist(rows).schema
        elif self.extra == "error":
            self._check_fields(rows)
        try:
            return pa.RecordBatch.from_pylist(rows, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise DataContractError(
                f"records do not fit the stream's types ({exc}); declare the column's type "
                "in the stream schema or fix the source"
            ) from exc

    def _check_fields(self, rows: list[Mapping[str, Any]]) -> None:
        known = set(self.schema.names)
        for row in rows:
            unknown = set(row) - known
            if unknown:
                raise DataContractError(
                    f"record has fields not in the stream schema: {sorted(unknown)}; add them "
                    "to the declared schema or set extra='ignore'"
                )


def batch_records(
    records: Iterable[Mapping[str, Any]],
    schema: pa.Schema | None = None,
    batch_size: int = 10_000,
    extra: str = "error",
) -> Iterator[pa.RecordBatch]:
    """Yield record batches built from ``records`` (see :class:`RecordBatcher`)."""
    batcher = RecordBatcher(schema, batch_size, extra)
    for record in records:
        batch = batcher.add(record)
        if batch is not None:
            yield batch
    batch = batcher.flush()
    if batch is not None:
        yield batch
