"""Stream state: a small JSON document, and how it rides on record batches.

Every batch a connector yields carries, in its schema metadata, the state that holds
once that batch is stored. The runner writes the batch and that state in one
transaction, so data and state never disagree.

A checkpoint never carries a registered secret: connectors keep credentials out of
what they store (an API key echoed in a next-page link is stripped before the link is
saved), and :func:`with_checkpoint` masks any that still got in, with a warning.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ._redaction import mask_known_secrets

log = logging.getLogger("headwater.connectors.state")

STATE_METADATA_KEY = b"headwater:state"


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


_DECODERS = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$decimal": Decimal,
    "$bytes": base64.b64decode,
}


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, raw), = value.items()
            if key in _DECODERS:
                return _DECODERS[key](raw)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def dumps_state(state: dict[str, Any] | None) -> str:
    """Serialize a state document, keeping dates, times, decimals and bytes typed."""
    return json.dumps(_encode(state or {}), sort_keys=True)


def loads_state(text: str | None) -> dict[str, Any]:
    """Inverse of :func:`dumps_state`."""
    return _decode(json.loads(text)) if text else {}


def _masked(value: Any) -> tuple[Any, int]:
    """``value`` (a state document) with registered secrets masked in every string."""
    if isinstance(value, str):
        return mask_known_secrets(value)
    if isinstance(value, dict):
        pairs = [(_masked(k), _masked(v)) for k, v in value.items()]
        return ({k: v for (k, _), (v, _) in pairs},
                sum(a + b for (_, a), (_, b) in pairs))
    if isinstance(value, list | tuple):
        items = [_masked(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def with_checkpoint(batch: pa.RecordBatch, state: dict[str, Any]) -> pa.RecordBatch:
    """Return ``batch`` carrying ``state`` as the checkpoint that holds once it is stored.

    A registered secret found in ``state`` is masked before it is stored, and said."""
    state, found = _masked(state)
    if found:
        log.warning("a checkpoint held a registered secret in %d place(s); it was masked "
                    "before being stored, so resuming from it may fail: the connector "
                    "should keep credentials out of its state", found)
    metadata = dict(batch.schema.metadata or {})
    metadata[STATE_METADATA_KEY] = dumps_state(state).encode()
    return batch.replace_schema_metadata(metadata)


def checkpoint_of(batch: pa.RecordBatch) -> dict[str, Any] | None:
    """The state a batch carries, or ``None`` if it carries none."""
    raw = (batch.schema.metadata or {}).get(STATE_METADATA_KEY)
    return loads_state(raw.decode()) if raw is not None else None


def without_checkpoint(schema: pa.Schema) -> pa.Schema:
    """``schema`` without headwater's state metadata."""
    metadata = {k: v for k, v in (schema.metadata or {}).items() if k != STATE_METADATA_KEY}
    return schema.with_metadata(metadata or None)


_PARAMETRIZED = re.compile(
    r"^(?:timestamp\[(?P<unit>s|ms|us|ns)(?:, tz=(?P<tz>[^\]]+))?\]"
    r"|(?P<decimal>decimal(?:128|256))\((?P<precision>\d+), (?P<scale>-?\d+)\))$"
)


def _type_of_text(text: str) -> pa.DataType:
    found = _PARAMETRIZED.match(text)
    if found is None:
        return pa.type_for_alias(text)
    if found["unit"]:
        return pa.timestamp(found["unit"], tz=found["tz"])
    maker = pa.decimal128 if found["decimal"] == "decimal128" else pa.decimal256
    return maker(int(found["precision"]), int(found["scale"]))


def schema_to_state(schema: pa.Schema) -> list[list[str]]:
    """A schema as a state document keeps it: ``[[name, type], ...]``, readable in
    ``headwater state show``; a type without a text form goes as Arrow IPC bytes."""
    fields = [[f.name, str(f.type)] for f in schema]
    try:
        if all(_type_of_text(t) == f.type for (_, t), f in zip(fields, schema, strict=True)):
            return fields
    except (ValueError, KeyError, pa.ArrowInvalid):
        pass
    return [["$arrow", base64.b64encode(schema.serialize().to_pybytes()).decode()]]


def schema_from_state(value: list[list[str]]) -> pa.Schema:
    """Inverse of :func:`schema_to_state`."""
    if len(value) == 1 and value[0][0] == "$arrow":
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(value[0][1])))
    return pa.schema([pa.field(name, _type_of_text(text)) for name, text in value])
