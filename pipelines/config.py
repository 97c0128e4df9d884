"""Configuration: a TOML file plus environment variables; secrets never printed.

String values may reference the environment as ``${NAME}`` or ``${NAME:-default}``.
Every value taken from the environment, and every key named like a secret, is
registered for redaction before anything can print it.

Lookup order: ``--config PATH``, ``$HEADWATER_CONFIG``, ``./headwater.toml``, and finally
the embedded demo estate (the demo ERP into a local DuckDB file).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors import (
    ConfigurationError,
    Connector,
    Incremental,
    RetryPolicy,
    register_secret,
    stream_name_for,
)

if TYPE_CHECKING:
    from connectors.rest import RESTConnector, RESTStream
    from connectors.soap import SOAPConnector
    from connectors.sql import SQLQuery, SQLTable

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_KEY = re.compile(r"password|secret|token|api_?key", re.IGNORECASE)
DEMO_CONFIG = "demo.toml"


@dataclass
class Config:
    """A loaded configuration."""

    warehouse_url: str
    connectors: dict[str, dict[str, Any]]
    estate: dict[str, Any] = field(default_factory=dict)
    origin: str = "(embedded demo)"
    normalization: dict[str, Any] = field(default_factory=dict)

    def connector_names(self) -> list[str]:
        return list(self.connectors)


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        expanded = {}
        for key, item in value.items():
            expanded[key] = _expand(item, f"{where}.{key}")
            if _SECRET_KEY.search(key) and isinstance(expanded[key], str):
                register_secret(expanded[key])
        return expanded
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in os.environ:
            register_secret(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigurationError(
            f"{where} needs the environment variable {name}; set it or give a default "
            f"as ${{{name}:-value}}"
        )

    return _VARIABLE.sub(substitute, value)


def _read(text: str, origin: str) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{origin} is not valid TOML: {exc}") from exc
    data = _expand(raw, origin)
    warehouse = data.get("warehouse", {}).get("url")
    if not warehouse:
        raise ConfigurationError(f"{origin} needs [warehouse] url = \"duckdb:///path.duckdb\"")
    connectors = data.get("connectors", {})
    if not isinstance(connectors, dict):
        raise ConfigurationError(f"{origin}: [connectors.<name>] tables expected")
    normalization = data.get("normalization", {})
    if not isinstance(normalization, dict):
        raise ConfigurationError(f"{origin}: [normalization] must be a table")
    return Config(warehouse, connectors, data.get("estate", {}), origin, normalization)


def load_config(path: str | Path | None = None) -> Config:
    """Load the configuration (see the module docstring for the lookup order)."""
    chosen = path or os.environ.get("HEADWATER_CONFIG")
    if chosen is None and Path("headwater.toml").exists():
        chosen = "headwater.toml"
    if chosen is None:
        text = resources.files("pipelines.estate").joinpath(DEMO_CONFIG).read_text("utf-8")
        return _read(text, "(embedded demo)")
    file = Path(chosen)
    if not file.is_file():
        raise ConfigurationError(f"config file {str(file)!r} does not exist")
    return _read(file.read_text("utf-8"), str(file))


def _incremental(spec: dict[str, Any]) -> Incremental | None:
    cursor = spec.get("cursor")
    if not cursor:
        return None
    lag: Any = spec.get("lag")
    if "lag_seconds" in spec:
        lag = dt.timedelta(seconds=float(spec["lag_seconds"]))
    return Incremental(
        cursor_field=cursor,
        start=spec.get("start"),
        end=spec.get("end"),
        lag=lag,
        on_missing_cursor=spec.get("on_missing_cursor", "include"),
    )


def stream_name(spec: dict[str, Any]) -> str:
    """The name of a configured stream: its ``name``, or one made from its ``table``."""
    return spec.get("name") or stream_name_for(spec["table"])


def _sql_stream(connector: str, spec: dict[str, Any]) -> SQLTable | SQLQuery:
    from connectors.sql import SQLQuery, SQLTable

    common = {
        "primary_key": tuple(spec.get("primary_key", ())),
        "incremental": _incremental(spec),
    }
    if "query" in spec:
        name = spec.get("name") or _missing(connector, "name", "query streams")
        return SQLQuery(name=name, sql=spec["query"], **common)
    if "table" not in spec:
        _missing(connector, "table", "each stream (or query = \"SELECT ...\")")
    return SQLTable(
        name=stream_name(spec),
        table=spec["table"],
        db_schema=spec.get("schema"),
        **common,
    )


def _missing(connector: str, key: str, what: str) -> Any:
    raise ConfigurationError(f"connector {connector!r}: {what} need {key} = ...")


def _retry(spec: dict[str, Any]) -> RetryPolicy:
    retry = spec.get("retry", {})
    return RetryPolicy(
        max_attempts=int(retry.get("max_attempts", 5)),
        base_delay=float(retry.get("base_delay", 0.5)),
        max_delay=float(retry.get("max_delay", 30.0)),
    )


def _rest_connector(name: str, spec: dict[str, Any]) -> RESTConnector:
    from connectors.http import RateLimit
    from connectors.rest import RESTConnector

    if "base_url" not in spec:
        _missing(name, "base_url", "REST connectors")
    rate = spec.get("rate_limit")
    return RESTConnector(
        name, spec["base_url"],
        [_rest_stream(name, s) for s in spec.get("streams", [])],
        auth=_auth(name, spec.get("auth")),
        retry=_retry(spec),
        timeout=float(spec.get("timeout", 60)),
        max_elapsed=float(spec.get("max_elapsed", 300)),
        rate_limit=RateLimit(int(rate["requests"]), float(rate.get("per_seconds", 1)))
        if rate else None,
    )


def _auth_kinds() -> dict[str, Any]:
    from connectors.http import APIKey, BasicAuth, BearerToken, OAuth2ClientCredentials

    return {
    "oauth2": lambda s: OAuth2ClientCredentials(
        s["token_url"], s["client_id"], s.get("client_secret"),
        private_key=_read_key(s["private_key_file"]) if "private_key_file" in s else None,
        method=s.get("method", "client_secret_basic"), scope=s.get("scope"),
        leeway=float(s.get("leeway", 30))),
    "api_key": lambda s: APIKey(s["key"], header=s.get("header", "X-API-Key"),
                                query_param=s.get("query_param")),
    "basic": lambda s: BasicAuth(s["username"], s["password"]),
    "bearer": lambda s: BearerToken(s["token"]),
    }


def _paginators() -> dict[str, Any]:
    from connectors.rest import CursorInBody, LinkHeader, NextURLInBody, Offset, PageNumber

    return {"page_number": PageNumber, "offset": Offset, "cursor": CursorInBody,
            "next_url": NextURLInBody, "link_header": LinkHeader}


def _soap_connector(name: str, spec: dict[str, Any]) -> SOAPConnector:
    from connectors.soap import SOAPConnector, SOAPStream

    if "wsdl" not in spec:
        _missing(name, "wsdl", "SOAP connectors")
    streams = []
    for s in spec.get("streams", []):
        if "operation" not in s or "name" not in s:
            _missing(name, "name and operation", "SOAP streams")
        streams.append(SOAPStream(
            name=s["name"], operation=s["operation"], arguments=dict(s.get("arguments") or {}),
            record_path=s.get("record_path", ""), paginator=_paginator(name, s),
            since_arg=s.get("since_arg"), nested=s.get("nested", "flatten"),
            explode=s.get("explode"), explode_keys=dict(s.get("explode_keys") or {}),
            primary_key=tuple(s.get("primary_key", ())), incremental=_incremental(s),
        ))
    return SOAPConnector(
        name, spec["wsdl"], streams, username=spec.get("username"),
        password=spec.get("password"), digest=bool(spec.get("digest", True)),
        auth=_auth(name, spec.get("auth")), retry=_retry(spec),
        timeout=float(spec.get("timeout", 30)),
        operation_timeout=float(spec.get("operation_timeout", 60)),
        allowed_imports=tuple(spec.get("allowed_imports", ())),
    )


def _read_key(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the private key file {path!r}: {exc}") from exc


def _auth(connector: str, spec: dict[str, Any] | None) -> Any:
    if not spec:
        return None
    spec = dict(spec)
    kind = spec.pop("kind", None)
    kinds = _auth_kinds()
    if kind not in kinds:
        raise ConfigurationError(
            f"connector {connector!r}: auth kind must be one of {sorted(kinds)}, "
            f"not {kind!r}"
        )
    try:
        return kinds[kind](spec)
    except KeyError as exc:
        raise ConfigurationError(f"connector {connector!r}: auth {kind} needs {exc}") from None


def _paginator(connector: str, spec: dict[str, Any]) -> Any:
    paginator_spec = dict(spec.get("paginator") or {})
    if not paginator_spec:
        return None
    kind = paginator_spec.pop("kind", None)
    paginators = _paginators()
    if kind not in paginators:
        raise ConfigurationError(
            f"connector {connector!r}, stream {spec['name']!r}: paginator kind must be "
            f"one of {sorted(paginators)}, not {kind!r}"
        )
    try:
        return paginators[kind](**paginator_spec)
    except TypeError as exc:
        raise ConfigurationError(
            f"connector {connector!r}, stream {spec['name']!r}: paginator {kind}: {exc}"
        ) from None


def _rest_stream(connector: str, spec: dict[str, Any]) -> RESTStream:
    from connectors.rest import RESTStream

    if "path" not in spec or "name" not in spec:
        _missing(connector, "name and path", "REST streams")
    paginator = _paginator(connector, spec)
    return RESTStream(
        name=spec["name"], path=spec["path"], record_path=spec.get("record_path", ""),
        paginator=paginator, params=dict(spec.get("params") or {}),
        since_param=spec.get("since_param"), nested=spec.get("nested", "flatten"),
        primary_key=tuple(spec.get("primary_key", ())), incremental=_incremental(spec),
    )


def build_connector(name: str, spec: dict[str, Any]) -> Connector:
    """Instantiate the connector configured as ``[connectors.<name>]``.

    ``kind = "sql"`` builds an :class:`SQLConnector` from ``url``; ``kind = "odbc"`` an
    :class:`ODBCConnector` from ``connection_string``; ``kind = "rest"`` a
    :class:`RESTConnector` from ``base_url``, ``auth`` and streams with paginators;
    ``kind = "soap"`` a :class:`SOAPConnector` from ``wsdl`` and streams of operations;
    ``class = "package.module:Name"``
    builds a user's subclass, passing the remaining keys as keyword arguments.
    """
    spec = {k: v for k, v in spec.items() if k not in ORCHESTRATION_KEYS}
    if "class" in spec:
        module_name, _, attr = spec.pop("class").partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"connector {name!r}: cannot load class ({exc})") from exc
        return cls(name=name, **spec)
    kind = spec.get("kind", "sql")
    common: dict[str, Any] = {
        "db_schema": spec.get("schema"),
        "chunk_size": int(spec.get("chunk_size", 100_000)),
        "batch_size": int(spec.get("batch_size", 50_000)),
        "retry": _retry(spec),
        "fast_path": spec.get("fast_path", "auto"),
    }
    if kind == "rest":
        return _rest_connector(name, spec)
    if kind == "soap":
        return _soap_connector(name, spec)
    streams = [_sql_stream(name, s) for s in spec.get("streams", [])]
    if kind == "sql":
        from connectors.sql import SQLConnector

        if "url" not in spec:
            _missing(name, "url", "SQL connectors")
        return SQLConnector(name, spec["url"], streams, **common)
    if kind == "odbc":
        from connectors.odbc import ODBCConnector

        if "connection_string" not in spec:
            _missing(name, "connection_string", "ODBC connectors")
        options = {k: spec[k] for k in _ODBC_OPTIONS if k in spec}
        return ODBCConnector(name, spec["connection_string"], streams, **common, **options)
    raise ConfigurationError(
        f"connector {name!r}: unknown kind {kind!r}; known kinds: sql, odbc, rest, soap"
    )


# Keys of [connectors.<name>] read by the orchestration layer, not by the connector.
ORCHESTRATION_KEYS = frozenset({"schedule", "timezone", "owners", "tags", "description",
                                "freshness_hours", "sensor"})

_ODBC_OPTIONS = ("dialect", "literal_sql", "max_text_size", "max_binary_size",
                 "login_timeout", "query_timeout")
