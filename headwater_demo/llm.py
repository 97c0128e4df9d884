"""A model endpoint for the demo estate: OpenAI's chat-completions protocol, on loopback.

:class:`LLMServer` answers ``POST /v1/chat/completions`` and ``GET /v1/models`` the way
OpenAI-compatible servers do (vLLM, Ollama, llama.cpp), deterministically: it reads the
context document embedded in the user message (a fenced ``json`` block), assesses it
from its counts of open tickets and late shipments, and cites the first ``source_id``
values it finds, so its answers validate against the demo's ``account_health`` schema
and provenance. Responses carry ``usage`` counts (four characters a token). With
``api_key`` set, requests without ``Authorization: Bearer <key>`` get 401.

:class:`Faults` makes the next completions misbehave the ways models and busy APIs do:
invalid JSON, an answer breaking the schema, an invented citation, 429 with
``Retry-After``, 503, or a slow answer. ``latency_ms`` delays every completion (the
benchmark uses 50 ms). ``python -m headwater_demo.llm --port 0`` serves it standalone
and prints its base URL.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from ._shared import Counter, EstateServer, FaultSwitchboard, serve_until_interrupted

__all__ = ["DEFAULT_MODEL", "Faults", "LLMServer", "assess", "main"]

DEFAULT_MODEL = "headwater-demo"
_COMPLETIONS = "/v1/chat/completions"
_MODELS = "/v1/models"
_FENCE = "```json\n"
_CHARS_PER_TOKEN = 4
_CITED = 3

_FaultKind = Literal["invalid_json", "schema_violation", "invented_citation", "rate_limit",
                     "unavailable", "slow"]


@dataclass
class _Fault:
    kind: _FaultKind
    remaining: int
    match: str | None
    retry_after: str = "1"
    seconds: float = 0.0


class Faults(FaultSwitchboard[_Fault]):
    """Switches that make the next completions fail; safe to flip from any thread.

    Each switch arms a fault for the next ``count`` completions whose messages contain
    ``match`` (any completion without it). A completion takes the earliest armed fault
    that matches it, so faults armed one after another happen in that order.
    """

    def invalid_json(self, count: int = 1, *, match: str | None = None) -> None:
        """Answer 200 with content that is not JSON (a truncated object)."""
        self.arm(_Fault("invalid_json", count, match))

    def schema_violation(self, count: int = 1, *, match: str | None = None) -> None:
        """Answer JSON that breaks the schema (a risk level it does not allow)."""
        self.arm(_Fault("schema_violation", count, match))

    def invented_citation(self, count: int = 1, *, match: str | None = None) -> None:
        """Answer valid JSON citing a source id that is not in the context."""
        self.arm(_Fault("invented_citation", count, match))

    def rate_limit(self, count: int = 1, retry_after: str = "1", *,
                   match: str | None = None) -> None:
        """Answer 429 with ``Retry-After`` sent verbatim."""
        self.arm(_Fault("rate_limit", count, match, retry_after=retry_after))

    def unavailable(self, count: int = 1, *, match: str | None = None) -> None:
        """Answer 503, as an overloaded inference server does."""
        self.arm(_Fault("unavailable", count, match))

    def slow(self, count: int = 1, seconds: float = 2.0, *, match: str | None = None) -> None:
        """Sleep ``seconds`` before answering normally (past a client's timeout)."""
        self.arm(_Fault("slow", count, match, seconds=seconds))

    def take(self, text: str) -> _Fault | None:
        """The fault a completion whose messages read ``text`` suffers, counted off."""
        return self._take(lambda fault: fault.match is None or fault.match in text)


def _source_ids(value: Any) -> Iterator[str]:
    """Every ``source_id`` in a document, in document order."""
    if isinstance(value, dict):
        if isinstance(value.get("source_id"), str):
            yield value["source_id"]
        for item in value.values():
            yield from _source_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _source_ids(item)


def assess(document: dict[str, Any]) -> dict[str, Any]:
    """The server's answer to one context document: risk from its counts, citing the
    first source ids it holds."""
    counts = document.get("counts") or {}
    opened, late = int(counts.get("open_tickets", 0)), int(counts.get("late_shipments", 0))
    score = opened + 2 * late
    risk = "high" if score >= 6 else "medium" if score >= 2 else "low"
    actions = {"high": "Escalate to the account director and call the customer this week.",
               "medium": "Review the open tickets and late shipments with the team.",
               "low": "Keep the regular cadence."}
    return {"risk": risk,
            "summary": f"{opened} open tickets and {late} late shipments weigh on the account.",
            "next_action": actions[risk], "cited_sources": list(_source_ids(document))[:_CITED]}


def _document(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The context document of the first user message: its fenced JSON block, else the
    outermost braces."""
    text = next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")
    start = text.find(_FENCE)
    if start >= 0:
        start += len(_FENCE)
        end = text.find("\n```", start)
    else:
        start, end = text.find("{"), text.rfind("}") + 1
    try:
        return json.loads(text[start:end])
    except ValueError:
        return {}


def _tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


@dataclass
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


def _json(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> _Response:
    return _Response(status, json.dumps(payload).encode("utf-8"),
                     [("Content-Type", "application/json"), *headers])


def _error(status: int, message: str, kind: str) -> _Response:
    return _json(status, {"error": {"message": message, "type": kind}})


class LLMServer(EstateServer):
    """The demo model endpoint on a local port; see the module docstring.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. :attr:`url` is
    the base URL clients configure (``http://127.0.0.1:<port>/v1``).
    """

    name = "LLM"
    path = "/v1"


    def __init__(self, model: str = DEFAULT_MODEL, latency_ms: float = 0.0,
                 api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {latency_ms}")
        self.model, self.latency_s, self.api_key = model, latency_ms / 1000, api_key
        self.faults = Faults()
        self._completions = Counter()
        self._ids = itertools.count(1)  # next() on a count is atomic under the GIL
        #: The latest completion request bodies, oldest first (for tests to inspect).
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)
        super().__init__(host, port)

    @property
    def requests(self) -> int:
        """Completion requests so far, whatever their outcome, faulted ones included."""
        return self._completions.value

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        response = self._route(environ)
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [response.body]

    def _route(self, environ: dict[str, Any]) -> _Response:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path not in (_COMPLETIONS, _MODELS):
            return _error(404, f"no route {path}", "not_found")
        if self.api_key and environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided", "invalid_request_error")
        if path == _MODELS:
            return _json(200, {"object": "list", "data": [
                {"id": self.model, "object": "model", "owned_by": "headwater"}]})
        if method != "POST":
            return _error(405, "use POST", "invalid_request_error")
        self._completions.increment()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"null")
            messages = list(body["messages"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "the body must be JSON with a messages list",
                          "invalid_request_error")
        self.received.append(body)
        if self.latency_s:
            time.sleep(self.latency_s)
        return self._complete(messages)

    def _complete(self, messages: list[dict[str, Any]]) -> _Response:
        text = "".join(str(m.get("content", "")) for m in messages)
        fault = self.faults.take(text)
        if fault is not None and fault.kind == "rate_limit":
            return _json(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                         [("Retry-After", fault.retry_after)])
        if fault is not None and fault.kind == "unavailable":
            return _error(503, "The server is overloaded", "server_error")
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        answer = assess(_document(messages))
        if fault is not None and fault.kind == "schema_violation":
            answer = {**answer, "risk": "catastrophic", "next_action": None}
        if fault is not None and fault.kind == "invented_citation":
            answer = {**answer, "cited_sources": [*answer["cited_sources"], "ticket:999999"]}
        content = json.dumps(answer)
        if fault is not None and fault.kind == "invalid_json":
            content = content[: len(content) // 2]
        return _json(200, {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion",
            "created": int(time.time()), "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": _tokens(text), "completion_tokens": _tokens(content),
                      "total_tokens": _tokens(text) + _tokens(content)},
        })


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo model endpoint until Ctrl-C, printing its base URL."""
    parser = argparse.ArgumentParser(description="Serve the legacy estate's demo model "
                                     "endpoint (OpenAI-compatible chat completions).")
    parser.add_argument("--port", type=int, default=8766, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay added to every completion, in milliseconds")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name it answers as")
    parser.add_argument("--api-key", help="require this bearer key")
    args = parser.parse_args(argv)
    with LLMServer(model=args.model, latency_ms=args.latency_ms, api_key=args.api_key,
                   port=args.port) as server:
        print(f"LLM API: {server.url}", flush=True)
        print(f"model: {server.model}", flush=True)
        serve_until_interrupted()


if __name__ == "__main__":
    main()
