"""The demo estate's model step: the health of each customer account.

``account_health`` reads ``context_account`` (declared in ``demo.toml``)
and answers :class:`AccountHealth`. It runs offline by default, answered by
:data:`ACCOUNT_HEALTH_RULES`; with ``HEADWATER_LLM_BASE_URL`` and ``HEADWATER_LLM_MODEL``
set (``HEADWATER_LLM_API_KEY`` too if the endpoint needs one) an OpenAI-compatible
endpoint answers first and the rules are the fallback. ``HEADWATER_LLM_PRICE_IN_PER_1K``
and ``HEADWATER_LLM_PRICE_OUT_PER_1K`` price its tokens and ``HEADWATER_LLM_BUDGET`` caps
what one run may spend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import pydantic

from connectors import ConfigurationError
from pipelines.models import (
    ENV_PREFIX,
    LocalRules,
    ModelStep,
    OpenAICompatible,
    Price,
    PriceTable,
    Prompt,
    Provider,
)

from .account_context import ACCOUNT_CONTEXT_TABLE

_PRESSING_PRIORITIES = ("urgent", "high")
_MAX_CITED_PER_SECTION = 3


class AccountHealth(pydantic.BaseModel):
    """How healthy one customer account is, and what to do about it."""

    model_config = pydantic.ConfigDict(extra="forbid")

    risk: Literal["low", "medium", "high"] = pydantic.Field(
        description="risk that the account is unhappy or at risk of leaving")
    summary: str = pydantic.Field(description="two sentences at most, facts from the context")
    next_action: str = pydantic.Field(description="one concrete step for the account manager")
    cited_sources: list[str] = pydantic.Field(
        description="source_id values of the context records the answer rests on")


ACCOUNT_HEALTH_PROMPT = Prompt(
    version="account-health-v1",
    system=("You assess the health of a B2B customer account for its account manager. Use "
            "only facts in the context. Answer with a JSON object: risk (low, medium or "
            "high), summary (two sentences at most), next_action (one concrete step) and "
            "cited_sources (the source_id values of the records your answer rests on; cite "
            "only source_id values that appear in the context)."),
    template="Context (JSON):\n```json\n{context}\n```\nAssess this account.",
)


def account_health_rules(document: Mapping[str, Any]) -> AccountHealth:
    """The offline assessment: risk from open tickets, late shipments and pressing
    tickets; cites the account and the records that drove the verdict."""
    counts = document["counts"]
    tickets, late = document["open_tickets"], document["late_shipments"]
    pressing = [t for t in tickets if t["priority"] in _PRESSING_PRIORITIES]
    opened, overdue = counts["open_tickets"], counts["late_shipments"]
    if overdue >= 3 or opened >= 5 or (pressing and overdue):
        risk = "high"
        action = ("Call the account today: review the late shipments with logistics and "
                  "escalate the pressing tickets.")
    elif overdue or opened >= 2 or pressing:
        risk = "medium"
        action = "Follow up on the open tickets and late shipments this week."
    else:
        risk = "low"
        action = "No action needed; review at the next quarterly check-in."
    orders = document["orders_summary"]
    name = document["account"]["name"]
    summary = (f"{name} has {opened} open ticket(s), {len(pressing)} of them urgent or high "
               f"among those listed, and {overdue} late shipment(s). It placed "
               f"{orders['count']} order(s) totalling {Decimal(str(orders['total'] or 0)):,.2f}.")
    cited = [document["account"]["source_id"],
             *(t["source_id"] for t in (pressing or tickets)[:_MAX_CITED_PER_SECTION]),
             *(s["source_id"] for s in late[:_MAX_CITED_PER_SECTION]),
             *(o["source_id"] for o in document["orders"][:1])]
    return AccountHealth(risk=risk, summary=summary, next_action=action, cited_sources=cited)


ACCOUNT_HEALTH_RULES = LocalRules(account_health_rules, version="account-health-rules-1")


def account_health_step(environ: Mapping[str, str] | None = None, **options: Any) -> ModelStep:
    """The demo step as the environment configures it (see the module docstring);
    ``options`` override any other :class:`ModelStep` field (``concurrency=16``)."""
    environ = os.environ if environ is None else environ
    providers: tuple[Provider, ...] = (ACCOUNT_HEALTH_RULES,)
    prices, budget = PriceTable(), None
    if environ.get(f"{ENV_PREFIX}BASE_URL"):
        endpoint = OpenAICompatible.from_env(environ)
        providers = (endpoint, ACCOUNT_HEALTH_RULES)
        price_in = _number(environ, "PRICE_IN_PER_1K")
        price_out = _number(environ, "PRICE_OUT_PER_1K")
        if price_in is not None or price_out is not None:
            prices = PriceTable({endpoint.label: Price(price_in or 0.0, price_out or 0.0)})
        budget = _number(environ, "BUDGET")
    # What each answer field is read from (the rules and the prompt use these).
    verdict = ("counts.open_tickets", "counts.late_shipments", "open_tickets.priority")
    lineage = {"risk": verdict, "next_action": verdict,
               "summary": ("account.name", *verdict, "orders_summary.count",
                           "orders_summary.total"),
               "cited_sources": ("account.account_id", "open_tickets.ticket_id",
                                 "late_shipments.shipment_id", "orders.order_no")}
    settings: dict[str, Any] = {
        "name": "account_health", "context": ACCOUNT_CONTEXT_TABLE, "output": AccountHealth,
        "prompt": ACCOUNT_HEALTH_PROMPT, "providers": providers, "timeout": 30.0,
        "concurrency": 8, "budget": budget, "prices": prices, "max_failure_share": 0.05,
        "field_lineage": lineage,
        **options}
    return ModelStep(**settings)


def _number(environ: Mapping[str, str], name: str) -> float | None:
    text = environ.get(f"{ENV_PREFIX}{name}")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"{ENV_PREFIX}{name} must be a number, got {text!r}") from None
