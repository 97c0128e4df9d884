"""Reading a configuration file: environment, overrides, validation, one-line errors."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic

from connectors import ConfigurationError, register_secret

from . import _models as m
from ._connectors import ConnectorConfig, check_class_connector, checked_conversion
from ._references import load_reference

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
# Keys whose values are credentials (URLs are not: only the credentials inside them; an
# auth table's bare `key` registers itself when its auth object is built).
_SECRET_KEY = re.compile(r"(^|_)(password|secret|token|api_?key|passphrase)$",
                         re.IGNORECASE)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:(?P<password>[^@/\s]+)@", re.I)
_CONNECTION_STRING_PASSWORD = re.compile(r"(?:^|;)\s*(?:PWD|Password)\s*=\s*(?P<password>"
                                         r"\{[^}]*\}|[^;]*)", re.IGNORECASE)
MAX_ERRORS_SHOWN = 3


def expand(value: Any, where: str) -> Any:
    """``${NAME}`` and ``${NAME:-default}`` replaced from the environment, recursively;
    credentials registered for redaction before anything can print them."""
    if isinstance(value, dict):
        expanded = {}
        for key, item in value.items():
            expanded[key] = expand(item, f"{where}.{key}")
            if _SECRET_KEY.search(str(key)) and isinstance(expanded[key], str):
                register_secret(expanded[key])
        return expanded
    if isinstance(value, list):
        return [expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in os.environ:
            value = os.environ[name]
            if "://" not in value:  # a URL is not a secret; its password is, below
                register_secret(value)
            return value
        if default is not None:
            return default
        raise ConfigurationError(f"{where} needs the environment variable {name}; set it or "
                                 f"give a default as ${{{name}:-value}}")

    text = _VARIABLE.sub(substitute, value)
    for pattern in (_URL_PASSWORD, _CONNECTION_STRING_PASSWORD):
        for found in pattern.finditer(text):
            password = found["password"].strip("{}")
            if password:
                register_secret(password)
    return text


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``key.path=value`` settings on top of the file (values read as TOML, else text)."""
    for override in overrides:
        path, equals, text = override.partition("=")
        if not equals or not path.strip():
            raise ConfigurationError(f"--set {override!r}: expected key.path=value")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        target = data
        parts = path.strip().split(".")
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ConfigurationError(f"--set {override!r}: {part!r} is not a table")
            target = nested
        target[parts[-1]] = value
    return data


def parse(text: str, origin: str, folder: Path | None, overrides: Sequence[str] = ()
          ) -> tuple[m.ConfigFile, dict[str, ConnectorConfig]]:
    """The file's typed models and its checked connectors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{origin} is not valid TOML: {exc}") from None
    data = expand(apply_overrides(raw, overrides), origin)
    parsed = validate(m.ConfigFile, data, origin, prefix="")
    connectors = {name: check_connector(name, spec, origin, folder)
                  for name, spec in parsed.connectors.items()}
    return parsed, connectors


def check_connector(name: str, raw: Mapping[str, Any], origin: str, folder: Path | None
                    ) -> ConnectorConfig:
    where = f"connectors.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{origin}: {where} must be a table ([{where}])")

    def check(model: type[pydantic.BaseModel], data: Any, at: str) -> Any:
        return validate(model, data, origin, prefix=at)

    if "class" in raw:
        if "kind" in raw:
            raise ConfigurationError(f"{origin}: {where}: give class or kind, not both (a "
                                     "class's kind is the base it subclasses)")
        cls = load_reference(str(raw["class"]), folder, f"{origin}: {where}.class")
        options = {k: v for k, v in raw.items() if k != "class"}
        return check_class_connector(name, cls, options, f"{origin}: {where}", check)
    kind = raw.get("kind", "sql")
    model = m.KIND_SPECS.get(kind)
    if model is None:
        hint = difflib.get_close_matches(str(kind), m.KIND_SPECS, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigurationError(
            f"{origin}: {where}.kind: unknown kind {kind!r}{suggestion}; known kinds: "
            f"{', '.join(m.KIND_SPECS)}, or class = \"package.module:Name\" for your own")
    settings = check(model, raw, where)
    checked_conversion(kind, settings, None, name, f"{origin}: {where}")
    return ConnectorConfig(name, kind, settings, frozenset(raw))


def validate(model: type[pydantic.BaseModel], data: Any, origin: str, prefix: str) -> Any:
    """``data`` as ``model``; a :class:`ConfigurationError` of one line naming each
    problem's key path (and, for an unknown key, the closest valid one)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_describe(model, error, prefix) for error in exc.errors()]
        shown = "; ".join(problems[:MAX_ERRORS_SHOWN])
        more = f" (and {len(problems) - MAX_ERRORS_SHOWN} more)" \
            if len(problems) > MAX_ERRORS_SHOWN else ""
        raise ConfigurationError(f"{origin}: {shown}{more}") from None


def _describe(model: type[pydantic.BaseModel], error: Mapping[str, Any], prefix: str) -> str:
    path, valid = _walk(model, tuple(error["loc"]))
    where = ".".join(p for p in (prefix, path) if p) or "(top level)"
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        hint = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        listing = f" Valid keys: {', '.join(sorted(valid))}" if valid else ""
        return f"{where}: unknown key{suggestion}{listing}"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    given = error.get("input")
    shown = f" (got {given!r})" if not isinstance(given, dict | list) else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}{shown}"


def _walk(model: Any, loc: tuple[Any, ...]) -> tuple[str, list[str]]:
    """The display path of ``loc`` (list items as ``[i]``, union tags left out) and the
    keys valid in the table that holds its last step."""
    path = ""
    current: Any = model
    valid: list[str] = _table_keys(current)
    for step in loc:
        options = _members(current)
        if isinstance(step, int):
            path += f"[{step}]"
            current = _item_type(options)
            valid = _table_keys(current)
            continue
        tagged = [o for o in options if _tag(o) == step]
        if tagged:  # a discriminated union's tag, not a key of the file
            current = tagged[0]
            valid = _table_keys(current)
            continue
        path += f".{step}" if path else str(step)
        models = [o for o in options if _is_model(o)]
        valid = _table_keys(models[0]) if models else valid
        field = _field(models[0], str(step)) if models else None
        if field is not None:
            current = field
        elif options and all(typing.get_origin(o) is dict for o in options):
            current = typing.get_args(options[0])[1]
        else:
            current = None
    return path, valid


def _members(annotation: Any) -> list[Any]:
    """The types a value of ``annotation`` may be (unions and ``Annotated`` opened)."""
    if annotation is None:
        return []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [x for a in typing.get_args(annotation) for x in _members(a)]
    return [annotation]


def _item_type(options: list[Any]) -> Any:
    for option in options:
        if typing.get_origin(option) in (list, tuple):
            return typing.get_args(option)[0]
    return None


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, pydantic.BaseModel)


def _tag(value: Any) -> Any:
    if not _is_model(value) or "kind" not in value.model_fields:
        return None
    literal = typing.get_args(value.model_fields["kind"].annotation)
    return literal[0] if len(literal) == 1 else None


def _field(model: type[pydantic.BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _table_keys(annotation: Any) -> list[str]:
    models = [o for o in _members(annotation) if _is_model(o)]
    if not models:
        return []
    return [info.alias or name for name, info in models[0].model_fields.items()]
