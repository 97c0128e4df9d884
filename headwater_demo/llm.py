"""A model endpoint for the demo estate: OpenAI's chat-completions protocol, on loopback.

:class:`LLMServer` answers ``POST /v1/chat/completions`` and ``GET /v1/models`` the way
OpenAI-compatible servers do (vLLM, Ollama, llama.cpp), deterministically: it reads the
context document embedded in the user message (a fenced ``json`` block), assesses it
from its counts of open tickets and late shipments, and cites the first ``source_id``
values it finds, so its answers validate against the demo's ``account_health`` schema
and provenance. Responses carry ``usage`` counts (four characters a token). With
``api_key`` set, requests without ``Authorization: Bearer <key>`` get 401.

:class:`Faults` makes the next completions misbehave the ways models and busy APIs do:
invalid JSON, an answer breaking the schema, citations of sources the model was not
shown, an answer in a Markdown fence, any HTTP error status (400 "unsupported
parameter", 401 after some successes, 429 with ``Retry-After``, 500, 503), a hang, a body
dripped a byte at a time, or ``usage`` counts of the server's choosing; ``count=ALWAYS``
keeps a fault on. Like inference servers, it stops a hanging or dripping answer when the
client goes away. ``strict_schemas=True`` refuses, as OpenAI does, a strict
``response_format`` schema whose objects are not closed. The server counts what it was
sent (:attr:`LLMServer.requests`), what it had in flight at most
(:attr:`LLMServer.max_in_flight`) and the tokens it billed (:attr:`LLMServer.billed`).
``latency_ms`` delays every completion (the benchmark uses 50 ms).
``python -m headwater_demo.llm --port 0`` serves it standalone and prints its base URL.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from ._shared import Counter, EstateServer, FaultSwitchboard, QuietHandler, serve_until_interrupted

__all__ = ["ALWAYS", "DEFAULT_MODEL", "Faults", "LLMServer", "assess", "main"]

#: A fault count that never runs out.
ALWAYS = 10**9

DEFAULT_MODEL = "headwater-demo"
_COMPLETIONS = "/v1/chat/completions"
_MODELS = "/v1/models"
_FENCE = "```json\n"
_CHARS_PER_TOKEN = 4
_CITED = 3

_POLL_S = 0.02  # how often a hanging or dripping answer looks for its client
_FaultKind = Literal["invalid_json", "schema_violation", "invented_citation", "rate_limit",
                     "unavailable", "slow", "status", "fenced", "drip", "usage"]


@dataclass
class _Fault:
    kind: _FaultKind
    remaining: int
    match: str | None
    retry_after: str | None = "1"
    seconds: float = 0.0
    after: int = 0  # matching completions let through before the fault starts
    status: int = 500
    message: str = ""
    ids: tuple[str, ...] = ()
    usage: tuple[int | None, int | None] = (None, None)


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

    def invented_citation(self, count: int = 1, *, match: str | None = None,
                          ids: Sequence[str] = ("ticket:999999",)) -> None:
        """Answer valid JSON that also cites ``ids`` (by default one that is in no
        context; give ids trimmed out of a document to cite what the model was not shown)."""
        self.arm(_Fault("invented_citation", count, match, ids=tuple(ids)))

    def rate_limit(self, count: int = 1, retry_after: str = "1", *,
                   match: str | None = None) -> None:
        """Answer 429 with ``Retry-After`` sent verbatim."""
        self.arm(_Fault("rate_limit", count, match, retry_after=retry_after))

    def unavailable(self, count: int = 1, *, match: str | None = None) -> None:
        """Answer 503, as an overloaded inference server does."""
        self.arm(_Fault("unavailable", count, match))

    def slow(self, count: int = 1, seconds: float = 2.0, *, match: str | None = None) -> None:
        """Hang ``seconds`` before answering normally (past a client's timeout); stop if
        the client goes away meanwhile."""
        self.arm(_Fault("slow", count, match, seconds=seconds))

    def status(self, status: int, message: str, count: int = 1, *, match: str | None = None,
               retry_after: str | None = None, after: int = 0) -> None:
        """Answer ``status`` with OpenAI's error body carrying ``message`` (and
        ``Retry-After`` if given), after letting ``after`` completions through: a 400
        "Unsupported parameter", a 500, a 401 once a key is revoked."""
        self.arm(_Fault("status", count, match, retry_after=retry_after, after=after,
                        status=status, message=message))

    def fenced(self, count: int = 1, *, match: str | None = None) -> None:
        """Answer the JSON inside a Markdown ```json fence, as chat models like to."""
        self.arm(_Fault("fenced", count, match))

    def drip(self, count: int = 1, seconds_per_byte: float = 0.15, *,
             match: str | None = None) -> None:
        """Send the headers at once and the body a byte every ``seconds_per_byte``."""
        self.arm(_Fault("drip", count, match, seconds=seconds_per_byte))

    def usage(self, count: int = 1, prompt_tokens: int | None = None,
              completion_tokens: int | None = None, *, match: str | None = None) -> None:
        """Bill the given token counts; None bills the most the request could cost: a
        token per byte of its messages, and every output token it allowed."""
        self.arm(_Fault("usage", count, match, usage=(prompt_tokens, completion_tokens)))

    def take(self, text: str) -> _Fault | None:
        """The fault a completion whose messages read ``text`` suffers, counted off."""
        def matches(fault: _Fault) -> bool:  # runs under the switchboard's lock
            if fault.match is not None and fault.match not in text:
                return False
            if fault.after:
                fault.after -= 1
                return False
            return True

        return self._take(matches)


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
    drip_s: float = 0.0  # seconds between bytes of the body
    billed: tuple[int, int] = field(default=(0, 0))  # tokens, once delivered whole


def _json(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> _Response:
    return _Response(status, json.dumps(payload).encode("utf-8"),
                     [("Content-Type", "application/json"), *headers])


def _error(status: int, message: str, kind: str) -> _Response:
    return _json(status, {"error": {"message": message, "type": kind}})


class _ConnectionHandler(QuietHandler):
    """Puts the client's socket in the WSGI environ, so a long answer can notice that
    its client went away."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["headwater.socket"] = self.connection
        return environ


def _client_gone(sock: socket.socket | None, wait: float) -> bool:
    """Whether the client closed its end, looking for up to ``wait`` seconds."""
    if sock is None:
        time.sleep(wait)
        return False
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class LLMServer(EstateServer):
    """The demo model endpoint on a local port; see the module docstring.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. :attr:`url` is
    the base URL clients configure (``http://127.0.0.1:<port>/v1``).
    """

    name = "LLM"
    path = "/v1"
    handler_class = _ConnectionHandler

    def __init__(self, model: str = DEFAULT_MODEL, latency_ms: float = 0.0,
                 api_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 strict_schemas: bool = False) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {latency_ms}")
        self.model, self.latency_s, self.api_key = model, latency_ms / 1000, api_key
        self.strict_schemas = strict_schemas
        self.faults = Faults()
        self._completions = Counter()
        self._ids = itertools.count(1)  # next() on a count is atomic under the GIL
        self._lock = threading.Lock()
        self._in_flight = 0
        #: The most completion requests it was handling at once.
        self.max_in_flight = 0
        #: Prompt and completion tokens of the answers it delivered whole, and their count.
        self.billed = [0, 0]
        self.delivered = 0
        #: When each completion request arrived (``time.monotonic()``), oldest first.
        self.arrivals: collections.deque[float] = collections.deque(maxlen=4096)
        #: The latest completion request bodies, oldest first (for tests to inspect).
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)
        super().__init__(host, port)

    @property
    def requests(self) -> int:
        """Completion requests so far, whatever their outcome, faulted ones included."""
        return self._completions.value

    @property
    def in_flight(self) -> int:
        """Completion requests being handled now."""
        with self._lock:
            return self._in_flight

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]
               ) -> Iterator[bytes] | list[bytes]:
        completion = environ["PATH_INFO"] == _COMPLETIONS and environ["REQUEST_METHOD"] == "POST"
        if completion:
            self._enter()
        try:
            response = self._route(environ)
        except BaseException:
            if completion:
                self._leave()
            raise
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        if not completion:
            return [response.body]
        return self._deliver(response, environ.get("headwater.socket"))

    def _deliver(self, response: _Response, sock: socket.socket | None) -> Iterator[bytes]:
        """The body, at once or a byte at a time; billed once it is all out."""
        try:
            if not response.drip_s:
                yield response.body
            else:
                for offset in range(len(response.body)):
                    if offset and _client_gone(sock, response.drip_s):
                        return
                    yield response.body[offset:offset + 1]
            with self._lock:
                self.billed[0] += response.billed[0]
                self.billed[1] += response.billed[1]
                self.delivered += response.status == 200
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

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
        self.arrivals.append(time.monotonic())
        request_id = ("x-request-id", f"req-{next(self._ids)}")
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
        response = self._refusal(body) or self._complete(body, messages,
                                                          environ.get("headwater.socket"))
        response.headers.append(request_id)
        return response

    def _refusal(self, body: dict[str, Any]) -> _Response | None:
        """OpenAI's 400 for a strict schema it cannot enforce, when ``strict_schemas``."""
        form = (body.get("response_format") or {}).get("json_schema") or {}
        if not (self.strict_schemas and form.get("strict")):
            return None
        problem = _strict_problem(form.get("schema") or {}, ())
        if problem is None:
            return None
        return _error(400, f"Invalid schema for response_format '{form.get('name')}': "
                      f"{problem}", "invalid_request_error")

    def _complete(self, body: dict[str, Any], messages: list[dict[str, Any]],
                  sock: socket.socket | None) -> _Response:
        text = "".join(str(m.get("content", "")) for m in messages)
        fault = self.faults.take(text)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind in ("rate_limit", "unavailable", "status"):
            return self._faulted_status(fault)
        if fault is not None and kind == "slow":
            deadline = time.monotonic() + fault.seconds
            while (left := deadline - time.monotonic()) > 0:
                if _client_gone(sock, min(left, _POLL_S)):
                    return _error(408, "the client closed the connection", "client_closed")
        answer = assess(_document(messages))
        if kind == "schema_violation":
            answer = {**answer, "risk": "catastrophic", "next_action": None}
        if fault is not None and kind == "invented_citation":
            answer = {**answer, "cited_sources": [*answer["cited_sources"], *fault.ids]}
        content = json.dumps(answer)
        if kind == "invalid_json":
            content = content[: len(content) // 2]
        if kind == "fenced":
            content = f"Here is the assessment:\n```json\n{json.dumps(answer, indent=2)}\n```"
        billed = (_tokens(text), _tokens(content))
        if fault is not None and kind == "usage":
            most = (len(text.encode("utf-8")), int(body.get("max_tokens")
                                                  or body.get("max_completion_tokens") or 0))
            billed = (fault.usage[0] if fault.usage[0] is not None else most[0],
                      fault.usage[1] if fault.usage[1] is not None else most[1])
        response = _json(200, {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion",
            "created": int(time.time()), "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": billed[0], "completion_tokens": billed[1],
                      "total_tokens": sum(billed)},
        })
        response.billed = billed
        if kind == "drip":
            response.drip_s = fault.seconds
        return response

    @staticmethod
    def _faulted_status(fault: _Fault) -> _Response:
        if fault.kind == "rate_limit":
            return _json(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                         [("Retry-After", fault.retry_after or "1")])
        if fault.kind == "unavailable":
            return _error(503, "The server is overloaded", "server_error")
        extra = [("Retry-After", fault.retry_after)] if fault.retry_after else []
        return _json(fault.status, {"error": {"message": fault.message,
                                              "type": "invalid_request_error"}}, extra)


def _strict_problem(node: Any, where: tuple[str, ...]) -> str | None:
    """What OpenAI's strict mode says of a schema it refuses, or None if it takes it."""
    if isinstance(node, list):
        return next((p for p in (_strict_problem(n, where) for n in node) if p), None)
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return (f"In context={where}, 'additionalProperties' is required to be supplied "
                    "and to be false.")
        missing = [k for k in node.get("properties", {}) if k not in node.get("required", [])]
        if missing:
            return (f"In context={where}, 'required' is required to be supplied and to be an "
                    f"array including every key in properties. Missing '{missing[0]}'.")
    for key, value in node.items():
        inner = (*where, key) if key in ("properties", "$defs") else where
        if isinstance(value, dict) and key in ("properties", "$defs"):
            for name, sub in value.items():
                problem = _strict_problem(sub, (*inner, name))
                if problem:
                    return problem
        elif key != "additionalProperties":
            problem = _strict_problem(value, where)
            if problem:
                return problem
    return None


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
