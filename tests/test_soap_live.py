"""The SOAP connector against the logistics service of the demo estate: a real SOAP 1.1
service with a checked-in WSDL and WS-Security, on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal

import pyarrow as pa
import pytest

from connectors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    Incremental,
    RetriableSourceError,
    RetryPolicy,
    checkpoint_of,
)
from connectors.rest import CursorInBody, DateWindows
from connectors.soap import SOAPConnector, SOAPStream
from connectors.testing import conformance_suite, keys_of, read_all
from headwater_demo.logistics import LogisticsServer
from pipelines.runner import run_stream
from pipelines.warehouse import DuckDBWarehouse

UTC_US = pa.timestamp("us", tz="UTC")
SHIPMENTS = pa.schema([
    ("id", pa.string()), ("consignee", pa.string()), ("origin", pa.string()),
    ("destination", pa.string()), ("weightKg", pa.decimal128(12, 3)),
    ("declaredValue", pa.decimal128(14, 2)), ("currency", pa.string()),
    ("status", pa.string()), ("shippedAt", UTC_US), ("deliveredAt", UTC_US),
    ("updatedAt", UTC_US), ("event", pa.string()),
])
TOKENS = CursorInBody("nextPageToken", "pageToken", "pageSize", 40)


def streams(server: LogisticsServer) -> list[SOAPStream]:
    first = min(r["updatedAt"] for r in server.records()).replace(hour=0, minute=0, second=0)
    return [
        SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                   paginator=TOKENS, since_arg="updatedFrom",
                   incremental=Incremental("updatedAt"), primary_key=("id",),
                   schema=SHIPMENTS),
        SOAPStream(name="shipments_by_window", operation="ListShipments",
                   record_path="shipment",
                   paginator=DateWindows("updatedFrom", "updatedTo", dt.timedelta(days=20),
                                         start=first, inner=TOKENS),
                   primary_key=("id",)),
        SOAPStream(name="tracking_events", operation="ListShipments", record_path="shipment",
                   paginator=TOKENS, explode="event", explode_keys={"shipment_id": "id"},
                   primary_key=("shipment_id", "code", "at")),
    ]


def connector_for(server: LogisticsServer, *, password: str | None = None, **options
                  ) -> SOAPConnector:
    options.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05))
    return SOAPConnector("logistics", server.wsdl_url, streams(server),
                         username=server.username, password=password or server.password,
                         **options)


@pytest.fixture
def logistics():
    with LogisticsServer(shipments=150) as server:
        yield server


def ids(server: LogisticsServer) -> list[str]:
    return sorted(r["id"] for r in server.records())


@pytest.mark.parametrize("digest", [True, False], ids=["digest", "text"])
def test_token_paging_reads_every_shipment_once(logistics, digest) -> None:
    with connector_for(logistics, digest=digest) as connector:
        batches, _ = read_all(connector, "shipments")
    keys = [k[0] for k in keys_of(batches, ("id",))]
    assert sorted(keys) == ids(logistics) and len(keys) == len(set(keys))


def test_date_windows_read_every_shipment_once(logistics) -> None:
    with connector_for(logistics) as connector:
        batches, _ = read_all(connector, "shipments_by_window")
    keys = [k[0] for k in keys_of(batches, ("id",))]
    assert sorted(keys) == ids(logistics) and len(keys) == len(set(keys))


def test_types_come_out_as_declared(logistics) -> None:
    with connector_for(logistics) as connector:
        table = pa.Table.from_batches(read_all(connector, "shipments")[0])
    assert table.schema.equals(SHIPMENTS)
    source = {r["id"]: r for r in logistics.records()}
    for row in table.to_pylist():
        want = source[row["id"]]
        assert row["weightKg"] == want["weightKg"] and isinstance(row["weightKg"], Decimal)
        assert row["declaredValue"] == want["declaredValue"]
        assert row["shippedAt"] == want["shippedAt"]  # the same instant, whatever offset
        assert row["deliveredAt"] == want["deliveredAt"]  # None when the element is absent
        assert row["updatedAt"] == want["updatedAt"]


def test_repeated_children_explode_into_records_of_their_own(logistics) -> None:
    with connector_for(logistics) as connector:
        table = pa.Table.from_batches(read_all(connector, "tracking_events")[0])
    expected = sorted((r["id"], e["code"]) for r in logistics.records() for e in r["events"])
    got = sorted(zip(table.column("shipment_id").to_pylist(), table.column("code").to_pylist(),
                     strict=True))
    assert got == expected and got


def test_a_record_path_that_matches_nothing_fails_loudly_and_lands_nothing(logistics,
                                                                          tmp_path) -> None:
    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipments",
                        paginator=TOKENS, primary_key=("id",))
    with SOAPConnector("logistics", logistics.wsdl_url, [stream], username=logistics.username,
                       password=logistics.password) as connector, \
            DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        with pytest.raises(DataContractError) as error:
            run_stream(connector, "shipments", warehouse)
        assert "raw_logistics__shipments" not in warehouse.tables()
        assert warehouse.load_state("logistics.shipments") is None
    assert error.value.message.startswith(
        "connector 'logistics', stream 'shipments': record_path 'shipments' matches nothing "
        "in the response: the top of the response has no 'shipments' (keys there: "
        "['nextPageToken', 'shipment'])")


def test_a_record_path_through_a_repeated_element_reads_its_children(logistics) -> None:
    stream = SOAPStream(name="events", operation="ListShipments", record_path="shipment.event",
                        paginator=TOKENS, primary_key=("code", "at", "location"))
    with SOAPConnector("logistics", logistics.wsdl_url, [stream], username=logistics.username,
                       password=logistics.password) as connector:
        connector.check()
        (discovered,) = connector.discover()
        table = pa.Table.from_batches(read_all(connector, "events")[0])
    assert discovered.schema.names == ["code", "at", "location"]
    expected = sorted((e["code"], e["at"]) for r in logistics.records() for e in r["events"])
    assert sorted(zip(table.column("code").to_pylist(), table.column("at").to_pylist(),
                      strict=True)) == expected and expected


def test_a_one_page_stream_resumed_after_its_page_requests_nothing(logistics) -> None:
    stream = SOAPStream(name="page", operation="ListShipments", arguments={"pageSize": 500},
                        record_path="shipment", primary_key=("id",))
    with SOAPConnector("logistics", logistics.wsdl_url, [stream], username=logistics.username,
                       password=logistics.password) as connector:
        first = next(iter(connector.read("page")))
        assert checkpoint_of(first)["resume"] == {"page": None}
        before = logistics.requests
        rest, state = read_all(connector, "page", checkpoint_of(first))
    assert [b.num_rows for b in rest] == [0] and logistics.requests == before
    assert first.num_rows == len(ids(logistics)) and set(state) == {"schema"}


def test_a_value_that_does_not_fit_names_connector_stream_field_and_record(logistics) -> None:
    schema = SHIPMENTS.set(SHIPMENTS.get_field_index("consignee"), pa.field("consignee",
                                                                             pa.int64()))
    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                        paginator=TOKENS, primary_key=("id",), schema=schema)
    with SOAPConnector("logistics", logistics.wsdl_url, [stream], username=logistics.username,
                       password=logistics.password) as connector, \
            pytest.raises(DataContractError) as error:
        read_all(connector, "shipments")
    first = min(logistics.records(), key=lambda r: (r["updatedAt"], r["id"]))
    assert error.value.message.startswith(
        f"connector 'logistics', stream 'shipments': field 'consignee' of the record with "
        f"id={first['id']!r} holds a value that does not fit int64")


def test_full_then_incremental_runs_land_exactly_the_changes(logistics, tmp_path) -> None:
    with connector_for(logistics) as connector, \
            DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        first = run_stream(connector, "shipments", warehouse)
        assert first.rows == len(ids(logistics))
        assert run_stream(connector, "shipments", warehouse).rows == 0
        touched = logistics.touch(changed=4, added=6)
        again = run_stream(connector, "shipments", warehouse)
        assert run_stream(connector, "shipments", warehouse).rows == 0
        landed = {r["id"]: r["status"] for r in
                  warehouse.query("SELECT id, status FROM raw_logistics__shipments").to_pylist()}
    assert again.rows == touched["changed"] + touched["added"] == 10
    assert landed == {r["id"]: r["status"] for r in logistics.records()}


_SHARED: list[LogisticsServer] = []


def _shared() -> LogisticsServer:
    if not _SHARED:
        _SHARED.append(LogisticsServer(shipments=60).start())
    return _SHARED[0]


@pytest.fixture(scope="module", autouse=True)
def _stop_shared():
    yield
    while _SHARED:
        _SHARED.pop().stop()


TestLogisticsConformance = conformance_suite(lambda: connector_for(_shared(), batch_size=15))


# -- security -------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["doctype", "billion_laughs"])
def test_dtds_and_entity_bombs_are_refused(logistics, fault) -> None:
    getattr(logistics.faults, fault)(1)
    with connector_for(logistics) as connector, pytest.raises(DataContractError) as err:
        read_all(connector, "shipments")
    assert "refused a response carrying" in str(err.value)
    assert "DTD" in str(err.value) or "entit" in str(err.value)


def test_an_external_entity_is_refused_and_the_file_never_read(logistics, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-7781")
    logistics.faults.external_entity(1, path=str(secret))
    with connector_for(logistics) as connector, pytest.raises(DataContractError) as err:
        read_all(connector, "shipments")
    assert "TOP-SECRET-CONTENT-7781" not in str(err.value)
    assert "refused a response carrying" in str(err.value)


def test_a_wsdl_importing_an_outside_url_is_refused(logistics) -> None:
    stream = SOAPStream(name="s", operation="ListShipments", record_path="shipment",
                        primary_key=("id",))
    connector = SOAPConnector("evil", logistics.evil_wsdl_url, [stream],
                              username=logistics.username, password=logistics.password)
    fetched: list[str] = []
    connector.http.session.hooks["response"].append(
        lambda response, **_: fetched.append(response.url))
    with connector, pytest.raises(ConfigurationError, match="outside the allow-list"):
        connector.check()
    assert fetched == [logistics.evil_wsdl_url]  # the outside schema was never requested


def test_ws_security_passwords_never_reach_logs_or_errors(logistics, caplog, capsys) -> None:
    with caplog.at_level(logging.DEBUG), connector_for(logistics, digest=False) as connector:
        read_all(connector, "shipments")
        logistics.faults.client_fault(1)
        with pytest.raises(ConfigurationError) as err:
            read_all(connector, "shipments")
    output = caplog.text + "".join(capsys.readouterr()) + str(err.value)
    assert "ListShipments" in caplog.text  # zeep's debug output was captured
    assert logistics.password not in output


def test_a_wrong_password_is_an_authentication_error(logistics) -> None:
    with connector_for(logistics, password="Wrong-Soap-Secret-1") as connector, \
            pytest.raises(AuthenticationError) as err:
        connector.check()
    assert "Wrong-Soap-Secret-1" not in str(err.value)
    assert "ListShipments" in str(err.value)


# -- faults ----------------------------------------------------------------------------------

def test_a_server_fault_burst_is_survived_without_loss_or_duplicates(logistics) -> None:
    with connector_for(logistics) as connector:
        reader = connector.read("shipments")
        first = next(reader)
        logistics.faults.server_fault(3)
        rest = list(reader)
    keys = keys_of([first, *rest], ("id",))
    assert len(keys) == len(set(keys)) == len(ids(logistics))


def test_a_client_fault_fails_at_once(logistics) -> None:
    with connector_for(logistics) as connector:
        connector.check()
        before = logistics.requests
        logistics.faults.client_fault(1)
        with pytest.raises(ConfigurationError, match="Invalid request"):
            read_all(connector, "shipments")
    assert logistics.requests - before == 1


def test_a_hung_service_hits_the_operation_timeout(logistics) -> None:
    with connector_for(logistics, operation_timeout=0.5,
                       retry=RetryPolicy(max_attempts=2, base_delay=0.01)) as connector:
        connector.check()
        logistics.faults.slow(5, seconds=3)
        started = time.monotonic()
        with pytest.raises(RetriableSourceError, match="operation timeout"):
            read_all(connector, "shipments")
    assert time.monotonic() - started < 3


def test_a_local_wsdl_file_with_the_endpoint_given(logistics) -> None:
    from importlib import resources

    wsdl = str(resources.files("headwater_demo").joinpath("logistics.wsdl"))
    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                        paginator=TOKENS, primary_key=("id",))
    with SOAPConnector("logistics", wsdl, [stream], username=logistics.username,
                       password=logistics.password, endpoint=logistics.url) as connector:
        batches, _ = read_all(connector, "shipments")
    assert sorted(k[0] for k in keys_of(batches, ("id",))) == ids(logistics)


def test_http_credentials_ride_along_with_ws_security(logistics) -> None:
    from connectors.http import BasicAuth

    seen: list[str] = []
    with connector_for(logistics, auth=BasicAuth("gateway", "Gateway-Pass-99")) as connector:
        connector.http.session.hooks["response"].append(
            lambda response, **_: seen.append(response.request.headers.get("Authorization")))
        connector.check()
    assert seen and all(h and h.startswith("Basic ") for h in seen)


def test_a_date_time_declared_as_text_keeps_its_offset(logistics) -> None:
    schema = pa.schema([f.with_type(pa.string()) if f.name == "shippedAt" else f
                        for f in SHIPMENTS])
    stream = SOAPStream(name="shipments", operation="ListShipments", record_path="shipment",
                        paginator=TOKENS, primary_key=("id",), schema=schema)
    with SOAPConnector("logistics", logistics.wsdl_url, [stream], username=logistics.username,
                       password=logistics.password) as connector:
        table = pa.Table.from_batches(read_all(connector, "shipments")[0])
    source = {r["id"]: r["shippedAt"] for r in logistics.records()}
    for shipment_id, text in zip(table.column("id").to_pylist(),
                                 table.column("shippedAt").to_pylist(), strict=True):
        written = dt.datetime.fromisoformat(text)
        assert written == source[shipment_id]
        assert written.utcoffset() == source[shipment_id].utcoffset()
    assert any(not t.endswith("+00:00") for t in table.column("shippedAt").to_pylist())
