"""From a connector's typed settings to the connector: one path for TOML kinds and classes.

A TOML connector (``kind = "sql" | "odbc" | "rest" | "soap"``) becomes that kind's base
class. A class connector (``class = "package.module:Name"``) is checked against the
settings of the kind it subclasses (every key optional: the class may declare it) plus
the arguments of its own ``__init__``; the keys given become its keyword arguments,
converted the same way (a ``retry`` table becomes a ``RetryPolicy``, streams become
``SQLTable`` / ``RESTStream`` / ``SOAPStream`` objects). Kind modules are imported here,
when a connector of that kind is built, so loading a configuration imports none of them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from connectors import ConfigurationError, Connector, Incremental, RetryPolicy, stream_name_for

from . import _models as m

# Class attributes that tell a connector's kind without importing every kind module.
_KIND_OF_BASE = {"sql": "sql", "odbc": "odbc", "rest": "rest", "soap": "soap"}


@dataclass(frozen=True)
class ConnectorConfig:
    """One ``[connectors.<name>]``, checked: its kind, settings, and (for a class
    connector) the class and the keyword arguments of its own."""

    name: str
    kind: str
    settings: m.Orchestration
    given: frozenset[str]
    cls: type[Connector] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def declared_streams(self) -> list[Any]:
        """The streams the configuration itself declares (not a class's own)."""
        return list(getattr(self.settings, "streams", []))

    def partitions(self) -> dict[str, m.PartitionSpec]:
        """Partitioned streams: ``partitions`` of the connector and ``partition`` keys
        of its TOML streams."""
        found = dict(self.settings.partitions)
        for stream in self.declared_streams:
            if stream.partition:
                found[stream_name(stream)] = stream.partition_spec()
        return found

    def build(self) -> Connector:
        """A new connector (not yet opened: use it in a ``with`` block)."""
        kwargs = _kwargs(self.kind, self.settings, self.given if self.cls else None, self.name)
        if self.cls is None:
            return _kind_class(self.kind)(name=self.name, **kwargs)
        return self.cls(name=self.name, **kwargs, **self.options)


def stream_name(spec: Any) -> str:
    """The name a configured stream lands under: its ``name``, or one made from its
    ``table``."""
    return spec.name or stream_name_for(spec.table)


def _kind_class(kind: str) -> type[Connector]:
    import connectors

    return {"sql": lambda: connectors.SQLConnector, "odbc": lambda: connectors.ODBCConnector,
            "rest": lambda: connectors.RESTConnector,
            "soap": lambda: connectors.SOAPConnector}[kind]()


def class_kind(cls: type) -> str | None:
    """The kind base a connector class subclasses (``kind`` of the nearest base)."""
    kind = getattr(cls, "kind", None)
    return kind if kind in _KIND_OF_BASE else None


def check_class_connector(name: str, cls: type, raw: Mapping[str, Any], where: str,
                          validate: Any) -> ConnectorConfig:
    """Check the keys of a class connector: settings of its kind (all optional) and its
    own ``__init__`` arguments; anything else is an error naming the closest key."""
    from connectors import Connector as Base

    if not (isinstance(cls, type) and issubclass(cls, Base)):
        raise ConfigurationError(f"{where}.class: {cls!r} is not a Connector subclass")
    kind = class_kind(cls)
    settings_model = _optional(m.KIND_SPECS[kind]) if kind else m.Orchestration
    known = _keys(settings_model) - {"kind"}
    own = _own_arguments(cls, known | {"name", "streams"})
    unknown = [k for k in raw if k not in known and k not in own]
    if unknown:
        key = unknown[0]
        hint = difflib.get_close_matches(key, [*known, *own], n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigurationError(
            f"{where}.{key}: unknown key for {cls.__name__} ({kind or 'custom'} connector)"
            f"{suggestion} Valid keys: {', '.join(sorted([*known, *own]))}")
    settings = validate(settings_model, {k: v for k, v in raw.items() if k in known}, where)
    options = {}
    for key, value in raw.items():
        if key in own and key not in known:
            options[key] = _checked_argument(own[key], value, f"{where}.{key}")
    given = frozenset(k for k in raw if k in known)
    checked_conversion(kind or "custom", settings, given, name, where)
    return ConnectorConfig(name, kind or "custom", settings, given, cls, options)


def checked_conversion(kind: str, settings: m.Orchestration, given: frozenset[str] | None,
                       name: str, where: str) -> None:
    """Convert the settings once at load (streams, paginators, auth), so a mistake in
    them fails before anything runs; the result is built again for each connector."""
    try:
        _kwargs(kind, settings, given, name)
    except ConfigurationError as exc:
        text = str(exc)
        prefix = where.partition(": ")[0]
        raise ConfigurationError(text if text.startswith(prefix) else f"{prefix}: {text}"
                                 ) from None


@functools.cache
def _optional(model: type[m.Orchestration]) -> type[m.Orchestration]:
    """``model`` with every required field optional (a class may declare it)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            fields[name] = (info.annotation | None, pydantic.Field(None, alias=info.alias))
    return pydantic.create_model(f"{model.__name__}ForClass", __base__=model, **fields)


def _keys(model: type[pydantic.BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def _own_arguments(cls: type, skip: set[str]) -> dict[str, inspect.Parameter]:
    """Keyword arguments of ``cls.__init__`` that are not kind settings."""
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return {}
    return {n: p for n, p in parameters.items()
            if n != "self" and n not in skip and n not in _KIND_ARGUMENTS
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


# Constructor arguments of the kind bases that the settings give under another name.
_KIND_ARGUMENTS = {"source", "db_schema", "output_converters", "arrow_buffer_bytes"}


def _checked_argument(parameter: inspect.Parameter, value: Any, where: str) -> Any:
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return value
    try:
        return pydantic.TypeAdapter(annotation).validate_python(value)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"{where}: {exc.errors()[0]['msg']} (got {value!r})") from None
    except pydantic.PydanticSchemaGenerationError:
        return value


# -- settings -> keyword arguments ----------------------------------------------------------


def _kwargs(kind: str, settings: m.Orchestration, given: frozenset[str] | None, name: str
            ) -> dict[str, Any]:
    """Constructor keyword arguments from ``settings``: every key of a TOML connector,
    only the keys given for a class connector (its class attributes stay in force)."""
    if kind == "custom":
        return {}
    converted = _CONVERTERS[kind](settings, name)
    if given is None:
        return converted
    keys = {_ARGUMENT_OF.get(k, k) for k in given}
    return {k: v for k, v in converted.items() if k in keys}


# Settings keys whose constructor argument has another name.
_ARGUMENT_OF = {"schema": "db_schema", "url": "source", "db_schema": "db_schema"}


def retry_policy(spec: m.RetrySpec) -> RetryPolicy:
    return RetryPolicy(max_attempts=spec.max_attempts, base_delay=spec.base_delay,
                       max_delay=spec.max_delay)


def incremental(spec: m.IncrementalFields) -> Incremental | None:
    if not spec.cursor:
        return None
    lag = dt.timedelta(seconds=spec.lag_seconds) if spec.lag_seconds is not None else None
    return Incremental(cursor_field=spec.cursor, start=spec.start, end=spec.end, lag=lag,
                       on_missing_cursor=spec.on_missing_cursor)


def sync_settings(spec: m.IncrementalFields) -> dict[str, Any]:
    """A stream's ``deletes``, ``reconcile_deletes`` and ``schema_contract``."""
    return {"deletes": spec.deletes, "reconcile_deletes": spec.reconcile_deletes,
            "schema_contract": spec.schema_contract}


def _relational(settings: m.RelationalSettings, name: str) -> dict[str, Any]:
    from connectors import SQLQuery, SQLTable

    streams = []
    for spec in settings.streams:
        common = {"primary_key": tuple(spec.primary_key), "incremental": incremental(spec),
                  "column_types": dict(spec.column_types), **sync_settings(spec)}
        if spec.query is not None:
            streams.append(SQLQuery(name=spec.name, sql=spec.query, **common))
        else:
            streams.append(SQLTable(name=stream_name(spec), table=spec.table,
                                    db_schema=spec.db_schema, **common))
    return {"streams": streams, "db_schema": settings.db_schema,
            "chunk_size": settings.chunk_size, "batch_size": settings.batch_size,
            "retry": retry_policy(settings.retry), "fast_path": settings.fast_path}


def _sql(settings: m.SQLConnectorSpec, name: str) -> dict[str, Any]:
    return {**_relational(settings, name), "source": settings.url}


def _odbc(settings: m.ODBCConnectorSpec, name: str) -> dict[str, Any]:
    return {**_relational(settings, name), "connection_string": settings.connection_string,
            "dialect": settings.dialect, "literal_sql": settings.literal_sql,
            "max_text_size": settings.max_text_size,
            "max_binary_size": settings.max_binary_size,
            "login_timeout": settings.login_timeout, "query_timeout": settings.query_timeout}


def _rest(settings: m.RESTConnectorSpec, name: str) -> dict[str, Any]:
    from connectors import RESTStream

    streams = [RESTStream(
        name=s.name, path=s.path, record_path=s.record_path,
        paginator=paginator(s.paginator, f"connectors.{name}.streams.{s.name}"),
        params=dict(s.params), since_param=s.since_param, nested=s.nested,
        primary_key=tuple(s.primary_key), incremental=incremental(s),
        schema=declared_schema(s.columns, f"connectors.{name}.streams.{s.name}.columns"),
        max_pages=s.max_pages, max_response_bytes=s.max_response_bytes, **sync_settings(s),
    ) for s in settings.streams]
    return {"streams": streams, "base_url": settings.base_url,
            "auth": auth(settings.auth, f"connectors.{name}.auth"),
            "retry": retry_policy(settings.retry), "timeout": settings.timeout,
            "deadline": settings.deadline, "max_elapsed": settings.max_elapsed,
            "rate_limit": rate_limit(settings.rate_limit), "headers": dict(settings.headers),
            "batch_size": settings.batch_size, "max_pages": settings.max_pages,
            "max_response_bytes": settings.max_response_bytes}


def _soap(settings: m.SOAPConnectorSpec, name: str) -> dict[str, Any]:
    from connectors import SOAPStream

    streams = [SOAPStream(
        name=s.name, operation=s.operation, arguments=dict(s.arguments),
        record_path=s.record_path,
        paginator=paginator(s.paginator, f"connectors.{name}.streams.{s.name}"),
        since_arg=s.since_arg, nested=s.nested, explode=s.explode,
        explode_keys=dict(s.explode_keys), primary_key=tuple(s.primary_key),
        incremental=incremental(s), max_pages=s.max_pages,
        schema=declared_schema(s.columns, f"connectors.{name}.streams.{s.name}.columns"),
        max_response_bytes=s.max_response_bytes, **sync_settings(s),
    ) for s in settings.streams]
    return {"streams": streams, "wsdl": settings.wsdl, "username": settings.username,
            "password": settings.password, "digest": settings.digest,
            "auth": auth(settings.auth, f"connectors.{name}.auth"),
            "retry": retry_policy(settings.retry), "timeout": settings.timeout,
            "operation_timeout": settings.operation_timeout, "max_elapsed": settings.max_elapsed,
            "allowed_imports": tuple(settings.allowed_imports), "endpoint": settings.endpoint,
            "rate_limit": rate_limit(settings.rate_limit), "batch_size": settings.batch_size,
            "max_pages": settings.max_pages, "max_response_bytes": settings.max_response_bytes}


_CONVERTERS = {"sql": _sql, "odbc": _odbc, "rest": _rest, "soap": _soap}


def declared_schema(columns: dict[str, str], where: str) -> Any:
    """The Arrow schema a REST or SOAP stream's ``columns`` declare (``None``: inferred)."""
    if not columns:
        return None
    import pyarrow as pa

    from connectors.sql import declared_column_type

    return pa.schema([pa.field(name, declared_column_type(kind, f"{where}.{name}").arrow)
                      for name, kind in columns.items()])


def rate_limit(spec: m.RateLimitSpec | None) -> Any:
    if spec is None:
        return None
    from connectors.http import RateLimit

    return RateLimit(spec.requests, spec.per_seconds)


def auth(spec: Any, where: str) -> Any:
    """The auth object of an ``auth = { kind = ... }`` table."""
    if spec is None:
        return None
    from connectors.http import APIKey, BasicAuth, BearerToken, OAuth2ClientCredentials

    if isinstance(spec, m.OAuth2Spec):
        key = _read_key(spec.private_key_file, where) if spec.private_key_file else None
        return OAuth2ClientCredentials(spec.token_url, spec.client_id, spec.client_secret,
                                       private_key=key, method=spec.method, scope=spec.scope,
                                       leeway=spec.leeway)
    if isinstance(spec, m.APIKeySpec):
        return APIKey(spec.key, header=spec.header, query_param=spec.query_param)
    if isinstance(spec, m.BasicAuthSpec):
        return BasicAuth(spec.username, spec.password)
    return BearerToken(spec.token)


def _read_key(path: str, where: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{where}.private_key_file: cannot read {path!r}: "
                                 f"{exc.strerror}") from None


def paginator(spec: m.PaginatorSpec | None, where: str) -> Any:
    """The paginator of a ``paginator = { kind = ... }`` table; its other keys must be
    the paginator's own settings."""
    if spec is None:
        return None
    from connectors.rest import CursorInBody, LinkHeader, NextURLInBody, Offset, PageNumber

    cls = {"page_number": PageNumber, "offset": Offset, "cursor": CursorInBody,
           "next_url": NextURLInBody, "link_header": LinkHeader}[spec.kind]
    options = spec.options()
    valid = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in options:
        if key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigurationError(f"{where}.paginator.{key}: unknown key for a {spec.kind} "
                                     f"paginator{suggestion} Valid keys: kind, "
                                     f"{', '.join(valid)}")
    try:
        return cls(**options)
    except (TypeError, ValueError, ConfigurationError) as exc:
        raise ConfigurationError(f"{where}.paginator: {exc}") from None
