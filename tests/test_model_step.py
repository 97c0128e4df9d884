"""Model steps against a real OpenAI-compatible HTTP server on 127.0.0.1 (the estate's)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time

import pytest
import requests

from connectors import AuthenticationError, ConfigurationError, Retrier, RetryPolicy
from headwater_demo.account_health import (
    ACCOUNT_HEALTH_PROMPT,
    ACCOUNT_HEALTH_RULES,
    AccountHealth,
    account_health_rules,
    account_health_step,
)
from headwater_demo.contexts import account_contexts
from headwater_demo.llm import LLMServer
from pipelines._canonical import canonical_json, content_hash
from pipelines.models import (
    CACHE_TABLE,
    LocalRules,
    ModelStep,
    ModelStepFailed,
    OpenAICompatible,
    Price,
    PriceTable,
    run_model_step,
)
from pipelines.warehouse import DuckDBWarehouse, open_warehouse
from tests.conftest import serve_then_interrupt

API_KEY = "sk-test-0123456789abcdef"
MODEL = "headwater-demo"
CONTEXTS = 6
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
PRICES = PriceTable({f"openai/{MODEL}": Price(input_per_1k=1.0, output_per_1k=2.0)})


@pytest.fixture
def llm():
    with LLMServer(model=MODEL, api_key=API_KEY) as server:
        yield server


@pytest.fixture
def warehouse():
    with DuckDBWarehouse() as wh:
        wh.replace_tables({"context_account": account_contexts(CONTEXTS)})
        yield wh


@pytest.fixture
def endpoint(llm):
    provider = OpenAICompatible(llm.url, MODEL, API_KEY, retry=FAST_RETRY)
    yield provider
    provider.close()


def step_with(*providers, **options) -> ModelStep:
    settings = {"name": "account_health", "context": "context_account", "output": AccountHealth,
                "prompt": ACCOUNT_HEALTH_PROMPT, "providers": providers, "timeout": 2.0,
                "concurrency": 4, "prices": PRICES, "max_failure_share": 0.5,
                "max_fallback_share": 0.5, **options}
    return ModelStep(**settings)


def rows_by_context(warehouse, table: str = "model_account_health") -> dict[str, dict]:
    return {row["context_id"]: row for row in warehouse.read_table(table).to_pylist()}


def provenance_ids(warehouse) -> dict[str, set[str]]:
    return {row["context_id"]: {p["source_id"] for p in json.loads(row["provenance"])}
            for row in warehouse.read_table("context_account").to_pylist()}


def repair_requests(llm: LLMServer) -> list[str]:
    """The repair instructions the server received (last message of a repair request)."""
    return [body["messages"][-1]["content"] for body in llm.received
            if len(body["messages"]) > 2]


# -- answers ------------------------------------------------------------------------------

def test_valid_answers_are_written_with_their_lineage_and_bill(llm, endpoint, warehouse
                                                               ) -> None:
    run = run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES), run_id="r1")

    rows = rows_by_context(warehouse)
    allowed = provenance_ids(warehouse)
    assert llm.requests == CONTEXTS and len(rows) == CONTEXTS
    for context_id, row in rows.items():
        assert (row["provider"], row["model"], row["attempts"]) == ("openai", MODEL, 1)
        assert row["risk"] in {"low", "medium", "high"} and row["summary"]
        cited = json.loads(row["cited"])
        assert cited and {c["source_id"] for c in cited} <= allowed[context_id]
        assert all(c["source_table"].startswith("clean_") and c["source_key"] for c in cited)
        assert row["tokens_in"] > 0 and row["tokens_out"] > 0
        assert row["cost"] == pytest.approx(row["tokens_in"] / 1000 + row["tokens_out"] * 2 / 1000)
        assert row["latency_ms"] > 0 and row["cached"] is False
        assert (row["prompt_version"], row["run_id"]) == ("account-health-v1", "r1")
    assert warehouse.row_count("model_errors_account_health") == 0
    body = llm.received[0]
    assert body["model"] == MODEL and body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["risk"]["enum"] == [
        "low", "medium", "high"]
    metadata = run.metadata()
    assert metadata["rows"] == CONTEXTS and metadata["errors"] == 0
    assert metadata["calls_by_provider"] == {f"openai/{MODEL}": CONTEXTS}
    assert metadata["tokens_in"] == sum(r["tokens_in"] for r in rows.values())
    assert metadata["cost"] == pytest.approx(sum(r["cost"] for r in rows.values()))
    assert 0 < metadata["latency_ms_p50"] <= metadata["latency_ms_p95"]


def test_invalid_json_is_repaired_by_the_same_provider(llm, endpoint, warehouse) -> None:
    llm.faults.invalid_json(1, match="ACC-00001")

    run = run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES), run_id="r1")

    row = rows_by_context(warehouse)["ACC-00001"]
    assert (row["provider"], row["attempts"], row["fallback_reason"]) == ("openai", 2, None)
    assert run.metadata()["repairs"] == 1 and llm.requests == CONTEXTS + 1
    [repair] = repair_requests(llm)
    assert "not valid JSON" in repair


def test_a_schema_violation_twice_falls_back_to_the_next_provider(llm, endpoint, warehouse
                                                                  ) -> None:
    llm.faults.schema_violation(2, match="ACC-00002")

    run = run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES), run_id="r1")

    row = rows_by_context(warehouse)["ACC-00002"]
    assert (row["provider"], row["attempts"], row["fallback_reason"]) == ("local", 3, "schema")
    assert row["output"] == canonical_json(account_health_rules(json.loads(
        warehouse.read_table("context_account").to_pylist()[1]["document"])).model_dump())
    assert "does not match the schema (risk:" in repair_requests(llm)[0]
    assert run.metadata()["fallbacks_for_failure"] == 1 and run.top_reasons() == [("schema", 1)]

    rerun = run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES), run_id="r2")

    assert llm.requests == CONTEXTS + 1, "the rejection is remembered, not paid for again"
    assert rerun.cache_hits == CONTEXTS
    row = rows_by_context(warehouse)["ACC-00002"]
    assert (row["provider"], row["cached"], row["fallback_reason"]) == (
        "local", True, "rejected earlier")


@pytest.mark.parametrize(("count", "provider", "attempts"), [(1, "openai", 2), (2, "local", 3)])
def test_an_invented_citation_is_rejected(llm, endpoint, warehouse, count, provider, attempts
                                          ) -> None:
    llm.faults.invented_citation(count, match="ACC-00003")

    run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES), run_id="r1")

    row = rows_by_context(warehouse)["ACC-00003"]
    assert (row["provider"], row["attempts"]) == (provider, attempts)
    assert "ticket:999999" not in row["output"]
    assert "ticket:999999" in repair_requests(llm)[0]


# -- reliability --------------------------------------------------------------------------

def test_429_retry_after_is_honoured(llm, warehouse) -> None:
    waits: list[float] = []
    retrier = Retrier(FAST_RETRY, on_retry=lambda attempt, exc, delay: waits.append(delay))
    endpoint = OpenAICompatible(llm.url, MODEL, API_KEY, retry=retrier)
    llm.faults.rate_limit(1, retry_after="1")
    started = time.monotonic()

    run = run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES, concurrency=1),
                         run_id="r1")
    elapsed = time.monotonic() - started
    endpoint.close()

    assert waits == [1.0] and 1.0 <= elapsed < 5
    assert run.metadata()["served_by"] == {f"openai/{MODEL}": CONTEXTS}
    assert llm.requests == CONTEXTS + 1


def test_a_call_past_its_timeout_is_retried_then_falls_back(llm, warehouse) -> None:
    endpoint = OpenAICompatible(llm.url, MODEL, API_KEY,
                                retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    llm.faults.slow(2, seconds=1.2, match="ACC-00004")

    run = run_model_step(warehouse, step_with(endpoint, ACCOUNT_HEALTH_RULES, timeout=0.5),
                         run_id="r1")

    row = rows_by_context(warehouse)["ACC-00004"]
    assert (row["provider"], row["fallback_reason"]) == ("local", "timeout")
    assert run.metadata()["retries"] == 1 and llm.requests == CONTEXTS + 1
    assert endpoint.stats["requests"] == CONTEXTS + 1
    assert run.metadata()["provider_failures"] == 2
    endpoint.close()


def test_a_spent_budget_sends_the_remaining_contexts_to_the_fallback(llm, endpoint, warehouse
                                                                     ) -> None:
    # Each call reserves its worst case, about 2.9 (a token per byte of its prompt and
    # schema, plus 512 output tokens, at 1.0 per 1k) and costs about 0.45, so 4.0 pays
    # for some calls and not for all six.
    step = step_with(endpoint, ACCOUNT_HEALTH_RULES, concurrency=1, budget=4.0,
                     prices=PriceTable({f"openai/{MODEL}": Price(1.0, 1.0)}),
                     max_fallback_share=1.0)

    run = run_model_step(warehouse, step, run_id="r1")

    metadata, rows = run.metadata(), rows_by_context(warehouse)
    paid = [r for r in rows.values() if r["provider"] == "openai"]
    by_budget = [r for r in rows.values() if r["fallback_reason"] == "budget"]
    assert paid and by_budget and len(paid) + len(by_budget) == CONTEXTS
    assert all(r["provider"] == "local" for r in by_budget)
    assert metadata["fallbacks_for_budget"] == len(by_budget) == metadata["budget_refused_calls"]
    assert metadata["budget_spent"] == pytest.approx(sum(r["cost"] for r in paid))
    assert metadata["budget_spent"] <= 4.0 and llm.requests == len(paid)

    rerun = run_model_step(warehouse, dataclasses.replace(step, budget=100.0), run_id="r2")

    assert rerun.cache_hits == len(paid), "a budget fallback is asked again with budget"
    assert llm.requests == CONTEXTS
    assert rerun.metadata()["served_by"] == {f"openai/{MODEL}": CONTEXTS}


def test_one_failing_context_goes_to_the_errors_table_and_the_rest_succeed(
        llm, endpoint, warehouse) -> None:
    def rules(document):
        if document["account"]["account_id"] == "ACC-00005":
            raise KeyError("no rule for this account")
        return account_health_rules(document)

    llm.faults.schema_violation(2, match="ACC-00005")
    step = step_with(endpoint, LocalRules(rules, version="flaky-1"))

    run = run_model_step(warehouse, step, run_id="r1")

    [error] = warehouse.read_table("model_errors_account_health").to_pylist()
    assert error["context_id"] == "ACC-00005" and error["attempts"] == 3
    assert "does not match the schema" in error["reason"]
    assert "local/flaky-1: the rules raised KeyError" in error["reason"]
    assert set(rows_by_context(warehouse)) == {f"ACC-{n:05d}" for n in (1, 2, 3, 4, 6)}
    assert run.metadata()["errors"] == 1 and run.failure_share == pytest.approx(1 / 6)


def test_too_many_failures_fail_the_step_after_writing_its_tables(warehouse) -> None:
    def broken(document):
        raise ValueError("rules not written yet")

    step = step_with(LocalRules(broken, version="broken-1"), max_failure_share=0.1)

    with pytest.raises(ModelStepFailed, match=r"6 \(100.0%\) by no provider: more than the 10% "
                       r"of failures allowed .*rules raised \(6\).*model_errors_") as err:
        run_model_step(warehouse, step, run_id="r1")

    assert warehouse.row_count("model_errors_account_health") == CONTEXTS
    assert "model_account_health" not in warehouse.tables(), "no output without success"
    assert err.value.run.metadata()["errors"] == CONTEXTS


def test_a_refused_key_stops_the_step_and_no_key_reaches_a_log(llm, warehouse, caplog) -> None:
    llm.faults.unavailable(1)
    with caplog.at_level(logging.DEBUG):
        good = OpenAICompatible(llm.url, MODEL, API_KEY, retry=FAST_RETRY)
        run_model_step(warehouse, step_with(good, ACCOUNT_HEALTH_RULES), run_id="r1")
        wrong = OpenAICompatible(llm.url, MODEL, "sk-wrong-key-9876543210", retry=FAST_RETRY)
        with pytest.raises(AuthenticationError, match="401"):
            run_model_step(warehouse, step_with(wrong, ACCOUNT_HEALTH_RULES, prompt=dataclasses
                                                .replace(ACCOUNT_HEALTH_PROMPT, version="v2")),
                           run_id="r2")
    good.close()
    wrong.close()

    assert "retry 1 in" in caplog.text
    assert API_KEY not in caplog.text and "sk-wrong-key" not in caplog.text
    tables = [warehouse.read_table(t) for t in warehouse.tables() if t.startswith("model_")]
    assert not any(API_KEY in str(table.to_pylist()) for table in tables)


# -- cache --------------------------------------------------------------------------------

def test_a_rerun_over_unchanged_context_calls_no_model(llm, endpoint, warehouse) -> None:
    step = step_with(endpoint, ACCOUNT_HEALTH_RULES)
    first = run_model_step(warehouse, step, run_id="r1")
    calls = llm.requests

    rerun = run_model_step(warehouse, step, run_id="r2")

    assert calls == CONTEXTS and llm.requests == calls
    metadata = rerun.metadata()
    assert (metadata["cache_hits"], metadata["cache_hit_rate"], metadata["calls"]) == (
        CONTEXTS, 1.0, 0)
    assert metadata["cost"] == 0 and first.metadata()["cost"] > 0
    rows = rows_by_context(warehouse)
    assert all(r["cached"] and r["provider"] == "openai" and r["run_id"] == "r2"
               for r in rows.values())
    assert warehouse.row_count(CACHE_TABLE) == CONTEXTS


def test_a_changed_context_calls_again_for_that_context_only(llm, endpoint, warehouse) -> None:
    step = step_with(endpoint, ACCOUNT_HEALTH_RULES)
    run_model_step(warehouse, step, run_id="r1")
    contexts = warehouse.read_table("context_account")
    rows = contexts.to_pylist()
    document = json.loads(rows[2]["document"])
    document["account"]["name"] = "Renamed Holdings Ltd"
    rows[2]["document"] = canonical_json(document)
    rows[2]["content_hash"] = content_hash(rows[2]["document"])
    warehouse.replace_tables({"context_account": type(contexts).from_pylist(rows,
                                                                           contexts.schema)})

    rerun = run_model_step(warehouse, step, run_id="r2")

    assert llm.requests == CONTEXTS + 1 and "Renamed Holdings" in llm.received[-1]["messages"][1][
        "content"]
    assert [s.context.context_id for s in rerun.served if not s.cached] == ["ACC-00003"]


def test_a_new_prompt_version_calls_again(llm, endpoint, warehouse) -> None:
    step = step_with(endpoint, ACCOUNT_HEALTH_RULES)
    run_model_step(warehouse, step, run_id="r1")
    revised = dataclasses.replace(step, prompt=dataclasses.replace(ACCOUNT_HEALTH_PROMPT,
                                                                   version="account-health-v2"))

    rerun = run_model_step(warehouse, revised, run_id="r2")

    assert llm.requests == 2 * CONTEXTS and rerun.cache_hits == 0
    assert {r["prompt_version"] for r in rows_by_context(warehouse).values()} == {
        "account-health-v2"}
    assert run_model_step(warehouse, step, run_id="r3").cache_hits == CONTEXTS


@pytest.mark.postgres
def test_the_cache_and_tables_work_on_the_postgresql_warehouse(llm, endpoint, pg_db) -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/test?schema={pg_db.schema}"
    step = step_with(endpoint, ACCOUNT_HEALTH_RULES)
    with open_warehouse(url) as warehouse:
        warehouse.replace_tables({"context_account": account_contexts(CONTEXTS)})
        run_model_step(warehouse, step, run_id="r1")
        rerun = run_model_step(warehouse, step, run_id="r2")
        assert warehouse.row_count("model_account_health") == CONTEXTS

    assert rerun.cache_hits == CONTEXTS and llm.requests == CONTEXTS


# -- the demo step and its server ---------------------------------------------------------

def test_the_demo_step_runs_offline_unless_an_endpoint_is_configured(llm, warehouse) -> None:
    offline = account_health_step({})
    configured = account_health_step({
        "HEADWATER_LLM_BASE_URL": llm.url, "HEADWATER_LLM_MODEL": MODEL,
        "HEADWATER_LLM_API_KEY": API_KEY, "HEADWATER_LLM_PRICE_IN_PER_1K": "0.5",
        "HEADWATER_LLM_PRICE_OUT_PER_1K": "1.5", "HEADWATER_LLM_BUDGET": "10"})

    assert offline.providers == (ACCOUNT_HEALTH_RULES,)
    assert run_model_step(warehouse, offline, run_id="r1").metadata()["served_by"] == {
        "local/account-health-rules-1": CONTEXTS}
    assert [p.label for p in configured.providers] == [f"openai/{MODEL}",
                                                       "local/account-health-rules-1"]
    assert configured.budget == 10.0
    assert run_model_step(warehouse, configured, run_id="r2").metadata()["served_by"] == {
        f"openai/{MODEL}": CONTEXTS}
    configured.providers[0].close()


@pytest.mark.parametrize(("environ", "message"), [
    ({"HEADWATER_LLM_BASE_URL": "http://127.0.0.1:1/v1"}, "set HEADWATER_LLM_MODEL"),
    ({"HEADWATER_LLM_BASE_URL": "http://127.0.0.1:1/v1", "HEADWATER_LLM_MODEL": "m",
      "HEADWATER_LLM_BUDGET": "5"}, r"a budget needs a price for \['openai/m'\]"),
    ({"HEADWATER_LLM_BASE_URL": "http://127.0.0.1:1/v1", "HEADWATER_LLM_MODEL": "m",
      "HEADWATER_LLM_BUDGET": "five"}, "HEADWATER_LLM_BUDGET must be a number"),
])
def test_a_misconfigured_endpoint_names_the_fix(environ, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        account_health_step(environ)


def test_an_endpoint_check_lists_the_models_or_names_a_refused_key(llm, endpoint) -> None:
    wrong = OpenAICompatible(llm.url, MODEL, "sk-wrong-key-9876543210", retry=FAST_RETRY)
    elsewhere = OpenAICompatible(llm.url.removesuffix("/v1"), MODEL, API_KEY, retry=FAST_RETRY)

    assert endpoint.check() == [MODEL]
    with pytest.raises(AuthenticationError, match="credentials were refused"):
        wrong.check()
    with pytest.raises(ConfigurationError, match="answered 404"):
        elsewhere.check()
    assert llm.requests == 0, "a check sends no completion"
    wrong.close()
    elsewhere.close()


def test_rules_whose_answer_is_rejected_fail_the_context_without_a_repair(warehouse) -> None:
    def inventive(document):
        return {**account_health_rules(document).model_dump(), "cited_sources": ["order:404"]}

    run = run_model_step(warehouse, step_with(LocalRules(inventive, version="inventive-1"),
                                              max_failure_share=1.0), run_id="r1")

    errors = warehouse.read_table("model_errors_account_health").to_pylist()
    assert len(errors) == CONTEXTS and run.metadata()["repairs"] == 0
    assert all(e["attempts"] == 1 and "['order:404']" in e["reason"] for e in errors)


def test_the_demo_model_endpoint_serves_from_the_command_line_until_interrupted() -> None:
    def probe(banner: list[str]) -> None:
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", banner[0])
        assert url, banner
        models = requests.get(url.group() + "/models", timeout=5,
                              headers={"Authorization": "Bearer sk-test"}).json()
        assert [m["id"] for m in models["data"]] == ["answers-as"]

    run = serve_then_interrupt("headwater_demo.llm", "--port", "0", "--model", "answers-as",
                               "--api-key", "sk-test", banner_lines=2, probe=probe)

    assert run.returncode == 0, run.stderr
    assert run.banner[1] == "model: answers-as\n"
    assert "stopping" in run.stdout
