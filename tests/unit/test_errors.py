"""The error tree: names say what to do, messages never carry secrets."""

from __future__ import annotations

import pickle

import pytest

from connectors import _redaction
from connectors._errors import (
    AuthenticationError,
    ConfigurationError,
    DataContractError,
    HeadwaterError,
    RetriableSourceError,
    SkippableRecordError,
)
from connectors._redaction import register_secret

ALL_ERRORS = [
    HeadwaterError,
    ConfigurationError,
    AuthenticationError,
    RetriableSourceError,
    SkippableRecordError,
    DataContractError,
]


@pytest.fixture(autouse=True)
def isolated_secrets(monkeypatch):
    monkeypatch.setattr(_redaction, "_known_secrets", set())


@pytest.mark.parametrize("error_class", ALL_ERRORS)
def test_every_error_redacts_its_message(error_class):
    register_secret("Sup3rS3cret!")
    error = error_class(
        "cannot read postgresql://etl:hunter2@db1/erp with key Sup3rS3cret! (PWD=odbcpass;)"
    )
    assert error.message == "cannot read postgresql://etl:***@db1/erp with key *** (PWD=***;)"
    assert str(error) == error.message
    assert "hunter2" not in repr(error)
    assert "Sup3rS3cret!" not in repr(error)


@pytest.mark.parametrize(
    ("error_class", "retriable"),
    [
        (HeadwaterError, False),
        (ConfigurationError, False),
        (AuthenticationError, False),
        (RetriableSourceError, True),
        (SkippableRecordError, False),
        (DataContractError, False),
    ],
)
def test_only_retriable_source_errors_are_retriable(error_class, retriable):
    assert error_class.retriable is retriable
    assert error_class("x").retriable is retriable


@pytest.mark.parametrize("error_class", ALL_ERRORS[1:])
def test_every_error_is_a_headwater_error_and_nothing_more_specific(error_class):
    assert issubclass(error_class, HeadwaterError)
    others = [c for c in ALL_ERRORS[1:] if c is not error_class]
    assert not any(issubclass(error_class, other) for other in others)


def test_retry_after_defaults_to_none_and_keeps_what_the_source_asked_for():
    assert RetriableSourceError("busy").retry_after is None
    assert RetriableSourceError("busy", retry_after=2.5).retry_after == 2.5


def test_retry_after_is_keyword_only():
    with pytest.raises(TypeError):
        RetriableSourceError("busy", 2.5)


def test_message_of_an_error_built_without_args_is_empty():
    error = HeadwaterError("x")
    error.args = ()
    assert error.message == ""


def test_retriable_error_survives_pickling_with_its_retry_after():
    # Orchestrators move errors between processes.
    error = pickle.loads(pickle.dumps(RetriableSourceError("busy", retry_after=3.0)))
    assert type(error) is RetriableSourceError
    assert (error.message, error.retry_after) == ("busy", 3.0)
