"""What headwater's model step gains from concurrency, and what its cache serves per second.

Run with no arguments (``make bench``). It starts the demo estate's model endpoint
(``python -m headwater_demo.llm``) in its own process with a fixed 50 ms latency per
completion, makes 1,000 account contexts shaped like the demo's, then, repetitions
interleaved:

- ``headwater``: ``run_model_step`` over the 1,000 contexts into a fresh in-memory
  warehouse (so nothing is cached), ``CONCURRENCY`` contexts in flight, every answer
  validated against the schema and the provenance, written with its lineage;
- ``plain``: a sequential ``requests`` loop sending the same chat-completion requests,
  one after another, parsing each answer's JSON and nothing more.

``concurrency_efficiency`` is the speed-up over the plain loop divided by the ideal
speed-up (the concurrency): 1.0 would mean eight calls in flight cost nothing beyond
the wait. After the timed repetitions the step runs again, ``RERUNS`` times, over the
last warehouse's unchanged contexts: every context is a cache hit and no model is
called.
``cache_hits_per_s`` is the hits divided by the time the run spent in its cache phase
(loading the cache from the warehouse and looking every context up), as the run itself
measures it; the whole rerun, reading the contexts and writing the output tables
included, is printed beside it.

Last, the circuit breaker: the step runs over the 1,000 contexts against a dead endpoint
(a closed port: every connection refused) with the default retry policy and breaker
(``breaker_failures`` consecutive failures). ``dead_endpoint_requests`` is the requests
sent to it, from the run's attempts table (target: at most the breaker threshold plus
the concurrency: the requests already in flight when the circuit opens); ``failover_s``
the seconds from the run's first request to the first context sent on to the rules
with reason ``circuit open``. The step fails then, as it must (every context fell
back), and every context is answered by the rules. The last line is ``RESULT
model_step concurrency_efficiency=<x> cache_hits_per_s=<n> dead_endpoint_requests=<n>
failover_s=<s>``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import interleaved, start_estate_server, verdict

from headwater_demo.account_health import ACCOUNT_HEALTH_PROMPT, ACCOUNT_HEALTH_RULES, AccountHealth
from headwater_demo.contexts import account_contexts
from pipelines.models import ModelStep, ModelStepFailed, OpenAICompatible, run_model_step
from pipelines.warehouse import DuckDBWarehouse

CONTEXTS = 1_000
LATENCY_MS = 50
CONCURRENCY = 8
REPETITIONS = 2
RERUNS = 9
MODEL = "headwater-demo"
MIN_EFFICIENCY = 0.8  # the targets
MIN_CACHE_HITS_PER_S = 50_000


def start_server() -> tuple[subprocess.Popen, str]:
    """The model endpoint in a child process; its base URL from its banner."""
    server, banner = start_estate_server(
        "headwater_demo.llm", ["--port", "0", "--latency-ms", str(LATENCY_MS), "--model", MODEL],
        "LLM API:", "the model endpoint")
    found = re.search(r"LLM API: (\S+)", banner)
    assert found is not None
    return server, found.group(1)


def model_step(url: str) -> ModelStep:
    return ModelStep(name="account_health", context="context_account", output=AccountHealth,
                     prompt=ACCOUNT_HEALTH_PROMPT, concurrency=CONCURRENCY, timeout=30.0,
                     providers=(OpenAICompatible(url, MODEL), ACCOUNT_HEALTH_RULES))


class Headwater:
    """A run over the contexts in a fresh warehouse each time; :meth:`rerun` then runs
    again over the last one, where every context is cached."""

    def __init__(self, step: ModelStep, contexts) -> None:
        self.step, self.contexts = step, contexts
        self.warehouse: DuckDBWarehouse | None = None

    def run(self) -> int:
        self.close()
        self.warehouse = DuckDBWarehouse()
        self.warehouse.replace_tables({"context_account": self.contexts})
        run = run_model_step(self.warehouse, self.step, run_id="bench")
        served = run.metadata()["served_by"]
        if served != {f"openai/{MODEL}": self.contexts.num_rows}:
            raise SystemExit(f"not every context was answered by the endpoint: {served}")
        return run.contexts

    def rerun(self) -> tuple[float, float]:
        """Cache hits per second of the cache phase, and contexts per second of the
        whole rerun."""
        assert self.warehouse is not None, "run first"
        started = time.perf_counter()
        rerun = run_model_step(self.warehouse, self.step, run_id="bench-rerun")
        seconds = time.perf_counter() - started
        if rerun.cache_hits != self.contexts.num_rows or rerun.metadata()["calls"]:
            raise SystemExit("the rerun over unchanged contexts called a model")
        return rerun.cache_hits / rerun.seconds["cache"], self.contexts.num_rows / seconds

    def close(self) -> None:
        if self.warehouse is not None:
            self.warehouse.close()


def dead_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fail_over(contexts) -> tuple[int, float, float, int]:
    """Run the step against a dead endpoint: the requests sent to it, the seconds from
    its first request to the circuit opening, the whole run's seconds, and the breaker
    threshold."""
    step = model_step(f"http://127.0.0.1:{dead_port()}/v1")
    with DuckDBWarehouse() as warehouse:
        warehouse.replace_tables({"context_account": contexts})
        started = time.perf_counter()
        try:
            run_model_step(warehouse, step, run_id="dead")
        except ModelStepFailed as failed:
            run = failed.run
        else:
            raise SystemExit("a run against a dead endpoint did not fail the step")
        seconds = time.perf_counter() - started
        attempts = warehouse.read_table(step.attempts_table).to_pylist()
    step.providers[0].close()
    if run.metadata()["served_by"] != {ACCOUNT_HEALTH_RULES.label: contexts.num_rows}:
        raise SystemExit(f"the rules did not answer every context: {run.metadata()}")
    sent = [a for a in attempts if a["provider"] == "openai" and a["outcome"] != "skipped"]
    opened = min(a["started_at"] for a in attempts if a["reason"] == "circuit open")
    failover = (opened - min(a["started_at"] for a in sent)).total_seconds()
    return len(sent), failover, seconds, step.breaker_failures


def read_plainly(url: str, contexts) -> int:
    """The same requests, sent one after another with a plain session."""
    documents = contexts.column("document").to_pylist()
    schema = AccountHealth.model_json_schema()
    answers = 0
    with requests.Session() as session:
        for document in documents:
            response = session.post(f"{url}/chat/completions", timeout=30, json={
                "model": MODEL, "messages": ACCOUNT_HEALTH_PROMPT.messages(document),
                "temperature": 0, "max_tokens": 512,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "account_health", "schema": schema, "strict": True}}})
            response.raise_for_status()
            json.loads(response.json()["choices"][0]["message"]["content"])
            answers += 1
    return answers


def main() -> None:
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"{CONTEXTS:,} contexts, {LATENCY_MS} ms per completion, concurrency {CONCURRENCY}",
          flush=True)
    server, url = start_server()
    try:
        contexts = account_contexts(CONTEXTS)
        step = model_step(url)
        warm_up = Headwater(step, contexts.slice(0, 50))
        warm_up.run()  # the imports, the connections and the server
        warm_up.close()
        read_plainly(url, contexts.slice(0, 50))
        headwater = Headwater(step, contexts)
        times = interleaved({"headwater": headwater.run,
                             "plain": lambda: read_plainly(url, contexts)},
                            REPETITIONS, CONTEXTS)
        reruns = [headwater.rerun() for _ in range(RERUNS)]
        headwater.close()
        dead_requests, failover_s, dead_run_s, breaker = fail_over(contexts)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours, plain = statistics.median(times["headwater"]), statistics.median(times["plain"])
    efficiency = plain / ours / CONCURRENCY
    cache_rate = statistics.median(rate for rate, _ in reruns)
    rerun_rate = statistics.median(rate for _, rate in reruns)
    print()
    print(f"headwater: median {ours:.2f} s ({CONTEXTS / ours:,.0f} contexts/s); plain "
          f"sequential loop: median {plain:.2f} s; speed-up {plain / ours:.2f}x of an ideal "
          f"{CONCURRENCY}x")
    print(f"target concurrency efficiency >= {MIN_EFFICIENCY}: {efficiency:.3f} -> "
          f"{verdict(efficiency >= MIN_EFFICIENCY)}")
    print(f"cache reruns ({RERUNS}): median {cache_rate:,.0f} hits/s in "
          f"the cache phase; whole rerun (read contexts, look up, write tables) "
          f"{rerun_rate:,.0f} contexts/s")
    print(f"target cache hits >= {MIN_CACHE_HITS_PER_S:,}/s: {cache_rate:,.0f} -> "
          f"{verdict(cache_rate >= MIN_CACHE_HITS_PER_S)}; load average now "
          f"{os.getloadavg()[0]:.2f}")
    print(f"dead endpoint: {dead_requests} requests over {CONTEXTS:,} contexts, circuit open "
          f"after {failover_s:.3f} s, whole run {dead_run_s:.2f} s (every context answered "
          f"by the rules); target requests <= breaker {breaker} + concurrency {CONCURRENCY}: "
          f"{verdict(dead_requests <= breaker + CONCURRENCY)}")
    print(f"RESULT model_step concurrency_efficiency={efficiency:.3f} "
          f"cache_hits_per_s={cache_rate:.0f} dead_endpoint_requests={dead_requests} "
          f"failover_s={failover_s:.3f}")


if __name__ == "__main__":
    main()
