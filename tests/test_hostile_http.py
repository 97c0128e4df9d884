"""Hostile sources on 127.0.0.1: pagination that never advances, responses past any sane
size, and XML built to exhaust a parser. Each read stops at once with an error naming
the connector, the stream and what was refused, and nothing is asked for twice."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
import threading
from importlib import resources

import pyarrow as pa
import pytest
import requests

from connectors import (
    DataContractError,
    RetriableSourceError,
    RetryPolicy,
    checkpoint_of,
)
from connectors.rest import LinkHeader, RESTConnector, RESTStream
from connectors.soap import SOAPConnector, SOAPStream
from connectors.testing import keys_of, read_all
from headwater_demo.logistics import LogisticsServer
from tests._reliability import record
from tests.hostile_servers import Answer, HostileServer, endless, measure_peak_rss_growth

pytestmark = pytest.mark.reliability

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
IDS = pa.schema([("id", pa.int64()), ("name", pa.string())])
MiB = 1024 * 1024


def page_of(ids, next_link: str | None) -> Answer:
    body = json.dumps({"data": [{"id": i, "name": f"n{i}"} for i in ids]}).encode()
    headers = {"Content-Type": "application/json"}
    if next_link:
        headers["Link"] = f'<{next_link}>; rel="next"'
    return Answer(200, headers, body)


def rest(server: HostileServer, **options) -> RESTConnector:
    options.setdefault("retry", FAST_RETRY)
    stream = RESTStream(name="items", path="/items", record_path="data", primary_key=("id",),
                        schema=IDS, paginator=LinkHeader(),
                        **{k: options.pop(k) for k in ("max_pages",) if k in options})
    return RESTConnector("hostile", server.url(), [stream], **options)


def numbered(seen) -> int:
    return int(seen.query.get("page", ["1"])[0])


def catalogue(payload: str, expected: str, error: BaseException | None, requests: int,
              detail: str = "") -> None:
    """Record one hostile input for RELIABILITY.md: what was expected, what happened (the
    error type, or ``answered``, and the requests the source saw) and the message."""
    outcome = type(error).__name__ if error is not None else "answered"
    message = str(error).splitlines()[0] if error is not None else ""
    message = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", message)
    record("hostile", payload, payload=payload, expected=expected,
           observed=f"{outcome}, {requests} request(s)",
           detail=textwrap.shorten("; ".join(filter(None, [detail, message])), 240,
                                   placeholder=" ..."))


# -- pagination that does not advance ---------------------------------------------------------

def test_an_always_new_link_over_the_same_records_stops_at_the_first_page_with_no_new_key():
    fresh = itertools.count(1)
    server = HostileServer(lambda seen: page_of(
        [1, 2, 3], f"/items?page={numbered(seen) + 1}&nonce={next(fresh)}"))
    with server, rest(server) as connector:
        reader = connector.read("items")
        first = next(reader)
        with pytest.raises(DataContractError) as error:
            next(reader)
    catalogue("next links always new over the same records", "DataContractError, 2 request(s)",
              error.value, server.requests)
    assert server.requests == 2  # 1,316 requests before, until killed
    assert keys_of([first], ("id",)) == [(1,), (2,), (3,)]
    message = str(error.value)
    assert "connector 'hostile', stream 'items': page 2 of this read" in message
    assert "page=2" in message and "every one read already" in message


def test_a_cycle_of_two_pages_under_fresh_links_stops_when_it_comes_round():
    pages = {1: [1, 2], 2: [3, 4]}
    server = HostileServer(lambda seen: page_of(
        pages[(numbered(seen) - 1) % 2 + 1], f"/items?page={numbered(seen) + 1}"))
    with server, rest(server) as connector, \
            pytest.raises(DataContractError, match="page 3 of this read") as error:
        read_all(connector, "items")
    catalogue("a cycle of two pages under fresh links", "DataContractError, 3 request(s)",
              error.value, server.requests)
    assert server.requests == 3


def test_pages_that_overlap_but_bring_new_keys_are_read_to_the_end():
    def respond(seen):
        n = numbered(seen)
        return page_of(range(n * 5, n * 5 + 10), f"/items?page={n + 1}" if n < 6 else None)

    with HostileServer(respond) as server, rest(server) as connector:
        batches, _ = read_all(connector, "items")
    catalogue("pages that overlap but each bring new keys", "answered, 6 request(s)", None,
              server.requests, f"{len(keys_of(batches, ('id',)))} records read")
    assert server.requests == 6
    assert {k[0] for k in keys_of(batches, ("id",))} == set(range(5, 40))


def test_max_pages_stops_an_endless_source_and_the_next_read_goes_on_from_there():
    def respond(seen):
        n = numbered(seen)
        return page_of([n * 10, n * 10 + 1], f"/items?page={n + 1}")

    with HostileServer(respond) as server, rest(server, max_pages=4) as connector:
        delivered = []
        with pytest.raises(DataContractError) as error:
            for batch in connector.read("items"):
                delivered.append(batch)
        catalogue("a source that pages for ever (max_pages = 4)",
                  "DataContractError, 4 request(s)", error.value, server.requests)
        assert server.requests == 4
        assert "max_pages=4" in str(error.value) and "'items'" in str(error.value)
        state = checkpoint_of(delivered[-1])
        assert state["resume"]["page"]["url"].endswith("/items?page=5")
        again = []
        with pytest.raises(DataContractError):
            again.extend(connector.read("items", state))
    assert [k[0] for k in keys_of(again, ("id",))][:2] == [50, 51]


# -- responses past max_response_bytes -------------------------------------------------------

RECORDS = b'{"id": 1, "name": "' + b"x" * 65_000 + b'"},'


def oversized(declared: bool):
    """256 MB of records, made as they are sent; with or without a Content-Length."""
    total = 256 * MiB

    def respond(seen):
        body = itertools.chain([b'{"data": ['], endless(RECORDS, total))
        return Answer(200, {"Content-Type": "application/json"}, body,
                      length=total if declared else None)
    return HostileServer(respond)


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_an_oversized_response_fails_at_the_limit_without_being_read_whole(declared):
    with oversized(declared) as server, rest(server, max_response_bytes=4 * MiB) as connector:
        grown, error = measure_peak_rss_growth(lambda: read_all(connector, "items"))
        sent = server.body_bytes_sent
        requests_seen = server.requests
    how = "with a Content-Length" if declared else "streamed without a length"
    catalogue(f"a 256 MiB JSON response, {how} (max_response_bytes = 4 MiB)",
              "DataContractError, 1 request(s)", error, requests_seen,
              f"peak RSS grew {grown / MiB:.0f} MiB; {sent / MiB:.0f} MiB sent")
    assert isinstance(error, DataContractError)
    assert "connector 'hostile', stream 'items'" in str(error)
    assert "max_response_bytes limit of 4,194,304" in str(error)
    assert requests_seen == 1  # not retried: the next attempt would be as big
    # The client read at most the limit; the rest sat in socket buffers or was never made.
    assert sent < 64 * MiB
    assert grown < 48 * MiB, f"peak RSS grew {grown / MiB:.0f} MiB reading a 4 MiB-capped page"


def test_a_stream_sets_its_own_response_limit():
    with oversized(declared=False) as server:
        stream = RESTStream(name="items", path="/items", record_path="data",
                            primary_key=("id",), schema=IDS, max_response_bytes=MiB)
        with RESTConnector("hostile", server.url(), [stream]) as connector, \
                pytest.raises(DataContractError, match="limit of 1,048,576") as error:
            read_all(connector, "items")
        catalogue("a 256 MiB response to a stream with its own max_response_bytes (1 MiB)",
                  "DataContractError, 1 request(s)", error.value, server.requests)


# -- XML a hardened parser refuses ---------------------------------------------------------------

def soap(endpoint: str, server: LogisticsServer, **options) -> SOAPConnector:
    options.setdefault("retry", FAST_RETRY)
    wsdl = str(resources.files("headwater_demo").joinpath("logistics.wsdl"))
    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                        arguments={"pageSize": 10}, primary_key=("id",))
    return SOAPConnector("logistics", wsdl, [stream], username=server.username,
                         password=server.password, endpoint=endpoint, **options)


def tampering(upstream: LogisticsServer, tamper) -> HostileServer:
    """A proxy in front of the real service that rewrites each answer with ``tamper``."""
    def respond(seen):
        reply = requests.post(upstream.url, data=seen.body, timeout=10,
                              headers={"Content-Type": seen.headers["Content-Type"]})
        return Answer(reply.status_code, {"Content-Type": "text/xml; charset=utf-8"},
                      tamper(reply.content))
    return HostileServer(respond)


def consignee(replacement: bytes):
    def tamper(envelope: bytes) -> bytes:
        start = envelope.index(b"<tns:consignee>") + len(b"<tns:consignee>")
        end = envelope.index(b"</tns:consignee>")
        return envelope[:start] + replacement + envelope[end:]
    return tamper


@pytest.fixture(scope="module")
def logistics():
    with LogisticsServer(shipments=20) as server:
        yield server


@pytest.mark.parametrize(("replacement", "named"), [
    (b"x" * 11_000_000, "a text node over libxml2's 10 MB limit"),
    (b"<tns:x>" * 300 + b"</tns:x>" * 300, "elements nested past libxml2's depth limit"),
], ids=["huge-text-node", "deep-nesting"])
def test_xml_past_the_parser_limits_is_refused_once_and_named(logistics, replacement, named):
    with tampering(logistics, consignee(replacement)) as proxy, \
            soap(proxy.url("/logistics"), logistics) as connector, \
            pytest.raises(DataContractError) as error:
        connector.check()
    catalogue(f"a SOAP response carrying {named}", "DataContractError, 1 request(s)",
              error.value, proxy.requests)
    assert proxy.requests == 1  # downloaded once, not three times
    assert f"refused a response carrying {named}" in str(error.value)
    assert "not well-formed" not in str(error.value)


PAYLOADS = {"billion_laughs": "a billion-laughs entity expansion", "doctype": "a DOCTYPE",
            "external_entity": "an external entity"}


@pytest.mark.parametrize(("fault", "named"), [
    ("billion_laughs", "a DTD or entities"), ("doctype", "a DTD"),
    ("external_entity", "a DTD"),
])
def test_entity_payloads_are_refused_once_and_named(logistics, fault, named):
    with soap(logistics.url, logistics) as connector:
        connector.check()
        before = logistics.requests
        getattr(logistics.faults, fault)(3)
        try:
            with pytest.raises(DataContractError) as error:
                connector.check()
        finally:
            logistics.faults.clear()
    catalogue(f"a SOAP response with {PAYLOADS[fault]}",
              "DataContractError, 1 request(s)", error.value, logistics.requests - before)
    assert logistics.requests - before == 1
    assert "refused a response carrying" in str(error.value) and named in str(error.value)
    assert "not well-formed" not in str(error.value)


def test_an_oversized_soap_response_fails_at_the_limit_once(logistics):
    def respond(seen):  # the real answer with 256 MB in a field, made as it is sent
        reply = requests.post(logistics.url, data=seen.body, timeout=10,
                              headers={"Content-Type": seen.headers["Content-Type"]}).content
        cut = reply.index(b"<tns:consignee>") + len(b"<tns:consignee>")
        body = itertools.chain([reply[:cut]], endless(b"y" * 65_536, 256 * MiB),
                               [reply[reply.index(b"</tns:consignee>"):]])
        return Answer(200, {"Content-Type": "text/xml; charset=utf-8"}, body)

    with HostileServer(respond) as proxy, \
            soap(proxy.url("/logistics"), logistics, max_response_bytes=2 * MiB) as connector:
        grown, error = measure_peak_rss_growth(connector.check)
        catalogue("a 256 MiB SOAP response (max_response_bytes = 2 MiB)",
                  "DataContractError, 1 request(s)", error, proxy.requests,
                  f"peak RSS grew {grown / MiB:.0f} MiB; "
                  f"{proxy.body_bytes_sent / MiB:.0f} MiB sent")
        assert proxy.requests == 1
    assert isinstance(error, DataContractError)
    assert "max_response_bytes limit of 2,097,152" in str(error)
    assert "connector 'logistics', stream 'shipments'" in str(error)
    assert proxy.body_bytes_sent < 64 * MiB
    assert grown < 32 * MiB, f"peak RSS grew {grown / MiB:.0f} MiB reading a 2 MiB-capped page"


def test_xml_cut_short_is_still_retried(logistics):
    with soap(logistics.url, logistics) as connector:
        connector.check()
        before = logistics.requests
        logistics.faults.malformed(1)
        connector.check()
    catalogue("a SOAP response cut short, once", "answered, 2 request(s)", None,
              logistics.requests - before, "retried: a transport fault, not a refusal")
    assert logistics.requests - before == 2


def test_a_5xx_that_is_not_a_soap_fault_is_retried_by_the_http_policy(logistics):
    failures = iter([True, True])
    lock = threading.Lock()

    def respond(seen):
        with lock:
            fail = next(failures, False)
        if fail:
            return Answer(502, {"Content-Type": "text/html"}, b"<h1>Bad gateway</h1>")
        reply = requests.post(logistics.url, data=seen.body, timeout=10,
                              headers={"Content-Type": seen.headers["Content-Type"]})
        return Answer(reply.status_code, {"Content-Type": "text/xml"}, reply.content)

    with HostileServer(respond) as gateway, \
            soap(gateway.url("/logistics"), logistics) as connector:
        connector.check()
        assert connector.http.stats["retries"] == 2
    catalogue("two 502 answers (not SOAP faults) before the real one",
              "answered, 3 request(s)", None, gateway.requests,
              "retried by the shared HTTP policy")
    assert gateway.requests == 3


def test_http_errors_of_the_soap_policy_name_the_operation(logistics):
    with HostileServer(lambda seen: Answer(503, {"Content-Type": "text/html"}, b"busy")) as down, \
            soap(down.url("/logistics"), logistics) as connector, \
            pytest.raises(RetriableSourceError) as error:
        connector.check()
    catalogue("a SOAP endpoint answering 503 to every call", "RetriableSourceError, 3 request(s)",
              error.value, down.requests)
    assert "operation ListShipments" in str(error.value)
    assert "answered 503" in str(error.value)
    assert down.requests == 3  # the policy's attempts, no second loop around them
