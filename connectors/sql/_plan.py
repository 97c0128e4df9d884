"""A read plan: what to select from a stream, in which order, into which Arrow types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.elements import ColumnElement

from . import _types
from ._types import ColumnType
from ._values import (
    UnfitValue,
    python_array,
    strict_bool_array,
    text_array,
    time_from_timedelta_array,
)

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
    key_enforced: bool = False  # the database guarantees the key is non-null

    def column(self, name: str) -> ColumnElement:
        return self.source.c[name]

    def has_binary_key(self) -> bool:
        """Whether a key or cursor column is binary: the fast path renders keyset values
        as SQL literals, and PostgreSQL would reinterpret backslashes in bytea literals."""
        names = [*self.primary_key, *([self.cursor_field] if self.cursor_field else [])]
        return any(pa.types.is_binary(self.schema.field(n).type)
                   or pa.types.is_large_binary(self.schema.field(n).type) for n in names)

    def keys_only(self) -> ReadPlan:
        """This plan reading the primary-key columns alone (a key-only scan)."""
        index = [self.schema.get_field_index(k) for k in self.primary_key]
        return replace(self, columns=[self.columns[i] for i in index],
                       schema=pa.schema([self.schema.field(i) for i in index]),
                       cursor_field=None, converters=[self.converters[i] for i in index])

    def order_key(self, phase: str) -> list[str]:
        if phase == "rows" and self.cursor_field:
            return [self.cursor_field, *self.primary_key]
        return list(self.primary_key)

    def rows_to_batch(self, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
        """Python rows (the generic path) to a batch of the plan's schema.

        A value that does not fit its column raises :class:`UnfitValue` carrying the
        primary key of its row.
        """
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(self.schema)
        try:
            arrays = [convert(values)
                      for convert, values in zip(self.converters, columns, strict=True)]
        except UnfitValue as unfit:
            if unfit.row is not None:
                unfit.key = self._key_of(rows[unfit.row])
            raise
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _key_of(self, row: Sequence[Any]) -> dict[str, Any]:
        """The primary key of one Python row, converted like the batch would be."""
        key = {}
        for name in self.primary_key:
            index = self.schema.get_field_index(name)
            try:
                key[name] = self.converters[index]([row[index]])[0].as_py()
            except UnfitValue:
                key[name] = row[index]
        return key


def plain_converter(arrow_field: pa.Field) -> Converter:
    """Python values as they are, into the field's type."""
    return lambda values: python_array(values, arrow_field)


def decimal_from_text_converter(arrow_field: pa.Field) -> Converter:
    """Text (or numbers) parsed into the field's exact type."""
    return lambda values: text_array(values, arrow_field)


def _strict_bool_converter(arrow_field: pa.Field) -> Converter:
    return lambda values: strict_bool_array(values, arrow_field)


def _timedelta_converter(arrow_field: pa.Field) -> Converter:
    return lambda values: time_from_timedelta_array(values, arrow_field)


def column_reader(column: ColumnElement, arrow_field: pa.Field, kind: ColumnType
                  ) -> tuple[ColumnElement, Converter]:
    """How one column is selected and converted: the select expression and the converter
    for the Python values it yields (the fast paths parse text columns themselves)."""
    how, name = kind.how, column.name
    if how in (_types.DECIMAL_TEXT, _types.TEXT_VALUE):
        return sa.cast(column, sa.Text).label(name), decimal_from_text_converter(arrow_field)
    if how == _types.NUMERIC_TEXT:
        return (sa.cast(sa.cast(column, sa.Numeric), sa.Text).label(name),
                decimal_from_text_converter(arrow_field))
    if how in _types.AS_TEXT:
        return sa.cast(column, sa.UnicodeText).label(name), plain_converter(arrow_field)
    if how == _types.UNSIGNED:
        expr = sa.cast(column, mysql.BIGINT(unsigned=True)).label(name)
        if pa.types.is_boolean(arrow_field.type):
            return expr, _strict_bool_converter(arrow_field)
        return expr, plain_converter(arrow_field)
    if how == _types.FLOAT:
        # MySQL's DOUBLE and REAL come back as Decimal rounded to ten places unless
        # asked for floats.
        return (sa.type_coerce(column, sa.Double(asdecimal=False)).label(name),
                plain_converter(arrow_field))
    if how == _types.TIMEDELTA:
        # Without SQLAlchemy's TIME processing, which drops whole days of a MySQL TIME.
        return (sa.type_coerce(column, sa.types.NullType()).label(name),
                _timedelta_converter(arrow_field))
    if pa.types.is_boolean(arrow_field.type) and isinstance(column.type, sa.Integer):
        # MySQL's BOOLEAN is TINYINT(1): 0/1 on the wire, and any other TINYINT besides.
        return (sa.type_coerce(column, sa.Integer()).label(name),
                _strict_bool_converter(arrow_field))
    return column, plain_converter(arrow_field)


def plan_for_table(table: sa.FromClause, primary_key: Sequence[str], cursor_field: str | None,
                   kinds: Sequence[tuple[ColumnElement, pa.Field, ColumnType]]) -> ReadPlan:
    """A plan that reads the given columns of a table (or query) with exact types.

    ``kinds`` holds each column to read with its Arrow field and how it is selected.
    """
    readers = [column_reader(column, f, kind) for column, f, kind in kinds]
    return ReadPlan(table, [expr for expr, _ in readers], pa.schema([f for _, f, _ in kinds]),
                    tuple(primary_key), cursor_field, [convert for _, convert in readers])


def widen(arrow_field: pa.Field) -> pa.Field:
    """Widen a type inferred from a sample so that later values fit too."""
    t = arrow_field.type
    if pa.types.is_integer(t):
        return arrow_field.with_type(pa.int64())
    if pa.types.is_decimal(t):
        if t.precision > _types.MAX_DECIMAL_PRECISION:
            return arrow_field.with_type(_types.TEXT)  # see plan_for_query
        return arrow_field.with_type(pa.decimal128(38, max(t.scale, 0)))
    if pa.types.is_null(t):
        return arrow_field.with_type(pa.string())
    return arrow_field


def plan_for_query(source: sa.FromClause, schema: pa.Schema, primary_key: Sequence[str],
                   cursor_field: str | None,
                   overrides: dict[str, ColumnType] | None = None) -> ReadPlan:
    """A plan over a query's subquery with given (declared or inferred) types;
    ``overrides`` are the stream's declared ``column_types``."""
    overrides = overrides or {}
    kinds = [(source.c[f.name], f, overrides.get(f.name, ColumnType(f.type))) for f in schema]
    return plan_for_table(source, primary_key, cursor_field, kinds)
