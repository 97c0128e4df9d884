"""The Connector contract's own behaviour: names, declared streams, lookup."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from connectors._base import Connector
from connectors._errors import ConfigurationError
from connectors._stream import Stream


class TinyConnector(Connector):
    """The least a concrete connector must define."""

    name = "tiny"
    streams = (Stream("orders", primary_key="id"), Stream("customers", primary_key="id"))
    closed = False

    def check(self):
        return None

    def discover(self):
        return list(self.streams)

    def read(self, stream, state=None):
        yield from ()

    def close(self):
        self.closed = True


class Nameless(TinyConnector):
    name = ""


class ListStreams(TinyConnector):
    streams = [Stream("a"), Stream("b")]


def test_class_attribute_streams_are_declared():
    connector = TinyConnector()
    assert connector.name == "tiny"
    assert [s.name for s in connector.streams] == ["orders", "customers"]
    assert connector.stream("orders").primary_key == ("id",)


def test_streams_given_as_a_list_become_a_tuple_without_touching_the_class():
    connector = ListStreams()
    assert connector.streams == (Stream("a"), Stream("b"))
    assert isinstance(ListStreams.streams, list)


def test_constructor_arguments_override_the_class_attributes():
    connector = TinyConnector(name="erp", streams=iter([Stream("invoices")]))
    assert connector.name == "erp"
    assert connector.streams == (Stream("invoices"),)
    assert TinyConnector.name == "tiny"
    assert len(TinyConnector.streams) == 2


def test_an_empty_stream_list_overrides_the_declared_ones():
    connector = TinyConnector(streams=[])
    assert connector.streams == ()
    with pytest.raises(ConfigurationError, match=r"\(none declared\)"):
        connector.stream("orders")


@pytest.mark.parametrize(
    ("cls", "kwargs", "expectation"),
    [
        (TinyConnector, {}, nullcontext()),
        (Nameless, {"name": "given"}, nullcontext()),
        (Nameless, {}, pytest.raises(ConfigurationError, match="Nameless needs a name")),
        (TinyConnector, {"name": ""}, pytest.raises(ConfigurationError, match="needs a name")),
    ],
)
def test_a_connector_needs_a_name(cls, kwargs, expectation):
    with expectation:
        assert cls(**kwargs).name


@pytest.mark.parametrize(
    ("streams", "expectation"),
    [
        ([Stream("a"), Stream("b")], nullcontext()),
        (
            [Stream("a"), Stream("b"), Stream("a", primary_key="id")],
            pytest.raises(ConfigurationError, match="connector 'tiny' declares stream 'a' twice"),
        ),
        ([Stream("x"), Stream("x")], pytest.raises(ConfigurationError, match="'x' twice")),
    ],
)
def test_duplicate_stream_names_are_a_configuration_error(streams, expectation):
    with expectation:
        TinyConnector(streams=streams)


class DuplicateDeclared(TinyConnector):
    streams = (Stream("orders"), Stream("orders"))


def test_duplicate_class_attribute_streams_are_a_configuration_error():
    with pytest.raises(ConfigurationError, match="'orders' twice"):
        DuplicateDeclared()


@pytest.mark.parametrize(
    ("name", "expectation"),
    [
        ("orders", nullcontext()),
        ("customers", nullcontext()),
        (
            "Orders",
            pytest.raises(
                ConfigurationError,
                match=r"^connector 'tiny' has no stream 'Orders'; "
                r"its streams are: customers, orders$",
            ),
        ),
        ("invoices", pytest.raises(ConfigurationError, match="its streams are: customers, orders")),
    ],
)
def test_unknown_stream_error_lists_the_known_ones(name, expectation):
    with expectation:
        assert TinyConnector().stream(name).name == name


def test_stream_lookup_passes_a_stream_object_through():
    stream = Stream("adhoc")
    assert TinyConnector().stream(stream) is stream


def test_a_connector_is_a_context_manager_that_closes():
    with TinyConnector() as connector:
        assert not connector.closed
    assert connector.closed


def test_the_base_cannot_be_instantiated_without_the_hooks():
    class Incomplete(Connector):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
