"""The output model as the JSON schema strict structured output accepts.

OpenAI's strict mode (and endpoints that copy it) refuses a schema unless every object
says ``additionalProperties: false`` and lists every property as required. pydantic
writes neither unless the model forbids extra keys, so a user's plain model would be
refused with a 400 on every request. :func:`strict_json_schema` closes every object and
requires every property (both harmless: answers are validated by the pydantic model
itself, which still ignores or accepts what it did before), and names the field that
cannot be closed: a free-form ``dict`` or a model with ``extra="allow"``.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic

from connectors import ConfigurationError


def strict_json_schema(output: type[pydantic.BaseModel]) -> dict[str, Any]:
    """``output``'s JSON schema with every object closed and every property required;
    ``ConfigurationError`` naming each field strict mode cannot express."""
    schema = copy.deepcopy(output.model_json_schema())
    problems: list[str] = []
    _close(schema, output.__name__, problems)
    if problems:
        raise ConfigurationError(
            f"output model {output.__name__}: strict structured output needs objects with "
            f"fixed fields, and {'; '.join(problems)}. Declare those as models with named "
            "fields, or give the endpoint strict=False")
    return schema


def _close(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _close(item, path, problems)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        if extra not in (None, False):
            problems.append(f"{path} takes keys beyond its declared fields (a dict field, or "
                            "extra='allow')")
        node["additionalProperties"] = False
        node["required"] = list(node.get("properties", {}))
    for key, value in node.items():
        if key in ("properties", "$defs"):
            for name, sub in value.items():
                _close(sub, name if key == "$defs" else f"{path}.{name}", problems)
        elif key != "additionalProperties":
            _close(value, path, problems)
