"""HTTPClient's policy against a real local HTTP server; its pure helpers alone."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import http.server
import socket
import threading
from contextlib import nullcontext
from urllib.parse import parse_qs, urlsplit

import pytest

import connectors
from connectors import _redaction
from connectors._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    RetriableSourceError,
)
from connectors._retry import Retrier, RetryPolicy
from connectors.http import (
    APIKey,
    Auth,
    BasicAuth,
    BearerToken,
    HTTPClient,
    describe,
    retry_after_seconds,
)


@pytest.fixture(autouse=True)
def isolated_secrets(monkeypatch):
    """Each test starts with no registered secrets and leaves none behind."""
    monkeypatch.setattr(_redaction, "_known_secrets", set())


# -- retry_after_seconds and describe ---------------------------------------------------

NOW = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2", 2.0, id="seconds"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("120", 120.0, id="minutes"),
        pytest.param(" 7 ", 7.0, id="padded"),
        pytest.param(http_date(NOW + dt.timedelta(seconds=30)), 30.0, id="date-30s-ahead"),
        pytest.param("Fri, 01 Mar 2024 12:00:30 GMT", 30.0, id="literal-date"),
        pytest.param("Fri, 01 Mar 2024 12:00:30 -0000", 30.0, id="naive-date-is-utc"),
        pytest.param("Fri, 01 Mar 2024 14:00:30 +0200", 30.0, id="date-with-offset"),
        pytest.param(http_date(NOW - dt.timedelta(minutes=5)), 0.0, id="date-in-the-past"),
        pytest.param(http_date(NOW), 0.0, id="date-now"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("-1", None, id="negative"),
        pytest.param("2 seconds", None, id="trailing-words"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after_seconds(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


def test_retry_after_date_defaults_to_the_current_time():
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=100)
    assert 90.0 < retry_after_seconds(http_date(ahead)) <= 100.0


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        pytest.param(
            "GET",
            "https://api.example.com/v1/items?page=2&api_key=abc123",
            "GET https://api.example.com/v1/items",
            id="query-dropped",
        ),
        pytest.param(
            "POST",
            "https://etl:hunter2@api.example.com/v1/items",
            "POST https://etl:***@api.example.com/v1/items",
            id="userinfo-password-masked",
        ),
        pytest.param(
            "GET",
            "https://etl:hunter2@api.example.com:8443/v1/items?token=xyz#frag",
            "GET https://etl:***@api.example.com:8443/v1/items",
            id="both",
        ),
        pytest.param("DELETE", "http://host/", "DELETE http://host/", id="plain"),
    ],
)
def test_describe(method, url, expected):
    assert describe(method, url) == expected


def test_describe_masks_a_registered_secret_in_the_path():
    connectors.register_secret("tenant-secret-42")
    assert describe("GET", "https://h/t/tenant-secret-42/x") == "GET https://h/t/***/x"


# -- a scripted local HTTP server --------------------------------------------------------


class ScriptedServer:
    """Answers each request with the next (status, headers, body) of ``script``."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], str]] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                with server._lock:
                    server.requests.append({
                        "method": self.command,
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length).decode() if length else "",
                    })
                    status, headers, body = (server.script.pop(0) if server.script
                                             else (599, {}, "script exhausted"))
                data = body.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format, *args):  # keep the test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, *answers) -> None:
        """Queue answers: a status, or (status, headers), or (status, headers, body)."""
        for answer in answers:
            answer = answer if isinstance(answer, tuple) else (answer,)
            headers = answer[1] if len(answer) > 1 else {}
            body = answer[2] if len(answer) > 2 else ""
            self.script.append((answer[0], headers, body))


@pytest.fixture
def server():
    scripted = ScriptedServer()
    scripted.thread.start()
    yield scripted
    scripted.httpd.shutdown()
    scripted.httpd.server_close()
    scripted.thread.join(timeout=5)


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(sleeps):
    """Clients whose retries record their sleeps instead of sleeping; closed afterwards."""
    clients: list[HTTPClient] = []

    def make(max_attempts: int = 4, **kwargs) -> HTTPClient:
        retrier = Retrier(RetryPolicy(max_attempts=max_attempts, base_delay=0.01),
                          sleep=sleeps.append)
        client = HTTPClient(retry=retrier, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_a_200_passes_through(server, make_client, sleeps):
    server.serve((200, {"Content-Type": "application/json"}, '{"ok": true}'))
    client = make_client()
    response = client.request("GET", server.url("/items"), params={"page": 3})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert [(r["method"], r["path"], r["query"]) for r in server.requests] == [
        ("GET", "/items", {"page": ["3"]})
    ]
    assert server.requests[0]["headers"]["User-Agent"] == "headwater"
    assert client.stats == {"requests": 1, "retries": 0, "rate_limited_s": 0.0}
    assert sleeps == []


def test_extra_headers_are_sent_on_every_request(server, make_client):
    server.serve(200, (200, {}, ""))
    client = make_client(headers={"Accept": "application/json"})
    client.request("GET", server.url("/a"), headers={"X-Trace": "t1"})
    client.request("GET", server.url("/b"))
    assert [r["headers"].get("Accept") for r in server.requests] == ["application/json"] * 2
    assert [r["headers"].get("X-Trace") for r in server.requests] == ["t1", None]


def test_two_503s_are_retried_then_the_200_returned(server, make_client, sleeps):
    server.serve(503, 503, (200, {}, "done"))
    client = make_client(max_attempts=5)
    response = client.request("GET", server.url("/items"))
    assert response.status_code == 200
    assert response.text == "done"
    assert len(server.requests) == 3
    assert client.stats["retries"] == 2
    assert client.stats["requests"] == 3
    assert len(sleeps) == 2
    assert all(0.0 <= s <= 0.02 for s in sleeps)  # base 0.01, doubled once, jittered


def test_a_429_sleeps_exactly_what_retry_after_asks(server, make_client, sleeps):
    server.serve((429, {"Retry-After": "2"}), 200)
    client = make_client()
    assert client.request("GET", server.url("/items")).status_code == 200
    assert sleeps == [2.0]
    assert client.stats["retries"] == 1


@pytest.mark.parametrize("status", [408, 425, 500, 502, 503, 504])
def test_retriable_statuses_are_retried(server, make_client, sleeps, status):
    server.serve(status, 200)
    client = make_client()
    assert client.request("GET", server.url("/items")).status_code == 200
    assert len(server.requests) == 2
    assert client.stats["retries"] == 1
    assert len(sleeps) == 1


SECRET_BODY = "body-only-marker-7f3a internal stack trace"


def test_a_404_fails_at_once_without_query_or_body(server, make_client, sleeps):
    server.serve((404, {}, SECRET_BODY))
    client = make_client()
    with pytest.raises(ConfigurationError) as info:
        client.request("GET", server.url("/v1/things?page=7&api_key=s3cr3tvalue"))
    message = info.value.message
    assert message == f"GET http://127.0.0.1:{server.port}/v1/things answered 404 Not Found"
    assert "404" in message
    assert "GET" in message
    assert "/v1/things" in message
    assert "s3cr3tvalue" not in message
    assert "page=7" not in message
    assert "?" not in message
    assert "body-only-marker" not in message
    assert len(server.requests) == 1
    assert server.requests[0]["query"] == {"page": ["7"], "api_key": ["s3cr3tvalue"]}
    assert sleeps == []


@pytest.mark.parametrize("status", [400, 404, 405, 410, 422])
def test_other_4xx_are_configuration_errors_without_retry(server, make_client, sleeps, status):
    server.serve((status, {}, SECRET_BODY))
    client = make_client()
    with pytest.raises(ConfigurationError, match=f"answered {status} ") as info:
        client.request("POST", server.url("/v1/things"), json={"x": 1})
    assert "body-only-marker" not in str(info.value)
    assert len(server.requests) == 1
    assert sleeps == []


def test_a_403_is_an_authentication_error(server, make_client, sleeps):
    server.serve((403, {}, SECRET_BODY))
    client = make_client()
    with pytest.raises(AuthenticationError) as info:
        client.request("GET", server.url("/admin"))
    assert f"GET http://127.0.0.1:{server.port}/admin answered 403 Forbidden" in info.value.message
    assert "body-only-marker" not in info.value.message
    assert len(server.requests) == 1
    assert sleeps == []


def test_exhausted_attempts_raise_a_retriable_error_saying_how_many(server, make_client, sleeps):
    server.serve(503, 503, 503, 200)
    client = make_client(max_attempts=3)
    with pytest.raises(RetriableSourceError) as info:
        client.request("GET", server.url("/items?token=abc12345"))
    assert info.value.message == (
        f"GET http://127.0.0.1:{server.port}/items failed after 3 attempt(s): "
        f"GET http://127.0.0.1:{server.port}/items answered 503 Service Unavailable"
    )
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert client.stats["retries"] == 2


def test_exhausted_429_keeps_the_retry_after(server, make_client, sleeps):
    server.serve((429, {"Retry-After": "1"}), (429, {"Retry-After": "3"}))
    client = make_client(max_attempts=2)
    with pytest.raises(RetriableSourceError, match=r"after 2 attempt\(s\)") as info:
        client.request("GET", server.url("/items"))
    assert info.value.retry_after == 3.0
    assert sleeps == [1.0]


def test_the_time_budget_stops_retries(server, make_client, sleeps):
    ticks = iter(range(0, 1000, 10))  # every reading is 10 s after the last
    server.serve(503, 503, 503, 503, 200)
    client = make_client(max_attempts=10, max_elapsed=15.0, clock=lambda: float(next(ticks)))
    with pytest.raises(RetriableSourceError) as info:
        client.request("GET", server.url("/slow"))
    # Started at 0; after attempt 1 it is 10 s (retry), after attempt 2 it is 20 s (stop).
    assert len(server.requests) == 2
    assert len(sleeps) == 1
    assert "failed for 20 s" in info.value.message
    assert "the 15 s budget" in info.value.message
    assert "503" in info.value.message
    assert client.stats["retries"] == 1


def test_a_long_retry_after_is_refused_by_the_budget(server, make_client, sleeps):
    server.serve((429, {"Retry-After": "600"}), 200)
    client = make_client(max_elapsed=60.0)
    with pytest.raises(RetriableSourceError, match="waiting 600 s more would pass the 60 s"):
        client.request("GET", server.url("/items"))
    assert len(server.requests) == 1
    assert sleeps == []


class RenewingAuth(Auth):
    """A bearer token that a 401 replaces with ``renewed_to`` (or cannot, if None)."""

    def __init__(self, token: str, renewed_to: str | None) -> None:
        self.token, self.renewed_to = token, renewed_to
        self.renewals: list[str] = []

    def apply(self, headers, params):
        headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def renew(self, used):
        self.renewals.append(used)
        if self.renewed_to is None:
            return False
        self.token = self.renewed_to
        return True


def test_a_401_renews_once_and_replays_with_the_new_credentials(server, make_client, sleeps):
    server.serve(401, (200, {}, "ok"))
    auth = RenewingAuth("old-token-1", "new-token-2")
    client = make_client(auth=auth)
    response = client.request("GET", server.url("/me"))
    assert response.text == "ok"
    assert auth.renewals == ["old-token-1"]
    assert [r["headers"]["Authorization"] for r in server.requests] == [
        "Bearer old-token-1",
        "Bearer new-token-2",
    ]
    assert client.stats["retries"] == 0
    assert sleeps == []


def test_a_second_401_after_renewal_is_an_authentication_error(server, make_client, sleeps):
    server.serve(401, 401, 200)
    auth = RenewingAuth("old-token-1", "new-token-2")
    client = make_client(auth=auth)
    with pytest.raises(AuthenticationError, match="answered 401"):
        client.request("GET", server.url("/me"))
    assert auth.renewals == ["old-token-1"]
    assert len(server.requests) == 2
    assert sleeps == []


def test_a_401_that_renewal_cannot_help_is_an_authentication_error(server, make_client, sleeps):
    server.serve(401, 200)
    auth = RenewingAuth("old-token-1", None)
    client = make_client(auth=auth)
    with pytest.raises(AuthenticationError) as info:
        client.request("GET", server.url("/me"))
    assert "credentials were refused" in info.value.message
    assert "old-token-1" not in info.value.message
    assert auth.renewals == ["old-token-1"]
    assert len(server.requests) == 1
    assert sleeps == []


def test_a_401_without_auth_is_an_authentication_error(server, make_client):
    server.serve(401)
    with pytest.raises(AuthenticationError):
        make_client().request("GET", server.url("/me"))


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_retried_then_retriable(make_client, sleeps):
    port = closed_port()
    client = make_client(max_attempts=3, timeout=2.0)
    with pytest.raises(RetriableSourceError) as info:
        client.request("GET", f"http://127.0.0.1:{port}/items?api_key=s3cr3tvalue")
    message = info.value.message
    assert message.startswith(f"GET http://127.0.0.1:{port}/items failed after 3 attempt(s): ")
    assert "ConnectionError (Connection refused)" in message
    assert "s3cr3tvalue" not in message
    assert len(sleeps) == 2
    assert client.stats["requests"] == 3


def test_every_request_carries_the_timeout(server, make_client, monkeypatch):
    server.serve(503, 401, 200, 404)
    client = make_client(auth=RenewingAuth("tok-aaaa", "tok-bbbb"), timeout=(3.5, 7.25))
    seen = []
    original = client.session.request

    def spy(method, url, **kwargs):
        seen.append(kwargs.get("timeout", "missing"))
        return original(method, url, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    client.request("GET", server.url("/a"))  # 503 retried, 401 renewed, 200
    with pytest.raises(ConfigurationError):
        client.request("GET", server.url("/b"))
    assert seen == [(3.5, 7.25)] * 4
    assert seen[0] == client.timeout


def test_the_default_timeout_is_set():
    client = HTTPClient()
    try:
        assert client.timeout == (10.0, 60.0)
    finally:
        client.close()


# -- auth objects ------------------------------------------------------------------------


def test_api_key_in_a_header(server, make_client):
    server.serve(200)
    make_client(auth=APIKey("key-in-header-123")).request("GET", server.url("/x"))
    request = server.requests[0]
    assert request["headers"]["X-API-Key"] == "key-in-header-123"
    assert request["query"] == {}
    assert connectors.redact("key=key-in-header-123!") == "key=***!"


def test_api_key_in_a_named_header():
    headers, params = {}, {}
    APIKey("key-named-456", header="Api-Token").apply(headers, params)
    assert headers == {"Api-Token": "key-named-456"}
    assert params == {}


def test_api_key_in_a_query_parameter(server, make_client):
    server.serve(200)
    client = make_client(auth=APIKey("key-in-query-789", query_param="api_key"))
    client.request("GET", server.url("/x"), params={"page": 2})
    request = server.requests[0]
    assert request["query"] == {"page": ["2"], "api_key": ["key-in-query-789"]}
    assert "X-API-Key" not in request["headers"]
    assert connectors.redact("value key-in-query-789") == "value ***"


def test_basic_auth(server, make_client):
    server.serve(200)
    make_client(auth=BasicAuth("etl-user", "pa55word-basic")).request("GET", server.url("/x"))
    encoded = base64.b64encode(b"etl-user:pa55word-basic").decode()
    assert server.requests[0]["headers"]["Authorization"] == f"Basic {encoded}"
    assert connectors.redact("pw pa55word-basic") == "pw ***"
    assert connectors.redact(f"blob {encoded} end") == "blob *** end"


def test_bearer_token(server, make_client):
    server.serve(200)
    make_client(auth=BearerToken("bearer-tok-abcdef")).request("GET", server.url("/x"))
    assert server.requests[0]["headers"]["Authorization"] == "Bearer bearer-tok-abcdef"
    assert connectors.redact("saw bearer-tok-abcdef here") == "saw *** here"


def test_auth_does_not_leak_into_the_callers_params_or_headers(server, make_client):
    server.serve(200, 200)
    client = make_client(auth=APIKey("key-leak-check", query_param="key"))
    params, headers = {"page": 1}, {"X-A": "1"}
    client.request("GET", server.url("/x"), params=params, headers=headers)
    assert params == {"page": 1}
    assert headers == {"X-A": "1"}


def test_the_base_auth_adds_nothing():
    headers, params = {}, {}
    assert Auth().apply(headers, params) is None
    assert (headers, params) == ({}, {})
    assert Auth().renew(None) is False


# -- bodies, bounds and what a caller takes --------------------------------------------------


def test_the_body_is_read_and_the_connection_kept(server, make_client):
    server.serve((200, {}, "one"), (200, {}, "two"))
    client = make_client()
    assert client.request("GET", server.url("/a")).content == b"one"
    assert client.request("GET", server.url("/b")).text == "two"
    assert [r["path"] for r in server.requests] == ["/a", "/b"]


def test_a_body_over_max_bytes_fails_at_once_and_is_not_retried(server, make_client, sleeps):
    server.serve((200, {}, "x" * 5000), 200)
    client = make_client(max_response_bytes=4096)
    with pytest.raises(DataContractError) as info:
        client.request("GET", server.url("/big?token=abc12345"))
    assert info.value.message.startswith(
        f"GET http://127.0.0.1:{server.port}/big declared 5,000 bytes, more than the "
        "max_response_bytes limit of 4,096")
    assert "abc12345" not in info.value.message
    assert len(server.requests) == 1 and sleeps == []


def test_a_request_may_raise_or_lift_the_bound(server, make_client):
    server.serve((200, {}, "x" * 5000), (200, {}, "x" * 100))
    client = make_client(max_response_bytes=4096)
    assert len(client.request("GET", server.url("/a"), max_bytes=None).content) == 5000
    with pytest.raises(DataContractError, match="limit of 50;"):
        client.request("GET", server.url("/b"), max_bytes=50)


def test_accept_hands_back_an_error_status_with_its_body(server, make_client, sleeps):
    server.serve((500, {"Content-Type": "text/xml"}, "<fault/>"), (500, {}, "down"), 200)
    client = make_client()
    def is_fault(response):
        return response.headers.get("Content-Type") == "text/xml"
    response = client.request("POST", server.url("/soap"), accept=is_fault)
    assert (response.status_code, response.content) == (500, b"<fault/>")
    assert client.request("POST", server.url("/soap"), accept=is_fault).status_code == 200
    assert len(sleeps) == 1  # the plain 500 was retried


def test_an_api_key_echoed_in_the_url_is_sent_once(server, make_client):
    server.serve(200)
    client = make_client(auth=APIKey("key-echo-1234", query_param="api_key"))
    client.request("GET", server.url("/x?page=2&api_key=key-echo-1234"))
    assert server.requests[0]["query"] == {"page": ["2"], "api_key": ["key-echo-1234"]}


def test_a_server_that_answers_is_not_called_unreachable(server, make_client):
    server.serve(503, 503)
    with pytest.raises(RetriableSourceError) as info:
        make_client(max_attempts=2).request("GET", server.url("/x"))
    assert "answered 503" in info.value.message
    assert "could not be reached" not in info.value.message


def test_a_url_ending_in_token_is_not_mistaken_for_a_secret(make_client):
    port = closed_port()
    with pytest.raises(RetriableSourceError) as info:
        make_client(max_attempts=1).request("POST", f"http://127.0.0.1:{port}/oauth/token")
    assert info.value.message == (
        f"POST http://127.0.0.1:{port}/oauth/token failed after 1 attempt(s): "
        f"POST http://127.0.0.1:{port}/oauth/token could not be reached: "
        "ConnectionError (Connection refused)")


@pytest.mark.parametrize(("options", "expectation"), [
    ({"deadline": 0}, pytest.raises(ConfigurationError, match="deadline")),
    ({"max_elapsed": -1}, pytest.raises(ConfigurationError, match="max_elapsed")),
    ({"max_response_bytes": 0}, pytest.raises(ConfigurationError, match="max_response_bytes")),
    ({"max_response_bytes": None, "deadline": 0.5}, nullcontext()),
])
def test_bounds_are_checked_when_the_client_is_built(options, expectation):
    with expectation:
        HTTPClient(**options).close()
