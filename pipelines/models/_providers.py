"""Providers: who answers a model step's prompt.

A provider turns one :class:`CompletionRequest` into one :class:`Completion` (the
answer's text, its token counts, the endpoint's request id) or raises
:class:`ProviderError`. It sends one request and does not retry or validate: the step
does both the same way for every provider, with the circuit breaker, the shared
``Retry-After``, the rate limits and the budget around each request (see
:mod:`pipelines.models._calls`). Two kinds ship:

* :class:`OpenAICompatible`: any endpoint speaking OpenAI's chat-completions protocol
  (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server), asked for JSON-schema
  structured output; each request within a wall deadline from connect to the last byte;
* :class:`LocalRules`: rules written in Python over the context document; no network,
  no cost, deterministic. It ends every chain and is the demo's default.

Subclass :class:`Provider` for another kind; override :meth:`Provider.complete`.
"""

from __future__ import annotations

import abc
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pydantic
import requests

from connectors import (
    NO_RETRY,
    AuthenticationError,
    ConfigurationError,
    Retrier,
    RetryPolicy,
    redact,
)
from connectors.http import BearerToken, HTTPClient, WatchedAdapter, describe, retry_after_seconds

from .._canonical import canonical_json, estimate_tokens
from ._errors import ProviderError
from ._limits import UsageLimiter
from ._transport import Reply, post_within

ENV_PREFIX = "HEADWATER_LLM_"
DEFAULT_RETRY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=20.0)
RETRIABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_MAX_MESSAGE = 300  # characters of an endpoint's error message kept


@dataclass(frozen=True)
class CompletionRequest:
    """One question to a provider: the conversation, the answer's JSON schema, the
    context document itself for providers that read it directly (:class:`LocalRules`),
    and when the request must be done: ``deadline`` (``time.monotonic()`` seconds; if
    None, ``timeout`` from now), or earlier if ``abort`` is set."""

    context_id: str
    messages: list[dict[str, Any]]
    schema_name: str
    json_schema: dict[str, Any]
    document: dict[str, Any]
    timeout: float
    max_output_tokens: int
    deadline: float | None = None
    abort: threading.Event | None = None

    def until(self) -> float:
        """The deadline as a monotonic time."""
        return self.deadline if self.deadline is not None else time.monotonic() + self.timeout


@dataclass(frozen=True)
class Completion:
    """An answer as text, with the tokens it was billed for; ``refusal`` if the model
    declined to answer; the endpoint's ``request_id`` and HTTP ``status`` if it has them."""

    text: str
    tokens_in: int
    tokens_out: int
    refusal: str | None = None
    request_id: str | None = None
    status: int | None = None


class Provider(abc.ABC):
    """Something that answers prompts.

    ``paid`` providers reserve their worst-case cost from the budget before each request;
    ``repairable`` ones are asked again, with what was wrong, after a rejected answer;
    ``remote`` ones go through the circuit breaker, the shared ``Retry-After``, the
    ``limiter`` (requests and tokens a minute) and the per-request deadline, and are
    retried by ``retry`` within ``max_elapsed`` seconds per answer. ``name`` and ``model``
    key the price table; they and ``endpoint`` (where it answers from) key the cache.
    """

    name: str
    model: str
    endpoint: str = ""
    paid: bool = True
    repairable: bool = True
    remote: bool = True
    strict: bool = False
    retry: RetryPolicy = NO_RETRY
    max_elapsed: float = 120.0
    limiter: UsageLimiter | None = None
    on_retry: Callable[[int, Exception, float], None] | None = None

    @property
    def label(self) -> str:
        """``name/model``: how tables, metadata and the price table name it."""
        return f"{self.name}/{self.model}"

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Completion:
        """Answer one request by ``request.until()``, or raise :class:`ProviderError`
        (``retriable`` if the same request may succeed later). Called from worker
        threads; send one request, do not retry."""

    def close(self) -> None:
        """Release connections; override when the provider holds any."""


class OpenAICompatible(Provider):
    """An OpenAI-compatible chat-completions endpoint.

    ``base_url`` is the API root including its version (``https://api.openai.com/v1``,
    ``http://localhost:11434/v1``); requests go to ``<base_url>/chat/completions`` with
    ``response_format`` ``json_schema`` (``strict`` as given: the step then sends its
    output model as a strict schema, every object closed and every field required).
    OpenAI's reasoning models want ``max_tokens_param="max_completion_tokens"``. ``rpm``
    and ``tpm`` cap requests and tokens a minute (the endpoint's quota). A 408, 409, 429 or
    5xx, a timeout or a dropped connection is retried under ``retry`` (``Retry-After``
    honoured by every thread); 401 and 403 raise ``AuthenticationError``; any other 4xx
    fails the provider for the run with the endpoint's own message. Build it from the
    environment with :meth:`from_env`; :meth:`check` probes the endpoint and the key.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 name: str = "openai", retry: RetryPolicy | Retrier = DEFAULT_RETRY,
                 connect_timeout: float = 5.0, max_elapsed: float = 120.0,
                 strict: bool = True, max_tokens_param: str = "max_tokens",
                 pool_size: int = 32, rpm: int | None = None, tpm: int | None = None
                 ) -> None:
        if not base_url.startswith(("http://", "https://")) or not model:
            raise ConfigurationError(f"provider {name!r}: give an http(s) base URL and a model "
                                     f"(got base URL {base_url!r}, model {model!r})")
        self.name, self.model, self.strict = name, model, strict
        self.max_tokens_param = max_tokens_param
        self.base_url = base_url.rstrip("/")
        self.endpoint = self.base_url
        self.url = self.base_url + "/chat/completions"
        self.connect_timeout, self.max_elapsed = connect_timeout, max_elapsed
        if isinstance(retry, Retrier):
            self.retry, self.on_retry = retry.policy, retry.on_retry
        else:
            self.retry = retry
        self.limiter = UsageLimiter(rpm, tpm) if rpm or tpm else None
        self._client = HTTPClient(auth=BearerToken(api_key) if api_key else None,
                                  retry=RetryPolicy(max_attempts=2, base_delay=0.2))
        # Worker threads share the session: one pooled connection each, none discarded.
        # Watched connections: post_within's deadline covers the status line and headers.
        adapter = WatchedAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._client.session.mount("http://", adapter)
        self._client.session.mount("https://", adapter)
        self._proxies = requests.utils.get_environ_proxies(self.base_url)
        self._lock = threading.Lock()
        self._sent = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any
                 ) -> OpenAICompatible:
        """The endpoint named by ``HEADWATER_LLM_BASE_URL``, ``HEADWATER_LLM_MODEL`` and
        (optional) ``HEADWATER_LLM_API_KEY``."""
        environ = os.environ if environ is None else environ
        missing = [f"{ENV_PREFIX}{v}" for v in ("BASE_URL", "MODEL") if not environ.get(
            f"{ENV_PREFIX}{v}")]
        if missing:
            raise ConfigurationError(f"set {' and '.join(missing)} to use an OpenAI-compatible "
                                     "endpoint (HEADWATER_LLM_API_KEY too if it needs a key)")
        return cls(environ[f"{ENV_PREFIX}BASE_URL"], environ[f"{ENV_PREFIX}MODEL"],
                   environ.get(f"{ENV_PREFIX}API_KEY") or None, **options)

    def check(self) -> list[str]:
        """The models the endpoint lists (``GET <base_url>/models``); raises
        ``AuthenticationError`` for a refused key and a ``ConfigurationError`` naming the
        status for a wrong URL, so a deployment can fail before its first context."""
        payload, _ = self._client.get_json(f"{self.base_url}/models",
                                           timeout=(self.connect_timeout, 30.0))
        return [str(m.get("id")) for m in payload.get("data") or [] if isinstance(m, dict)]

    def request_body(self, request: CompletionRequest) -> dict[str, Any]:
        """The chat-completions request body for ``request``."""
        return {
            "model": self.model, "messages": request.messages, "temperature": 0,
            self.max_tokens_param: request.max_output_tokens,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": request.json_schema,
                "strict": self.strict}},
        }

    def complete(self, request: CompletionRequest) -> Completion:
        headers: dict[str, str] = {}
        self._client.auth.apply(headers, {})
        with self._lock:
            self._sent += 1
        try:
            reply = post_within(self._client.session, self.url,
                                orjson.dumps(self.request_body(request)), headers,
                                deadline=request.until(), connect_timeout=self.connect_timeout,
                                proxies=self._proxies, abort=request.abort)
        except ProviderError as exc:
            exc.args = (f"{self.label}: {exc.message}",)
            raise
        if reply.status >= 400:
            raise self._failure(reply)
        try:
            payload = orjson.loads(reply.body)
            message = payload["choices"][0]["message"]
            text = message.get("content") or ""
            usage = payload.get("usage") or {}
            prompt = "".join(str(m.get("content", "")) for m in request.messages)
            tokens_in = int(usage.get("prompt_tokens") or estimate_tokens(prompt))
            tokens_out = int(usage.get("completion_tokens") or estimate_tokens(text))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError(f"{self.label}: the response to {describe('POST', self.url)} "
                                f"is not a chat completion (status {reply.status}, "
                                f"{len(reply.body):,} bytes)", reason="malformed response",
                                status=reply.status, request_id=reply.request_id,
                                retriable=True) from None
        return Completion(text, tokens_in, tokens_out, refusal=message.get("refusal"),
                          request_id=reply.request_id, status=reply.status)

    def _failure(self, reply: Reply) -> Exception:
        """The error an HTTP error status means (see the class docstring)."""
        what = f"{self.label}: {describe('POST', self.url)} answered {reply.status} {reply.reason}"
        said = endpoint_message(reply.body)
        said = f"; the endpoint says: {said}" if said else ""
        if reply.status in (401, 403):
            refused = AuthenticationError(f"{what}: the API key was refused or lacks the "
                                          f"permission; check it (it is not shown){said}")
            refused.status, refused.request_id = reply.status, reply.request_id  # type: ignore[attr-defined]
            return refused
        if reply.status in RETRIABLE_STATUS:
            return ProviderError(f"{what}{said}", reason=f"http {reply.status}",
                                 status=reply.status, request_id=reply.request_id,
                                 retry_after=retry_after_seconds(
                                     reply.headers.get("Retry-After")), retriable=True)
        return ProviderError(f"{what}{said}; it will answer no request of this step as "
                             "sent: fix the provider's settings or the output model",
                             reason=f"http {reply.status}", status=reply.status,
                             request_id=reply.request_id, fatal=True)

    @property
    def stats(self) -> dict[str, Any]:
        """Completion requests sent by this provider (retries included)."""
        with self._lock:
            return {"requests": self._sent}

    def close(self) -> None:
        self._client.close()


def endpoint_message(body: bytes) -> str:
    """The message in an error body (OpenAI's ``{"error": {"message": ...}}``, else the
    start of the text), redacted and cut short."""
    try:
        payload = orjson.loads(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        text = str(error.get("message") if isinstance(error, dict) else error or payload)
    except (ValueError, AttributeError):
        text = body[:_MAX_MESSAGE].decode("utf-8", "replace")
    return redact(" ".join(text.split()))[:_MAX_MESSAGE]


class LocalRules(Provider):
    """Rules written in Python: ``rules(document)`` returns the answer (a dict or an
    instance of the step's output model) for one context document.

    ``version`` names the rules in the cache key and the output rows: change it when the
    rules change, or cached answers of the old rules are served. A rule that raises,
    or answers what the schema or the provenance rejects, fails that context only (it
    is not asked to repair: it would answer the same).
    """

    paid = False
    repairable = False
    remote = False

    def __init__(self, rules: Callable[[dict[str, Any]], Mapping[str, Any] | pydantic.BaseModel],
                 *, version: str, name: str = "local") -> None:
        self.rules, self.name, self.model = rules, name, version
        self.endpoint = f"rules:{version}"

    def complete(self, request: CompletionRequest) -> Completion:
        try:
            answer = self.rules(request.document)
        except Exception as exc:  # user code: one broken rule must not fail the batch
            raise ProviderError(f"{self.label}: the rules raised {type(exc).__name__} "
                                f"({str(exc)[:200]})", reason="rules raised") from None
        if isinstance(answer, pydantic.BaseModel):
            return Completion(answer.model_dump_json(), 0, 0)
        return Completion(canonical_json(answer), 0, 0)
