"""No secret at rest: a server that echoes the API key in its next-page links leaves no
trace of the key in any checkpoint or log line, the key is stripped from stored pages and
applied again on resume, and a secret that reaches a checkpoint anyway is masked."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pyarrow as pa
import pytest

from connectors import (
    AuthenticationError,
    checkpoint_of,
    dumps_state,
    register_secret,
    with_checkpoint,
)
from connectors.http import APIKey
from connectors.rest import LinkHeader, NextURLInBody, Page, RESTConnector, RESTStream
from connectors.testing import keys_of, read_all
from tests._reliability import record
from tests.hostile_servers import Answer, HostileServer

KEY = "Echoed+Api/Key=42-zq"  # characters a link must percent-encode
IDS = pa.schema([("id", pa.int64())])
PAGES = 5


def echoing(where: str = "link") -> HostileServer:
    """An API that wants ``?api_key=KEY`` once and echoes it in every next link."""
    def respond(seen):
        if seen.query.get("api_key") != [KEY]:
            return Answer(401, {"Content-Type": "application/json"}, b'{"error": "key"}')
        page = int(seen.query.get("page", ["1"])[0])
        follow = (f"/items?api_key={quote(KEY, safe='')}&page={page + 1}"
                  if page < PAGES else None)
        body: dict = {"data": [{"id": page * 10 + i} for i in range(3)]}
        headers = {"Content-Type": "application/json"}
        if follow and where == "link":
            headers["Link"] = f'<{follow}>; rel="next"'
        elif follow:
            body["links"] = {"next": follow}
        return Answer(200, headers, json.dumps(body).encode())
    return HostileServer(respond)


def connector_for(server: HostileServer, where: str = "link", **options) -> RESTConnector:
    paginator = LinkHeader() if where == "link" else NextURLInBody("links.next")
    stream = RESTStream(name="items", path="/items", record_path="data", primary_key=("id",),
                        schema=IDS, paginator=paginator)
    return RESTConnector("echo", server.url(), [stream],
                         auth=APIKey(KEY, query_param="api_key"), **options)


def occurrences(text: str) -> int:
    return sum(text.count(form) for form in {KEY, quote(KEY, safe=""), quote(KEY)})


@pytest.mark.reliability
@pytest.mark.parametrize("where", ["link", "body"])
def test_an_echoed_api_key_never_reaches_a_checkpoint_or_a_log(where, caplog):
    with caplog.at_level(logging.DEBUG), echoing(where) as server, \
            connector_for(server, where, batch_size=2) as connector:
        batches, final = read_all(connector, "items")
        stored = [dumps_state(checkpoint_of(batch)) for batch in batches]
    found = sum(occurrences(text) for text in [*stored, dumps_state(final), caplog.text])
    payload = (f"next links {'in a Link header' if where == 'link' else 'in the body'} that "
               "echo the API key (given as a query parameter)")
    record("hostile", payload, payload=payload, expected="answered, 5 request(s), key "
           "stored 0 times", observed=f"answered, {server.requests} request(s), key stored "
           f"{found} times", detail=f"{len(stored)} checkpoints and the DEBUG log searched")
    assert len(keys_of(batches, ("id",))) == PAGES * 3
    assert server.requests == PAGES
    assert any("page=3" in text for text in stored)  # the next pages were stored...
    assert sum(occurrences(text) for text in stored) == 0  # ...without the key
    assert occurrences(dumps_state(final)) == 0
    assert occurrences(caplog.text) == 0
    # Sent once per request, not once per echo.
    assert all(seen.query["api_key"] == [KEY] for seen in server.seen)


def test_a_read_resumed_from_a_stripped_page_sends_the_key_again():
    with echoing() as server, connector_for(server) as connector:
        reader = connector.read("items")
        delivered = [next(reader), next(reader)]
        reader.close()
        state = checkpoint_of(delivered[-1])
        assert state["resume"]["page"]["url"].endswith("/items?page=3")
        before = server.requests
        rest, _ = read_all(connector, "items", state)
    assert keys_of(delivered + rest, ("id",)) == [(p * 10 + i,) for p in range(1, 6)
                                                  for i in range(3)]
    assert server.requests - before == PAGES - 2
    assert all(seen.query["api_key"] == [KEY] for seen in server.seen)


def test_without_the_key_the_echoing_api_refuses():
    """The server really checks the key, so the tests above would see a lost key."""
    with echoing() as server:
        stream = RESTStream(name="items", path="/items", record_path="data",
                            primary_key=("id",), schema=IDS, paginator=LinkHeader())
        with RESTConnector("echo", server.url(), [stream]) as connector, \
                pytest.raises(AuthenticationError):
            read_all(connector, "items")


def test_a_stored_page_leaves_out_only_the_credential_parameters():
    page = Page("https://api.example.com/v1/items?page=2&api_key=abc%2B1&sort=id",
                {"api_key": "abc+1", "limit": 50})
    stored = page.without({"api_key"})
    assert stored.url == "https://api.example.com/v1/items?page=2&sort=id"
    assert stored.params == {"limit": 50}
    assert page.without(()) is page


def test_a_registered_secret_in_a_checkpoint_is_masked_and_said(caplog):
    secret = "Leaked-Secret/Value+9"
    register_secret(secret)
    state = {"resume": {"page": {"url": f"https://h/x?s={quote(secret, safe='')}",
                                 "params": {"token": secret}}},
             "cursor": [f"before {secret} after"]}
    batch = pa.RecordBatch.from_pylist([{"id": 1}], schema=IDS)
    with caplog.at_level(logging.WARNING):
        stored = dumps_state(checkpoint_of(with_checkpoint(batch, state)))
    assert secret not in stored and quote(secret, safe="") not in stored
    assert stored.count("***") == 3
    assert "checkpoint held a registered secret in 3 place(s)" in caplog.text
    assert secret not in caplog.text


def test_a_clean_checkpoint_is_stored_as_given(caplog):
    state = {"resume": {"page": {"url": "https://h/x?page=2", "params": {}}}}
    batch = pa.RecordBatch.from_pylist([{"id": 1}], schema=IDS)
    with caplog.at_level(logging.WARNING):
        assert checkpoint_of(with_checkpoint(batch, state)) == state
    assert caplog.text == ""
