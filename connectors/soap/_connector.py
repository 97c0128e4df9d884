"""SOAPConnector: operations of a WSDL page by page into Arrow batches, on hardened zeep."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import zeep
from zeep import exceptions as zx
from zeep.helpers import serialize_object
from zeep.wsse.username import UsernameToken
from zeep.wsse.utils import WSU

from .._errors import (
    ConfigurationError,
    DataContractError,
    HeadwaterError,
    RetriableSourceError,
)
from .._identity import SourceIdentity
from .._incremental import CursorTracker
from .._paged import DEFAULT_MAX_PAGES, PagedConnector
from .._paginate import Page
from .._records import follow_path
from .._redaction import redact, register_secret
from .._retry import Retrier, RetryPolicy
from .._stream import Stream
from ..http import DEFAULT_MAX_RESPONSE_BYTES, Auth, HTTPClient, RateLimit
from ._faults import translate_fault, within
from ._streams import SOAPStream
from ._transport import GuardedTransport, hardened_settings, origin_of


class TimestampedUsernameToken(UsernameToken):
    """WS-Security UsernameToken (text or digest) with a fresh ``wsu:Timestamp`` on
    every message, so a long read never sends an expired one."""

    def __init__(self, username: str, password: str, *, digest: bool = True,
                 ttl: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        register_secret(password)
        super().__init__(username, password, use_digest=digest)
        self.ttl = ttl

    def apply(self, envelope: Any, headers: Any) -> Any:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        timestamp = WSU.Timestamp()
        timestamp.extend([WSU.Created(now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                          WSU.Expires((now + self.ttl).strftime("%Y-%m-%dT%H:%M:%SZ"))])
        self.timestamp_token = timestamp
        return super().apply(envelope, headers)


class SOAPConnector(PagedConnector):
    """Reads SOAP services declared as :class:`SOAPStream` s of one WSDL.

    The WSDL comes from a URL or a local file; documents it imports load only from its
    own location or from ``allowed_imports``; ``endpoint`` overrides the address the
    WSDL names (a checked-in WSDL pointing at another server, say). XML is parsed
    without DTDs, entities, outside references or huge trees; a response carrying one
    is refused (``DataContractError``), never retried.
    Every exchange goes through one :class:`~connectors.http.HTTPClient`, as for REST:
    ``rate_limit``, retries with backoff honouring ``Retry-After``, one renewal on 401,
    ``operation_timeout`` seconds per operation from connect to last byte (``timeout``
    per WSDL download), ``max_elapsed`` for an operation with all its retries, and
    ``max_response_bytes`` per response.
    Credentials: WS-Security UsernameToken (``username``/``password``, digest by
    default, with a timestamp), and/or an HTTP ``auth`` object (basic, bearer, OAuth2
    from :mod:`connectors.http`). Server faults, timeouts and dropped connections are
    retried; client and authentication faults fail at once, naming the operation and
    the fault string.

    Pages, checkpoints and incremental windows work as for REST (the same base).
    """

    kind = "soap"
    wsdl: str | None = None

    def __init__(
        self,
        name: str | None = None,
        wsdl: str | None = None,
        streams: Sequence[Stream] | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        digest: bool = True,
        auth: Auth | None = None,
        retry: RetryPolicy | Retrier | None = None,
        timeout: float = 30.0,
        operation_timeout: float = 60.0,
        allowed_imports: Sequence[str] = (),
        endpoint: str | None = None,
        rate_limit: RateLimit | None = None,
        max_elapsed: float = 300.0,
        batch_size: int = 10_000,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(name, streams, batch_size=batch_size, max_pages=max_pages,
                         max_response_bytes=max_response_bytes)
        self.wsdl = wsdl or self.wsdl
        if not self.wsdl:
            raise ConfigurationError(f"connector {self.name!r} needs a wsdl (URL or file)")
        for stream in self.streams:
            if not isinstance(stream, SOAPStream):
                raise ConfigurationError(f"stream {stream.name!r}: a SOAP stream is a SOAPStream")
        self.http = HTTPClient(auth=auth, retry=retry, timeout=timeout,
                               deadline=operation_timeout, max_elapsed=max_elapsed,
                               rate_limit=rate_limit, max_response_bytes=max_response_bytes)
        self.wsse = (TimestampedUsernameToken(username, password or "", digest=digest)
                     if username else None)
        self.transport = GuardedTransport(self.http, [origin_of(self.wsdl), *allowed_imports],
                                          timeout=timeout, operation_timeout=operation_timeout)
        self.endpoint = endpoint
        self.where = redact(endpoint or self.wsdl)
        self._client: zeep.Client | None = None

    def describe_source(self, stream: str | Stream) -> SourceIdentity:
        """The operation a stream calls, in the service of the WSDL."""
        declared = self.stream(stream)
        operation = getattr(declared, "operation", declared.name)
        return SourceIdentity(self.name, self.kind, self.where, operation, "operation")

    @property
    def credential_params(self) -> frozenset[str]:  # type: ignore[override]
        return self.http.auth.query_params

    @property
    def client(self) -> zeep.Client:
        """The zeep client, built on first use (it loads the WSDL; the transport retries
        failed downloads, so a document that does not parse is not fetched again)."""
        if self._client is None:
            try:
                self._client = zeep.Client(self.wsdl, transport=self.transport,
                                           wsse=self.wsse, settings=hardened_settings())
            except zx.ExternalReferenceForbidden:
                raise ConfigurationError(
                    f"the WSDL {self.where} refers to a resource outside the allow-list "
                    f"({', '.join(self.transport.allowed)}); refused"
                ) from None
            except Exception as exc:
                raise translate_fault(exc, f"loading the WSDL {self.where}") from None
        return self._client

    @functools.cached_property
    def service(self) -> Any:
        """The operations, at ``endpoint`` if given (a local WSDL names another address)."""
        if not self.endpoint:
            return self.client.service
        return self.client.create_service(next(iter(self.client.wsdl.bindings)), self.endpoint)

    def operations(self) -> dict[str, Any]:
        """The WSDL's operations by name (loading the WSDL)."""
        return dict(self.service._binding.all())  # zeep keeps the binding of a service here

    def _operation(self, stream: SOAPStream) -> Any:
        operations = self.operations()
        if stream.operation not in operations:
            raise ConfigurationError(
                f"connector {self.name!r}, stream {stream.name!r}: the WSDL {self.where} has "
                f"no operation {stream.operation!r}; its operations are: "
                f"{', '.join(sorted(operations)) or '(none)'}"
            )
        return operations[stream.operation]

    def check(self) -> None:
        """Load the WSDL, confirm every stream's operation is in it, then fetch each
        stream's first page (credentials, address)."""
        operations = self.operations()
        if not operations:
            raise ConfigurationError(f"connector {self.name!r}: the WSDL {self.where} "
                                     "declares no operations")
        for stream in self.streams:
            self._operation(stream)
        super().check()

    def discover(self) -> list[Stream]:
        """The declared streams with their schemas; with none declared, every operation
        of the WSDL as a stream named after it, with the fields of its repeating record
        element as the WSDL types them (declare a ``SOAPStream`` with a primary key to
        read one)."""
        if self.streams:
            for stream in self.streams:
                self._operation(stream)
            return super().discover()
        return [Stream(name=name, schema=pa.schema(_record_fields(operation)))
                for name, operation in sorted(self.operations().items())]

    def first_page(self, stream: SOAPStream, tracker: CursorTracker | None) -> Page:
        self._operation(stream)
        arguments = dict(stream.arguments)
        if tracker is not None and stream.since_arg and tracker.window.start is not None:
            start = tracker.window.start
            arguments[stream.since_arg] = start.isoformat() if isinstance(
                start, dt.date) else start
        return Page(stream.operation, arguments)

    def fetch_page(self, stream: SOAPStream, page: Page) -> tuple[Any, Mapping[str, str]]:
        """Call the operation with the page's arguments.

        Failed exchanges were retried by the HTTP policy already; here only what zeep
        makes of a complete answer is retried (a ``soap:Server`` fault, XML cut short),
        within the same attempts and ``max_elapsed``. Refused XML is never retried.
        """
        what = f"operation {page.url} of {self.where}"
        started, attempt = self.http.clock(), 0
        while True:
            attempt += 1
            try:
                with self.transport.response_limit(self.response_limit(stream)):
                    reply = self.service[page.url](**page.arguments)
                return serialize_object(reply, target_cls=dict), {}
            except HeadwaterError as exc:  # the HTTP policy has retried what it could
                raise within(exc, what) from None
            except Exception as exc:
                error = translate_fault(exc, what)
            if not isinstance(error, RetriableSourceError):
                raise error
            self.http.wait_or_raise(attempt, error, what, started)

    def parse_records(self, stream: SOAPStream, body: Any, headers: Mapping[str, str]
                      ) -> list[Mapping[str, Any]]:
        found = follow_path(body, stream.record_path) if stream.record_path else body
        if found is None:
            return []
        records = found if isinstance(found, list) else [found]
        if not all(isinstance(r, Mapping) for r in records):
            raise DataContractError(
                f"stream {stream.name!r}: {stream.record_path!r} does not hold elements "
                "with children; point record_path at the repeating record element"
            )
        if stream.explode:
            return [{**{out: parent.get(src) for out, src in stream.explode_keys.items()},
                     **child}
                    for parent in records for child in (parent.get(stream.explode) or [])]
        return list(records)

    def close(self) -> None:
        self.http.close()


# Python values zeep gives for XSD types, as the Arrow types a read lands them in.
_ARROW_FOR = ((bool, pa.bool_()), (int, pa.int64()), (Decimal, pa.decimal128(38, 10)),
              (float, pa.float64()), (dt.datetime, pa.timestamp("us", tz="UTC")),
              (dt.date, pa.date32()), (dt.time, pa.time64("us")), (bytes, pa.binary()),
              (str, pa.string()))


def _record_fields(operation: Any) -> list[pa.Field]:
    """The fields of an operation's records: the children of the repeating element of
    its response (or of its one element, or of the response itself), nested elements
    flattened as a read flattens them (``parent__child``), repeated ones as JSON text."""
    body = operation.output.body if operation.output is not None else None
    if body is None or not isinstance(body.type, zeep.xsd.ComplexType):
        return []
    children = [e for _, e in body.type.elements]
    records = [e for e in children if isinstance(e.type, zeep.xsd.ComplexType)
               and (e.max_occurs != 1 or len(children) == 1)]
    return _fields(records[0].type if len(records) == 1 else body.type, "")


def _fields(complex_type: Any, prefix: str) -> list[pa.Field]:
    out = []
    for name, element in complex_type.elements:
        column = f"{prefix}{name}"
        if element.max_occurs != 1:
            out.append(pa.field(column, pa.string()))  # repeated: JSON text
        elif isinstance(element.type, zeep.xsd.ComplexType):
            out.extend(_fields(element.type, f"{column}__"))
        else:
            accepted = tuple(getattr(element.type, "accepted_types", ()) or (str,))
            arrow = next((t for cls, t in _ARROW_FOR if issubclass(accepted[0], cls)),
                         pa.string())
            out.append(pa.field(column, arrow))
    return out
