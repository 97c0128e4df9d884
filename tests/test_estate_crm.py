"""The demo CRM: OAuth2 through authlib, three pagination styles, a day of activity, faults."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import RSAKey

from headwater_demo.crm import CRMServer
from tests.conftest import serve_then_interrupt

TIMEOUT = 5
MONEY = re.compile(r"^\d+\.\d{2}$")


@pytest.fixture(scope="module")
def crm() -> Iterator[CRMServer]:
    """The default CRM, shared by tests that neither change its data nor expire tokens."""
    with CRMServer() as server:
        yield server


@pytest.fixture
def small_crm() -> Iterator[CRMServer]:
    """A small CRM of a test's own, for tests that change data or tokens."""
    with CRMServer(accounts=10, contacts_per_account=2, tickets=30) as server:
        yield server


@pytest.fixture
def api(crm: CRMServer) -> Iterator[requests.Session]:
    """A session holding a fresh token for the shared CRM; disarms faults afterwards."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {_token(crm)}"
        yield session
    crm.faults.clear()


def _request_token(crm: CRMServer, method: str, secret: str | None = None) -> requests.Response:
    """POST to the token endpoint, authenticating the way ``method`` names."""
    data = {"grant_type": "client_credentials"}
    auth = None
    if method == "client_secret_basic":
        auth = (crm.client_id, secret or crm.client_secret)
    elif method == "client_secret_post":
        data |= {"client_id": crm.client_id, "client_secret": secret or crm.client_secret}
    else:
        data |= {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                 "client_assertion": _assertion(crm)}
    return requests.post(crm.token_url, data=data, auth=auth, timeout=TIMEOUT)


def _assertion(crm: CRMServer, key: RSAKey | None = None, jti: str | None = None) -> str:
    """A ``private_key_jwt`` client assertion built by hand with joserfc."""
    now = int(time.time())
    claims = {"iss": crm.jwt_client_id, "sub": crm.jwt_client_id, "aud": crm.token_url,
              "iat": now, "exp": now + 60, "jti": jti or uuid.uuid4().hex}
    return jwt.encode({"alg": "RS256"}, claims, key or RSAKey.import_key(crm.jwt_private_key_pem))


def _token(crm: CRMServer) -> str:
    response = _request_token(crm, "client_secret_basic")
    response.raise_for_status()
    return response.json()["access_token"]


def _get(crm: CRMServer, path: str, token: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(crm.url + path, params=params, headers=headers, timeout=TIMEOUT)


def _error(response: requests.Response) -> str:
    return response.json()["error"]


# -- OAuth 2.0 ----------------------------------------------------------------------------


def test_health_needs_no_token(crm: CRMServer) -> None:
    response = requests.get(crm.url + "/health", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "ok")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_token_endpoint_issues_expiring_bearer_tokens(crm: CRMServer, method: str) -> None:
    response = _request_token(crm, method)

    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert _get(crm, "/api/accounts", token["access_token"]).status_code == 200


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_authlib_requests_client_fetches_and_uses_a_token(crm: CRMServer, method: str) -> None:
    if method == "private_key_jwt":
        client_id, secret = crm.jwt_client_id, crm.jwt_private_key_pem
        auth_method: Any = PrivateKeyJWT(crm.token_url)
    else:
        client_id, secret, auth_method = crm.client_id, crm.client_secret, method

    with OAuth2Session(client_id, secret, token_endpoint_auth_method=auth_method,
                       token_endpoint=crm.token_url, grant_type="client_credentials") as session:
        token = session.fetch_token()
        response = session.get(crm.url + "/api/tickets", timeout=TIMEOUT)

    assert token["expires_in"] == 300
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret_is_invalid_client(crm: CRMServer, method: str) -> None:
    issued = crm.token_requests

    response = _request_token(crm, method, secret="not-the-secret")

    assert (response.status_code, _error(response)) == (401, "invalid_client")
    assert crm.token_requests == issued


@pytest.mark.parametrize("tamper", ["replayed", "foreign key"])
def test_private_key_jwt_rejects_bad_assertions(crm: CRMServer, tamper: str) -> None:
    data = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    if tamper == "replayed":
        data["client_assertion"] = _assertion(crm)
        assert requests.post(crm.token_url, data=data, timeout=TIMEOUT).status_code == 200
    else:
        data["client_assertion"] = _assertion(crm, key=RSAKey.generate_key(2048, private=True))

    response = requests.post(crm.token_url, data=data, timeout=TIMEOUT)

    assert (response.status_code, _error(response)) == (400, "invalid_client")


@pytest.mark.parametrize("credentials", ["none", "unknown", "expired", "basic"])
def test_api_refuses_without_a_live_bearer_token(small_crm: CRMServer, credentials: str) -> None:
    headers = {
        "none": {},
        "unknown": {"Authorization": "Bearer not-a-token"},
        "expired": {"Authorization": f"Bearer {_token(small_crm)}"},
        "basic": {"Authorization": "Basic aGVhZHdhdGVyOnNlY3JldA=="},
    }[credentials]
    small_crm.expire_tokens()

    response = requests.get(small_crm.url + "/api/accounts", headers=headers, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert _error(response) == "invalid_token"


def test_tokens_expire_after_their_ttl_and_authlib_fetches_a_new_one() -> None:
    with CRMServer(accounts=3, tickets=3, token_ttl=1) as crm, OAuth2Session(
        crm.client_id, crm.client_secret, token_endpoint=crm.token_url,
        grant_type="client_credentials", leeway=0,
    ) as session:
        session.fetch_token()
        token = _token(crm)
        assert _get(crm, "/api/tickets", token).status_code == 200

        time.sleep(1.1)

        assert _get(crm, "/api/tickets", token).status_code == 401
        assert session.get(crm.url + "/api/tickets", timeout=TIMEOUT).status_code == 200
        assert crm.token_requests == 3


def test_counters_count_tokens_issued_and_api_requests(small_crm: CRMServer) -> None:
    tokens = [_token(small_crm) for _ in range(3)]
    _request_token(small_crm, "client_secret_post", secret="wrong")
    small_crm.faults.unavailable(1)
    requests.get(small_crm.url + "/health", timeout=TIMEOUT)

    statuses = [_get(small_crm, "/api/contacts", token).status_code for token in [*tokens, None]]

    assert statuses == [503, 200, 200, 401]
    assert (small_crm.token_requests, small_crm.api_requests) == (3, 4)


def test_the_server_logs_no_token_or_secret(
    crm: CRMServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        token = _token(crm)
        _get(crm, "/api/accounts", token)
        _request_token(crm, "client_secret_post", secret="wrong")

    assert "Issue token" not in caplog.text and "Validate token request" in caplog.text
    assert token not in caplog.text and crm.client_secret not in caplog.text


# -- data and pagination ------------------------------------------------------------------


def _walk_cursor(crm: CRMServer, token: str) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 7}
    while True:
        body = _get(crm, "/api/accounts", token, **params).json()
        yield from body["data"]
        if body["next_cursor"] is None:
            return
        params["cursor"] = body["next_cursor"]


def _walk_next_link(crm: CRMServer, token: str) -> Iterator[dict[str, Any]]:
    url: str | None = crm.url + "/api/accounts?limit=11"
    while url:
        body = requests.get(url, headers={"Authorization": f"Bearer {token}"},
                            timeout=TIMEOUT).json()
        yield from body["data"]
        url = body["links"]["next"]


def _walk_pages(crm: CRMServer, token: str) -> Iterator[dict[str, Any]]:
    page, total_pages = 1, 1
    while page <= total_pages:
        body = _get(crm, "/api/contacts", token, page=page, per_page=40).json()
        yield from body["results"]
        page, total_pages = page + 1, body["total_pages"]


def _walk_offsets(crm: CRMServer, token: str) -> Iterator[dict[str, Any]]:
    offset, total = 0, 1
    while offset < total:
        body = _get(crm, "/api/contacts", token, offset=offset, limit=33).json()
        yield from body["results"]
        offset, total = offset + len(body["results"]), body["total"]


def _walk_link_header(crm: CRMServer, token: str, **params: Any) -> Iterator[dict[str, Any]]:
    response = _get(crm, "/api/tickets", token, per_page=25, **params)
    while True:
        yield from response.json()
        if "next" not in response.links:
            return
        response = requests.get(response.links["next"]["url"],
                                headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("resource", "walk"),
    [("accounts", _walk_cursor), ("accounts", _walk_next_link), ("contacts", _walk_pages),
     ("contacts", _walk_offsets), ("tickets", _walk_link_header)],
)
def test_each_pagination_style_walks_every_record_once(
    crm: CRMServer, resource: str, walk: Callable[..., Iterator[dict[str, Any]]]
) -> None:
    served = list(walk(crm, _token(crm)))

    assert sorted(served, key=lambda record: record["id"]) == crm.records(resource)
    if resource == "tickets":
        assert served == sorted(served, key=lambda t: (t["updated_at"], t["id"]))


def test_page_sizes_default_to_50_and_allow_200(crm: CRMServer) -> None:
    token = _token(crm)
    assert len(_get(crm, "/api/accounts", token).json()["data"]) == 50
    assert len(_get(crm, "/api/contacts", token, per_page=200).json()["results"]) == 200
    assert len(_get(crm, "/api/tickets", token, per_page=200).json()) == 200


@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/accounts", {"limit": 0}), ("/api/accounts", {"limit": 201}),
     ("/api/accounts", {"limit": "ten"}), ("/api/accounts", {"cursor": "garbage!"}),
     ("/api/contacts", {"page": 0}), ("/api/contacts", {"offset": -1}),
     ("/api/contacts", {"page": 2, "limit": 10}), ("/api/tickets", {"per_page": 500}),
     ("/api/tickets", {"updated_since": "yesterday"})],
)
def test_bad_parameters_are_400_with_a_json_error(
    crm: CRMServer, path: str, params: dict[str, Any]
) -> None:
    response = _get(crm, path, _token(crm), **params)

    assert (response.status_code, _error(response)) == (400, "invalid_request")
    assert response.json()["error_description"]


@pytest.mark.parametrize("spelling", ["2024-03-01T02:00:00Z", "2024-03-01T02:00:00+00:00",
                                      "2024-03-01T03:00:00+01:00", "2024-03-01T02:00:00"])
def test_updated_since_is_inclusive(crm: CRMServer, spelling: str) -> None:
    # The nightly job closes many tickets in this very second: the boundary is a tie.
    stamp = "2024-03-01T02:00:00Z"
    expected = {t["id"] for t in crm.records("tickets") if t["updated_at"] >= stamp}
    served = [ticket["id"] for ticket in _walk_link_header(crm, _token(crm),
                                                           updated_since=spelling)]

    tied = [t for t in crm.records("tickets") if t["updated_at"] == stamp]
    assert len(tied) > 10
    assert sorted(served) == sorted(expected)


def test_data_has_the_legacy_quirks(crm: CRMServer) -> None:
    accounts, contacts, tickets = (crm.records(name) for name in ("accounts", "contacts",
                                                                  "tickets"))
    assert (len(accounts), len(contacts), len(tickets)) == (120, 360, 400)
    assert accounts[0]["id"] == "ACC-00001" and contacts[0]["id"] == 1
    assert all(MONEY.match(account["annual_revenue"]) for account in accounts)
    assert any(account["address"]["postal_code"].startswith("0") for account in accounts)
    assert {c["account_id"] for c in contacts} <= {a["id"] for a in accounts}
    assert any(c["email"] != c["email"].lower() for c in contacts)
    assert all(c["updated_at"].endswith("+00:00") for c in contacts)
    assert all(t["updated_at"].endswith("Z") and t["status"] in {"open", "pending", "closed"}
               for t in tickets)
    for records in (accounts, contacts, tickets):
        ties = collections.Counter(record["updated_at"] for record in records)
        assert ties.most_common(1)[0][1] > 1


def test_data_is_determined_by_the_seed(crm: CRMServer) -> None:
    same, other = CRMServer(seed=7), CRMServer(seed=8)

    assert same.records("tickets") == crm.records("tickets")
    assert other.records("accounts") != crm.records("accounts")


def test_records_are_copies(small_crm: CRMServer) -> None:
    small_crm.records("accounts")[0]["name"] = "changed by a test"

    assert small_crm.records("accounts")[0]["name"] != "changed by a test"
    with pytest.raises(ValueError, match="resource must be one of"):
        small_crm.records("invoices")


def test_touch_changes_and_adds_tickets_after_everything_stored(small_crm: CRMServer) -> None:
    before = {t["id"]: t for t in small_crm.records("tickets")}
    latest = max(t["updated_at"] for t in before.values())

    assert small_crm.touch(changed=5, added=3) == {"changed": 5, "added": 3}

    after = {t["id"]: t for t in small_crm.records("tickets")}
    touched = {key for key, t in after.items() if t != before.get(key)}
    assert len(touched) == 8
    assert sorted(touched - before.keys()) == [31, 32, 33]
    assert all(after[key]["status"] != before[key]["status"] for key in touched & before.keys())
    assert all(after[key]["updated_at"] > latest for key in touched)
    earliest = min(after[key]["updated_at"] for key in touched)
    response = _get(small_crm, "/api/tickets", _token(small_crm), updated_since=earliest)
    assert {ticket["id"] for ticket in response.json()} == touched


def test_touch_changes_at_most_every_ticket(small_crm: CRMServer) -> None:
    assert small_crm.touch(changed=100, added=0) == {"changed": 30, "added": 0}
    with pytest.raises(ValueError, match="zero or more"):
        small_crm.touch(changed=-1, added=0)


# -- faults -------------------------------------------------------------------------------


def _outcome(session: requests.Session, url: str) -> str:
    """A short name for what a request met: a status, "dropped", "malformed" or "ok"."""
    try:
        response = session.get(url, timeout=TIMEOUT)
    except requests.ConnectionError:
        return "dropped"
    if response.status_code != 200:
        return str(response.status_code)
    try:
        response.json()
    except requests.JSONDecodeError:
        return "malformed"
    return "ok"


@pytest.mark.parametrize(
    ("arm", "expected"),
    [("rate_limit", "429"), ("unavailable", "503"), ("drop", "dropped"),
     ("malformed", "malformed")],
)
def test_each_fault_hits_the_next_count_requests(
    crm: CRMServer, api: requests.Session, arm: str, expected: str
) -> None:
    getattr(crm.faults, arm)(2)

    outcomes = [_outcome(api, crm.url + "/api/tickets") for _ in range(3)]

    assert outcomes == [expected, expected, "ok"]


@pytest.mark.parametrize("retry_after", ["3", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_rate_limit_sends_retry_after_verbatim(
    crm: CRMServer, api: requests.Session, retry_after: str
) -> None:
    crm.faults.rate_limit(retry_after=retry_after)

    response = api.get(crm.url + "/api/accounts", timeout=TIMEOUT)

    assert (response.status_code, response.headers["Retry-After"]) == (429, retry_after)


def test_unavailable_answers_like_a_gateway(crm: CRMServer, api: requests.Session) -> None:
    crm.faults.unavailable()

    response = api.get(crm.url + "/api/accounts", timeout=TIMEOUT)

    assert response.status_code == 503
    assert response.headers["Content-Type"] == "text/html"


def test_slow_delays_the_answer(crm: CRMServer, api: requests.Session) -> None:
    crm.faults.slow(seconds=0.3)
    started = time.monotonic()

    assert _outcome(api, crm.url + "/api/contacts") == "ok"
    assert time.monotonic() - started >= 0.3


def test_faults_scoped_to_a_path_spare_the_others(crm: CRMServer, api: requests.Session) -> None:
    crm.faults.unavailable(2, path="/api/tickets")
    paths = ["/api/accounts", "/api/tickets", "/api/contacts", "/api/tickets", "/api/tickets"]

    outcomes = [_outcome(api, crm.url + path) for path in paths]

    assert outcomes == ["ok", "503", "ok", "503", "ok"]


def test_faults_spare_the_token_endpoint_unless_scoped_to_it(
    crm: CRMServer, api: requests.Session
) -> None:
    crm.faults.rate_limit()
    assert _request_token(crm, "client_secret_basic").status_code == 200
    assert _outcome(api, crm.url + "/api/accounts") == "429"

    crm.faults.unavailable(path="/oauth/token")
    assert _request_token(crm, "client_secret_basic").status_code == 503
    assert _request_token(crm, "client_secret_basic").status_code == 200


def test_faults_happen_in_the_order_armed_until_cleared(
    crm: CRMServer, api: requests.Session
) -> None:
    crm.faults.rate_limit()
    crm.faults.unavailable()
    crm.faults.drop(5)
    outcomes = [_outcome(api, crm.url + "/api/accounts") for _ in range(3)]

    crm.faults.clear()

    assert outcomes == ["429", "503", "dropped"]
    assert _outcome(api, crm.url + "/api/accounts") == "ok"
    with pytest.raises(ValueError, match="one or more"):
        crm.faults.drop(0)


def test_twenty_concurrent_requests_are_served_in_parallel(
    crm: CRMServer, api: requests.Session
) -> None:
    crm.faults.slow(20, seconds=0.3)
    token = _token(crm)
    started = time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda page: _get(crm, "/api/tickets", token,
                                                   page=page).status_code, range(1, 21)))

    assert statuses == [200] * 20
    assert time.monotonic() - started < 1.5  # one after another would take 6 s


# -- lifecycle ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"host": "0.0.0.0"}, "loopback"), ({"host": "::1"}, "loopback"),
     ({"token_ttl": 0}, "token_ttl"), ({"accounts": -1}, "zero or more"),
     ({"accounts": 0, "tickets": 5}, "belong to accounts")],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CRMServer(**settings)


def test_url_exists_once_started_and_stop_is_idempotent() -> None:
    crm = CRMServer(accounts=1, tickets=1)
    with pytest.raises(RuntimeError, match="start the CRM server first"):
        _ = crm.url
    with crm:
        assert crm.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already running"):
            crm.start()
    crm.stop()


def test_main_serves_until_interrupted() -> None:
    def probe(banner: list[str]) -> None:
        url = re.search(r"http://127\.0\.0\.1:\d+", banner[0])
        assert url, banner
        assert requests.get(url.group() + "/health", timeout=TIMEOUT).text == "ok"

    run = serve_then_interrupt("headwater_demo.crm", "--port", "0", banner_lines=3,
                               probe=probe)

    assert run.returncode == 0, run.stderr
    assert run.banner[2].startswith("client_secret_basic/post: headwater / ")
    assert "stopping" in run.stdout
