"""SOAP sources through zeep: hardened XML, WS-Security, faults by code, paging."""

from ._connector import SOAPConnector, TimestampedUsernameToken
from ._faults import translate_fault
from ._streams import SOAPStream
from ._transport import GuardedTransport, hardened_settings, origin_of

__all__ = [
    "GuardedTransport",
    "SOAPConnector",
    "SOAPStream",
    "TimestampedUsernameToken",
    "hardened_settings",
    "origin_of",
    "translate_fault",
]
