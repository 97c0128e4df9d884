"""The demo logistics SOAP service: the WSDL contract, WS-Security, paging, faults, data.

Calls go two ways: zeep 4.3.3 as a real client (to prove it can talk to the service) and
hand-written envelopes posted with ``requests`` (to pin what goes over the wire).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import requests
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.wsse.username
from lxml import etree
from zeep.wsse.utils import WSU

from headwater_demo.logistics import MAX_PAGE_SIZE, NAMESPACE, LogisticsServer
from tests.conftest import serve_then_interrupt

ROOT = Path(__file__).resolve().parent.parent
WSDL_FILE = ROOT / "headwater_demo" / "logistics.wsdl"
TIMEOUT = 5
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
AUTH_FAILED = "The security token could not be authenticated or authorized"
CARRIER_SYNC = dt.datetime(2024, 7, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[LogisticsServer]:
    """The default service, shared by tests that do not change its data."""
    with LogisticsServer() as live:
        yield live


@pytest.fixture
def logistics(server: LogisticsServer) -> Iterator[LogisticsServer]:
    """The shared service, its faults disarmed after the test."""
    yield server
    server.faults.clear()


@pytest.fixture
def small() -> Iterator[LogisticsServer]:
    """A small service of a test's own, for tests that change data or count requests."""
    with LogisticsServer(shipments=20, password="s3cret & <sure>") as live:
        yield live


@contextlib.contextmanager
def zeep_client(
    server: LogisticsServer, *, password: str | None = None, digest: bool = False,
    timestamp: bool = False, wsdl_url: str | None = None,
) -> Iterator[zeep.Client]:
    """A hardened zeep client of ``server`` with a UsernameToken; its session is closed after."""
    stamp = None
    if timestamp:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        stamp = WSU.Timestamp(WSU.Created(now.isoformat().replace("+00:00", "Z")),
                              WSU.Expires((now + dt.timedelta(minutes=5)).isoformat()))
    token = zeep.wsse.username.UsernameToken(
        server.username, server.password if password is None else password,
        use_digest=digest, timestamp_token=stamp,
    )
    settings = zeep.Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    with requests.Session() as session:
        transport = zeep.Transport(session=session, timeout=TIMEOUT, operation_timeout=TIMEOUT)
        yield zeep.Client(wsdl_url or server.wsdl_url, transport=transport, wsse=token,
                          settings=settings)


def as_record(shipment: Any) -> dict[str, Any]:
    """A shipment zeep returned, in the shape of ``LogisticsServer.records()``."""
    record = zeep.helpers.serialize_object(shipment, dict)
    record["events"] = record.pop("event")
    return record


def walk(client: zeep.Client, page_size: int = 37, **window: Any) -> Iterator[Any]:
    """Every shipment ListShipments serves within ``window``, page after page."""
    token = None
    while True:
        page = client.service.ListShipments(pageSize=page_size, pageToken=token, **window)
        yield from page.shipment
        token = page.nextPageToken
        if token is None:
            return


# -- hand-written envelopes ---------------------------------------------------------------


def text_token(username: str, password: str) -> str:
    """A PasswordText token, the password escaped as XML text."""
    return (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
            f"<wsse:Username>{username}</wsse:Username>"
            f'<wsse:Password Type="{PROFILE}#PasswordText">{escape(password)}</wsse:Password>'
            "</wsse:UsernameToken></wsse:Security>")


def digest_token(username: str, password: str, *, nonce: bool = True) -> str:
    """A PasswordDigest token computed by hand; ``nonce=False`` leaves the Nonce out."""
    raw_nonce, created = b"0123456789abcdef", "2024-05-01T12:00:00Z"
    digest = base64.b64encode(hashlib.sha1(raw_nonce + created.encode() + password.encode())
                              .digest()).decode()
    nonce_xml = f"<wsse:Nonce>{base64.b64encode(raw_nonce).decode()}</wsse:Nonce>"
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU_NS}"><wsse:UsernameToken>'
            f"<wsse:Username>{username}</wsse:Username>"
            f'<wsse:Password Type="{PROFILE}#PasswordDigest">{digest}</wsse:Password>'
            f"{nonce_xml if nonce else ''}<wsu:Created>{created}</wsu:Created>"
            "</wsse:UsernameToken></wsse:Security>")


def envelope(operation: str, security: str | None) -> bytes:
    header = f"<soap:Header>{security}</soap:Header>" if security is not None else ""
    return (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:tns="{NAMESPACE}">{header}'
            f"<soap:Body>{operation}</soap:Body></soap:Envelope>").encode()


def post(server: LogisticsServer, body: bytes) -> requests.Response:
    return requests.post(server.url, data=body, timeout=TIMEOUT,
                         headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})


def call(server: LogisticsServer, operation: str) -> requests.Response:
    """Post ``operation`` with a valid PasswordText token."""
    return post(server, envelope(operation, text_token(server.username, server.password)))


def get_shipment(shipment_id: str = "SHP-000001") -> str:
    return f"<tns:GetShipment><tns:id>{shipment_id}</tns:id></tns:GetShipment>"


def fault_of(response: requests.Response) -> tuple[str, str]:
    """The fault code as ``{namespace}local`` (its prefix resolved) and the fault string."""
    assert response.status_code == 500, response.text
    fault = etree.fromstring(response.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    code = fault.find("faultcode")
    prefix, local = code.text.split(":")
    return f"{{{code.nsmap[prefix]}}}{local}", fault.findtext("faultstring")


def outcome(response: requests.Response) -> str:
    """A short name for a SOAP answer: "ok", the fault code's local name, or "malformed"."""
    try:
        root = etree.fromstring(response.content)
    except etree.XMLSyntaxError:
        return "malformed"
    code = root.findtext(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/faultcode")
    return "ok" if code is None else code.split(":")[1]


# -- the WSDL -----------------------------------------------------------------------------


def test_the_served_wsdl_points_at_the_live_server(logistics: LogisticsServer) -> None:
    checked_in = etree.parse(str(WSDL_FILE)).getroot()
    names = {(etree.QName(element).localname, element.get("name"))
             for element in checked_in.iter() if element.get("name")}
    served = requests.get(logistics.url + "?WSDL", timeout=TIMEOUT)

    address = etree.fromstring(served.content).find(".//{*}address")
    assert served.headers["Content-Type"].startswith("text/xml")
    assert address.get("location") == logistics.url
    assert logistics.url != "http://127.0.0.1:8780/logistics"
    assert checked_in.find(".//{*}address").get("location") == "http://127.0.0.1:8780/logistics"
    assert {("service", "LogisticsService"), ("port", "LogisticsPort"),
            ("binding", "LogisticsBinding"), ("portType", "LogisticsPortType"),
            ("complexType", "Shipment"), ("complexType", "TrackingEvent")} <= names
    assert checked_in.get("targetNamespace") == NAMESPACE


def test_the_evil_wsdl_imports_an_outside_schema_that_zeep_can_refuse(
    logistics: LogisticsServer,
) -> None:
    served = requests.get(logistics.evil_wsdl_url, timeout=TIMEOUT)
    imports = etree.fromstring(served.content).findall(
        ".//{http://www.w3.org/2001/XMLSchema}import")

    assert [i.get("schemaLocation") for i in imports] == ["http://example.invalid/evil.xsd"]
    with pytest.raises(zeep.exceptions.ExternalReferenceForbidden), zeep_client(
        logistics, wsdl_url=logistics.evil_wsdl_url
    ):
        pass


def test_other_paths_are_404(logistics: LogisticsServer) -> None:
    requests_before = logistics.requests

    response = requests.get(logistics.url.replace("/logistics", "/nothing"), timeout=TIMEOUT)

    assert response.status_code == 404
    assert logistics.requests == requests_before


# -- reading with zeep --------------------------------------------------------------------


@pytest.mark.parametrize(("digest", "timestamp"), [(False, False), (True, True)],
                         ids=["PasswordText", "PasswordDigest with Timestamp"])
def test_zeep_lists_every_shipment_once(
    logistics: LogisticsServer, digest: bool, timestamp: bool
) -> None:
    with zeep_client(logistics, digest=digest, timestamp=timestamp) as client:
        served = [as_record(shipment) for shipment in walk(client)]

    assert len(served) == 300
    assert sorted(served, key=lambda record: record["id"]) == logistics.records()
    assert [(r["updatedAt"], r["id"]) for r in served] == sorted(
        (r["updatedAt"], r["id"]) for r in served)


def test_zeep_keeps_offsets_and_decimal_places(logistics: LogisticsServer) -> None:
    with zeep_client(logistics) as client:
        served = {record["id"]: record for record in map(as_record, walk(client, 500))}

    for record in logistics.records():
        assert served[record["id"]]["shippedAt"].utcoffset() == record["shippedAt"].utcoffset()
        assert str(served[record["id"]]["weightKg"]) == str(record["weightKg"])


@pytest.mark.parametrize("page_size", [1, 7, MAX_PAGE_SIZE])
def test_the_window_is_half_open(logistics: LogisticsServer, page_size: int) -> None:
    # Both bounds sit on ties; the upper one is the carrier sync's second.
    records = logistics.records()
    ties = collections.Counter(r["updatedAt"] for r in records)
    lower = min(stamp for stamp, count in ties.items() if count > 1)
    expected = [r["id"] for r in records if lower <= r["updatedAt"] < CARRIER_SYNC]

    with zeep_client(logistics) as client:
        served = [s.id for s in walk(client, page_size, updatedFrom=lower,
                                     updatedTo=CARRIER_SYNC)]

    assert ties[lower] > 1 and ties[CARRIER_SYNC] > 10
    assert any(r["updatedAt"] < lower for r in records)
    assert sorted(served) == expected and len(served) == len(set(served))


@pytest.mark.parametrize(
    ("window", "expected"),
    [({"updatedFrom": "2024-07-01T04:00:00+02:00"}, "from"),
     ({"updatedFrom": "2024-07-01T02:00:00"}, "from"),
     ({"updatedTo": "2024-07-01T02:00:00Z"}, "to")],
)
def test_window_bounds_may_be_spelled_with_any_offset(
    logistics: LogisticsServer, window: dict[str, str], expected: str
) -> None:
    bounds = "".join(f"<tns:{name}>{value}</tns:{name}>" for name, value in window.items())
    response = call(logistics, f"<tns:ListShipments><tns:pageSize>{MAX_PAGE_SIZE}</tns:pageSize>"
                               f"{bounds}</tns:ListShipments>")

    served = etree.fromstring(response.content).findall(f".//{{{NAMESPACE}}}shipment")
    records = logistics.records()
    after = sum(r["updatedAt"] >= CARRIER_SYNC for r in records)
    assert len(served) == (after if expected == "from" else len(records) - after)


def test_a_token_reused_with_another_window_is_a_client_fault(
    logistics: LogisticsServer,
) -> None:
    with zeep_client(logistics) as client:
        token = client.service.ListShipments(pageSize=5, updatedFrom=CARRIER_SYNC).nextPageToken
        assert client.service.ListShipments(pageSize=5, pageToken=token,
                                            updatedFrom=CARRIER_SYNC).shipment
        with pytest.raises(zeep.exceptions.Fault, match="another updatedFrom/updatedTo") as fault:
            client.service.ListShipments(pageSize=5, pageToken=token)

    assert fault.value.code == "soap:Client"


def test_get_shipment_returns_the_record(logistics: LogisticsServer) -> None:
    with zeep_client(logistics, digest=True) as client:
        shipment = client.service.GetShipment(id="SHP-000042")
        with pytest.raises(zeep.exceptions.Fault, match="No shipment has id") as fault:
            client.service.GetShipment(id="SHP-999999")

    assert as_record(shipment) == logistics.records()[41]
    assert fault.value.code == "soap:Client"


@pytest.mark.parametrize(
    ("operation", "message"),
    [("<tns:ListShipments/>", "pageSize is required"),
     ("<tns:ListShipments><tns:pageSize>0</tns:pageSize></tns:ListShipments>", "between 1"),
     ("<tns:ListShipments><tns:pageSize>501</tns:pageSize></tns:ListShipments>", "and 500"),
     ("<tns:ListShipments><tns:pageSize>ten</tns:pageSize></tns:ListShipments>", "whole number"),
     ("<tns:ListShipments><tns:pageSize>5</tns:pageSize><tns:pageToken>garbage!</tns:pageToken>"
      "</tns:ListShipments>", "not one this service issued"),
     ("<tns:ListShipments><tns:pageSize>5</tns:pageSize><tns:updatedTo>yesterday</tns:updatedTo>"
      "</tns:ListShipments>", "updatedTo must be an xsd:dateTime"),
     ("<tns:DeleteShipment/>", "Unknown operation"),
     ("<ListShipments><pageSize>5</pageSize></ListShipments>", "Unknown operation")],
)
def test_requests_the_service_cannot_serve_are_client_faults(
    logistics: LogisticsServer, operation: str, message: str
) -> None:
    code, text = fault_of(call(logistics, operation))

    assert code == f"{{{SOAP}}}Client"
    assert message in text


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "not well-formed"), (b"<soap:Envelope", "not well-formed"),
     (b"<Envelope><Body/></Envelope>", "not a SOAP 1.1 Envelope"),
     (envelope("", None), "Body is empty"),
     (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 '
      b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>' + envelope("&lol1;", None),
      "must not contain a document type declaration")],
)
def test_bad_envelopes_are_client_faults(
    logistics: LogisticsServer, body: bytes, message: str
) -> None:
    code, text = fault_of(post(logistics, body))

    assert code == f"{{{SOAP}}}Client"
    assert message in text


# -- WS-Security --------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["text", "digest"])
def test_hand_written_tokens_are_accepted(small: LogisticsServer, token: str) -> None:
    security = (text_token(small.username, small.password) if token == "text"
                else digest_token(small.username, small.password))

    response = post(small, envelope(get_shipment(), security))

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"


@pytest.mark.parametrize(
    "security",
    [None, "", text_token("headwater", "wrong"), text_token("intruder", "{password}"),
     digest_token("headwater", "wrong"), digest_token("headwater", "{password}", nonce=False),
     f'<wsse:Security xmlns:wsse="{WSSE}"/>'],
    ids=["no header", "no Security", "wrong password", "wrong username", "wrong digest",
         "digest without nonce", "no UsernameToken"],
)
def test_missing_or_wrong_credentials_fail_authentication(
    logistics: LogisticsServer, security: str | None
) -> None:
    if security is not None:
        security = security.replace("{password}", logistics.password)

    response = post(logistics, envelope(get_shipment(), security))

    assert fault_of(response) == (f"{{{WSSE}}}FailedAuthentication", AUTH_FAILED)
    assert logistics.password not in response.text


def test_zeep_with_a_wrong_password_gets_the_wsse_fault(logistics: LogisticsServer) -> None:
    with zeep_client(logistics, password="wrong", digest=True) as client, pytest.raises(
        zeep.exceptions.Fault, match=AUTH_FAILED
    ) as fault:
        client.service.GetShipment(id="SHP-000001")

    assert fault.value.code == "wsse:FailedAuthentication"


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arm", "expected"),
    [("server_fault", "Server"), ("client_fault", "Client"), ("malformed", "malformed")],
)
def test_each_fault_hits_the_next_count_calls(
    logistics: LogisticsServer, arm: str, expected: str
) -> None:
    getattr(logistics.faults, arm)(2)

    responses = [call(logistics, get_shipment()) for _ in range(3)]

    assert [outcome(response) for response in responses] == [expected, expected, "ok"]
    assert [r.status_code for r in responses] == [200 if arm == "malformed" else 500] * 2 + [200]


@pytest.mark.parametrize(
    ("arm", "message"),
    [("server_fault", "Service temporarily unavailable"), ("client_fault", "Invalid request")],
)
def test_fault_switches_send_their_fault_strings(
    logistics: LogisticsServer, arm: str, message: str
) -> None:
    getattr(logistics.faults, arm)()

    assert fault_of(call(logistics, get_shipment()))[1] == message


def test_faults_spare_wsdl_downloads_and_happen_in_order_until_cleared(
    logistics: LogisticsServer,
) -> None:
    logistics.faults.server_fault()
    logistics.faults.client_fault()
    logistics.faults.malformed(5)
    assert requests.get(logistics.wsdl_url, timeout=TIMEOUT).status_code == 200
    outcomes = [outcome(call(logistics, get_shipment())) for _ in range(3)]

    logistics.faults.clear()

    assert outcomes == ["Server", "Client", "malformed"]
    assert outcome(call(logistics, get_shipment())) == "ok"
    with pytest.raises(ValueError, match="one or more"):
        logistics.faults.slow(0)
    with pytest.raises(ValueError, match="absolute"):
        logistics.faults.external_entity(path="etc/hostname")


def test_slow_delays_the_answer(logistics: LogisticsServer) -> None:
    logistics.faults.slow(seconds=0.3)
    started = time.monotonic()

    assert outcome(call(logistics, get_shipment())) == "ok"
    assert time.monotonic() - started >= 0.3


def test_doctype_sends_an_internal_entity_that_expands_to_the_real_value(
    logistics: LogisticsServer,
) -> None:
    logistics.faults.doctype()

    response = call(logistics, get_shipment("SHP-000007"))

    assert response.status_code == 200
    assert '<!DOCTYPE soap:Envelope [<!ENTITY legacy "SHP-000007">]>' in response.text
    assert "<tns:id>&legacy;</tns:id>" in response.text
    # Only a permissive parser (the test's, never the server's) expands it: valid-looking.
    expanded = etree.fromstring(response.content, etree.XMLParser(resolve_entities=True))
    assert expanded.findtext(f".//{{{NAMESPACE}}}id") == "SHP-000007"


def test_external_entity_names_the_file_but_the_server_never_reads_it(
    logistics: LogisticsServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top-secret-value")
    logistics.faults.external_entity(path=str(secret))
    logistics.faults.external_entity()

    first, second = (call(logistics, get_shipment()) for _ in range(2))

    assert f'<!ENTITY xxe SYSTEM "file://{secret}">' in first.text
    assert "<tns:id>&xxe;</tns:id>" in first.text
    assert "top-secret-value" not in first.text
    assert '<!ENTITY xxe SYSTEM "file:///etc/hostname">' in second.text


def test_billion_laughs_sends_the_classic_bomb(logistics: LogisticsServer) -> None:
    logistics.faults.billion_laughs()

    response = call(logistics, "<tns:ListShipments><tns:pageSize>1</tns:pageSize>"
                               "</tns:ListShipments>")

    assert '<!ENTITY lol0 "lol">' in response.text
    assert f'<!ENTITY lol9 "{"&lol8;" * 10}">' in response.text
    assert "<tns:id>&lol9;</tns:id>" in response.text
    assert len(response.content) < 10_000  # sent unexpanded


def test_entity_faults_land_in_a_fault_or_an_empty_page_too(logistics: LogisticsServer) -> None:
    logistics.faults.doctype(2)

    unknown = call(logistics, get_shipment("SHP-999999"))
    empty = call(logistics, "<tns:ListShipments><tns:pageSize>5</tns:pageSize><tns:updatedTo>"
                            "2000-01-01T00:00:00Z</tns:updatedTo></tns:ListShipments>")

    assert "<faultcode>&legacy;</faultcode>" in unknown.text
    assert "<tns:ListShipmentsResponse>&legacy;</tns:ListShipmentsResponse>" in empty.text


@pytest.mark.parametrize(
    ("arm", "refusal"),
    [("doctype", zeep.exceptions.DTDForbidden),
     ("external_entity", zeep.exceptions.DTDForbidden),
     # libxml2 stops the bomb while reading the DTD, before zeep looks at it.
     ("billion_laughs", zeep.exceptions.TransportError)],
)
def test_a_hardened_zeep_refuses_the_entity_faults(
    logistics: LogisticsServer, arm: str, refusal: type[Exception]
) -> None:
    getattr(logistics.faults, arm)()

    with zeep_client(logistics) as client, pytest.raises(refusal):
        client.service.GetShipment(id="SHP-000001")


def test_ten_concurrent_calls_are_served_in_parallel(logistics: LogisticsServer) -> None:
    logistics.faults.slow(10, seconds=0.3)
    started = time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda n: call(logistics, get_shipment(f"SHP-{n:06d}")),
                                  range(1, 11)))

    assert [outcome(response) for response in responses] == ["ok"] * 10
    assert time.monotonic() - started < 1.5  # one after another would take 3 s


def test_requests_counts_every_soap_call_whatever_its_outcome(small: LogisticsServer) -> None:
    small.faults.server_fault()
    requests.get(small.wsdl_url, timeout=TIMEOUT)
    outcomes = [outcome(call(small, get_shipment())) for _ in range(3)]
    outcomes.append(outcome(post(small, envelope(get_shipment(), None))))
    outcomes.append(outcome(post(small, b"not xml")))

    assert outcomes == ["Server", "ok", "ok", "FailedAuthentication", "Client"]
    assert small.requests == 5


# -- data ---------------------------------------------------------------------------------


def test_data_has_the_legacy_quirks(logistics: LogisticsServer) -> None:
    records = logistics.records()
    offsets = collections.Counter(r["shippedAt"].utcoffset() for r in records)
    ties = collections.Counter(r["updatedAt"] for r in records)

    assert len(records) == 300 and records[0]["id"] == "SHP-000001"
    assert {r["status"] for r in records} == {"CREATED", "IN_TRANSIT", "DELIVERED", "EXCEPTION"}
    assert {r["currency"] for r in records} == {"EUR", "USD", "GBP"}
    assert all(-r["weightKg"].as_tuple().exponent == 3 for r in records)
    assert all(-r["declaredValue"].as_tuple().exponent == 2 for r in records)
    assert any(str(r["weightKg"]).endswith("0") for r in records)
    assert all(re.fullmatch(r"[A-Z]{2}-\w+", r["origin"]) and r["origin"] != r["destination"]
               for r in records)
    assert any(r["consignee"].isupper() for r in records)  # the carrier's capitals
    assert any("&" in r["consignee"] for r in records)
    assert all((r["deliveredAt"] is not None) == (r["status"] == "DELIVERED") for r in records)
    assert all(r["updatedAt"].utcoffset() == dt.timedelta(0) for r in records)
    assert dt.timedelta(0) in offsets and len(offsets) > 3
    assert {len(r["events"]) for r in records} == {0, 1, 2, 3, 4}
    assert ties[CARRIER_SYNC] > 10 and sum(n > 1 for n in ties.values()) > 20


def test_wire_format_of_a_shipment(logistics: LogisticsServer) -> None:
    text = call(logistics, get_shipment("SHP-000003")).text

    assert re.search(r"<tns:weightKg>\d+\.\d{3}</tns:weightKg>", text)
    assert re.search(r"<tns:declaredValue>\d+\.\d{2}</tns:declaredValue>", text)
    assert re.search(r"<tns:updatedAt>[\d\-T:]{19}Z</tns:updatedAt>", text)


def test_data_is_determined_by_the_seed(logistics: LogisticsServer) -> None:
    assert LogisticsServer(seed=5).records() == logistics.records()
    assert LogisticsServer(seed=6).records() != logistics.records()


def test_records_are_copies(small: LogisticsServer) -> None:
    small.records()[0]["events"].append({"code": "CHANGED_BY_A_TEST"})

    assert {"code": "CHANGED_BY_A_TEST"} not in small.records()[0]["events"]


def test_touch_moves_and_adds_shipments_after_everything_stored(small: LogisticsServer) -> None:
    before = {r["id"]: r for r in small.records()}
    latest = max(r["updatedAt"] for r in before.values())

    assert small.touch(changed=5, added=3) == {"changed": 5, "added": 3}

    after = {r["id"]: r for r in small.records()}
    touched = {key for key, record in after.items() if record != before.get(key)}
    assert len(touched) == 8
    assert sorted(touched - before.keys()) == ["SHP-000021", "SHP-000022", "SHP-000023"]
    assert all(after[key]["status"] != before[key]["status"] for key in touched & before.keys())
    assert all(after[key]["updatedAt"] > latest for key in touched)
    assert all(len(r["events"]) <= 4 for r in after.values())
    earliest = min(after[key]["updatedAt"] for key in touched)
    with zeep_client(small) as client:
        assert {s.id for s in walk(client, 3, updatedFrom=earliest)} == touched


def test_touch_changes_at_most_every_shipment(small: LogisticsServer) -> None:
    assert small.touch(changed=100, added=0) == {"changed": 20, "added": 0}
    with pytest.raises(ValueError, match="zero or more"):
        small.touch(changed=-1, added=0)


# -- lifecycle ----------------------------------------------------------------------------


def test_urls_exist_once_started_and_stop_is_idempotent() -> None:
    server = LogisticsServer(shipments=1, password="given")
    with pytest.raises(RuntimeError, match="start the logistics server first"):
        _ = server.url
    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/logistics", server.url)
        assert server.wsdl_url == server.url + "?wsdl"
        assert server.evil_wsdl_url == server.url.replace("/logistics", "/evil.wsdl")
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    server.stop()
    assert server.password == "given"
    assert LogisticsServer(shipments=0).password != LogisticsServer(shipments=0).password
    with pytest.raises(ValueError, match="zero or more"):
        LogisticsServer(shipments=-1)


def test_main_serves_until_interrupted() -> None:
    def probe(banner: list[str]) -> None:
        wsdl_url = re.search(r"http://127\.0\.0\.1:\d+/logistics\?wsdl", banner[0])
        assert wsdl_url, banner
        assert requests.get(wsdl_url.group(), timeout=TIMEOUT).status_code == 200

    run = serve_then_interrupt("headwater_demo.logistics", "--port", "0", "--shipments", "5",
                               banner_lines=2, probe=probe)

    assert run.returncode == 0, run.stderr
    assert run.banner[1].startswith("UsernameToken: headwater / ")
    assert "stopping" in run.stdout
