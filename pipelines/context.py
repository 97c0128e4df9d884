"""Context documents: what a model step reads about one entity, with where it came from.

The demo's context is one document per CRM account that entity resolution placed in a
party (``clean_party_xref``): the account, the party's ERP customers with a summary and
the details of their orders, the account's open tickets and the party's late shipments
(not delivered ``late_after_days`` after shipping, or in ``EXCEPTION``). Every item
carries a ``source_id`` (``ticket:59``) that a model cites; the row's ``provenance``
lists every clean record the document was built from, with the source, stream, run and
extraction time it was landed with, so an answer leads back to the source rows.

Size is bounded. A document over its token budget loses items from the list sections
named in ``ContextSpec.priorities``, first section first, each losing its least
important items first (lists are ordered most important first); summaries and counts are
never trimmed, so a trimmed document still says how many items there were. What was
dropped is recorded in ``trimmed``. Tokens are estimated by :func:`estimate_tokens`.

The document is canonical JSON and holds nothing that changes without the data changing
(no run ids, no extraction times, no wall-clock time), so its ``content_hash`` is stable
across reruns and the model cache can trust it. "Late" is judged at ``as_of``: by default
the latest shipment update the logistics feed reported, not the clock.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from connectors import ConfigurationError

from ._canonical import canonical_json, content_hash, estimate_tokens
from .warehouse import Warehouse

CONTEXT_SCHEMA = pa.schema([
    ("context_id", pa.string()), ("party_id", pa.string()), ("account_id", pa.string()),
    ("document", pa.string()), ("provenance", pa.string()), ("content_hash", pa.string()),
    ("tokens", pa.int64()), ("trimmed", pa.string()),
    ("as_of", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
])
TRIMMABLE_SECTIONS = ("orders", "open_tickets", "late_shipments")
_TICKET_URGENCY = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
_OPEN_ORDER_STATUSES = ("new", "on_hold")
# The clean columns each document section copies, by table; pipelines.lineage declares
# the context's column lineage from these, so the two cannot drift apart.
DOCUMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "clean_account": ("account_id", "name", "industry", "country", "annual_revenue"),
    "clean_customer": ("customer_no", "name", "active", "credit_limit", "region", "opened_on"),
    "clean_order": ("order_no", "ordered_on", "shipped_on", "status", "total"),
    "clean_ticket": ("ticket_id", "subject", "status", "priority", "opened_at"),
    "clean_shipment": ("shipment_id", "status", "shipped_at", "origin", "destination",
                       "declared_value_eur"),
}
# Clean columns that choose or shape what goes in, without being copied as they are.
SELECTING_FIELDS: dict[str, tuple[str, ...]] = {
    "clean_account": ("tags",),
    "clean_ticket": ("is_open",),
    "clean_shipment": ("delivered_at",),
    "clean_party_xref": ("party_id", "system", "source_key"),
}
_NEEDED = ("clean_party_xref", *DOCUMENT_FIELDS)


def context_table(name: str) -> str:
    return f"context_{name}"


@dataclass(frozen=True)
class ContextSpec:
    """A context declared as data: its name (table ``context_<name>``), its token budget,
    and which list sections lose items first when a document is over budget."""

    name: str
    budget: int
    priorities: tuple[str, ...] = ("orders", "late_shipments", "open_tickets")
    late_after_days: int = 7
    as_of: dt.datetime | None = None  # None: the latest shipment update in the data

    def __post_init__(self) -> None:
        unknown = set(self.priorities) - set(TRIMMABLE_SECTIONS)
        if unknown or self.budget < 1 or self.late_after_days < 0:
            raise ConfigurationError(
                f"context {self.name!r}: budget must be positive, late_after_days not negative, "
                f"and priorities must name sections of {TRIMMABLE_SECTIONS} "
                f"(unknown: {sorted(unknown)})")

    @property
    def table(self) -> str:
        return context_table(self.name)


ACCOUNT_CONTEXT = ContextSpec(name="account", budget=800)


@dataclass
class ContextRun:
    """What one build wrote: counts for the orchestrator's metadata."""

    spec: ContextSpec
    run_id: str
    table: pa.Table
    as_of: dt.datetime | None
    seconds: float

    @property
    def contexts(self) -> int:
        return self.table.num_rows

    @property
    def trimmed(self) -> int:
        return sum(1 for t in self.table.column("trimmed").to_pylist() if t != "[]")

    @property
    def over_budget(self) -> int:
        return sum(1 for t in self.table.column("tokens").to_pylist() if t > self.spec.budget)

    def metadata(self) -> dict[str, Any]:
        tokens = self.table.column("tokens").to_pylist()
        provenance = sum(len(json.loads(p)) for p in self.table.column("provenance").to_pylist())
        return {"contexts": self.contexts, "trimmed": self.trimmed,
                "over_budget": self.over_budget, "budget_tokens": self.spec.budget,
                "tokens_total": sum(tokens), "tokens_max": max(tokens, default=0),
                "provenance_entries": provenance,
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "seconds": round(self.seconds, 3)}


def trim_to_budget(document: dict[str, Any], budget: int, priorities: Iterable[str]
                   ) -> tuple[str, list[dict[str, Any]]]:
    """The document as canonical JSON within ``budget`` tokens if trimming can get it
    there, and what was dropped, section by section. ``document`` is not changed."""
    document = {**document}
    text = canonical_json(document)
    trimmed = []
    for section in priorities:
        items = list(document.get(section) or [])
        dropped = []
        while items and estimate_tokens(text) > budget:
            dropped.append(items.pop()["source_id"])
            document[section] = items
            text = canonical_json(document)
        if dropped:
            trimmed.append({"section": section, "dropped": len(dropped), "source_ids": dropped})
    return text, trimmed


def provenance_entry(entity: str, key: object, row: Mapping[str, Any]) -> dict[str, Any]:
    """Where one clean record came from, from its ``_hw_*`` columns."""
    extracted = row["_hw_extracted_at"]
    return {"source_id": f"{entity}:{key}", "source_table": f"clean_{entity}",
            "source_key": str(key), "source": row["_hw_source"], "stream": row["_hw_stream"],
            "extracted_at": extracted.astimezone(dt.UTC).isoformat() if extracted else None,
            "run_id": row["_hw_run_id"]}


def context_row(context_id: str, party_id: str | None, account_id: str,
                document: dict[str, Any], provenance: list[dict[str, Any]], spec: ContextSpec,
                as_of: dt.datetime | None, run_id: str) -> dict[str, Any]:
    """One row of a context table: the document trimmed to budget, hashed and sized."""
    text, trimmed = trim_to_budget(document, spec.budget, spec.priorities)
    return {"context_id": context_id, "party_id": party_id, "account_id": account_id,
            "document": text, "provenance": canonical_json(provenance),
            "content_hash": content_hash(text), "tokens": estimate_tokens(text),
            "trimmed": canonical_json(trimmed), "as_of": as_of, "run_id": run_id}


def build_contexts(warehouse: Warehouse, spec: ContextSpec, run_id: str) -> ContextRun:
    """Build one account context per CRM account from the clean tables and replace
    ``context_<name>`` whole. Run after normalization (``headwater normalize``)."""
    started = time.perf_counter()
    present = set(warehouse.tables())
    missing = [t for t in _NEEDED if t not in present]
    if missing:
        raise ConfigurationError(f"context {spec.name!r} reads {missing}, which the warehouse "
                                 "lacks: land and normalize the estate first (headwater demo)")
    frames = {t: pl.from_arrow(warehouse.read_table(t)) for t in _NEEDED}
    shipments = frames["clean_shipment"]
    as_of = spec.as_of or (shipments.get_column("updated_at").max() if shipments.height else None)
    sections = _Sections(frames, spec, as_of)
    rows = [context_row(account["account_id"], sections.party_of.get(account["account_id"]),
                        account["account_id"], document, provenance, spec, as_of, run_id)
            for account, (document, provenance) in sections.documents()]
    table = pa.Table.from_pylist(rows, schema=CONTEXT_SCHEMA)
    warehouse.replace_tables({spec.table: table})
    return ContextRun(spec, run_id, table, as_of, time.perf_counter() - started)


@dataclass
class _Sections:
    """The clean records grouped by the account or party they belong to."""

    frames: dict[str, pl.DataFrame]
    spec: ContextSpec
    as_of: dt.datetime | None
    party_of: dict[str, str] = field(init=False)
    members: dict[tuple[str, str], list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.party_of, self.members = {}, defaultdict(list)
        for row in self.frames["clean_party_xref"].iter_rows(named=True):
            if row["system"] == "crm":
                self.party_of[row["source_key"]] = row["party_id"]
            self.members[(row["party_id"], row["system"])].append(row["source_key"])

    def documents(self) -> Iterable[tuple[dict[str, Any], tuple[dict, list[dict]]]]:
        customers = _by(self.frames["clean_customer"], "customer_no")
        orders = _by(self.frames["clean_order"].sort(["ordered_on", "order_no"],
                                                     descending=True), "customer_no")
        tickets = _by(self.frames["clean_ticket"].filter(pl.col("is_open")).with_columns(
            pl.col("priority").replace_strict(_TICKET_URGENCY, default=9).alias("_urgency"))
            .sort(["_urgency", "opened_at", "ticket_id"]), "account_id")
        late = _by(self._late_shipments(), "consignee")
        for account in self.frames["clean_account"].sort("account_id").iter_rows(named=True):
            party = self.party_of.get(account["account_id"])
            erp = [c for no in self.members.get((party, "erp"), []) for c in customers.get(no, [])]
            party_orders = [o for c in erp for o in orders.get(c["customer_no"], [])]
            shipped = [s for name in self.members.get((party, "logistics"), [])
                       for s in late.get(name, [])]
            yield account, _document(account, erp, party_orders,
                                     tickets.get(account["account_id"], []), shipped, self.spec)

    def _late_shipments(self) -> pl.DataFrame:
        shipments = self.frames["clean_shipment"]
        overdue = pl.lit(False)
        if self.as_of is not None:
            cutoff = self.as_of - dt.timedelta(days=self.spec.late_after_days)
            overdue = (pl.col("status") != "DELIVERED") & pl.col("delivered_at").is_null() & (
                pl.col("shipped_at") < cutoff)
        return shipments.filter(overdue | (pl.col("status") == "EXCEPTION")).with_columns(
            (pl.col("status") != "EXCEPTION").alias("_not_exception")
        ).sort(["_not_exception", "shipped_at", "shipment_id"])


def _by(frame: pl.DataFrame, key: str) -> dict[Any, list[dict[str, Any]]]:
    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in frame.iter_rows(named=True):
        grouped[row[key]].append(row)
    return grouped


def _document(account: dict[str, Any], customers: list[dict], orders: list[dict],
              tickets: list[dict], shipments: list[dict], spec: ContextSpec
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The untrimmed document of one account, and the provenance of what it holds."""
    provenance = [provenance_entry("account", account["account_id"], account)]
    provenance += [provenance_entry("customer", c["customer_no"], c) for c in customers]
    provenance += [provenance_entry("order", o["order_no"], o) for o in orders]
    provenance += [provenance_entry("ticket", t["ticket_id"], t) for t in tickets]
    provenance += [provenance_entry("shipment", s["shipment_id"], s) for s in shipments]
    document = {
        "account": {**_item("account", "account_id", account),
                    "tags": json.loads(account["tags"]) if account["tags"] else []},
        "erp_customers": [_item("customer", "customer_no", c) for c in customers],
        "orders_summary": {
            "count": len(orders),
            "total": sum((o["total"] for o in orders), decimal.Decimal(0)),
            "open": sum(1 for o in orders if o["status"] in _OPEN_ORDER_STATUSES),
            "last_ordered_on": orders[0]["ordered_on"] if orders else None},
        "orders": [_item("order", "order_no", o) for o in orders],
        "open_tickets": [_item("ticket", "ticket_id", t) for t in tickets],
        "late_shipments": [_item("shipment", "shipment_id", s) for s in shipments],
        "counts": {"orders": len(orders), "open_tickets": len(tickets),
                   "late_shipments": len(shipments)},
        "late_after_days": spec.late_after_days,
    }
    return document, provenance


def _item(entity: str, key: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A document item: the row's ``source_id`` and the fields its table contributes."""
    return {"source_id": f"{entity}:{row[key]}",
            **{name: row[name] for name in DOCUMENT_FIELDS[f"clean_{entity}"]}}
