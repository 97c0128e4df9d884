"""The demo logistics service of the legacy estate: SOAP 1.1 with WS-Security, no framework.

:class:`LogisticsServer` serves the checked-in ``logistics.wsdl`` (document/literal wrapped,
namespace ``urn:headwater:logistics``) the way an old carrier integration does:

* ``POST /logistics``: the SOAP endpoint, with two operations. ``ListShipments`` pages
  through shipments by (updatedAt, id) within ``updatedFrom <= updatedAt < updatedTo``,
  handing out an opaque ``nextPageToken`` bound to that window; ``GetShipment`` reads one.
* ``GET /logistics?wsdl``: the WSDL, its ``soap:address`` rewritten to the live URL.
* ``GET /evil.wsdl``: the same WSDL with an ``xsd:import`` of ``http://example.invalid/``,
  for testing that clients allow-list where they fetch schemas from.

Every operation wants a WS-Security UsernameToken, as ``PasswordText`` or as
``PasswordDigest`` (Base64(SHA-1(nonce + created + password))); a ``wsu:Timestamp`` beside it
is accepted and not checked. Nonces are not remembered, because a client's HTTP retry sends
the same envelope again. Anything else is a SOAP 1.1 fault with HTTP 500:
``wsse:FailedAuthentication`` for missing or wrong credentials, ``soap:Client`` for requests
the service cannot serve. Requests are parsed with entities, DTD loading and network access
off, and a request carrying a DTD is refused.

The data is deterministic from a seed and has the quirks a SOAP reader must survive:
timestamps in the offsets of the places they happened (``Z`` among them) next to UTC
``updatedAt``, many ``updatedAt`` ties (a nightly carrier sync restamps delivered shipments
in one second), decimals with trailing zeros, optional ``deliveredAt``, repeated ``event``
elements, and consignees with ``&`` and non-ASCII letters. :meth:`LogisticsServer.touch`
plays a day of activity and :class:`Faults` makes the next SOAP calls fail, including
responses a hardened client must refuse to parse (DTDs, external entities, entity bombs).
The server only builds those; it never parses a document that carries them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import copy
import datetime as dt
import hashlib
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from importlib import resources
from typing import Any, Literal

from lxml import etree

from ._parties import carrier_spelling
from ._shared import Counter, EstateServer, FaultSwitchboard, serve_until_interrupted, stamps_after

__all__ = ["MAX_PAGE_SIZE", "NAMESPACE", "Faults", "LogisticsServer", "main"]

NAMESPACE = "urn:headwater:logistics"
MAX_PAGE_SIZE = 500

_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
_XSD = "http://www.w3.org/2001/XMLSchema"
_PREFIXES = {_SOAP: "soap", _WSSE: "wsse"}
_ENDPOINT = "/logistics"
_EVIL_PATH = "/evil.wsdl"
_OUTSIDE_SCHEMA = "http://example.invalid/evil.xsd"
_XML_HEADERS = [("Content-Type", "text/xml; charset=utf-8")]
_SHIPMENT_FIELDS = ("id", "consignee", "origin", "destination", "weightKg", "declaredValue",
                    "currency", "status", "shippedAt", "deliveredAt", "updatedAt")
_EVENT_FIELDS = ("code", "at", "location")

_BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_CARRIER_SYNC = dt.datetime(2024, 7, 1, 2, 0, tzinfo=dt.UTC)
_TIE_SHARE = 0.2
_STATUSES = ("CREATED", "IN_TRANSIT", "DELIVERED", "EXCEPTION")
_ROUTE = ("PICKED_UP", "DEPARTED", "ARRIVED", "DELIVERED")
_AT_ORIGIN = frozenset({"PICKED_UP", "DEPARTED"})
_EXCEPTIONS = ("CUSTOMS_HOLD", "DAMAGED", "ADDRESS_UNKNOWN")
_NEXT_STATUSES = {"CREATED": ("IN_TRANSIT", "EXCEPTION"), "IN_TRANSIT": ("DELIVERED", "EXCEPTION"),
                  "EXCEPTION": ("IN_TRANSIT", "DELIVERED"), "DELIVERED": ("EXCEPTION",)}
_STATUS_EVENTS = {"IN_TRANSIT": ("DEPARTED",), "DELIVERED": ("DELIVERED",),
                  "EXCEPTION": _EXCEPTIONS}
_MAX_EVENTS = 4  # the legacy system keeps the last four scans
_ODD_CONSIGNEES = ("Müller & Söhne KG", "Smith & Sons Ltd", "Nordic Fish & Chips AB")
# Each place with the UTC offset its scanners stamp in, in minutes.
_PLACES = (("DE-Hamburg", 120), ("NL-Rotterdam", 120), ("GB-Felixstowe", 0),
           ("US-Newark", -240), ("CN-Shanghai", 480), ("JP-Yokohama", 540),
           ("PL-Gdańsk", 120), ("BR-Santos", -180), ("IN-Mumbai", 330))
_OFFSETS = dict(_PLACES)
_CURRENCIES = ("EUR", "USD", "GBP")
CUSTOMER_PARTIES = 200  # the demo ERP's customers: 2,000 orders make 200

_FaultKind = Literal["server_fault", "client_fault", "slow", "malformed", "doctype",
                     "external_entity", "billion_laughs"]
_ENTITY_FAULTS = frozenset({"doctype", "external_entity", "billion_laughs"})


# -- faults -------------------------------------------------------------------------------


@dataclass
class _Fault:
    kind: _FaultKind
    remaining: int
    seconds: float = 0.0
    path: str = ""


class Faults(FaultSwitchboard[_Fault]):
    """Switches that make the next SOAP calls fail; safe to flip from any thread.

    Each switch arms a fault for the next ``count`` SOAP POSTs (WSDL downloads are spared).
    A request takes the earliest armed fault, so faults armed one after another happen in
    that order. The entity faults answer the real response with a ``<!DOCTYPE>`` added and
    an entity referenced in its first field; a client parsing it safely must refuse it.
    """

    def server_fault(self, count: int = 1) -> None:
        """Answer a ``soap:Server`` fault, "Service temporarily unavailable"."""
        self.arm(_Fault("server_fault", count))

    def client_fault(self, count: int = 1) -> None:
        """Answer a ``soap:Client`` fault, "Invalid request", whatever was asked."""
        self.arm(_Fault("client_fault", count))

    def slow(self, count: int = 1, seconds: float = 2.0) -> None:
        """Sleep ``seconds`` before answering normally."""
        self.arm(_Fault("slow", count, seconds=seconds))

    def malformed(self, count: int = 1) -> None:
        """Answer 200 with the first half of the real envelope: truncated XML."""
        self.arm(_Fault("malformed", count))

    def doctype(self, count: int = 1) -> None:
        """Answer with an internal DTD whose entity, holding the real value, fills a field."""
        self.arm(_Fault("doctype", count))

    def external_entity(self, count: int = 1, path: str = "/etc/hostname") -> None:
        """Answer with an external entity ``SYSTEM "file://<path>"`` filling a field (XXE)."""
        if not path.startswith("/"):
            raise ValueError(f"path must be absolute, got {path!r}")
        self.arm(_Fault("external_entity", count, path=path))

    def billion_laughs(self, count: int = 1) -> None:
        """Answer with the nested-entity bomb that expands to 10**9 "lol"s."""
        self.arm(_Fault("billion_laughs", count))

    def take(self) -> _Fault | None:
        """The fault the next SOAP call suffers, counted off; the server calls this."""
        return self._take(lambda fault: True)


# -- data ---------------------------------------------------------------------------------


def _zone(place: str) -> dt.timezone:
    minutes = _OFFSETS[place]
    return dt.timezone(dt.timedelta(minutes=minutes)) if minutes else dt.UTC


def _after(rng: random.Random, start: dt.datetime, days: int) -> dt.datetime:
    return start + dt.timedelta(seconds=rng.randrange(days * 86_400))


def _consignee(rng: random.Random, number: int) -> str:
    """A customer of the ERP (party 1 to CUSTOMER_PARTIES), or now and then a one-off
    receiver no other system knows; odd names are placed by position, not by chance."""
    if number % 19 == 7:
        return _ODD_CONSIGNEES[(number // 19) % len(_ODD_CONSIGNEES)]
    return carrier_spelling(rng.randint(1, CUSTOMER_PARTIES))


def _event(code: str, at: dt.datetime, origin: str, destination: str) -> dict[str, Any]:
    """A tracking event, stamped in the offset of the place it happened."""
    place = origin if code in _AT_ORIGIN else destination
    return {"code": code, "at": at.astimezone(_zone(place)), "location": place}


def _event_codes(rng: random.Random, status: str) -> list[str]:
    """0 to 4 scans that end the way ``status`` says; delivered ones may miss early scans."""
    if status == "CREATED":
        return []
    if status == "IN_TRANSIT":
        return list(_ROUTE[: rng.randint(1, 3)])
    if status == "DELIVERED":
        return list(_ROUTE[-rng.randint(1, 4):])
    return [*_ROUTE[: rng.randint(0, 2)], rng.choice(_EXCEPTIONS)]


def _shipment(
    rng: random.Random, number: int, status: str, shipped: dt.datetime
) -> dict[str, Any]:
    """A shipment with events after ``shipped``; ``updatedAt`` follows the last of them."""
    origin, destination = (place for place, _ in rng.sample(_PLACES, 2))
    grams, cents = rng.randrange(100, 2_500_000), rng.randrange(100, 10_000_000)
    events, at = [], shipped
    for code in _event_codes(rng, status):
        at += dt.timedelta(seconds=rng.randrange(7_200, 259_200))
        events.append(_event(code, at, origin, destination))
    return {
        "id": f"SHP-{number:06d}",
        "consignee": _consignee(rng, number),
        "origin": origin,
        "destination": destination,
        "weightKg": Decimal(grams).scaleb(-3),  # three places kept: "12.500"
        "declaredValue": Decimal(cents).scaleb(-2),
        "currency": rng.choice(_CURRENCIES),
        "status": status,
        "shippedAt": shipped.astimezone(_zone(origin)),
        "deliveredAt": events[-1]["at"] if status == "DELIVERED" else None,
        "updatedAt": at + dt.timedelta(seconds=rng.randrange(60, 14_400)),
        "events": events,
    }


def _build_shipments(rng: random.Random, count: int) -> dict[str, dict[str, Any]]:
    shipments: dict[str, dict[str, Any]] = {}
    previous: dt.datetime | None = None
    for number in range(1, count + 1):
        record = _shipment(rng, number, rng.choice(_STATUSES), _after(rng, _BASE_TIME, 180))
        updated = record["updatedAt"]
        if record["status"] == "DELIVERED" and updated < _CARRIER_SYNC and rng.random() < 0.5:
            updated = _CARRIER_SYNC  # the nightly carrier sync restamps, all in one second
        elif previous is not None and previous >= updated and rng.random() < _TIE_SHARE:
            updated = previous
        record["updatedAt"] = previous = updated
        shipments[record["id"]] = record
    return shipments


def _advanced(rng: random.Random, old: Mapping[str, Any], stamp: dt.datetime) -> dict[str, Any]:
    """``old`` moved on to its next status at ``stamp``, with the scan that says so."""
    status = rng.choice(_NEXT_STATUSES[old["status"]])
    event = _event(rng.choice(_STATUS_EVENTS[status]), stamp, old["origin"], old["destination"])
    delivered = event["at"] if status == "DELIVERED" else old["deliveredAt"]
    return {**old, "status": status, "deliveredAt": delivered, "updatedAt": stamp,
            "events": [*old["events"], event][-_MAX_EVENTS:]}


class _Dataset:
    """The shipments, read by request threads while ``touch`` changes them.

    Records are never changed in place: ``touch`` replaces a shipment's dict, so references
    taken under the lock stay consistent after the lock is released.
    """

    def __init__(self, seed: int, count: int) -> None:
        self._lock = threading.Lock()
        self._shipments = _build_shipments(random.Random(seed), count)
        self._by_update: tuple[list[dict[str, Any]], list[tuple[dt.datetime, str]]] | None = None

    def by_update(self) -> tuple[list[dict[str, Any]], list[tuple[dt.datetime, str]]]:
        """Shipments ordered by (updatedAt, id) and those keys, kept until ``touch``:
        sorting a large estate for every page would make the server the benchmark."""
        with self._lock:
            if self._by_update is None:
                ordered = sorted(self._shipments.values(),
                                 key=lambda s: (s["updatedAt"], s["id"]))
                self._by_update = (ordered, [(s["updatedAt"], s["id"]) for s in ordered])
            return self._by_update

    def find(self, shipment_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._shipments.get(shipment_id)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every shipment, by id."""
        with self._lock:
            return [self._shipments[key] for key in sorted(self._shipments)]

    def touch(self, changed: int, added: int, seed: int) -> dict[str, int]:
        """Move ``changed`` shipments on and add ``added``, all stamped after the rest."""
        if changed < 0 or added < 0:
            raise ValueError(f"changed and added must be zero or more, got {changed}, {added}")
        rng = random.Random(seed)
        with self._lock:
            self._by_update = None
            shipments = self._shipments
            latest = max((s["updatedAt"] for s in shipments.values()), default=_BASE_TIME)
            picked = rng.sample(sorted(shipments), min(changed, len(shipments)))
            stamps = stamps_after(rng, latest, len(picked) + added, _TIE_SHARE)
            for shipment_id, stamp in zip(picked, stamps, strict=False):
                shipments[shipment_id] = _advanced(rng, shipments[shipment_id], stamp)
            first = len(shipments) + 1  # ids run 1..n without gaps
            for offset, stamp in enumerate(stamps[len(picked):]):
                record = _shipment(rng, first + offset, "CREATED", stamp + dt.timedelta(days=1))
                shipments[record["id"]] = {**record, "updatedAt": stamp}
        return {"changed": len(picked), "added": added}


# -- SOAP messages ------------------------------------------------------------------------


_CLIENT = etree.QName(_SOAP, "Client")
_AUTHENTICATION_FAILED = (etree.QName(_WSSE, "FailedAuthentication"),
                          "The security token could not be authenticated or authorized")
_CANNED_FAULTS = {"server_fault": (etree.QName(_SOAP, "Server"), "Service temporarily unavailable"),
                  "client_fault": (_CLIENT, "Invalid request")}


class _SoapFault(Exception):
    """A request the service answers with a SOAP 1.1 fault; ``code`` is a namespaced QName."""

    def __init__(self, code: etree.QName, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _client_fault(message: str) -> _SoapFault:
    return _SoapFault(_CLIENT, message)


def _tns(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _hardened_parser() -> etree.XMLParser:
    """A parser that expands no entity, loads no DTD and opens no URL; one per document,
    because lxml parsers must not be shared between threads."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _read_envelope(body: bytes) -> tuple[etree._Element | None, etree._Element]:
    """The Header (if any) and the operation element of a SOAP 1.1 request."""
    try:
        root = etree.fromstring(body, _hardened_parser())
    except etree.XMLSyntaxError:
        raise _client_fault("The request is not well-formed XML") from None
    if root.getroottree().docinfo.doctype:
        raise _client_fault("A SOAP message must not contain a document type declaration")
    if root.tag != f"{{{_SOAP}}}Envelope":
        raise _client_fault("The request is not a SOAP 1.1 Envelope")
    operation = root.find(f"{{{_SOAP}}}Body/*")
    if operation is None:
        raise _client_fault("The SOAP Body is empty")
    return root.find(f"{{{_SOAP}}}Header"), operation


def _authenticated(header: etree._Element | None, username: str, password: str) -> bool:
    """Whether the header's UsernameToken names ``username`` with ``password``."""
    path = f"{{{_WSSE}}}Security/{{{_WSSE}}}UsernameToken"
    token = header.find(path) if header is not None else None
    if token is None:
        return False
    given = token.find(f"{{{_WSSE}}}Password")
    if given is None:
        return False
    if given.get("Type", "").endswith("PasswordDigest"):
        matches = _digest_matches(token, given.text or "", password)
    else:  # PasswordText, also the default when Type is left out
        matches = secrets.compare_digest((given.text or "").encode(), password.encode())
    user = (token.findtext(f"{{{_WSSE}}}Username") or "").encode()
    return secrets.compare_digest(user, username.encode()) and matches


def _digest_matches(token: etree._Element, digest: str, password: str) -> bool:
    """Whether ``digest`` is Base64(SHA-1(nonce + created + password)) for this token."""
    nonce_text = token.findtext(f"{{{_WSSE}}}Nonce")
    created = token.findtext(f"{{{_WSU}}}Created")
    if nonce_text is None or created is None:
        return False
    try:
        nonce = base64.b64decode(nonce_text.strip(), validate=True)
    except binascii.Error:
        return False
    expected = base64.b64encode(hashlib.sha1(nonce + created.strip().encode()
                                             + password.encode()).digest())
    return secrets.compare_digest(expected, digest.strip().encode())


def _xsd_datetime(stamp: dt.datetime) -> str:
    text = stamp.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _instant(text: str, name: str) -> dt.datetime:
    """An xsd:dateTime as an aware datetime; one without an offset is taken as UTC."""
    try:
        stamp = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _client_fault(f"{name} must be an xsd:dateTime such as 2024-05-01T00:00:00Z, "
                            f"got {text!r}") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _new_envelope() -> tuple[etree._Element, etree._Element]:
    """An empty response envelope and its Body."""
    envelope = etree.Element(f"{{{_SOAP}}}Envelope", nsmap={"soap": _SOAP, "tns": NAMESPACE})
    return envelope, etree.SubElement(envelope, f"{{{_SOAP}}}Body")


def _fault_envelope(code: etree.QName, message: str) -> etree._Element:
    """A SOAP 1.1 fault; ``faultcode`` declares the prefix its QName uses."""
    envelope, body = _new_envelope()
    fault = etree.SubElement(body, f"{{{_SOAP}}}Fault")
    prefix = _PREFIXES[code.namespace]
    etree.SubElement(fault, "faultcode", nsmap={prefix: code.namespace}).text = (
        f"{prefix}:{code.localname}")
    etree.SubElement(fault, "faultstring").text = message
    return envelope


def _add_field(parent: etree._Element, name: str, value: str | Decimal | dt.datetime) -> None:
    if isinstance(value, dt.datetime):
        text = _xsd_datetime(value)
    elif isinstance(value, Decimal):
        text = format(value, "f")
    else:
        text = value
    etree.SubElement(parent, _tns(name)).text = text


def _add_shipment(parent: etree._Element, record: Mapping[str, Any]) -> None:
    """A ``shipment`` element, fields in the order of the WSDL's sequence."""
    shipment = etree.SubElement(parent, _tns("shipment"))
    for name in _SHIPMENT_FIELDS:
        if record[name] is not None:  # deliveredAt is left out, not nil
            _add_field(shipment, name, record[name])
    for event in record["events"]:
        element = etree.SubElement(shipment, _tns("event"))
        for name in _EVENT_FIELDS:
            _add_field(element, name, event[name])


def _serialize(envelope: etree._Element, doctype: str | None = None) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8", doctype=doctype)


# -- paging -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ListRequest:
    """A ListShipments call: its page size, window and where the previous page ended."""

    page_size: int
    updated_from: dt.datetime | None
    updated_to: dt.datetime | None
    after: tuple[dt.datetime, str] | None

    @property
    def window(self) -> list[str | None]:
        """The window in one spelling per instant, as page tokens carry it."""
        return [None if bound is None else bound.astimezone(dt.UTC).isoformat()
                for bound in (self.updated_from, self.updated_to)]


def _list_request(operation: etree._Element) -> _ListRequest:
    """Read a ListShipments element, refusing what the service cannot serve."""
    size_text = operation.findtext(_tns("pageSize"))
    if size_text is None:
        raise _client_fault(f"pageSize is required: 1 to {MAX_PAGE_SIZE}")
    try:
        size = int(size_text.strip())
    except ValueError:
        raise _client_fault(f"pageSize must be a whole number, got {size_text!r}") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _client_fault(f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    bounds = []
    for name in ("updatedFrom", "updatedTo"):
        text = operation.findtext(_tns(name))
        bounds.append(None if text is None else _instant(text, name))
    request = _ListRequest(size, bounds[0], bounds[1], None)
    token = operation.findtext(_tns("pageToken"))
    if not token:
        return request
    return _ListRequest(size, bounds[0], bounds[1], _decode_token(token, request.window))


def _encode_token(last: tuple[dt.datetime, str], window: list[str | None]) -> str:
    payload = {"after": [last[0].isoformat(), last[1]], "window": window}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _decode_token(token: str, window: list[str | None]) -> tuple[dt.datetime, str]:
    """Where the previous page ended; the token must have been issued for ``window``."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.strip().encode()))
        stamp, last_id = payload["after"]
        after = (dt.datetime.fromisoformat(stamp), str(last_id))
        issued_for = payload["window"]
        if after[0].tzinfo is None:  # a naive stamp cannot be compared with the keys
            raise ValueError(stamp)
    except (ValueError, TypeError, KeyError):  # binascii.Error and JSON errors among them
        raise _client_fault("pageToken is not one this service issued; pass nextPageToken "
                            "back unchanged") from None
    if issued_for != window:
        raise _client_fault("pageToken was issued for another updatedFrom/updatedTo window; "
                            "keep the window while paging or start without a token")
    return after


def _list_page(
    by_update: tuple[list[dict[str, Any]], list[tuple[dt.datetime, str]]],
    request: _ListRequest,
) -> tuple[list[dict[str, Any]], str | None]:
    """The page of shipments the request asks for, and the token of the next (None: last)."""
    ordered, keys = by_update
    start = bisect.bisect_left(keys, (request.updated_from, "")) if request.updated_from else 0
    if request.after is not None:
        start = max(start, bisect.bisect_right(keys, request.after))
    end = bisect.bisect_left(keys, (request.updated_to, "")) if request.updated_to else len(keys)
    stop = min(start + request.page_size, end)
    token = _encode_token(keys[stop - 1], request.window) if stop < end else None
    return ordered[start:stop], token


# -- responses a hardened client must refuse ----------------------------------------------


def _entity_value(text: str) -> str:
    """``text`` as an entity's literal value that expands back to ``text`` itself."""
    # Character references are replaced once when the DTD is read and the result is parsed
    # again where the entity is used, so markup characters are escaped twice.
    return (text.replace("&", "&#38;#38;").replace("<", "&#38;#60;")
            .replace('"', "&#34;").replace("%", "&#37;"))


def _billion_laughs() -> str:
    """The classic expansion bomb: ``lol9`` expands to 10**9 "lol"s, about 3 GB."""
    declarations = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        references = f"&lol{level - 1};" * 10
        declarations.append(f'<!ENTITY lol{level} "{references}">')
    return "".join(declarations)


def _with_entity(envelope: etree._Element, fault: _Fault) -> bytes:
    """``envelope`` serialized with a DOCTYPE for ``fault`` and its entity in the first
    field of the Body (the response element itself when it has no fields)."""
    leaf = next(element for element in envelope.iter() if len(element) == 0)
    if fault.kind == "doctype":
        name, declarations = "legacy", f'<!ENTITY legacy "{_entity_value(leaf.text or "")}">'
    elif fault.kind == "external_entity":
        name, declarations = "xxe", f'<!ENTITY xxe SYSTEM "file://{fault.path}">'
    else:
        name, declarations = "lol9", _billion_laughs()
    leaf.text = None
    leaf.append(etree.Entity(name))
    return _serialize(envelope, doctype=f"<!DOCTYPE soap:Envelope [{declarations}]>")


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=lambda: list(_XML_HEADERS))


def _wsdl(location: str, outside_import: str | None = None) -> bytes:
    """The checked-in WSDL with its ``soap:address`` at ``location``; with ``outside_import``,
    its schema also imports that URL, as a WSDL from an untrusted source might."""
    text = resources.files(__package__).joinpath("logistics.wsdl").read_bytes()
    root = etree.fromstring(text, _hardened_parser())
    root.find(f".//{{{_WSDL_SOAP}}}address").set("location", location)
    if outside_import is not None:
        schema = root.find(f"{{{_WSDL}}}types/{{{_XSD}}}schema")
        # xsd:import must come before every other child of the schema.
        schema.insert(0, etree.Element(f"{{{_XSD}}}import", namespace="urn:headwater:evil",
                                       schemaLocation=outside_import))
    return _serialize(root)


class LogisticsServer(EstateServer):
    """The demo logistics SOAP service on a local port: shipments from ``seed``, WS-Security.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. The credentials and
    the faults are available before it starts; :attr:`url` and the WSDL URLs once it has.
    """

    name = "logistics"
    path = _ENDPOINT


    def __init__(self, shipments: int = 300, seed: int = 5, username: str = "headwater",
                 password: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if shipments < 0:
            raise ValueError(f"shipments must be zero or more, got {shipments}")
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.faults = Faults()
        self._data = _Dataset(seed, shipments)
        self._requests = Counter()
        self._documents: dict[str, bytes] = {}
        super().__init__(host, port)

    @property
    def wsdl_url(self) -> str:
        """Where the WSDL is served, its address pointing at :attr:`url`."""
        return self.url + "?wsdl"

    @property
    def evil_wsdl_url(self) -> str:
        """A WSDL whose schema imports ``http://example.invalid/evil.xsd``; never fetched here."""
        return self.url.removesuffix(_ENDPOINT) + _EVIL_PATH

    @property
    def requests(self) -> int:
        """SOAP requests (POSTs to the endpoint) so far, whatever their outcome."""
        return self._requests.value

    def _started(self) -> None:
        self._documents = {"wsdl": _wsdl(self.url),
                           "evil": _wsdl(self.url, outside_import=_OUTSIDE_SCHEMA)}

    def records(self) -> list[dict[str, Any]]:
        """A copy of every shipment by id, with Decimals and aware datetimes as served."""
        return copy.deepcopy(self._data.snapshot())

    def touch(self, changed: int, added: int, seed: int = 11) -> dict[str, int]:
        """Play a day of activity; return ``{"changed": n, "added": n}``.

        ``changed`` random shipments (fewer if there are fewer) move to a next status with
        the scan that says so, and ``added`` new ones are created with ids above the highest.
        Every shipment touched is stamped within the day after the latest ``updatedAt``
        stored, some of them tied.
        """
        return self._data.touch(changed, added, seed)

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI application: SOAP calls, the two WSDLs, 404 for anything else."""
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        query = environ.get("QUERY_STRING", "").lower()
        if (method, path) == ("POST", _ENDPOINT):
            response = self._soap(_read_body(environ))
        elif (method, path, query) == ("GET", _ENDPOINT, "wsdl"):
            response = _Response(200, self._documents["wsdl"])
        elif (method, path) == ("GET", _EVIL_PATH):
            response = _Response(200, self._documents["evil"])
        else:
            response = _Response(404, b"POST SOAP calls to /logistics; GET /logistics?wsdl",
                                 [("Content-Type", "text/plain")])
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [response.body]

    def _soap(self, body: bytes) -> _Response:
        """Count the call, apply an armed fault, answer."""
        self._requests.increment()
        fault = self.faults.take()
        if fault is not None and fault.kind in _CANNED_FAULTS:
            return _Response(500, _serialize(_fault_envelope(*_CANNED_FAULTS[fault.kind])))
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        status, envelope = self._answer(body)
        if fault is not None and fault.kind in _ENTITY_FAULTS:
            return _Response(status, _with_entity(envelope, fault))
        text = _serialize(envelope)
        if fault is not None and fault.kind == "malformed":
            return _Response(200, text[: len(text) // 2])
        return _Response(status, text)

    def _answer(self, body: bytes) -> tuple[int, etree._Element]:
        """The HTTP status and envelope that answer a SOAP request: 200, or 500 and a fault."""
        try:
            header, operation = _read_envelope(body)
            if not _authenticated(header, self.username, self.password):
                return 500, _fault_envelope(*_AUTHENTICATION_FAILED)
            return 200, self._operate(operation)
        except _SoapFault as fault:
            return 500, _fault_envelope(fault.code, fault.message)

    def _operate(self, operation: etree._Element) -> etree._Element:
        """Run the operation the Body names and return the response envelope."""
        envelope, body = _new_envelope()
        if operation.tag == _tns("ListShipments"):
            page, token = _list_page(self._data.by_update(), _list_request(operation))
            response = etree.SubElement(body, _tns("ListShipmentsResponse"))
            for record in page:
                _add_shipment(response, record)
            if token is not None:
                _add_field(response, "nextPageToken", token)
        elif operation.tag == _tns("GetShipment"):
            shipment_id = (operation.findtext(_tns("id")) or "").strip()
            record = self._data.find(shipment_id)
            if record is None:
                raise _client_fault(f"No shipment has id {shipment_id!r}")
            _add_shipment(etree.SubElement(body, _tns("GetShipmentResponse")), record)
        else:
            raise _client_fault(f"Unknown operation {etree.QName(operation).text}; this service "
                                f"offers ListShipments and GetShipment in {NAMESPACE}")
        return envelope


def _read_body(environ: Mapping[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo logistics service until Ctrl-C, printing where it is and how to log in."""
    parser = argparse.ArgumentParser(description="Serve the legacy estate's logistics SOAP "
                                                 "service.")
    parser.add_argument("--port", type=int, default=8780, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--seed", type=int, default=5, help="seed of the generated data")
    parser.add_argument("--shipments", type=int, default=300, help="shipments to generate")
    args = parser.parse_args(argv)
    with LogisticsServer(shipments=args.shipments, seed=args.seed, port=args.port) as server:
        # The one place the password is shown: a local demo server's console.
        print(f"WSDL:          {server.wsdl_url}")
        print(f"UsernameToken: {server.username} / {server.password}", flush=True)
        serve_until_interrupted()


if __name__ == "__main__":
    main()
