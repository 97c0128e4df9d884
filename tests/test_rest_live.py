"""The REST connector against the CRM of the demo estate: a real HTTP API behind a real
authlib OAuth2 server, on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from connectors import (
    AuthenticationError,
    DataContractError,
    Incremental,
    RetriableSourceError,
    Retrier,
    RetryPolicy,
    checkpoint_of,
)
from connectors.http import OAuth2ClientCredentials
from connectors.rest import (
    CursorInBody,
    LinkHeader,
    NextURLInBody,
    Offset,
    Page,
    PageNumber,
    PageResult,
    RESTConnector,
    RESTStream,
)
from connectors.testing import conformance_suite, keys_of, read_all
from headwater_demo.crm import CRMServer
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse

TICKETS = pa.schema([
    ("id", pa.int64()), ("account_id", pa.string()), ("subject", pa.string()),
    ("status", pa.string()), ("priority", pa.string()),
    ("opened_at", pa.timestamp("us", tz="UTC")), ("updated_at", pa.timestamp("us", tz="UTC")),
])


def crm_streams() -> list[RESTStream]:
    return [
        RESTStream(name="accounts", path="/api/accounts", record_path="data",
                   paginator=CursorInBody("next_cursor", "cursor", "limit", 25),
                   primary_key=("id",)),
        RESTStream(name="accounts_by_url", path="/api/accounts", record_path="data",
                   params={"limit": 30}, paginator=NextURLInBody("links.next"),
                   primary_key=("id",), nested="json"),
        RESTStream(name="contacts", path="/api/contacts", record_path="results",
                   paginator=PageNumber("page", "per_page", 40, total_pages_path="total_pages"),
                   primary_key=("id",)),
        RESTStream(name="contacts_by_offset", path="/api/contacts", record_path="$.results[*]",
                   paginator=Offset("offset", "limit", 70, total_path="total"),
                   primary_key=("id",)),
        RESTStream(name="tickets", path="/api/tickets", params={"per_page": 45},
                   paginator=LinkHeader(), since_param="updated_since",
                   incremental=Incremental("updated_at"), primary_key=("id",), schema=TICKETS),
        RESTStream(name="tickets_filtered", path="/api/tickets", params={"per_page": 100},
                   paginator=LinkHeader(), incremental=Incremental("updated_at"),
                   primary_key=("id",)),
    ]


def oauth(server: CRMServer, **options) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(server.token_url, server.client_id, server.client_secret,
                                   **options)


def connector_for(server: CRMServer, *, streams=None, auth=None, **options) -> RESTConnector:
    options.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05))
    return RESTConnector("crm", server.url, streams or crm_streams(),
                         auth=auth or oauth(server), **options)


@pytest.fixture
def crm():
    with CRMServer(accounts=90, contacts_per_account=3, tickets=300) as server:
        yield server


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as wh:
        yield wh


def ids(server: CRMServer, resource: str) -> list:
    return sorted(r["id"] for r in server.records(resource))


# -- reads --------------------------------------------------------------------------------

@pytest.mark.parametrize(("stream", "resource"), [
    ("accounts", "accounts"), ("accounts_by_url", "accounts"), ("contacts", "contacts"),
    ("contacts_by_offset", "contacts"), ("tickets", "tickets"), ("tickets_filtered", "tickets"),
])
def test_every_paginator_reads_every_record_once(crm, stream, resource) -> None:
    with connector_for(crm) as connector:
        batches, _ = read_all(connector, stream)
    keys = [k[0] for k in keys_of(batches, ("id",))]
    assert len(keys) == len(set(keys))
    assert sorted(keys) == ids(crm, resource)


def test_records_keep_exact_types_and_nested_fields(crm) -> None:
    with connector_for(crm) as connector:
        accounts = pa.Table.from_batches(read_all(connector, "accounts")[0])
        as_json = pa.Table.from_batches(read_all(connector, "accounts_by_url")[0])
        tickets = pa.Table.from_batches(read_all(connector, "tickets")[0])
    source = {r["id"]: r for r in crm.records("accounts")}
    first = accounts.to_pylist()[0]
    assert first["address__city"] == source[first["id"]]["address"]["city"]
    assert first["annual_revenue"] == source[first["id"]]["annual_revenue"]  # text, exact
    assert '"city"' in as_json.to_pylist()[0]["address"]
    assert tickets.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")


def test_full_then_incremental_runs_land_exactly_the_changes(crm, warehouse) -> None:
    with connector_for(crm) as connector:
        first = run_stream(connector, "tickets", warehouse)
        assert first.rows == warehouse.row_count("raw_crm__tickets") == len(ids(crm, "tickets"))
        assert run_stream(connector, "tickets", warehouse).rows == 0
        touched = crm.touch(changed=5, added=7)
        again = run_stream(connector, "tickets", warehouse)
        assert run_stream(connector, "tickets", warehouse).rows == 0
    assert again.rows == touched["changed"] + touched["added"] == 12
    landed = {r["id"]: r["status"] for r in
              warehouse.query("SELECT id, status FROM raw_crm__tickets").to_pylist()}
    assert landed == {r["id"]: r["status"] for r in crm.records("tickets")}


@pytest.mark.parametrize(("path", "where", "keys"), [
    ("date", "the top of the response has no 'date'", "['data', 'links', 'next_cursor']"),
    ("data.addresses", "the elements at 'data' have no 'addresses'", "['address', "),
])
def test_a_record_path_that_matches_nothing_fails_loudly_and_lands_nothing(
        crm, warehouse, path, where, keys) -> None:
    stream = RESTStream(name="accounts", path="/api/accounts", record_path=path,
                        paginator=CursorInBody("next_cursor", "cursor", "limit", 25),
                        primary_key=("id",))
    with connector_for(crm, streams=[stream]) as connector, \
            pytest.raises(DataContractError) as error:
        run_stream(connector, "accounts", warehouse)
    message = error.value.message
    assert message.startswith(f"connector 'crm', stream 'accounts': record_path {path!r} "
                              "matches nothing in the response: ")
    assert where in message and f"(keys there: {keys}" in message
    assert "raw_crm__accounts" not in warehouse.tables()
    assert warehouse.load_state("crm.accounts") is None


def test_client_side_cursor_filter_gives_the_same_changes(crm) -> None:
    with connector_for(crm) as connector:
        _, state = read_all(connector, "tickets_filtered")
        crm.touch(changed=4, added=3)
        again, _ = read_all(connector, "tickets_filtered", state)
    assert len(keys_of(again, ("id",))) == 7


def test_a_stopped_read_resumes_at_the_next_page(crm) -> None:
    with connector_for(crm) as connector:
        full = keys_of(read_all(connector, "contacts")[0], ("id",))
        reader = connector.read("contacts")
        delivered = [next(reader), next(reader)]
        reader.close()
        requests_before = crm.api_requests
        rest, _ = read_all(connector, "contacts", checkpoint_of(delivered[-1]))
    assert keys_of(delivered + rest, ("id",)) == full
    pages = -(-len(full) // 40)
    assert crm.api_requests - requests_before == pages - 2


TestCRMConformance = conformance_suite(lambda: connector_for(_shared_crm(), batch_size=20))


_SHARED: list[CRMServer] = []


def _shared_crm() -> CRMServer:
    if not _SHARED:
        server = CRMServer(accounts=40, contacts_per_account=2, tickets=120).start()
        _SHARED.append(server)
    return _SHARED[0]


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_crm():
    yield
    while _SHARED:
        _SHARED.pop().stop()


# -- OAuth2 -------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post",
                                    "private_key_jwt"])
def test_each_client_authentication_method_gets_a_token(crm, method) -> None:
    if method == "private_key_jwt":
        auth = OAuth2ClientCredentials(crm.token_url, crm.jwt_client_id,
                                       private_key=crm.jwt_private_key_pem, method=method)
    else:
        auth = oauth(crm, method=method)
    with connector_for(crm, auth=auth) as connector:
        batches, _ = read_all(connector, "contacts")
    assert len(keys_of(batches, ("id",))) == len(ids(crm, "contacts"))
    assert auth.token_requests == 1


def test_the_token_is_renewed_before_it_expires() -> None:
    with CRMServer(accounts=10, tickets=10, token_ttl=2.0) as server:
        auth = oauth(server, leeway=1.0)
        with connector_for(server, auth=auth) as connector:
            connector.check()
            time.sleep(1.2)  # inside the leeway: renewed before use, never refused
            connector.check()
        assert server.token_requests == 2
        assert connector.client.stats["retries"] == 0


def test_a_refused_token_is_renewed_once_and_the_request_replayed(crm) -> None:
    auth = oauth(crm)
    with connector_for(crm, auth=auth) as connector:
        reader = connector.read("contacts")
        first = next(reader)
        crm.expire_tokens()  # an expired token mid-run
        rest = list(reader)
    assert auth.token_requests == 2
    assert len(keys_of([first, *rest], ("id",))) == len(ids(crm, "contacts"))


def test_twenty_requests_finding_the_token_expired_make_one_token_request() -> None:
    with CRMServer(accounts=10, tickets=10, token_ttl=1.0) as server:
        auth = oauth(server, leeway=0.0)
        with connector_for(server, auth=auth) as connector:
            connector.check()
            time.sleep(1.1)
            before = server.token_requests
            start = threading.Barrier(20)

            def call(_: int) -> int:
                start.wait()
                return connector.client.request("GET", f"{server.url}/api/accounts").status_code

            with ThreadPoolExecutor(20) as pool:
                statuses = list(pool.map(call, range(20)))
        assert statuses == [200] * 20
        assert server.token_requests - before == 1


def test_a_wrong_client_secret_is_a_clear_error_and_not_retried(crm) -> None:
    auth = OAuth2ClientCredentials(crm.token_url, crm.client_id, "Not-The-Secret-42")
    with connector_for(crm, auth=auth) as connector, \
            pytest.raises(AuthenticationError) as err:
        connector.check()
    assert auth.token_requests == 1
    assert "Not-The-Secret-42" not in str(err.value)
    assert "headwater" in str(err.value) and "client" in str(err.value)


def test_no_token_secret_or_authorization_header_is_ever_logged(crm, caplog, capsys) -> None:
    auth = oauth(crm)
    with caplog.at_level(logging.DEBUG), connector_for(crm, auth=auth) as connector:
        crm.faults.unavailable(2)
        read_all(connector, "accounts")
        crm.expire_tokens()
        read_all(connector, "contacts")
        token = auth._current()
    output = caplog.text + "".join(capsys.readouterr())
    assert token not in output and crm.client_secret not in output
    assert "Authorization" not in output and "Bearer" not in output


# -- faults -------------------------------------------------------------------------------

def test_429_retry_after_is_honoured(crm) -> None:
    waits: list[float] = []
    retrier = Retrier(RetryPolicy(max_attempts=3, base_delay=0.01),
                      on_retry=lambda attempt, exc, delay: waits.append(delay))
    crm.faults.rate_limit(1, retry_after="2")
    with connector_for(crm, retry=retrier) as connector:
        started = time.monotonic()
        connector.check()
        elapsed = time.monotonic() - started
    assert waits == [2.0]
    assert 1.9 <= elapsed < 6


def test_a_503_burst_within_the_budget_loses_and_duplicates_nothing(crm, warehouse) -> None:
    with connector_for(crm, retry=RetryPolicy(max_attempts=6, base_delay=0.01)) as connector:
        reader = connector.read("contacts")
        first = next(reader)
        crm.faults.unavailable(3, path="/api/contacts")
        crm.faults.drop(1, path="/api/contacts")
        rest = list(reader)
    keys = keys_of([first, *rest], ("id",))
    assert len(keys) == len(set(keys)) == len(ids(crm, "contacts"))


def test_a_longer_outage_stops_at_the_last_committed_page(crm, warehouse) -> None:
    committed: list[int] = []
    total = len(ids(crm, "contacts"))
    with connector_for(crm, retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as connector:
        def outage(result) -> None:
            committed.append(warehouse.row_count("raw_crm__contacts"))
            if result.commits == 2:
                crm.faults.unavailable(50, path="/api/contacts")

        with pytest.raises(RetriableSourceError, match="503"):
            run_stream(connector, "contacts", warehouse, commit_rows=1, on_batch=outage)
        landed = warehouse.row_count("raw_crm__contacts")
        state = warehouse.load_state("crm.contacts")
        assert 0 < landed == committed[-1] < total
        assert landed % 40 == 0, "a page was stored in part"
        assert state["resume"]["page"]["params"]["page"] == landed // 40 + 1
        crm.faults.clear()
        rerun = run_stream(connector, "contacts", warehouse)
    assert rerun.rows == total - landed
    assert warehouse.row_count("raw_crm__contacts") == total


def test_malformed_json_names_the_page_and_commits_nothing_from_it(crm, warehouse) -> None:
    with connector_for(crm, retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as connector:
        def corrupt(result) -> None:
            if result.commits == 1:
                crm.faults.malformed(5, path="/api/contacts")

        with pytest.raises(RetriableSourceError) as err:
            run_stream(connector, "contacts", warehouse, commit_rows=1, on_batch=corrupt)
    landed = warehouse.row_count("raw_crm__contacts")
    assert landed > 0 and landed % 40 == 0
    assert "malformed JSON" in str(err.value)
    assert f"'page': {landed // 40 + 1}" in str(err.value)


def test_a_slow_response_past_the_timeout_is_retried(crm) -> None:
    crm.faults.slow(1, seconds=1.5)
    with connector_for(crm, timeout=(2.0, 0.5)) as connector:
        connector.check()
        assert connector.client.stats["retries"] == 1


class StuckCursor(CursorInBody):
    """A source that keeps handing back the same token."""

    def next(self, page: Page, result: PageResult) -> Page | None:
        return page.with_params(cursor=page.params.get("cursor") or result.body["next_cursor"])


def test_a_repeated_page_token_stops_the_read_instead_of_looping(crm) -> None:
    stuck = RESTStream(name="stuck", path="/api/accounts", record_path="data",
                       paginator=StuckCursor(), primary_key=("id",))
    with connector_for(crm, streams=[stuck]) as connector, \
            pytest.raises(DataContractError, match="already read"):
        read_all(connector, "stuck")


def test_a_rate_limit_spaces_the_requests(crm) -> None:
    from connectors.http import RateLimit

    limit = RateLimit(4, per_seconds=0.5)
    with connector_for(crm, rate_limit=limit) as connector:
        started = time.monotonic()
        batches, _ = read_all(connector, "contacts_by_offset")  # 270 contacts, 4 pages
        read_all(connector, "contacts")  # 7 pages
        elapsed = time.monotonic() - started
        # Types come from the pages read: no page is fetched only to infer them.
        assert connector.client.stats["requests"] == 4 + 7
    # 11 requests at 4 per 0.5 s: the 5th, 9th start at least 0.5 s, 1.0 s in.
    assert elapsed >= 1.0
    assert connector.client.stats["rate_limited_s"] >= 0.9
    assert len(keys_of(batches, ("id",))) == len(ids(crm, "contacts"))
