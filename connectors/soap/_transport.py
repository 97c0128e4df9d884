"""zeep, hardened: no DTDs, entities or outside resources; timeouts always; an allow-list.

zeep's defaults trust the documents it reads: DTDs are allowed, external references
too, and operations wait for ever. Everything here is refused unless allowed:
:func:`hardened_settings` forbids DTDs, entities and external references and huge
trees; :class:`GuardedTransport` loads a WSDL or XSD only from the allowed places and
sends every operation with a timeout, over the shared HTTP session.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from urllib.parse import urlsplit

import zeep
from zeep.transports import Transport

from .._errors import ConfigurationError
from .._redaction import RedactingFilter, redact

# zeep's transport logs whole envelopes at DEBUG, WS-Security passwords included.
logging.getLogger("zeep.transports").addFilter(RedactingFilter())
logging.getLogger("zeep.wsse").addFilter(RedactingFilter())


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


class GuardedTransport(Transport):
    """A zeep transport that loads documents only from ``allowed`` prefixes (URLs or
    folders) and gives every operation ``operation_timeout`` seconds."""

    def __init__(self, session, allowed: Sequence[str], *, timeout: float = 30.0,
                 operation_timeout: float = 60.0) -> None:
        super().__init__(session=session, timeout=timeout, operation_timeout=operation_timeout)
        self.allowed = tuple(allowed)

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
