"""The pure pieces of model steps and contexts: keys, money, guardrails, trimming."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import threading
import time
from contextlib import nullcontext
from decimal import Decimal
from typing import Literal

import pyarrow as pa
import pydantic
import pytest

import pipelines.models
from connectors import ConfigurationError
from headwater_demo.account_context import account_context
from headwater_demo.account_health import (
    ACCOUNT_HEALTH_PROMPT,
    ACCOUNT_HEALTH_RULES,
    AccountHealth,
    account_health_rules,
)
from headwater_demo.contexts import account_contexts
from pipelines._canonical import canonical_json, content_hash, estimate_tokens
from pipelines.context import ContextSpec, Root, Section, trim_to_budget
from pipelines.models import (
    Budget,
    CompletionRequest,
    LocalRules,
    ModelStep,
    OpenAICompatible,
    OutputRejected,
    Price,
    PriceTable,
    Prompt,
    ProviderError,
    cache_key,
    check_output,
    percentile,
    read_contexts,
    repair_messages,
    strict_json_schema,
)
from pipelines.models._costs import worst_case_prompt_tokens
from pipelines.models._limits import CircuitBreaker, RetryGate, UsageLimiter, window_wait
from pipelines.models._tables import answer_type

KEY_PARTS = ("account_health", "openai", "gpt-x", "https://api.example.com/v1", "v1", "fp",
             "hash")


def test_the_public_surface_is_pinned() -> None:
    assert sorted(pipelines.models.__all__) == sorted([
        "ATTEMPTS_SCHEMA", "CACHE_SCHEMA", "CACHE_TABLE", "ENV_PREFIX", "ERRORS_SCHEMA",
        "REFRESH_CHOICES", "Budget", "CachedAnswer", "Completion", "CompletionRequest",
        "LocalRules", "ModelCache", "ModelRun", "ModelStep", "ModelStepError", "ModelStepFailed",
        "OpenAICompatible", "OutputRejected", "Price", "PriceTable", "Prompt", "Provider",
        "ProviderError", "cache_key", "check_output", "cited_ids", "clear_model_cache",
        "output_schema", "percentile", "read_contexts", "repair_messages", "run_model_step",
        "strict_json_schema"])
    assert all(hasattr(pipelines.models, name) for name in pipelines.models.__all__)


# -- cache keys ---------------------------------------------------------------------------

def test_a_cache_key_is_stable() -> None:
    assert cache_key(*KEY_PARTS) == cache_key(*KEY_PARTS)
    assert len(cache_key(*KEY_PARTS)) == 64


@pytest.mark.parametrize("changed", range(len(KEY_PARTS)))
def test_every_part_of_a_cache_key_changes_it(changed: int) -> None:
    parts = list(KEY_PARTS)
    parts[changed] += "-changed"
    assert cache_key(*parts) != cache_key(*KEY_PARTS)


def test_cache_key_parts_cannot_run_into_each_other() -> None:
    assert cache_key("a", "bc", *KEY_PARTS[2:]) != cache_key("ab", "c", *KEY_PARTS[2:])


# -- prices and budget --------------------------------------------------------------------

def test_a_price_table_prices_exactly_then_by_wildcard() -> None:
    prices = PriceTable({"openai/gpt-x": Price(1.0, 4.0),
                         "vllm/*": {"input_per_1k": 0.5, "output_per_1k": 0.5}})

    assert prices.cost("openai", "gpt-x", 2000, 500) == pytest.approx(2.0 + 2.0)
    assert prices.cost("vllm", "llama", 1000, 1000) == pytest.approx(1.0)
    assert prices.cost("openai", "other", 1000, 1000) == 0.0
    assert prices.price("openai", "other") is None


@pytest.mark.parametrize(("prices", "message"), [
    ({"gpt-x": Price(1, 1)}, "provider/model"),
    ({"openai/gpt-x": {"input_per_1k": -1, "output_per_1k": 0}}, "must not be negative"),
])
def test_a_bad_price_table_names_the_fix(prices, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PriceTable(prices)


def test_a_budget_reserves_the_worst_case_and_settles_the_actual_cost() -> None:
    budget = Budget(1.0)

    assert budget.reserve(0.6)
    assert not budget.reserve(0.6), "reserved money is not there to spend twice"
    budget.settle(0.6, 0.25)
    assert budget.reserve(0.6) and budget.spent == pytest.approx(0.25)
    assert budget.refused == 1
    assert Budget(None).reserve(1e12)


def test_a_budget_shared_by_threads_never_overspends() -> None:
    budget, granted, lock = Budget(100.0), [], threading.Lock()

    def spend() -> None:
        for _ in range(200):
            if budget.reserve(1.0):
                budget.settle(1.0, 1.0)
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100 and budget.spent == pytest.approx(100.0)
    assert budget.refused == 8 * 200 - 100


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        50.0, 95.0, 100.0)
    assert percentile([], 50) == 0.0 and percentile([7.0], 95) == 7.0


# -- guardrails ---------------------------------------------------------------------------

GOOD = {"risk": "low", "summary": "s", "next_action": "a", "cited_sources": ["ticket:1"]}


@pytest.mark.parametrize(("text", "expectation"), [
    (canonical_json(GOOD), nullcontext()),
    ('{"risk": "low", "summary": ', pytest.raises(OutputRejected, match="not valid JSON")),
    (canonical_json({**GOOD, "risk": "dire"}),
     pytest.raises(OutputRejected, match=r"schema \(risk: Input should be 'low'")),
    (canonical_json({k: v for k, v in GOOD.items() if k != "summary"}),
     pytest.raises(OutputRejected, match="summary: Field required")),
    (canonical_json({**GOOD, "mood": "fine"}),
     pytest.raises(OutputRejected, match="mood: Extra inputs are not permitted")),
    (canonical_json({**GOOD, "cited_sources": ["ticket:1", "ticket:404"]}),
     pytest.raises(OutputRejected, match=r"cites 1 source id\(s\) that are not in the context: "
                                         r"\['ticket:404'\]")),
    (canonical_json({**GOOD, "cited_sources": []}),
     pytest.raises(OutputRejected, match="cite at least 1")),
])
def test_an_answer_must_parse_validate_and_cite_real_sources(text, expectation) -> None:
    with expectation:
        answer = check_output(text, AccountHealth, "cited_sources", {"ticket:1", "order:2"})
        assert answer.risk == "low"


def test_a_rejected_answer_is_sent_back_with_what_was_wrong() -> None:
    asked = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]

    repair = repair_messages(asked, "{bad", "the answer is not valid JSON")

    assert repair[:2] == asked and repair[2] == {"role": "assistant", "content": "{bad"}
    assert "rejected: the answer is not valid JSON" in repair[3]["content"]


# -- providers and steps ------------------------------------------------------------------

def request_for(document: dict) -> CompletionRequest:
    return CompletionRequest("ACC-1", [], "account_health", {}, document, 1.0, 100)


def test_local_rules_answer_as_json_and_a_raising_rule_is_a_provider_error() -> None:
    rules = LocalRules(lambda doc: {"b": 1, "a": Decimal("1.50")}, version="r1")
    broken = LocalRules(lambda doc: {}["missing"], version="r2")

    assert rules.complete(request_for({})).text == '{"a":"1.50","b":1}'
    assert (rules.label, rules.paid) == ("local/r1", False)
    with pytest.raises(ProviderError, match="local/r2: the rules raised KeyError"):
        broken.complete(request_for({}))


def test_the_demo_rules_cite_only_what_the_document_holds() -> None:
    document = {"account": {"source_id": "account:A", "name": "Acme"},
                "counts": {"open_tickets": 1, "late_shipments": 3, "orders": 0},
                "open_tickets": [{"source_id": "ticket:1", "priority": "urgent"}],
                "late_shipments": [{"source_id": f"shipment:{n}"} for n in range(3)],
                "orders": [], "orders_summary": {"count": 0, "total": "0"}}

    answer = account_health_rules(document)

    assert answer.risk == "high"
    assert answer.cited_sources == ["account:A", "ticket:1", "shipment:0", "shipment:1",
                                    "shipment:2"]


def step(**changes) -> ModelStep:
    settings = {"name": "account_health", "context": "context_account", "output": AccountHealth,
                "prompt": ACCOUNT_HEALTH_PROMPT, "providers": (ACCOUNT_HEALTH_RULES,), **changes}
    return ModelStep(**settings)


class Clashing(pydantic.BaseModel):
    provider: str
    cited_sources: list[str]


@pytest.mark.parametrize(("changes", "message"), [
    ({"providers": ()}, "must end with LocalRules"),
    ({"name": "Account Health"}, "lower-case letters"),
    ({"citations_field": "sources"}, "needs a list field 'sources'"),
    ({"citations_field": "summary"}, "needs a list field 'summary'"),
    ({"output": Clashing}, r"\['provider'\] clash with lineage columns"),
    ({"concurrency": 0}, "must be positive"),
    ({"max_failure_share": 1.5}, "between 0 and 1"),
])
def test_a_misdeclared_step_names_the_fix(changes, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        step(**changes)


def test_a_budget_needs_a_price_for_every_paid_provider() -> None:
    endpoint = OpenAICompatible("http://127.0.0.1:9/v1", "gpt-x")
    with pytest.raises(ConfigurationError, match=r"price for \['openai/gpt-x'\]"):
        step(providers=(endpoint, ACCOUNT_HEALTH_RULES), budget=1.0)
    priced = step(providers=(endpoint, ACCOUNT_HEALTH_RULES), budget=1.0,
                  prices=PriceTable({"openai/*": Price(1, 1)}))
    assert priced.output_table == "model_account_health"
    endpoint.close()


def test_a_prompt_needs_the_context_placeholder_and_a_version() -> None:
    with pytest.raises(ConfigurationError, match=r"needs \{context\}"):
        Prompt("v1", "system", "no placeholder")
    messages = Prompt("v1", "sys", "Context: {context}").messages('{"a":1}')
    assert messages[1] == {"role": "user", "content": 'Context: {"a":1}'}


def test_a_changed_prompt_text_changes_the_fingerprint() -> None:
    reworded = Prompt(ACCOUNT_HEALTH_PROMPT.version, "Be terse.", ACCOUNT_HEALTH_PROMPT.template)
    assert step().fingerprint != step(prompt=reworded).fingerprint
    assert step().fingerprint == step().fingerprint


@pytest.mark.parametrize(("annotation", "expected"), [
    (str, pa.string()), (int, pa.int64()), (float, pa.float64()), (bool, pa.bool_()),
    (Literal["low", "high"], pa.string()), (int | None, pa.int64()),
    (list[str], pa.string()), (dict[str, int], pa.string()),
])
def test_answer_fields_become_typed_columns_or_json_text(annotation, expected) -> None:
    assert answer_type(annotation) == expected


# -- documents ----------------------------------------------------------------------------

def test_canonical_json_is_sorted_compact_exact_and_utc() -> None:
    value = {"b": Decimal("10.10"), "a": dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(
        dt.timedelta(hours=1))), "c": dt.date(2024, 2, 29), "d": "Łódź"}

    text = canonical_json(value)

    assert text == '{"a":"2024-01-01T00:00:00Z","b":"10.10","c":"2024-02-29","d":"Łódź"}'
    assert content_hash(text) == content_hash(canonical_json(dict(reversed(value.items()))))
    assert estimate_tokens("x" * 9) == 3


def test_trimming_drops_the_last_items_of_each_section_in_priority_order() -> None:
    document = {"head": "h" * 40,
                "orders": [{"source_id": f"order:{n}", "pad": "o" * 40} for n in range(4)],
                "open_tickets": [{"source_id": f"ticket:{n}", "pad": "t" * 40} for n in range(2)]}
    whole = estimate_tokens(canonical_json(document))

    text, trimmed = trim_to_budget(document, whole - 20, ("orders", "open_tickets"))
    assert estimate_tokens(text) <= whole - 20
    assert trimmed == [{"section": "orders", "dropped": 2, "source_ids": ["order:3", "order:2"]}]
    assert len(document["orders"]) == 4, "the caller's document is left alone"

    text, trimmed = trim_to_budget(document, 1, ("open_tickets", "orders"))
    assert [t["section"] for t in trimmed] == ["open_tickets", "orders"]
    assert '"orders":[]' in text and '"open_tickets":[]' in text

    assert trim_to_budget(document, whole, ("orders",)) == (canonical_json(document), [])


_ORDERS = Section("orders", "order", "order_no", ("order_no",), on={"account_id": "account_id"})


@pytest.mark.parametrize(("changes", "expectation"), [
    ({}, nullcontext()),
    ({"priorities": ("orders", "contacts")}, pytest.raises(ConfigurationError, match="contacts")),
    ({"budget": 0}, pytest.raises(ConfigurationError, match="budget must be positive")),
    ({"sections": (_ORDERS, _ORDERS)}, pytest.raises(ConfigurationError, match="twice")),
    ({"sections": (Section("lines", "line", "n", ("n",), via=("orders", {"o": "order_no"})),
                   _ORDERS)},
     pytest.raises(ConfigurationError, match="must be an earlier section")),
    ({"sections": (Section("s", "shipment", "id", ("id",), through_parties=("tms", "c")),)},
     pytest.raises(ConfigurationError, match="root its system in the crosswalk")),
    ({"as_of": "updated_at"}, pytest.raises(ConfigurationError, match=r"entity\.column")),
])
def test_a_context_spec_is_checked_when_declared(changes, expectation) -> None:
    with expectation:
        ContextSpec(**{"name": "account", "root": Root("account", "account_id", ("name",)),
                       "sections": (_ORDERS,), "budget": 100, **changes})


def test_a_section_needs_exactly_one_link() -> None:
    with pytest.raises(ConfigurationError, match=r"exactly one link"):
        Section("orders", "order", "order_no", ("order_no",))
    with pytest.raises(ConfigurationError, match=r"exactly one link.*\(2 given\)"):
        Section("orders", "order", "order_no", ("order_no",), on={"a": "a"},
                through_parties=("erp", "customer_no"))


# -- bounds: circuit breaker, Retry-After, rate limits, worst-case budget -----------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_circuit_opens_after_consecutive_failures_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown=10.0, clock=clock)

    assert not breaker.record(False) and not breaker.record(False)
    assert not breaker.record(True), "a success resets the count"
    assert [breaker.record(False) for _ in range(3)] == [False, False, True]
    assert breaker.admit() == "circuit open" and breaker.openings == 1
    clock.now += 10.0
    assert breaker.admit() is None, "the cooldown is over: one probe"
    assert breaker.admit() == "circuit open", "only one probe at a time"
    assert breaker.record(False) and breaker.admit() == "circuit open", "a failed probe reopens"
    clock.now += 10.0
    assert breaker.admit() is None
    breaker.record(True)
    assert breaker.admit() is None and breaker.admit() is None and not breaker.is_open


def test_a_provider_that_failed_fast_stays_out_for_the_run() -> None:
    breaker = CircuitBreaker(failures=5, cooldown=0.0)

    assert breaker.disable("400: unsupported parameter")
    assert not breaker.disable("another 400"), "the first reason is kept"
    breaker.record(True)
    assert breaker.admit() == "provider failed" and breaker.disabled == "400: unsupported parameter"


def test_a_retry_after_holds_back_until_it_passes_or_refuses_past_the_deadline() -> None:
    clock, abort = FakeClock(), threading.Event()
    gate = RetryGate(clock)
    assert gate.wait(deadline=clock.now + 1, abort=abort), "nothing asked: go at once"
    gate.hold(5.0)
    gate.hold(1.0)  # a shorter wait does not shorten the one in force
    assert not gate.wait(deadline=clock.now + 4.9, abort=abort)
    clock.now += 5.0
    assert gate.wait(deadline=clock.now, abort=abort)


@pytest.mark.parametrize(("recent", "need", "limit", "expected"), [
    ([], 5, 10, 0.0),
    ([(0.0, 6)], 5, 10, 60.0),  # the 6 must leave the window first: at 60 s
    ([(0.0, 4), (30.0, 4)], 5, 10, 60.0),
    ([(0.0, 4), (30.0, 4)], 9, 10, 90.0),  # both must leave
    ([(-61.0, 10)], 10, 10, 0.0),  # outside the window already
    ([], 11, 10, math.inf),  # never fits
])
def test_a_usage_window_says_when_a_request_fits(recent, need, limit, expected) -> None:
    assert window_wait(recent, 0.0, need, limit, 60.0) == expected


def test_a_usage_limiter_refuses_what_cannot_fit_before_the_deadline() -> None:
    clock, abort = FakeClock(), threading.Event()
    limiter = UsageLimiter(rpm=2, tpm=1_000, clock=clock)

    assert limiter.acquire(400, clock.now + 1, abort) == 0.0
    assert limiter.acquire(400, clock.now + 1, abort) == 0.0
    assert limiter.acquire(10, clock.now + 30, abort) is None, "a third request a minute"
    clock.now += 61
    assert limiter.acquire(1_000, clock.now + 1, abort) == 0.0
    assert limiter.acquire(1, clock.now + 1, abort) is None, "no tokens left this minute"
    with pytest.raises(ConfigurationError, match="must be positive"):
        UsageLimiter(rpm=0)


def test_a_reservation_waits_for_requests_in_flight_to_settle_but_never_overspends() -> None:
    budget = Budget(1.0)
    assert budget.reserve(0.6)
    settled = threading.Timer(0.05, budget.settle, args=(0.6, 0.1))
    settled.start()

    assert budget.reserve(0.6, wait_until=time.monotonic() + 5), "fits once the first settles"
    settled.join()
    assert not budget.reserve(0.6, wait_until=time.monotonic() + 5), "0.1 + 0.6 + 0.6 > 1"
    assert budget.spent == pytest.approx(0.1) and budget.reserved == pytest.approx(0.6)
    assert not budget.reserve(0.95, wait_until=time.monotonic() + 5), "can never fit: at once"


def test_the_worst_case_prompt_counts_a_token_per_byte_and_the_template() -> None:
    messages = [{"role": "system", "content": "ab"}, {"role": "user", "content": "é" * 10}]
    assert worst_case_prompt_tokens(messages, schema_bytes=100) == 2 + 20 + 100 + 2 * 16 + 16
    assert worst_case_prompt_tokens(messages) > estimate_tokens("ab" + "é" * 10)


# -- structured output that fits the endpoint ------------------------------------------------

class Inner(pydantic.BaseModel):
    note: str
    weight: int = 1


class Outer(pydantic.BaseModel):
    inner: Inner
    items: list[Inner]
    maybe: str | None = None
    cited_sources: list[str]


def test_a_strict_schema_closes_every_object_and_requires_every_field() -> None:
    schema = strict_json_schema(Outer)

    assert schema["additionalProperties"] is False
    assert schema["required"] == ["inner", "items", "maybe", "cited_sources"]
    inner = schema["$defs"]["Inner"]
    assert inner["additionalProperties"] is False and inner["required"] == ["note", "weight"]
    assert "additionalProperties" not in Outer.model_json_schema(), "the model is left alone"


class Free(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    cited_sources: list[str]


class WithMap(pydantic.BaseModel):
    scores: dict[str, float]
    cited_sources: list[str]


@pytest.mark.parametrize(("model", "field"), [(Free, "Free takes keys"),
                                              (WithMap, "WithMap.scores takes keys")])
def test_a_schema_strict_mode_cannot_express_names_the_field(model, field) -> None:
    with pytest.raises(ConfigurationError, match=field):
        strict_json_schema(model)


LOW = '{"risk": "low", "summary": "s", "next_action": "a", "cited_sources": ["ticket:1"]}'


@pytest.mark.parametrize("text", [
    f"```json\n{LOW}\n```", f"Here it is:\n```JSON\n{LOW}\n```\nAnything else?",
    f"```\n{LOW}```", f"  {LOW}\n", f"```json\n{json.dumps(json.loads(LOW), indent=2)}\n```",
])
def test_a_fenced_answer_is_read_inside_its_fence(text) -> None:
    assert check_output(text, AccountHealth, "cited_sources", {"ticket:1"}).risk == "low"


def test_a_rejection_says_what_kind_it_is() -> None:
    with pytest.raises(OutputRejected) as rejected:
        check_output("no json here", AccountHealth, "cited_sources", {"ticket:1"})
    assert rejected.value.kind == "invalid json"


# -- reading what the model saw -------------------------------------------------------------

def test_the_provenance_a_step_checks_is_the_trimmed_documents() -> None:
    from pipelines.warehouse import DuckDBWarehouse

    table = account_contexts(30, spec=dataclasses.replace(account_context(), budget=350))
    with DuckDBWarehouse() as warehouse:
        warehouse.replace_tables({"context_account": table})
        contexts = {c.context_id: c for c in read_contexts(warehouse, "context_account")}
    trimmed = 0
    for row in table.to_pylist():
        dropped = {sid for cut in json.loads(row["trimmed"]) for sid in cut["source_ids"]}
        whole = {p["source_id"] for p in json.loads(row["provenance"])}
        seen = set(contexts[row["context_id"]].provenance)
        assert seen == whole - dropped
        assert all(sid in row["document"] for sid in seen)
        trimmed += bool(dropped)
    assert trimmed >= 5
