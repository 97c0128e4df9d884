"""Account contexts shaped like the demo's, made up rather than landed.

Model-step tests and the benchmark need many ``context_account`` rows fast, without
building and landing the estate. :func:`account_contexts` makes them from a seed: each
has an account, a few orders, open tickets and late shipments, every item with a
``source_id`` and a provenance entry, sized and hashed like a built context.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pyarrow as pa

from pipelines.context import CONTEXT_SCHEMA, ContextSpec, context_row

from ._parties import crm_spelling
from .account_context import account_context

_EXTRACTED = dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC)
_AS_OF = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
_PRIORITIES = ("urgent", "high", "normal", "low")
_SUBJECTS = ("Invoice does not match PO", "Delivery delayed", "Damaged goods on arrival")


def _provenance(entity: str, key: object, source: str, stream: str) -> dict:
    return {"source_id": f"{entity}:{key}", "source_table": f"clean_{entity}",
            "source_key": str(key), "source": source, "stream": stream,
            "extracted_at": _EXTRACTED.isoformat(), "run_id": "synthetic"}


def account_document(number: int, rng: random.Random) -> tuple[dict, list[dict]]:
    """The document and provenance of made-up account ``number``."""
    account_id = f"ACC-{number:05d}"
    orders = [{"source_id": f"order:{number * 100 + i}", "order_no": number * 100 + i,
               "ordered_on": (_AS_OF - dt.timedelta(days=30 * i)).date(), "shipped_on": None,
               "status": rng.choice(("new", "shipped", "shipped", "on_hold")),
               "total": Decimal(rng.randrange(10_000, 10_000_000)) / 100}
              for i in range(rng.randrange(0, 8))]
    tickets = [{"source_id": f"ticket:{number * 10 + i}", "ticket_id": number * 10 + i,
                "subject": rng.choice(_SUBJECTS), "status": "open",
                "priority": rng.choice(_PRIORITIES),
                "opened_at": _AS_OF - dt.timedelta(days=rng.randrange(1, 90))}
               for i in range(rng.randrange(0, 5))]
    late = [{"source_id": f"shipment:SHP-{number * 10 + i:06d}",
             "shipment_id": f"SHP-{number * 10 + i:06d}", "status": "IN_TRANSIT",
             "shipped_at": _AS_OF - dt.timedelta(days=rng.randrange(8, 60)),
             "origin": "DE-Hamburg", "destination": "US-Boston",
             "declared_value_eur": Decimal(rng.randrange(1_000, 500_000)) / 100}
            for i in range(rng.randrange(0, 3))]
    document = {
        "account": {"source_id": f"account:{account_id}", "account_id": account_id,
                    "name": crm_spelling(number), "industry": "Retail", "country": "DE",
                    "annual_revenue": Decimal("1000000.00"), "tags": "[]"},
        "erp_customers": [],
        "orders_summary": {"count": len(orders), "total": sum((o["total"] for o in orders),
                                                              Decimal(0)),
                           "open": sum(o["status"] != "shipped" for o in orders),
                           "last_ordered_on": orders[0]["ordered_on"] if orders else None},
        "orders": orders, "open_tickets": tickets, "late_shipments": late,
        "counts": {"orders": len(orders), "open_tickets": len(tickets),
                   "late_shipments": len(late)},
        "late_after_days": account_context().constants["late_after_days"],
    }
    provenance = [_provenance("account", account_id, "crm", "accounts")]
    provenance += [_provenance("order", o["order_no"], "erp", "orders") for o in orders]
    provenance += [_provenance("ticket", t["ticket_id"], "crm", "tickets") for t in tickets]
    provenance += [_provenance("shipment", s["shipment_id"], "logistics", "shipments")
                   for s in late]
    return document, provenance


def account_contexts(count: int, seed: int = 7, spec: ContextSpec | None = None,
                     run_id: str = "synthetic") -> pa.Table:
    """``count`` rows of a ``context_account`` table, accounts ``ACC-00001`` onwards,
    trimmed as ``spec`` says (default: the demo's account context)."""
    spec = spec or account_context()
    rng = random.Random(seed)
    rows = []
    for number in range(1, count + 1):
        document, provenance = account_document(number, rng)
        account_id = document["account"]["account_id"]
        rows.append(context_row(account_id, f"party-{number:06d}", document, provenance,
                                spec, _AS_OF, run_id))
    return pa.Table.from_pylist(rows, schema=CONTEXT_SCHEMA)
