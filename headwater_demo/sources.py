"""The demo estate's three systems as connectors: subclasses of the public kind bases.

Each one brings its system up when it is opened (``with connector:``, as the CLI and
the Dagster resource use every connector) and takes it down when it is closed, so a run
starts only the systems its streams read:

- :class:`DemoERP` builds the legacy ERP (``orders`` orders) if its database lacks it;
- :class:`DemoCRM` serves the CRM, behind its OAuth2 server, on a free port of
  127.0.0.1 and reads it with the server's client credentials;
- :class:`DemoLogistics` serves the logistics SOAP service the same way, with
  WS-Security credentials of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors import (
    ConfigurationError,
    RESTConnector,
    SOAPConnector,
    SQLConnector,
    Stream,
    register_secret,
)
from connectors.http import OAuth2ClientCredentials

from .crm import CRMServer
from .erp import build_erp
from .logistics import LogisticsServer

# Where a served system is until open() gives it a port: never requested.
_UNSERVED = "http://127.0.0.1/served-while-open"


class DemoERP(SQLConnector):
    """The demo ERP database, built with ``orders`` orders on first open if missing."""

    url = "sqlite:///.headwater/erp.sqlite"

    def __init__(self, name: str | None = None, source: Any = None,
                 streams: Sequence[Stream] | None = None, *, orders: int = 2000,
                 seed: int = 7, **options: Any) -> None:
        super().__init__(name, source, streams, **options)
        self.orders, self.seed = orders, seed

    def open(self) -> None:
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            folder = Path(url.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(f"connector {self.name!r}: cannot create the folder "
                                         f"of the demo ERP, {str(folder)!r}: {exc.strerror}"
                                         ) from None
        schema = self.db_schema
        if "orders" in self.table_names(schema):
            return
        counts = build_erp(self.engine, orders=self.orders, seed=self.seed, schema=schema)
        summary = ", ".join(f"{table} {n:,}" for table, n in counts.items())
        print(f"estate: built the demo ERP ({summary})", flush=True)


class _ServedWhileOpen:
    """Stops the server a demo connector started in ``open()`` when it is closed."""

    _server: CRMServer | LogisticsServer | None = None

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        if self._server is not None:
            self._server.stop()
            self._server = None


class DemoCRM(_ServedWhileOpen, RESTConnector):
    """The demo CRM (``accounts`` accounts, ``tickets`` tickets), served while open."""

    def __init__(self, name: str | None = None, streams: Sequence[Stream] | None = None, *,
                 accounts: int = 120, tickets: int = 400, seed: int = 7,
                 **options: Any) -> None:
        options.pop("base_url", None)
        self._settings = {"accounts": accounts, "tickets": tickets, "seed": seed}
        self._options = options
        super().__init__(name, _UNSERVED, streams, **options)
        self.where = "the demo CRM, served on 127.0.0.1 while a run lasts"

    def open(self) -> None:
        if self._server is not None:
            return
        server = CRMServer(**self._settings).start()
        self._server = server
        register_secret(server.client_secret)
        print(f"estate: serving the demo CRM at {server.url}", flush=True)
        auth = OAuth2ClientCredentials(server.token_url, server.client_id, server.client_secret)
        super().__init__(self.name, server.url, self.streams, **{**self._options, "auth": auth})


class DemoLogistics(_ServedWhileOpen, SOAPConnector):
    """The demo logistics service (``shipments`` shipments), served while open."""

    def __init__(self, name: str | None = None, streams: Sequence[Stream] | None = None, *,
                 shipments: int = 300, seed: int = 5, **options: Any) -> None:
        options.pop("wsdl", None)
        self._settings = {"shipments": shipments, "seed": seed}
        self._options = options
        super().__init__(name, _UNSERVED + "?wsdl", streams, **options)
        self.where = "the demo logistics service, served on 127.0.0.1 while a run lasts"

    def open(self) -> None:
        if self._server is not None:
            return
        server = LogisticsServer(**self._settings).start()
        self._server = server
        register_secret(server.password)
        print(f"estate: serving the demo logistics service at {server.url}", flush=True)
        super().__init__(self.name, server.wsdl_url, self.streams,
                         **{**self._options, "username": server.username,
                            "password": server.password})
