"""ODBC faults: bad passwords, missing drivers, unreachable servers.

Connections killed mid-read are tested for every reader in ``test_faults.py``.
"""

from __future__ import annotations

import pytest

from connectors import (
    NO_RETRY,
    AuthenticationError,
    ConfigurationError,
    RetriableSourceError,
    Retrier,
    RetryPolicy,
)
from connectors.odbc import ODBCConnector

MARIADB_ODBC = "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root"


@pytest.mark.mariadb
def test_wrong_password_is_a_clear_error_without_the_secret() -> None:
    secret = "Wr0ng-Odbc-Secret"
    connector = ODBCConnector("erp", f"{MARIADB_ODBC};Pwd={secret}", retry=NO_RETRY)
    with pytest.raises(AuthenticationError) as err:
        connector.check()
    message = str(err.value)
    assert secret not in message
    assert "'test'" in message and "127.0.0.1:3306" in message
    assert "password" in message


def test_a_driver_that_is_not_installed_is_named_with_the_installed_ones() -> None:
    import pyodbc

    with pytest.raises(ConfigurationError) as err:
        ODBCConnector("erp", "Driver={IBM i Access ODBC Driver};System=as400;Pwd=hunter22")
    message = str(err.value)
    assert "'IBM i Access ODBC Driver' is not installed" in message
    for installed in pyodbc.drivers():
        assert repr(installed) in message
    assert "hunter22" not in message


def test_an_undefined_data_source_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'LEGACY_ERP' is not defined"):
        ODBCConnector("erp", "DSN=LEGACY_ERP;Uid=app")


@pytest.mark.postgres
def test_unreachable_server_is_retried_then_reported() -> None:
    delays: list[float] = []
    retrier = Retrier(RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02),
                      on_retry=lambda attempt, exc, delay: delays.append(delay))
    connector = ODBCConnector(
        "erp", "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=test;Uid=postgres",
        retry=retrier, login_timeout=2,
    )
    with pytest.raises(RetriableSourceError) as err:
        connector.check()
    assert len(delays) == 2
    assert "after 3 attempt" in str(err.value)
    assert "127.0.0.1:1" in str(err.value)
