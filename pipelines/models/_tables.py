"""The tables a model step writes: its answers, its errors, and every attempt.

``model_<step>`` holds each answer's fields as columns (lists and objects as JSON text),
the whole answer as JSON, and its lineage and bill: the context it answers, the sources
it cites with the clean table and key of each, the provider, model and prompt version,
tokens, cost, latency, requests sent, whether it came from the cache and why a fallback
served it. ``model_errors_<step>`` holds each context no provider could answer, with
every provider's reason. ``model_attempts_<step>`` keeps, run after run, one row per
request sent or provider skipped: provider, model, outcome, reason, HTTP status, the
endpoint's request id, tokens, cost and latency, keyed by run, context and position.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import Any

import pyarrow as pa

from .._canonical import canonical_json
from ._calls import Attempt
from ._serve import Served
from ._step import LINEAGE_FIELDS, ModelStep

ERRORS_SCHEMA = pa.schema([
    ("context_id", pa.string()), ("content_hash", pa.string()), ("reason", pa.string()),
    ("attempts", pa.int64()), ("cost", pa.float64()), ("run_id", pa.string()),
    ("failed_at", pa.timestamp("us", tz="UTC")),
])
ATTEMPTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("context_id", pa.string()), ("attempt", pa.int64()),
    ("content_hash", pa.string()), ("provider", pa.string()), ("model", pa.string()),
    ("call", pa.string()), ("outcome", pa.string()), ("reason", pa.string()),
    ("detail", pa.string()), ("http_status", pa.int64()), ("request_id", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()), ("cost", pa.float64()),
    ("latency_ms", pa.float64()), ("started_at", pa.timestamp("us", tz="UTC")),
])
ATTEMPTS_KEY = ("run_id", "context_id", "attempt")


def answer_type(annotation: Any) -> pa.DataType:
    """The column type of an answer field: scalars as themselves, the rest as JSON text."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return answer_type(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        kinds = {type(a) for a in args}
        return answer_type(kinds.pop()) if len(kinds) == 1 else pa.string()
    return {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}.get(
        annotation, pa.string())


def output_schema(step: ModelStep) -> pa.Schema:
    fields = [(name, answer_type(info.annotation))
              for name, info in step.output.model_fields.items()]
    return pa.schema([("context_id", pa.string()), *fields, *LINEAGE_FIELDS])


def output_table(step: ModelStep, served: list[Served], run_id: str) -> pa.Table:
    """``model_<step>``: one row per answered context, in context order."""
    schema = output_schema(step)
    rows = [(s, s.answer, s.provider) for s in served
            if s.answer is not None and s.provider is not None]
    columns: dict[str, list[Any]] = {"context_id": [s.context.context_id for s, _, _ in rows]}
    for name in step.output.model_fields:
        values = [answer.get(name) for _, answer, _ in rows]
        as_text = pa.types.is_string(schema.field(name).type)
        columns[name] = [_as_text(v) for v in values] if as_text else values
    columns |= {
        "output": [s.output for s, _, _ in rows],
        "cited": [canonical_json([_citation(s, c) for c in s.cited]) for s, _, _ in rows],
        "provider": [provider.name for _, _, provider in rows],
        "model": [provider.model for _, _, provider in rows],
        "prompt_version": [step.prompt.version] * len(rows),
        "content_hash": [s.context.content_hash for s, _, _ in rows],
        "tokens_in": [s.tokens_in for s, _, _ in rows],
        "tokens_out": [s.tokens_out for s, _, _ in rows],
        "cost": [s.cost for s, _, _ in rows],
        "latency_ms": [round(s.latency_ms, 3) for s, _, _ in rows],
        "attempts": [s.attempts for s, _, _ in rows], "cached": [s.cached for s, _, _ in rows],
        "fallback_reason": [s.fallback_reason for s, _, _ in rows],
        "run_id": [run_id] * len(rows),
    }
    return pa.table(columns, schema=schema)


def error_table(served: list[Served], run_id: str) -> pa.Table:
    """``model_errors_<step>``: one row per context no provider answered."""
    now = dt.datetime.now(dt.UTC)
    return pa.Table.from_pylist([
        {"context_id": s.context.context_id, "content_hash": s.context.content_hash,
         "reason": s.error, "attempts": s.attempts, "cost": s.cost, "run_id": run_id,
         "failed_at": now}
        for s in served if s.error is not None], schema=ERRORS_SCHEMA)


def attempt_row(served: Served, attempt: Attempt, run_id: str) -> dict[str, Any]:
    """One row of ``model_attempts_<step>``."""
    return {"run_id": run_id, "context_id": served.context.context_id,
            "attempt": attempt.number, "content_hash": served.context.content_hash,
            "provider": attempt.provider.name, "model": attempt.provider.model,
            "call": attempt.call, "outcome": attempt.outcome, "reason": attempt.reason,
            "detail": attempt.detail, "http_status": attempt.status,
            "request_id": attempt.request_id, "tokens_in": attempt.tokens_in,
            "tokens_out": attempt.tokens_out, "cost": attempt.cost,
            "latency_ms": round(attempt.latency_ms, 3), "started_at": attempt.started_at}


def _as_text(value: Any) -> str | None:
    """A text cell: strings as they are, lists and objects as JSON."""
    return value if isinstance(value, str | None) else canonical_json(value)


def _citation(served: Served, source_id: str) -> dict[str, Any]:
    entry = served.context.provenance.get(source_id, {})
    return {"source_id": source_id, "source_table": entry.get("source_table"),
            "source_key": entry.get("source_key")}
