"""The conformance suite for REST streams that are one page (no paginator), against the
demo CRM on 127.0.0.1: a read stopped after the page's batch resumes to nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors import Incremental, checkpoint_of
from connectors.http import OAuth2ClientCredentials
from connectors.rest import RESTConnector, RESTStream
from connectors.testing import conformance_suite, read_all
from pipelines.estate.crm import CRMServer

_SHARED: list[CRMServer] = []


def _crm() -> CRMServer:
    if not _SHARED:
        _SHARED.append(CRMServer(accounts=10, contacts_per_account=1, tickets=40).start())
    return _SHARED[0]


@pytest.fixture(scope="module", autouse=True)
def _stop_crm():
    yield
    while _SHARED:
        _SHARED.pop().stop()


def _one_page_streams() -> list[RESTStream]:
    return [
        RESTStream(name="ticket_page", path="/api/tickets", params={"per_page": 30},
                   primary_key=("id",)),
        RESTStream(name="recent_ticket_page", path="/api/tickets", params={"per_page": 30},
                   incremental=Incremental("updated_at"), primary_key=("id",)),
    ]


def _connector(batch_size: int = 100) -> RESTConnector:
    crm = _crm()
    auth = OAuth2ClientCredentials(crm.token_url, crm.client_id, crm.client_secret)
    return RESTConnector("crm", crm.url, _one_page_streams(), auth=auth, batch_size=batch_size)


TestOnePageREST = conformance_suite(_connector)
TestOnePageRESTInSmallBatches = conformance_suite(lambda: _connector(batch_size=7))


@pytest.mark.parametrize("stream", ["ticket_page", "recent_ticket_page"])
def test_resuming_after_the_last_page_requests_nothing(stream) -> None:
    with _connector() as connector:
        first = next(iter(connector.read(stream)))
        before = _crm().api_requests
        rest, state = read_all(connector, stream, checkpoint_of(first))
    assert [b.num_rows for b in rest] == [0]
    assert _crm().api_requests == before
    if stream == "recent_ticket_page":
        newest = max(first.column("updated_at").to_pylist())
        assert state["cursor"] == dt.datetime.fromisoformat(newest)
    else:
        assert state == {}
