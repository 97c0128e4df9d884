"""Arrow types as PostgreSQL types, and PostgreSQL NUMERIC back as exact Arrow decimals."""

from __future__ import annotations

import pyarrow as pa


def pg_type(t: pa.DataType) -> str:
    """PostgreSQL type that holds every value of an Arrow type exactly."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float32(t):
        return "real"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_duration(t):
        return "interval"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    return "text"


def exact_numerics(table: pa.Table) -> pa.Table:
    """Turn ADBC's text-encoded NUMERIC columns into decimals of the column's declared
    precision and scale (read from the type modifier ADBC passes along)."""
    for index, field in enumerate(table.schema):
        meta = field.metadata or {}
        if meta.get(b"POSTGRESQL:type") != b"numeric":
            continue
        typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
        if typmod >= 4:
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
            target = pa.decimal128(precision, scale) if precision <= 38 else \
                pa.decimal256(precision, scale)
        else:
            target = pa.decimal128(38, 10)
        column = table.column(index)
        storage = pa.chunked_array(
            [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks],
            type=pa.string(),
        )
        table = table.set_column(index, pa.field(field.name, target), storage.cast(target))
    return table
