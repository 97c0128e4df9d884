"""Whole-request deadlines against real slow servers on 127.0.0.1: a REST page, a SOAP
operation, an OAuth2 token request and a bare streamed body each fail within their
deadline plus one second, however slowly the server drips; ``max_elapsed`` bounds a
request with all its retries; SOAP and token requests follow the same HTTP policy as
REST (rate limit, retries)."""

from __future__ import annotations

import json
import socket
import time
from importlib import resources

import pytest
import requests

from connectors import RetriableSourceError, RetryPolicy
from connectors.http import (
    Deadline,
    HTTPClient,
    OAuth2ClientCredentials,
    RateLimit,
    read_body,
)
from connectors.rest import CursorInBody, RESTConnector, RESTStream
from connectors.soap import SOAPConnector, SOAPStream
from connectors.testing import keys_of, read_all
from headwater_demo.crm import CRMServer
from headwater_demo.logistics import LogisticsServer
from tests._reliability import record
from tests.hostile_servers import Answer, HostileServer, drip, wall

pytestmark = pytest.mark.reliability

ONE_TRY = RetryPolicy(max_attempts=1)
FAST_RETRY = RetryPolicy(max_attempts=20, base_delay=0.01, max_delay=0.02)
PAGE = json.dumps({"data": [{"id": i} for i in range(5)]}).encode()
SLACK = 1.0  # the acceptance bound: the deadline plus one second


def timed(case: str, limit: float, elapsed: float, requests: int) -> None:
    """Record one slow case for RELIABILITY.md: its limit and how long it took."""
    record("deadlines", case, limit=limit, observed=round(elapsed, 2), requests=requests)


def dripping(interval: float = 0.5, *, head: bool = False):
    """A server that sends the page a byte every ``interval`` seconds (its status line and
    headers too, with ``head``)."""
    def respond(seen):
        return Answer(headers={"Content-Type": "application/json"}, body=drip(PAGE),
                      length=len(PAGE), interval=0 if head else interval,
                      head_interval=interval if head else 0)
    return HostileServer(respond)


def silent():
    """A server that sends its headers, then nothing for a minute."""
    def respond(seen):
        return Answer(headers={"Content-Type": "application/json"},
                      body=iter([b"{"]), length=len(PAGE), interval=60)
    return HostileServer(respond)


def rest(server: HostileServer, **options) -> RESTConnector:
    stream = RESTStream(name="items", path="/items", record_path="data", primary_key=("id",))
    return RESTConnector("drip", server.url(), [stream], **options)


# -- REST -----------------------------------------------------------------------------------

@pytest.mark.parametrize("server", [dripping, lambda: dripping(head=True), silent],
                         ids=["body-drip", "header-drip", "headers-then-silence"])
def test_a_rest_page_fails_within_its_deadline(server, request) -> None:
    with server() as slow, rest(slow, deadline=1.5, retry=ONE_TRY) as connector:
        elapsed, error = wall(lambda: read_all(connector, "items"))
    timed(f"REST page, {request.node.callspec.id} (deadline)", 1.5, elapsed, slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert "gave no complete answer within 1.5 s (the request deadline)" in str(error)
    assert elapsed < 1.5 + SLACK
    assert slow.requests == 1


@pytest.mark.slow
def test_max_elapsed_bounds_the_retried_request_under_the_default_deadline() -> None:
    # The case, scaled down: a socket timeout the drip never trips, the default
    # (long) per-attempt deadline, and the whole retried request given 3 s.
    with dripping(0.2) as slow, rest(slow, timeout=5, max_elapsed=3,
                                     retry=FAST_RETRY) as connector:
        elapsed, error = wall(lambda: read_all(connector, "items"))
    timed("REST page, body drip, retried under the default deadline (max_elapsed)", 3,
          elapsed, slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert "what was left of max_elapsed 3 s" in str(error)
    assert elapsed < 3 + SLACK


@pytest.mark.slow
def test_each_attempt_has_the_deadline_and_all_of_them_max_elapsed() -> None:
    with dripping(0.2) as slow, rest(slow, deadline=1, max_elapsed=3.5,
                                     retry=FAST_RETRY) as connector:
        elapsed, error = wall(lambda: read_all(connector, "items"))
        attempts = connector.client.stats["requests"]
    timed("REST page, body drip, 1 s a try (max_elapsed)", 3.5, elapsed, slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert elapsed < 3.5 + SLACK
    assert attempts == slow.requests >= 3  # 1 s each, then what was left


# -- the reusable body read --------------------------------------------------------------

def test_read_body_bounds_a_plain_streamed_response() -> None:
    """``read_body`` holds a deadline on a session of one's own (no watched adapter)."""
    with dripping() as slow, requests.Session() as session:
        def fetch() -> bytes:
            with Deadline(1.5, label="the model call deadline") as deadline:
                response = session.get(slow.url("/v1/chat"), stream=True, timeout=30)
                return read_body(response, deadline=deadline)

        elapsed, error = wall(fetch)
    timed("a streamed body read by read_body, body drip (deadline)", 1.5, elapsed,
          slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert "within 1.5 s (the model call deadline)" in str(error)
    assert elapsed < 1.5 + SLACK


@pytest.mark.parametrize("head", [False, True], ids=["body-drip", "header-drip"])
def test_a_model_call_fails_within_its_deadline(head) -> None:
    from pipelines.models import OpenAICompatible
    from pipelines.models._errors import ProviderError
    from pipelines.models._providers import CompletionRequest

    question = CompletionRequest("c-1", [{"role": "user", "content": "?"}], "answer",
                                 {"type": "object"}, {}, timeout=1.5, max_output_tokens=10)
    with dripping(head=head) as slow:
        provider = OpenAICompatible(slow.url("/v1"), "drip-model")
        elapsed, error = wall(lambda: provider.complete(question))
        provider.close()
    timed(f"model call, {'header' if head else 'body'} drip (timeout)", 1.5, elapsed,
          slow.requests)
    assert isinstance(error, ProviderError) and error.reason == "timeout", error
    assert elapsed < 1.5 + SLACK
    assert slow.requests == 1


def test_a_body_read_in_time_is_the_response_content() -> None:
    with dripping(0.0) as fast, requests.Session() as session, Deadline(5) as deadline:
        response = session.get(fast.url("/x"), stream=True, timeout=30)
        body = read_body(response, deadline=deadline)
    assert body == PAGE and response.json() == json.loads(PAGE)


# -- SOAP -----------------------------------------------------------------------------------

def soap(endpoint: str, *, username: str = "headwater", password: str = "Soap-Pass-1234",
         **options) -> SOAPConnector:
    """A SOAP connector on the checked-in logistics WSDL, calling ``endpoint``."""
    wsdl = str(resources.files("headwater_demo").joinpath("logistics.wsdl"))
    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                        arguments={"pageSize": 10}, primary_key=("id",))
    return SOAPConnector("logistics", wsdl, [stream], username=username, password=password,
                         endpoint=endpoint, **options)


@pytest.mark.parametrize("server", [dripping, silent], ids=["body-drip", "silence"])
def test_a_soap_operation_fails_within_its_operation_timeout(server, request) -> None:
    with server() as slow, soap(slow.url("/logistics"), operation_timeout=1.5,
                                retry=ONE_TRY) as connector:
        elapsed, error = wall(connector.check)
    timed(f"SOAP operation, {request.node.callspec.id} (operation_timeout)", 1.5, elapsed,
          slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert "within 1.5 s (the operation timeout)" in str(error)
    assert "ListShipments" in str(error)
    assert elapsed < 1.5 + SLACK
    assert slow.requests == 1  # not retried again around the HTTP policy


@pytest.mark.slow
def test_soap_retries_are_bounded_by_max_elapsed() -> None:
    with dripping(0.2) as slow, soap(slow.url("/logistics"), operation_timeout=1,
                                     max_elapsed=3, retry=FAST_RETRY) as connector:
        elapsed, error = wall(connector.check)
    timed("SOAP operation, body drip, 1 s a try (max_elapsed)", 3, elapsed, slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert elapsed < 3 + SLACK
    assert slow.requests == connector.http.stats["requests"] >= 3


@pytest.mark.slow
def test_a_soap_rate_limit_spaces_the_requests_the_server_sees() -> None:
    with LogisticsServer(shipments=30) as server:
        stream = SOAPStream(name="shipments", operation="ListShipments",
                            record_path="shipment", primary_key=("id",),
                            paginator=CursorInBody("nextPageToken", "pageToken", "pageSize", 15))
        connector = SOAPConnector("logistics", server.wsdl_url, [stream],
                                  username=server.username, password=server.password,
                                  rate_limit=RateLimit(1, per_seconds=2))
        with connector:
            started = time.monotonic()
            batches, _ = read_all(connector, "shipments")
            elapsed = time.monotonic() - started
            sent = connector.http.stats["requests"]
        assert len(keys_of(batches, ("id",))) == 30
        assert server.requests == sent - 1 >= 2  # every call but the WSDL download
    # The WSDL, then each call 2 s after the one before.
    assert elapsed >= 2 * (sent - 1) - 0.1
    assert connector.http.stats["rate_limited_s"] >= 1.5 * (sent - 1)  # the rest is work


def test_soap_http_credentials_are_renewed_once_on_401() -> None:
    from connectors.http import Auth

    class Rotating(Auth):
        def __init__(self) -> None:
            self.token, self.renewals = "tok-old-1", 0

        def apply(self, headers, params):
            headers["Authorization"] = f"Bearer {self.token}"
            return self.token

        def renew(self, used):
            self.renewals += 1
            self.token = "tok-new-2"
            return True

    with LogisticsServer(shipments=5) as server:
        gateway = HostileServer(lambda seen: Answer(401) if seen.headers.get(
            "Authorization") == "Bearer tok-old-1" else _forward(server, seen))
        auth = Rotating()
        with gateway, soap(gateway.url("/logistics"), auth=auth, retry=ONE_TRY,
                           username=server.username, password=server.password) as connector:
            connector.check()
    assert auth.renewals == 1
    assert [s.headers["Authorization"] for s in gateway.seen] == [
        "Bearer tok-old-1", "Bearer tok-new-2"]


def _forward(server: LogisticsServer, seen) -> Answer:
    response = requests.post(server.url, data=seen.body, timeout=10,
                             headers={"Content-Type": seen.headers["Content-Type"]})
    return Answer(response.status_code, {"Content-Type": response.headers["Content-Type"]},
                  response.content)


# -- the OAuth2 token endpoint -------------------------------------------------------------

def token_answer(status: int = 200) -> Answer:
    if status != 200:
        return Answer(status, {"Content-Type": "text/html"}, b"<h1>down</h1>")
    token = {"access_token": "tok-from-retry-9", "token_type": "Bearer", "expires_in": 3600}
    return Answer(200, {"Content-Type": "application/json"}, json.dumps(token).encode())


def test_a_token_request_fails_within_its_deadline() -> None:
    with dripping() as slow:
        auth = OAuth2ClientCredentials(slow.url("/oauth/token"), "client-1", "Secret-Value-77",
                                       timeout=1.5, retry=ONE_TRY)
        elapsed, error = wall(lambda: auth.apply({}, {}))
    timed("OAuth2 token request, body drip (timeout)", 1.5, elapsed, slow.requests)
    assert isinstance(error, RetriableSourceError)
    assert "within 1.5 s (the token request deadline)" in str(error)
    assert elapsed < 1.5 + SLACK


def test_a_token_endpoint_500_then_ok_is_retried() -> None:
    statuses = iter([500, 200])
    with HostileServer(lambda seen: token_answer(next(statuses))) as endpoint:
        auth = OAuth2ClientCredentials(endpoint.url("/oauth/token"), "client-1",
                                       "Secret-Value-77", retry=FAST_RETRY)
        headers: dict[str, str] = {}
        auth.apply(headers, {})
    assert headers == {"Authorization": "Bearer tok-from-retry-9"}
    assert endpoint.requests == 2
    assert auth.http.stats["retries"] == 1
    assert auth.token_requests == 1


def test_a_real_authorization_server_behind_a_503_burst_still_gives_a_token() -> None:
    with CRMServer(accounts=5, tickets=5) as crm:
        crm.faults.unavailable(2, path="/oauth/token")
        auth = OAuth2ClientCredentials(crm.token_url, crm.client_id, crm.client_secret,
                                       retry=FAST_RETRY)
        stream = RESTStream(name="accounts", path="/api/accounts", record_path="data",
                            primary_key=("id",))
        with RESTConnector("crm", crm.url, [stream], auth=auth) as connector:
            connector.check()
    assert auth.http.stats["retries"] == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_and_answering_500_are_told_apart_and_name_the_url() -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=0.01)
    unreachable_url = f"http://127.0.0.1:{closed_port()}/oauth/token"
    with pytest.raises(RetriableSourceError) as unreachable:
        OAuth2ClientCredentials(unreachable_url, "client-1", "Secret-Value-77",
                                retry=policy).apply({}, {})
    with HostileServer(lambda seen: token_answer(500)) as endpoint:
        failing_url = endpoint.url("/oauth/token")
        with pytest.raises(RetriableSourceError) as failing:
            OAuth2ClientCredentials(failing_url, "client-1", "Secret-Value-77",
                                    retry=policy).apply({}, {})
        assert endpoint.requests == 2
    assert unreachable_url in str(unreachable.value)
    assert "could not be reached" in str(unreachable.value)
    assert "answered" not in str(unreachable.value)
    assert failing_url in str(failing.value)
    assert "answered 500" in str(failing.value)
    assert "could not be reached" not in str(failing.value)
    for error in (unreachable.value, failing.value):
        assert "***" not in str(error) and "Secret-Value-77" not in str(error)


def test_the_token_client_is_an_http_client_under_the_policy() -> None:
    auth = OAuth2ClientCredentials("http://127.0.0.1:9/oauth/token", "c", "Secret-Value-77",
                                   timeout=4, max_elapsed=20)
    assert isinstance(auth.http, HTTPClient)
    assert (auth.http.deadline, auth.http.max_elapsed) == (4, 20)
