"""SOAP check and discover: the WSDL is loaded, its operations checked and listed."""

from __future__ import annotations

from importlib import resources

import pyarrow as pa
import pytest

from connectors import AuthenticationError, ConfigurationError
from connectors.soap import SOAPConnector, SOAPStream
from headwater_demo.logistics import LogisticsServer

LOCAL_WSDL = str(resources.files("headwater_demo").joinpath("logistics.wsdl"))


def _stream(operation: str = "ListShipments") -> SOAPStream:
    return SOAPStream(name="shipments", operation=operation, record_path="shipment",
                      arguments={"pageSize": 10}, primary_key=("id",))


@pytest.mark.parametrize("streams", [[], [_stream()]], ids=["no streams", "a stream"])
def test_check_reports_a_missing_wsdl_file(tmp_path, streams) -> None:
    missing = str(tmp_path / "gone.wsdl")
    with SOAPConnector("logistics", missing, streams) as connector, \
            pytest.raises(ConfigurationError) as err:
        connector.check()
    assert "gone.wsdl" in str(err.value) and "No such file" in str(err.value)


def test_check_names_an_operation_the_wsdl_lacks_and_lists_those_it_has() -> None:
    with SOAPConnector("logistics", LOCAL_WSDL, [_stream("ListShipmentz")]) as connector:
        for probe in (connector.check, connector.discover,
                      lambda: next(iter(connector.read("shipments")))):
            with pytest.raises(ConfigurationError) as err:
                probe()
            message = str(err.value)
            assert "connector 'logistics', stream 'shipments'" in message
            assert "no operation 'ListShipmentz'" in message
            assert "GetShipment, ListShipments" in message


def test_check_loads_the_wsdl_and_calls_each_stream() -> None:
    with LogisticsServer(shipments=5) as server:
        with SOAPConnector("logistics", server.wsdl_url, [_stream()],
                           username=server.username, password=server.password) as connector:
            assert connector.check() is None
        with SOAPConnector("logistics", server.wsdl_url, [_stream()], username=server.username,
                           password="wrong") as connector, \
                pytest.raises(AuthenticationError) as err:
            connector.check()
    assert "ListShipments" in str(err.value)


def test_discover_lists_the_operations_and_their_record_fields() -> None:
    with SOAPConnector("logistics", LOCAL_WSDL, []) as connector:
        found = {s.name: s.schema for s in connector.discover()}
    assert sorted(found) == ["GetShipment", "ListShipments"]
    shipments = found["ListShipments"]
    assert shipments.names == ["id", "consignee", "origin", "destination", "weightKg",
                               "declaredValue", "currency", "status", "shippedAt",
                               "deliveredAt", "updatedAt", "event"]
    assert shipments.field("id").type == pa.string()
    assert pa.types.is_decimal(shipments.field("weightKg").type)
    assert shipments.field("shippedAt").type == pa.timestamp("us", tz="UTC")
    assert shipments.field("event").type == pa.string()  # repeated: JSON text
    assert found["GetShipment"].names == shipments.names
