"""OpenLineage events: their shape, and delivery to a file and to a real HTTP endpoint."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from normalization import ColumnLineage
from pipelines.openlineage import OpenLineageEmitter, run_event, run_uuid

LINEAGE = [
    ColumnLineage("order", "customer_no", (("raw_erp__orders", "cust_no"),), "trim"),
    ColumnLineage("order", "is_shipped", (("raw_erp__orders", "ship_date"),),
                  "shipped_on is not null", ("shipped_on",)),
    ColumnLineage("order", "run_id", (), "recorded"),
]


def event(**overrides):
    options = dict(job="clean_order", run_id="20261126T040000Z-abcd1234",
                   namespace="duckdb:///w.duckdb", output="clean_order",
                   fields=[("customer_no", "String", "ordering customer"),
                           ("is_shipped", "Boolean", "")],
                   lineage=LINEAGE, event_time=dt.datetime(2026, 11, 26, 4, tzinfo=dt.UTC))
    options.update(overrides)
    return run_event(**options)


def test_a_run_event_carries_schema_and_column_lineage_facets() -> None:
    body = event()

    assert body["eventType"] == "COMPLETE" and body["eventTime"] == "2026-11-26T04:00:00Z"
    assert uuid.UUID(body["run"]["runId"])
    assert body["inputs"] == [{"namespace": "duckdb:///w.duckdb", "name": "raw_erp__orders"}]
    facets = body["outputs"][0]["facets"]
    assert facets["schema"]["fields"][0] == {"name": "customer_no", "type": "String",
                                             "description": "ordering customer"}
    fields = facets["columnLineage"]["fields"]
    assert set(fields) == {"customer_no", "is_shipped"}  # run_id has no input column
    direct = fields["customer_no"]["inputFields"][0]
    assert (direct["name"], direct["field"]) == ("raw_erp__orders", "cust_no")
    assert direct["transformations"] == [{"type": "DIRECT", "subtype": "TRANSFORMATION",
                                          "description": "trim"}]
    assert fields["is_shipped"]["inputFields"][0]["transformations"][0]["type"] == "INDIRECT"


def test_run_ids_become_stable_uuids() -> None:
    dagster_run = str(uuid.uuid4())
    assert run_uuid(dagster_run) == dagster_run
    assert run_uuid("cli-run") == run_uuid("cli-run") != run_uuid("other-run")


def test_events_append_to_a_file_one_per_line(tmp_path) -> None:
    emitter = OpenLineageEmitter.from_env({"HEADWATER_OPENLINEAGE_FILE":
                                           str(tmp_path / "ol" / "events.jsonl")})
    emitter.emit(event())
    emitter.emit(event(job="clean_customer"))

    lines = (tmp_path / "ol" / "events.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line)["job"]["name"] for line in lines] == ["clean_order",
                                                                  "clean_customer"]
    assert not OpenLineageEmitter.from_env({}).enabled


class Collector(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 201

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Collector.received.append(json.loads(self.rfile.read(length)))
        self.send_response(Collector.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.received, Collector.status = [], 201
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/v1/lineage"
    finally:
        server.shutdown()
        server.server_close()


def test_events_are_posted_to_an_endpoint(endpoint) -> None:
    OpenLineageEmitter(url=endpoint).emit(event())

    assert [e["job"]["name"] for e in Collector.received] == ["clean_order"]


def test_a_refused_event_is_logged_and_never_fails_the_run(endpoint, caplog) -> None:
    Collector.status = 500
    with caplog.at_level(logging.WARNING):
        OpenLineageEmitter(url=endpoint.replace("http://", "http://user:s3cret@")).emit(event())

    assert "not delivered" in caplog.text and "s3cret" not in caplog.text
