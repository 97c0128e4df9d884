"""Guardrails on a model's answer: valid JSON, the declared schema, real citations.

:func:`check_output` turns an answer into the step's pydantic model or raises
:class:`OutputRejected` with a reason short enough to send back to the model:
:func:`repair_messages` is the retry that tells it what was wrong. An answer wrapped in
a Markdown fence (```` ```json ... ``` ````), as chat models like to, is read inside it.
Citations are checked against what the model saw: the provenance of the document it
was sent, trimmed items excluded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

import pydantic

from ._errors import OutputRejected

_MAX_ECHO = 4_000  # characters of a rejected answer sent back in the repair prompt
_MAX_LISTED = 5
_FENCED = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)


def answer_text(text: str) -> str:
    """The JSON of an answer: the text itself, or the inside of its first fenced block
    when the text is not JSON on its own."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return stripped
    fenced = _FENCED.search(text)
    return fenced.group(1).strip() if fenced else stripped


def check_output(text: str, schema: type[pydantic.BaseModel], citations_field: str,
                 provenance_ids: Collection[str], min_citations: int = 1
                 ) -> pydantic.BaseModel:
    """The answer ``text`` parsed and validated; every id in ``citations_field`` must be
    one of ``provenance_ids`` (an invented or unseen source is a failure like a schema
    error)."""
    try:
        data = json.loads(answer_text(text))
    except ValueError as exc:
        raise OutputRejected(f"the answer is not valid JSON ({exc})", "invalid json") from None
    try:
        answer = schema.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
                             for e in exc.errors(include_input=False, include_url=False)
                             [:_MAX_LISTED])
        raise OutputRejected(f"the answer does not match the schema ({problems})",
                             "schema") from None
    cited = cited_ids(answer, citations_field)
    invented = [c for c in cited if c not in provenance_ids]
    if invented:
        raise OutputRejected(f"the answer cites {len(invented)} source id(s) that are not in "
                             f"the context: {invented[:_MAX_LISTED]}", "citation")
    if len(set(cited)) < min_citations:
        raise OutputRejected(f"the answer cites {len(set(cited))} source id(s); cite at "
                             f"least {min_citations} source_id from the context",
                             "too few citations")
    return answer


def cited_ids(answer: pydantic.BaseModel, citations_field: str) -> list[str]:
    """The source ids an answer cites, in its order, without repeats."""
    return list(dict.fromkeys(getattr(answer, citations_field)))


def repair_messages(messages: list[dict[str, Any]], answer: str, reason: str
                    ) -> list[dict[str, Any]]:
    """The conversation again, with the rejected answer and what was wrong with it."""
    return [*messages, {"role": "assistant", "content": answer[:_MAX_ECHO]}, {
        "role": "user",
        "content": f"Your answer was rejected: {reason}. Answer again with only a JSON "
                   "object that matches the schema, citing only source_id values that "
                   "appear in the context."}]
