"""zeep, hardened: no DTDs, entities, outside resources or huge trees; the HTTP policy
on every exchange; an allow-list.

zeep's defaults trust the documents it reads: DTDs are allowed, external references
too, and operations wait for ever. Everything here is refused unless allowed:
:func:`hardened_settings` forbids DTDs, entities and external references and huge
trees; :class:`GuardedTransport` loads a WSDL or XSD only from the allowed places and
sends every exchange through the connector's :class:`~connectors.http.HTTPClient`, so a
SOAP source gets the same rate limit, retries, ``Retry-After`` handling, 401 renewal,
whole-request deadline and response size bound as a REST one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
import zeep
from zeep.transports import Transport
from zeep.utils import get_media_type

from .._errors import ConfigurationError
from .._redaction import RedactingFilter, redact
from ..http import HTTPClient

# zeep's transport logs whole envelopes at DEBUG, WS-Security passwords included.
logging.getLogger("zeep.transports").addFilter(RedactingFilter())
logging.getLogger("zeep.wsse").addFilter(RedactingFilter())

_XML_TYPES = frozenset({"text/xml", "application/soap+xml", "application/xml"})
_UNSET: Any = object()


def hardened_settings() -> zeep.Settings:
    """Strict parsing with every XML expansion and outside reference refused."""
    return zeep.Settings(strict=True, xml_huge_tree=False, forbid_dtd=True,
                         forbid_entities=True, forbid_external=True)


def origin_of(location: str) -> str:
    """Where a WSDL lives: ``scheme://host:port/`` for a URL, its folder for a file."""
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}/"
    path = parts.path if parts.scheme == "file" else location
    return os.path.dirname(os.path.abspath(path)) + os.sep


def _is_fault(response: requests.Response) -> bool:
    """A SOAP fault (HTTP 500, or 400 from some servers, with an XML body): zeep reads
    it and the fault code decides; a 5xx that is not XML is a failed exchange."""
    media = get_media_type(response.headers.get("Content-Type", ""))
    return response.status_code in (400, 500) and media in _XML_TYPES


class GuardedTransport(Transport):
    """A zeep transport over ``http`` (an :class:`~connectors.http.HTTPClient`) that
    loads documents only from ``allowed`` prefixes (URLs or folders).

    Each operation has ``operation_timeout`` seconds from connect to last byte, each
    WSDL or XSD download ``timeout``; a response over ``max_response_bytes`` (or the
    bound set for the calls inside :meth:`response_limit`) fails at the limit.
    """

    def __init__(self, http: HTTPClient, allowed: Sequence[str], *, timeout: float = 30.0,
                 operation_timeout: float = 60.0,
                 max_response_bytes: int | None = _UNSET) -> None:
        super().__init__(session=http.session, timeout=timeout,
                         operation_timeout=operation_timeout)
        self.http = http
        self.allowed = tuple(allowed)
        self.max_response_bytes = (http.max_response_bytes if max_response_bytes is _UNSET
                                   else max_response_bytes)
        self._local = threading.local()

    @contextlib.contextmanager
    def response_limit(self, max_bytes: int | None) -> Iterator[None]:
        """Calls made from this thread inside the block may read at most ``max_bytes``."""
        previous = getattr(self._local, "max_bytes", _UNSET)
        self._local.max_bytes = max_bytes
        try:
            yield
        finally:
            self._local.max_bytes = previous

    def _max_bytes(self) -> int | None:
        limit = getattr(self._local, "max_bytes", _UNSET)
        return self.max_response_bytes if limit is _UNSET else limit

    def _operation(self, method: str, address: str, **kwargs: Any) -> requests.Response:
        seconds = self.operation_timeout or self.http.deadline
        response = self.http.request(method, address, timeout=seconds, deadline=seconds,
                                     deadline_label="the operation timeout",
                                     max_bytes=self._max_bytes(), accept=_is_fault, **kwargs)
        self.logger.debug("HTTP response from %s: %d, %d bytes", redact(address),
                          response.status_code, len(response.content))
        return response

    def post(self, address: str, message: Any, headers: Any) -> requests.Response:
        if self.logger.isEnabledFor(logging.DEBUG):
            text = message.decode("utf-8") if isinstance(message, bytes) else message
            self.logger.debug("HTTP Post to %s:\n%s", address, text)
        return self._operation("POST", address, data=message, headers=headers)

    def get(self, address: str, params: Any, headers: Any) -> requests.Response:
        return self._operation("GET", address, params=params, headers=headers)

    def _load_remote_data(self, url: str) -> bytes:
        if urlsplit(url).scheme not in ("http", "https"):
            return super()._load_remote_data(url)  # a file:// document
        response = self.http.request("GET", url, timeout=self.load_timeout,
                                     deadline=self.load_timeout,
                                     deadline_label="the WSDL download timeout",
                                     max_bytes=self._max_bytes())
        return response.content

    def load(self, url: str) -> bytes:
        location = url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            location = os.path.abspath(parts.path if parts.scheme == "file" else url)
        if not any(location.startswith(prefix) for prefix in self.allowed):
            raise ConfigurationError(
                f"refused to load {redact(url)}: a WSDL or XSD import outside the allow-list "
                f"({', '.join(self.allowed)}); add its location to allowed_imports if it "
                "is trusted"
            )
        return super().load(url)
