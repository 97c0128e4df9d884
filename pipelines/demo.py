"""The demo estate around a command: build its ERP, serve its CRM and logistics service.

The CLI and the Dagster resource both use these, so ``headwater demo`` and a
materialization in the Dagster UI run against the same live servers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors import ConfigurationError, register_secret

from .config import Config


def build_estate(config: Config, orders: int | None, force: bool) -> None:
    """Build the demo ERP of ``[estate.erp]`` unless its SQLite file exists (``force``
    rebuilds it); print what was built."""
    from .estate.erp import build_erp

    spec = config.estate.get("erp")
    if not spec:
        raise ConfigurationError(f"{config.origin} has no [estate.erp] to build")
    url = sa.make_url(spec["url"])
    if url.get_backend_name() == "sqlite" and url.database:
        if Path(url.database).exists() and not force:
            print(f"estate: demo ERP already at {url.database} (use --force to rebuild)")
            return
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        counts = build_erp(engine, orders=orders or int(spec.get("orders", 2000)))
    finally:
        engine.dispose()
    summary = ", ".join(f"{table} {n:,}" for table, n in counts.items())
    print(f"estate: built the demo ERP ({summary})")


@contextlib.contextmanager
def serving_estate(config: Config) -> Iterator[Config]:
    """Serve the demo estate's CRM and logistics service (``[estate.crm] serve = true``,
    ``[estate.logistics] serve = true``) while a command runs, pointing the connectors
    that say ``estate = "crm"`` or ``estate = "logistics"`` at them."""
    connectors = dict(config.connectors)
    with contextlib.ExitStack() as stack:
        for system, start in _ESTATE_SERVERS.items():
            spec = config.estate.get(system) or {}
            users = [n for n, c in connectors.items() if c.get("estate") == system]
            if spec.get("serve") and users:
                settings = start(stack, spec)
                for name in users:
                    connectors[name] = {**connectors[name], **settings}
        yield replace(config, connectors=connectors)


def _serve_crm(stack: contextlib.ExitStack, spec: dict[str, Any]) -> dict[str, Any]:
    from .estate.crm import CRMServer

    server = stack.enter_context(CRMServer(
        accounts=int(spec.get("accounts", 120)), tickets=int(spec.get("tickets", 400)),
        seed=int(spec.get("seed", 7))))
    register_secret(server.client_secret)
    print(f"estate: serving the demo CRM at {server.url}", flush=True)
    return {"base_url": server.url, "auth": {
        "kind": "oauth2", "token_url": server.token_url, "client_id": server.client_id,
        "client_secret": server.client_secret}}


def _serve_logistics(stack: contextlib.ExitStack, spec: dict[str, Any]) -> dict[str, Any]:
    from .estate.logistics import LogisticsServer

    server = stack.enter_context(LogisticsServer(
        shipments=int(spec.get("shipments", 300)), seed=int(spec.get("seed", 5))))
    register_secret(server.password)
    print(f"estate: serving the demo logistics service at {server.url}", flush=True)
    return {"wsdl": server.wsdl_url, "username": server.username, "password": server.password}


_ESTATE_SERVERS: dict[str, Callable[[contextlib.ExitStack, dict[str, Any]], dict[str, Any]]] = {
    "crm": _serve_crm,
    "logistics": _serve_logistics,
}


