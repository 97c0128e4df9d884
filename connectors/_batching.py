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
        # An inferred schema stays open while some field has been seen only as null.
        self._provisional = False

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
        if self.schema is None or self._provisional:
            self.schema = self._infer(rows)
        elif self.extra == "error":
            self._check_fields(rows)
        columns = {name: [row.get(name) for row in rows] for name in self.schema.names}
        arrays = [self._column(field, columns[field.name]) for field in self.schema]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    @staticmethod
    def _column(field: pa.Field, values: list[Any]) -> pa.Array:
        try:
            return pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise DataContractError(
                f"field {field.name!r} holds a value that does not fit {field.type} ({exc}); "
                "declare the column's type in the stream schema or fix the source"
            ) from exc

    def _infer(self, rows: list[Mapping[str, Any]]) -> pa.Schema:
        """Types from the records; fields seen only as null stay open for later batches."""
        names = list(dict.fromkeys(name for row in rows for name in row))
        if self.schema is not None:
            names = list(dict.fromkeys([*self.schema.names, *names]))
        fields = []
        for name in names:
            known = self.schema.field(name) if self.schema is not None and \
                name in self.schema.names else None
            if known is not None and not pa.types.is_null(known.type):
                fields.append(known)
            else:
                fields.append(pa.field(name, pa.array([row.get(name) for row in rows]).type))
        schema = pa.schema(fields)
        self._provisional = any(pa.types.is_null(f.type) for f in schema)
        return schema

    def _check_fields(self, rows: list[Mapping[str, Any]]) -> None:
        known = set(self.schema.names)
        for row in rows:
            unknown = set(row) - known
            if unknown:
                raise DataContractError(
                    f"record has fields not in the stream schema: {sorted(unknown)}; add them "
                    "to the declared schema or set extra='ignore'"
                )


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A batch of no rows with ``schema``.

    Built from ``pa.nulls``: ``pa.array([])`` would make pyarrow import pandas to
    check its argument (a quarter of a second and tens of MB in a process without it).
    """
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


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
