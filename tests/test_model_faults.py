"""A model step against an OpenAI-compatible endpoint that misbehaves, one way at a time.

The endpoint is the estate's real HTTP server on 127.0.0.1 with its faults switched on;
the warehouse a DuckDB file in tmp_path. Each case checks what the endpoint received
(bounded), how long the run took (bounded by the deadlines), what was spent (never past
the budget), what was kept (every paid answer), what the attempts and errors tables
say, and whether the step failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pydantic
import pytest

from connectors import AuthenticationError, ConfigurationError, RetryPolicy
from headwater_demo.account_context import account_context
from headwater_demo.contexts import account_contexts
from headwater_demo.llm import ALWAYS, LLMServer
from pipelines.models import (
    CACHE_TABLE,
    LocalRules,
    ModelStep,
    ModelStepFailed,
    OpenAICompatible,
    Price,
    PriceTable,
    Prompt,
    clear_model_cache,
    run_model_step,
)
from pipelines.warehouse import DuckDBWarehouse

API_KEY = "sk-faults-0123456789abcdef"
MODEL = "fault-1"
CONTEXTS = 40
CONCURRENCY = 4
BREAKER = 3
PRICES = PriceTable({f"openai/{MODEL}": Price(input_per_1k=1.0, output_per_1k=2.0)})
RETRY = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.2, jitter=False)
ROOT = Path(__file__).resolve().parents[1]


class Health(pydantic.BaseModel):
    """The shape the estate's endpoint answers in."""

    model_config = pydantic.ConfigDict(extra="forbid")

    risk: Literal["low", "medium", "high"]
    summary: str
    next_action: str
    cited_sources: list[str]


class LooseHealth(pydantic.BaseModel):
    """A user's model as users write them: no ``extra="forbid"``, a defaulted field."""

    risk: Literal["low", "medium", "high"]
    summary: str
    next_action: str = "none"
    cited_sources: list[str]


PROMPT = Prompt(version="faults-v1", system="Assess the account; answer JSON.",
                template="Context (JSON):\n```json\n{context}\n```\nAssess this account.")


def offline(document: dict) -> dict:
    return {"risk": "low", "summary": "assessed offline", "next_action": "review",
            "cited_sources": [document["account"]["source_id"]]}


RULES = LocalRules(offline, version="faults-rules-1")


def health_step(url: str, **options) -> ModelStep:
    """The step every case runs (also built by the killed child process)."""
    endpoint = OpenAICompatible(url, MODEL, API_KEY, retry=RETRY, connect_timeout=1.0)
    settings = {"name": "health", "context": "context_account", "output": Health,
                "prompt": PROMPT, "providers": (endpoint, RULES), "timeout": 2.0,
                "concurrency": CONCURRENCY, "breaker_failures": BREAKER,
                "breaker_cooldown": 60.0, "prices": PRICES, **options}
    return ModelStep(**settings)


@pytest.fixture
def llm():
    with LLMServer(model=MODEL, api_key=API_KEY) as server:
        yield server


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "faults.duckdb") as wh:
        wh.replace_tables({"context_account": account_contexts(CONTEXTS)})
        yield wh


def timed_run(warehouse, step, run_id="r1", **options):
    """(the run or the ModelStepFailed it raised, seconds)."""
    started = time.monotonic()
    try:
        outcome = run_model_step(warehouse, step, run_id, **options)
    except ModelStepFailed as exc:
        outcome = exc
    finally:
        for provider in step.providers:
            provider.close()
    return outcome, time.monotonic() - started


def attempts(warehouse, run_id="r1") -> list[dict]:
    return [row for row in warehouse.read_table("model_attempts_health").to_pylist()
            if row["run_id"] == run_id]


def reasons(rows: list[dict], outcome: str) -> set[str]:
    return {r["reason"] for r in rows if r["outcome"] == outcome}


def cached_answers(warehouse) -> int:
    if CACHE_TABLE not in warehouse.tables():
        return 0
    return sum(1 for r in warehouse.read_table(CACHE_TABLE).to_pylist()
               if r["step"] == "health" and r["output"] is not None
               and r["provider"] == "openai")


def billed(llm: LLMServer) -> float:
    """What the endpoint billed for the answers it delivered, at the step's prices."""
    return PRICES.cost("openai", MODEL, *llm.billed)


def assert_failed_on(outcome, *expected: str) -> ModelStepFailed:
    assert isinstance(outcome, ModelStepFailed), outcome
    top = dict(outcome.run.top_reasons(5))
    assert set(expected) <= set(top), top
    return outcome


# -- the endpoint refuses or fails every request ------------------------------------------

def test_a_400_fails_the_provider_fast_with_the_endpoints_message(llm, warehouse) -> None:
    message = "Unsupported parameter: 'temperature' is not supported with this model."
    llm.faults.status(400, message, ALWAYS)

    outcome, seconds = timed_run(warehouse, health_step(llm.url))

    failed = assert_failed_on(outcome, "http 400", "provider failed")
    assert "Unsupported parameter: 'temperature'" in failed.message
    assert llm.requests <= CONCURRENCY, "no retry, and no request after the first 400 returned"
    rows = attempts(warehouse)
    sent = [r for r in rows if r["outcome"] == "failed"]
    assert {(r["http_status"], r["reason"]) for r in sent} == {(400, "http 400")}
    assert all("Unsupported parameter" in r["detail"] and r["request_id"] for r in sent)
    assert reasons(rows, "skipped") == {"provider failed"}
    assert "model_health" not in warehouse.tables()
    assert seconds < 5 and failed.run.budget.spent == 0 and billed(llm) == 0


@pytest.mark.parametrize("fault", ["500", "429"])
def test_an_endpoint_failing_every_request_is_cut_off_by_its_circuit(llm, warehouse, fault
                                                                     ) -> None:
    if fault == "500":
        llm.faults.status(500, "The server had an error", ALWAYS)
    else:
        llm.faults.rate_limit(ALWAYS, retry_after="1")

    outcome, seconds = timed_run(warehouse, health_step(llm.url))

    failed = assert_failed_on(outcome, "circuit open")
    assert llm.requests <= BREAKER + CONCURRENCY
    rows = attempts(warehouse)
    assert reasons(rows, "failed") == {f"http {fault}"}
    assert {r["http_status"] for r in rows if r["outcome"] == "failed"} == {int(fault)}
    assert sum(r["reason"] == "circuit open" for r in rows) >= CONTEXTS - BREAKER - CONCURRENCY
    assert failed.run.metadata()["circuits"][f"openai/{MODEL}"]["openings"] == 1
    assert failed.run.metadata()["calls_by_provider"][f"openai/{MODEL}"] == llm.requests, (
        "every request is counted")
    assert seconds < (4 if fault == "500" else 6)
    assert warehouse.row_count("model_errors_health") == 0, "the rules answered the rest"
    assert "model_health" not in warehouse.tables()


def test_a_retry_after_holds_back_every_thread(llm, warehouse) -> None:
    llm.latency_s = 0.05
    llm.faults.rate_limit(1, retry_after="1")

    outcome, seconds = timed_run(warehouse, health_step(llm.url))

    assert outcome.metadata()["served_by"] == {f"openai/{MODEL}": CONTEXTS}
    first = llm.arrivals[0]
    quiet = [t - first for t in llm.arrivals if 0.3 < t - first < 0.9]
    assert quiet == [], "no thread sent a request while the endpoint asked for quiet"
    assert seconds >= 1.0 and llm.requests == CONTEXTS + 1


# -- the endpoint answers, badly ----------------------------------------------------------

@pytest.mark.parametrize(("arm", "reason"), [
    (lambda faults: faults.invalid_json(ALWAYS), "invalid json"),
    (lambda faults: faults.schema_violation(ALWAYS), "schema"),
])
def test_answers_that_never_validate_open_the_circuit_and_fail_the_step(llm, warehouse, arm,
                                                                        reason) -> None:
    arm(llm.faults)

    outcome, seconds = timed_run(warehouse, health_step(llm.url))

    failed = assert_failed_on(outcome, reason, "circuit open")
    assert llm.requests <= BREAKER + CONCURRENCY
    rows = attempts(warehouse)
    assert reasons(rows, "rejected") == {reason}
    assert {r["call"] for r in rows if r["outcome"] == "rejected"} <= {"answer", "repair 1"}
    paid = sum(r["cost"] for r in rows)
    assert paid > 0 and failed.run.budget.spent == pytest.approx(paid)
    assert billed(llm) == pytest.approx(paid), "what we count is what the endpoint billed"
    assert cached_answers(warehouse) == 0 and seconds < 4


def test_a_fenced_answer_is_read_inside_its_fence(llm, warehouse) -> None:
    llm.faults.fenced(ALWAYS)

    outcome, _ = timed_run(warehouse, health_step(llm.url))

    assert outcome.metadata()["served_by"] == {f"openai/{MODEL}": CONTEXTS}
    assert llm.requests == CONTEXTS and outcome.fallbacks == 0
    assert reasons(attempts(warehouse), "accepted") == {None}
    assert warehouse.row_count("model_health") == CONTEXTS


# -- the endpoint is slow -----------------------------------------------------------------

@pytest.mark.parametrize("fault", ["hang", "drip"])
def test_a_slow_endpoint_is_cut_at_the_deadline_and_never_over_the_concurrency(
        llm, warehouse, fault) -> None:
    if fault == "hang":
        llm.faults.slow(ALWAYS, seconds=35)
    else:
        llm.faults.drip(ALWAYS, seconds_per_byte=0.15)

    outcome, seconds = timed_run(warehouse, health_step(llm.url, timeout=1.0))

    assert_failed_on(outcome, "timeout", "circuit open")
    assert seconds < 1.0 * 2 + 1.5, "one wave of timeouts, then the circuit is open"
    assert llm.requests <= BREAKER + CONCURRENCY
    assert llm.max_in_flight <= CONCURRENCY
    deadline = time.monotonic() + 2
    while llm.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert llm.in_flight == 0, "abandoned requests do not keep running at the endpoint"
    rows = attempts(warehouse)
    assert reasons(rows, "failed") == {"timeout"}
    assert all(r["latency_ms"] < 1_300 for r in rows if r["outcome"] == "failed")
    assert billed(llm) == 0


def test_the_run_deadline_ends_the_paid_part_of_a_run(llm, warehouse) -> None:
    llm.faults.slow(ALWAYS, seconds=35)
    step = health_step(llm.url, timeout=30.0, run_deadline=1.0, breaker_failures=100)

    outcome, seconds = timed_run(warehouse, step)

    failed = assert_failed_on(outcome, "run deadline")
    assert seconds < 2.5 and llm.requests <= CONCURRENCY
    assert failed.run.metadata()["served_by"] == {"local/faults-rules-1": CONTEXTS}
    assert {"timeout", "run deadline"} <= reasons(attempts(warehouse), "failed") | reasons(
        attempts(warehouse), "skipped")


# -- nothing paid is lost, nothing wrong is reused ------------------------------------------

def test_a_failed_run_keeps_the_last_good_output_and_its_rejections_do_not_stick(
        llm, warehouse) -> None:
    good, _ = timed_run(warehouse, health_step(llm.url), run_id="good")
    last_good = warehouse.read_table("model_health").to_pylist()
    contexts = warehouse.read_table("context_account").to_pylist()
    changed = [{**row, "content_hash": f"changed-{row['content_hash']}"} for row in contexts]
    warehouse.replace_tables({"context_account": type(warehouse.read_table(
        "context_account")).from_pylist(changed, warehouse.read_table("context_account").schema)})
    llm.faults.invalid_json(ALWAYS)

    broken, _ = timed_run(warehouse, health_step(llm.url), run_id="broken")

    assert_failed_on(broken, "invalid json")
    assert warehouse.read_table("model_health").to_pylist() == last_good
    assert warehouse.row_count("model_errors_health") == 0
    llm.faults.clear()
    asked = llm.requests

    fixed, _ = timed_run(warehouse, health_step(llm.url), run_id="fixed")

    assert fixed.metadata()["served_by"] == {f"openai/{MODEL}": CONTEXTS}
    assert llm.requests - asked == CONTEXTS, "rejections of a failed run are not trusted"
    assert {r["run_id"] for r in warehouse.read_table("model_health").to_pylist()} == {"fixed"}
    assert good.metadata()["rows"] == CONTEXTS


def test_a_rejection_is_remembered_until_refreshed_and_never_served_as_an_answer(
        llm, warehouse) -> None:
    llm.faults.schema_violation(ALWAYS, match="ACC-00007")
    step = health_step(llm.url, max_fallback_share=0.5)
    timed_run(warehouse, step, run_id="r1")
    asked = llm.requests

    again, _ = timed_run(warehouse, health_step(llm.url, max_fallback_share=0.5), run_id="r2")

    assert llm.requests == asked and again.cache_hits == CONTEXTS
    row = next(r for r in warehouse.read_table("model_health").to_pylist()
               if r["context_id"] == "ACC-00007")
    assert (row["provider"], row["fallback_reason"]) == ("local", "rejected earlier")
    revised = LocalRules(offline, version="faults-rules-2")
    step = health_step(llm.url, max_fallback_share=0.5)
    timed_run(warehouse, dataclasses.replace(step, providers=(step.providers[0], revised)),
              run_id="r2b")
    assert llm.requests == asked, "new rules are asked, the endpoint is still passed over"
    assert [(r["provider"], r["outcome"], r["reason"]) for r in attempts(warehouse, "r2b")] == [
        ("openai", "skipped", "rejected earlier"), ("local", "accepted", None)]
    llm.faults.clear()

    refreshed, _ = timed_run(warehouse, health_step(llm.url, max_fallback_share=0.5),
                             run_id="r3", refresh="fallbacks")

    assert llm.requests == asked + 1 and refreshed.fallbacks == 0
    assert clear_model_cache(warehouse, "health") == CONTEXTS + 2  # and two rules' answers
    everything, _ = timed_run(warehouse, health_step(llm.url), run_id="r4", refresh="all")
    assert llm.requests == asked + 1 + CONTEXTS and everything.cache_hits == 0


def test_a_cached_answer_is_only_served_for_the_endpoint_that_gave_it(llm, warehouse) -> None:
    timed_run(warehouse, health_step(llm.url), run_id="r1")
    with LLMServer(model=MODEL, api_key=API_KEY) as elsewhere:
        moved, _ = timed_run(warehouse, health_step(elsewhere.url), run_id="r2")
        assert elsewhere.requests == CONTEXTS and moved.cache_hits == 0

    dead, _ = timed_run(warehouse, health_step("http://127.0.0.1:9/v1",
                                               max_fallback_share=1.0), run_id="r3")

    assert dead.cache_hits == 0, "a dead endpoint is not answered from another's cache"
    assert dead.metadata()["served_by"] == {"local/faults-rules-1": CONTEXTS}
    assert reasons(attempts(warehouse, "r3"), "failed") == {"connection"}


def test_a_key_revoked_mid_run_keeps_every_answer_paid_for(llm, warehouse) -> None:
    llm.faults.status(401, "Incorrect API key provided", ALWAYS, after=10)

    with pytest.raises(AuthenticationError, match="401"):
        run_model_step(warehouse, health_step(llm.url), "revoked")

    rows = attempts(warehouse, "revoked")
    accepted = [r for r in rows if r["outcome"] == "accepted" and r["provider"] == "openai"]
    assert llm.delivered == 10 and len(accepted) == cached_answers(warehouse) == 10, (
        "every answer delivered was kept")
    assert {r["http_status"] for r in rows if r["outcome"] == "failed"} == {401}
    assert sum(r["cost"] for r in rows) == pytest.approx(billed(llm))
    assert "model_health" not in warehouse.tables()
    llm.faults.clear()
    asked = llm.requests

    rerun, _ = timed_run(warehouse, health_step(llm.url), run_id="rerun")

    assert rerun.cache_hits == 10 and rerun.fallbacks == 0
    assert llm.requests - asked == CONTEXTS - 10, "only the rest is asked for"
    assert warehouse.row_count("model_health") == CONTEXTS


@pytest.mark.slow
def test_a_run_killed_mid_way_keeps_its_answers_and_the_rerun_asks_only_for_the_rest(
        tmp_path) -> None:
    path = tmp_path / "killed.duckdb"
    with DuckDBWarehouse(path) as wh:
        wh.replace_tables({"context_account": account_contexts(CONTEXTS)})
    with LLMServer(model=MODEL, api_key=API_KEY, latency_ms=200) as llm:
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import sys; from tests.test_model_faults import health_step; "
             "from pipelines.models import run_model_step; "
             "from pipelines.warehouse import DuckDBWarehouse; "
             "run_model_step(DuckDBWarehouse(sys.argv[1]), health_step(sys.argv[2]), 'killed')",
             str(path), llm.url], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while llm.delivered < CONTEXTS // 2 and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        delivered, asked = llm.delivered, llm.requests

        with DuckDBWarehouse(path) as wh:
            kept = cached_answers(wh)
            accepted = [r for r in wh.read_table("model_attempts_health").to_pylist()
                        if r["outcome"] == "accepted" and r["provider"] == "openai"]
            # Lost: only what arrived after the last write (the answers being read,
            # validated or written when the signal came), never what was written.
            assert len(accepted) <= kept <= delivered
            assert kept >= delivered - 2 * CONCURRENCY
            assert "model_health" not in wh.tables()
            rerun, _ = timed_run(wh, health_step(llm.url), run_id="rerun")
            assert rerun.cache_hits == kept
            assert llm.requests - asked == CONTEXTS - kept, "only the rest is asked for"
            assert wh.row_count("model_health") == CONTEXTS
            assert {r["run_id"] for r in wh.read_table("model_attempts_health").to_pylist()} == {
                "killed", "rerun"}


# -- money --------------------------------------------------------------------------------

def test_a_budget_is_never_passed_even_by_worst_case_usage(llm, warehouse) -> None:
    llm.faults.usage(ALWAYS)  # every answer billed at the most its request could cost
    step = health_step(llm.url, budget=10.0, max_fallback_share=1.0)

    outcome, _ = timed_run(warehouse, step)

    spent = outcome.metadata()["budget_spent"]
    assert 0 < spent <= 10.0 and billed(llm) <= 10.0
    assert billed(llm) == pytest.approx(spent)
    paid = outcome.metadata()["served_by"][f"openai/{MODEL}"]
    assert paid == llm.delivered and paid < CONTEXTS
    rows = attempts(warehouse)
    assert reasons(rows, "skipped") == {"budget"}
    assert sum(r["cost"] for r in rows) == pytest.approx(spent)
    assert outcome.metadata()["fallbacks_for_budget"] == CONTEXTS - paid

    daily = health_step(llm.url, daily_budget=spent + 0.5, max_fallback_share=1.0)
    asked = llm.requests
    today, _ = timed_run(warehouse, daily, run_id="r2", refresh="all")
    assert llm.requests == asked, "today's budget was spent by the run before"
    assert today.metadata()["budget_day_spent_before"] == pytest.approx(spent)
    assert today.budget.limit == pytest.approx(0.5)


def test_an_endpoint_billing_past_the_worst_case_is_stopped_at_its_first_answer(
        llm, warehouse) -> None:
    llm.faults.usage(ALWAYS, prompt_tokens=1_000_000)
    step = health_step(llm.url, budget=5_000.0, concurrency=1, max_fallback_share=1.0)

    outcome, _ = timed_run(warehouse, step)

    assert llm.requests == 1
    circuit = outcome.metadata()["circuits"][f"openai/{MODEL}"]
    assert "usage counts cannot be right" in circuit["failed"]
    assert reasons(attempts(warehouse), "skipped") == {"provider failed"}


# -- what the model saw, and what the endpoint accepts --------------------------------------

def test_an_answer_citing_a_row_trimmed_out_of_the_prompt_is_rejected(llm, tmp_path) -> None:
    contexts = account_contexts(CONTEXTS, spec=dataclasses.replace(account_context(), budget=350))
    trimmed = {row["context_id"]: json.loads(row["trimmed"])[0]["source_ids"][0]
               for row in contexts.to_pylist() if row["trimmed"] != "[]"}
    assert len(trimmed) >= 5
    for context_id, source_id in trimmed.items():
        llm.faults.invented_citation(ALWAYS, match=f'"{context_id}"', ids=[source_id])
    with DuckDBWarehouse(tmp_path / "trimmed.duckdb") as warehouse:
        warehouse.replace_tables({"context_account": contexts})

        outcome, _ = timed_run(warehouse, health_step(llm.url, breaker_failures=1_000,
                                                      max_fallback_share=1.0))

        rows = {r["context_id"]: r for r in warehouse.read_table("model_health").to_pylist()}
        provenance = {r["context_id"]: r["provenance"] for r in contexts.to_pylist()}
        for context_id, source_id in trimmed.items():
            assert source_id in provenance[context_id], "in the untrimmed provenance"
            assert rows[context_id]["provider"] == "local"
            assert rows[context_id]["fallback_reason"] == "citation"
            assert source_id not in rows[context_id]["output"]
        assert outcome.fallbacks == len(trimmed)
        rejected = [r for r in attempts(warehouse) if r["outcome"] == "rejected"]
        assert len(rejected) == 2 * len(trimmed) and reasons(rejected, "rejected") == {
            "citation"}


def test_a_users_model_without_extra_forbid_fits_a_strict_endpoint(tmp_path) -> None:
    with LLMServer(model=MODEL, api_key=API_KEY, strict_schemas=True) as llm, \
            DuckDBWarehouse(tmp_path / "strict.duckdb") as warehouse:
        warehouse.replace_tables({"context_account": account_contexts(CONTEXTS)})
        step = health_step(llm.url, output=LooseHealth)

        outcome, _ = timed_run(warehouse, step)

        assert outcome.metadata()["served_by"] == {f"openai/{MODEL}": CONTEXTS}
        sent = llm.received[0]["response_format"]["json_schema"]["schema"]
        assert sent["additionalProperties"] is False
        assert sorted(sent["required"]) == sorted(LooseHealth.model_fields)
        # Sent as pydantic writes it, the strict endpoint refuses the schema outright.
        raw = OpenAICompatible(llm.url, MODEL, API_KEY)
        response = raw._client.session.post(f"{llm.url}/chat/completions", timeout=5, json={
            "model": MODEL, "messages": [{"role": "user", "content": "{}"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "health", "schema": LooseHealth.model_json_schema(), "strict": True}}},
            headers={"Authorization": f"Bearer {API_KEY}"})
        raw.close()
        assert response.status_code == 400 and "additionalProperties" in response.text


class Tagged(pydantic.BaseModel):
    risk: str
    tags: dict[str, str]
    cited_sources: list[str]


def test_an_output_model_strict_mode_cannot_express_is_refused_at_declaration() -> None:
    endpoint = OpenAICompatible("http://127.0.0.1:9/v1", MODEL)
    with pytest.raises(ConfigurationError, match=r"Tagged\.tags takes keys beyond its declared"):
        ModelStep(name="tagged", context="context_account", output=Tagged, prompt=PROMPT,
                  providers=(endpoint, RULES))
    lenient = OpenAICompatible("http://127.0.0.1:9/v1", MODEL, strict=False)
    step = ModelStep(name="tagged", context="context_account", output=Tagged, prompt=PROMPT,
                     providers=(lenient, RULES))
    assert step.json_schema["properties"]["tags"]["additionalProperties"] == {"type": "string"}
    endpoint.close()
    lenient.close()
