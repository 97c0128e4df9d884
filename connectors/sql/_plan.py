"""A read plan: what to select from a stream, in which order, into which Arrow types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .._errors import DataContractError
from ._types import arrow_type, needs_text_cast

Converter = Callable[[Sequence[Any]], pa.Array]


@dataclass
class ReadPlan:
    """Everything a read needs about one stream, built once per connector and stream."""

    source: sa.FromClause
    columns: list[ColumnElement]
    schema: pa.Schema
    primary_key: tuple[str, ...]
    cursor_field: str | None
    converters: list[Converter]

    def column(self, name: str) -> ColumnElement:
        return self.source.c[name]

    key_enforced: bool = False  # the database guarantees the key is non-null

    def has_binary_key(self) -> bool:
        """Whether a key or cursor column is binary: the fast path renders keyset values
        as SQL literals, and PostgreSQL would reinterpret backslashes in bytea literals."""
        names = [*self.primary_key, *([self.cursor_field] if self.cursor_field else [])]
        return any(pa.types.is_binary(self.schema.field(n).type)
                   or pa.types.is_large_binary(self.schema.field(n).type) for n in names)

    def order_key(self, phase: str) -> list[str]:
        if phase == "rows" and self.cursor_field:
            return [self.cursor_field, *self.primary_key]
        return list(self.primary_key)

    def rows_to_batch(self, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
        """Python rows (the generic path) to a batch of the plan's schema."""
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(self.schema)
        arrays = [
            convert(values)
            for convert, values in zip(self.converters, columns, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def plain_converter(field: pa.Field) -> Converter:
    def convert(values: Sequence[Any]) -> pa.Array:
        try:
            return pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
            raise DataContractError(
                f"column {field.name!r} holds values that do not fit {field.type} ({exc})"
            ) from exc

    return convert


def decimal_from_text_converter(field: pa.Field) -> Converter:
    plain = plain_converter(field)

    def convert(values: Sequence[Any]) -> pa.Array:
        try:
            decimals = [None if v is None else Decimal(str(v)) for v in values]
        except InvalidOperation as exc:
            raise DataContractError(f"column {field.name!r} holds a non-numeric value") from exc
        return plain(decimals)

    return convert


def _bool_from_int(field: pa.Field) -> Converter:
    plain = plain_converter(field)

    def convert(values: Sequence[Any]) -> pa.Array:
        return plain([None if v is None else bool(v) for v in values])

    return convert


def plan_for_table(table: sa.Table, primary_key: Sequence[str], cursor_field: str | None,
                   dialect_name: str, *, decimals_as_text: bool = False,
                   declared: pa.Schema | None = None) -> ReadPlan:
    """A plan that reads every column of a reflected table with exact types.

    ``declared`` selects just its columns, in its order, with its types. ``decimals_as_text``
    selects every decimal column as text (the Arrow fast path casts text to exact
    decimals faster than its driver decodes binary NUMERIC).
    """
    wanted = [(table.c[f.name], f) for f in declared] if declared is not None else [
        (c, pa.field(c.name, arrow_type(c.type, dialect_name))) for c in table.columns]
    fields, columns, converters = [], [], []
    for column, field in wanted:
        fields.append(field)
        as_text = decimals_as_text and pa.types.is_decimal(field.type)
        if as_text or needs_text_cast(column.type, dialect_name):
            columns.append(sa.cast(column, sa.Text).label(column.name))
            converters.append(decimal_from_text_converter(field))
        elif pa.types.is_boolean(field.type) and isinstance(column.type, sa.Integer):
            columns.append(column)  # MySQL's BOOLEAN is TINYINT(1): 0/1 on the wire
            converters.append(_bool_from_int(field))
        else:
            columns.append(column)
            converters.append(plain_converter(field))
    return ReadPlan(table, columns, pa.schema(fields), tuple(primary_key), cursor_field,
                    converters)


def widen(field: pa.Field) -> pa.Field:
    """Widen a type inferred from a sample so that later values fit too."""
    t = field.type
    if pa.types.is_integer(t):
        return field.with_type(pa.int64())
    if pa.types.is_decimal(t):
        return field.with_type(pa.decimal128(38, max(t.scale, 0)))
    if pa.types.is_null(t):
        return field.with_type(pa.string())
    return field


def plan_for_query(source: sa.FromClause, schema: pa.Schema, primary_key: Sequence[str],
                   cursor_field: str | None) -> ReadPlan:
    """A plan over a query's subquery with given (declared or inferred) types."""
    columns = [source.c[name] for name in schema.names]
    return ReadPlan(source, columns, schema, tuple(primary_key), cursor_field,
                    [plain_converter(f) for f in schema])
