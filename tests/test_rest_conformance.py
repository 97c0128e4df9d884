"""The conformance suite for REST streams that are one page (no paginator), against the
demo CRM on 127.0.0.1: a read stopped after the page's batch resumes to nothing. And a
REST data error names connector and stream."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from connectors import DataContractError, Incremental, checkpoint_of
from connectors.http import OAuth2ClientCredentials
from connectors.rest import RESTConnector, RESTStream
from connectors.testing import conformance_suite, read_all
from headwater_demo.crm import CRMServer

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
    else:  # a full refresh keeps only the types it inferred
        assert state == {"schema": checkpoint_of(first)["schema"]}


def test_a_value_that_does_not_fit_names_connector_stream_and_field() -> None:
    crm = _crm()
    schema = pa.schema([("id", pa.int64()), ("account_id", pa.string()),
                        ("subject", pa.int64()), ("status", pa.string()),
                        ("priority", pa.string()), ("opened_at", pa.string()),
                        ("updated_at", pa.string())])
    stream = RESTStream(name="ticket_page", path="/api/tickets", params={"per_page": 5},
                        primary_key=("id",), schema=schema)
    auth = OAuth2ClientCredentials(crm.token_url, crm.client_id, crm.client_secret)
    with RESTConnector("crm", crm.url, [stream], auth=auth) as connector, \
            pytest.raises(DataContractError) as err:
        list(connector.read("ticket_page"))
    message = str(err.value)
    assert message.startswith("connector 'crm', stream 'ticket_page': ")
    assert "'subject'" in message and "int64" in message
    served_first = min(crm.records("tickets"), key=lambda t: (t["updated_at"], t["id"]))
    assert f"the record with id={served_first['id']}" in message
