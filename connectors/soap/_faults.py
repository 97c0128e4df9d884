"""SOAP and transport failures as headwater errors, by fault code.

XML the hardened parser refuses (a DTD, entities, outside references, a text node or
nesting past libxml2's limits) is a refusal, ``DataContractError``, never retried and
never called "not well-formed"; XML that is merely cut short is retriable.
"""

from __future__ import annotations

import requests
from lxml import etree
from zeep import exceptions as zx

from .._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    HeadwaterError,
    RetriableSourceError,
)

_AUTH_CODES = ("failedauthentication", "invalidsecurity", "invalidsecuritytoken",
               "securitytokenunavailable", "messageexpired", "unauthorized")
_SECURITY = {
    zx.DTDForbidden: "a DTD (<!DOCTYPE>)",
    zx.EntitiesForbidden: "an entity declaration",
    zx.ExternalReferenceForbidden: "a reference to an outside resource",
}


# libxml2's words for the limits it enforces without XML_PARSE_HUGE, and what they mean.
_LIMITS = (
    ("amplification", "an entity expansion bomb"),
    ("entity reference loop", "an entity expansion bomb"),
    ("text node too long", "a text node over libxml2's 10 MB limit"),
    ("huge text node", "a text node over libxml2's 10 MB limit"),
    ("buffer size limit", "a value over libxml2's 10 MB limit"),
    ("huge input lookup", "a value over libxml2's 10 MB limit"),
    ("excessive depth", "elements nested past libxml2's depth limit"),
    ("resource limit exceeded", "XML past libxml2's resource limits"),
)


def _limit_in(message: str) -> str | None:
    """What a parser error says was refused, or None for plain malformed XML."""
    text = message.split("\nContent:", 1)[0].lower()  # zeep appends the whole body
    return next((meaning for marker, meaning in _LIMITS if marker in text), None)


def within(exc: HeadwaterError, what: str) -> HeadwaterError:
    """``exc`` (same kind, same retry hint) with ``what`` it happened to in front."""
    message = f"{what}: {exc.message}"
    if isinstance(exc, RetriableSourceError):
        return RetriableSourceError(message, retry_after=exc.retry_after)
    return type(exc)(message)


def _local(code: object) -> str:
    text = str(getattr(code, "localname", None) or code or "")
    return text.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def translate_fault(exc: BaseException, what: str) -> HeadwaterError:
    """The headwater error for a failed SOAP call ``what`` (operation and service)."""
    if isinstance(exc, HeadwaterError):
        return exc
    if isinstance(exc, zx.Fault):
        code = _local(exc.code)
        detail = f"{what}: SOAP fault {exc.code}: {exc.message}"
        if any(name in code for name in _AUTH_CODES):
            return AuthenticationError(f"{detail}; check the WS-Security user and password")
        if code in ("server", "receiver"):
            return RetriableSourceError(detail)
        return ConfigurationError(detail)
    for kind, what_it_is in _SECURITY.items():
        if isinstance(exc, kind):
            return _refused(what, what_it_is)
    if isinstance(exc, requests.Timeout):
        return RetriableSourceError(f"{what}: no answer within the operation timeout")
    if isinstance(exc, requests.RequestException):
        return RetriableSourceError(f"{what}: {type(exc).__name__}")
    if isinstance(exc, zx.TransportError):
        status = getattr(exc, "status_code", 0) or 0
        content = getattr(exc, "content", b"") or b""
        if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
            return _refused(what, "a DTD or entities")
        limit = _limit_in(str(exc.message))
        if limit is not None:
            return _refused(what, limit)
        if status == 200:
            return RetriableSourceError(f"{what}: the response is not well-formed XML")
        if status in (401, 403):
            return AuthenticationError(f"{what}: HTTP {status}; check the credentials")
        if status >= 500 or status in (408, 429):
            return RetriableSourceError(f"{what}: HTTP {status}")
        return ConfigurationError(f"{what}: HTTP {status}")
    if isinstance(exc, etree.XMLSyntaxError | zx.XMLSyntaxError | zx.XMLParseError):
        limit = _limit_in(str(exc))
        if limit is not None:
            return _refused(what, limit)
        return RetriableSourceError(f"{what}: the response is not well-formed XML ({exc})")
    if isinstance(exc, zx.ValidationError | zx.LookupError | TypeError):
        return ConfigurationError(f"{what}: {exc}")
    return ConfigurationError(f"{what} failed: {type(exc).__name__}: {exc}")


def _refused(what: str, what_it_is: str) -> DataContractError:
    return DataContractError(
        f"{what}: refused a response carrying {what_it_is}; XML from sources is read "
        "without DTDs, entities, outside references or huge trees, and a refused "
        "response is not asked for again"
    )
