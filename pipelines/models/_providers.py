"""Providers: who answers a model step's prompt.

A provider turns a :class:`CompletionRequest` into a :class:`Completion` (the answer's
text and its token counts) or raises :class:`ProviderError`. It does not validate the
answer: the step does that the same way for every provider. Two kinds ship:

* :class:`OpenAICompatible`: any endpoint speaking OpenAI's chat-completions protocol
  (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server), asked for JSON-schema
  structured output, through headwater's HTTP policy (timeouts, retries with backoff and
  jitter honouring ``Retry-After``, redaction: the key never reaches a log line);
* :class:`LocalRules`: rules written in Python over the context document; no network,
  no cost, deterministic. It ends every chain and is the demo's default.

Subclass :class:`Provider` for another kind; override :meth:`Provider.complete`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from requests.adapters import HTTPAdapter

from connectors import ConfigurationError, RetriableSourceError, Retrier, RetryPolicy
from connectors.http import BearerToken, HTTPClient

from .._canonical import canonical_json, estimate_tokens
from ._errors import ProviderError

ENV_PREFIX = "HEADWATER_LLM_"
DEFAULT_RETRY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=20.0)


@dataclass(frozen=True)
class CompletionRequest:
    """One question to a provider: the conversation, the answer's JSON schema, and the
    context document itself for providers that read it directly (:class:`LocalRules`)."""

    context_id: str
    messages: list[dict[str, Any]]
    schema_name: str
    json_schema: dict[str, Any]
    document: dict[str, Any]
    timeout: float
    max_output_tokens: int


@dataclass(frozen=True)
class Completion:
    """An answer as text, with the tokens it was billed for; ``refusal`` if the model
    declined to answer."""

    text: str
    tokens_in: int
    tokens_out: int
    refusal: str | None = None


class Provider(abc.ABC):
    """Something that answers prompts. ``paid`` providers are skipped once the run's
    budget is spent; ``repairable`` ones get a second call that says what was wrong
    with a rejected answer; ``name`` and ``model`` key the price table and the cache."""

    name: str
    model: str
    paid: bool = True
    repairable: bool = True

    @property
    def label(self) -> str:
        """``name/model``: how tables, metadata and the price table name it."""
        return f"{self.name}/{self.model}"

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Completion:
        """Answer one request within ``request.timeout`` seconds per attempt, or raise
        :class:`ProviderError` (the chain moves on). Called from worker threads."""

    def close(self) -> None:
        """Release connections; override when the provider holds any."""


class OpenAICompatible(Provider):
    """An OpenAI-compatible chat-completions endpoint.

    ``base_url`` is the API root including its version (``https://api.openai.com/v1``,
    ``http://localhost:11434/v1``); requests go to ``<base_url>/chat/completions`` with
    ``response_format`` ``json_schema`` (``strict`` as given: OpenAI's strict mode needs
    every object to forbid extra keys and require every property). OpenAI's reasoning
    models want ``max_tokens_param="max_completion_tokens"``. Build it from the
    environment with :meth:`from_env`; :meth:`check` probes the endpoint and the key.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 name: str = "openai", retry: RetryPolicy | Retrier = DEFAULT_RETRY,
                 connect_timeout: float = 5.0, max_elapsed: float = 120.0,
                 strict: bool = True, max_tokens_param: str = "max_tokens",
                 pool_size: int = 32) -> None:
        if not base_url.startswith(("http://", "https://")) or not model:
            raise ConfigurationError(f"provider {name!r}: give an http(s) base URL and a model "
                                     f"(got base URL {base_url!r}, model {model!r})")
        self.name, self.model, self.strict = name, model, strict
        self.max_tokens_param = max_tokens_param
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.connect_timeout = connect_timeout
        self._client = HTTPClient(auth=BearerToken(api_key) if api_key else None, retry=retry,
                                  max_elapsed=max_elapsed)
        # Worker threads share the session: one pooled connection each, none discarded.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._client.session.mount("http://", adapter)
        self._client.session.mount("https://", adapter)

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
        try:
            response = self._client.request(
                "POST", self.url, json=self.request_body(request),
                timeout=(self.connect_timeout, request.timeout))
        except (RetriableSourceError, ConfigurationError) as exc:
            raise ProviderError(f"{self.label}: {exc.message}") from None
        try:
            payload = response.json()
            message = payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError(f"{self.label}: the response is not a chat completion "
                                f"(status {response.status_code})") from None
        text = message.get("content") or ""
        usage = payload.get("usage") or {}
        prompt = "".join(str(m.get("content", "")) for m in request.messages)
        return Completion(
            text,
            int(usage.get("prompt_tokens") or estimate_tokens(prompt)),
            int(usage.get("completion_tokens") or estimate_tokens(text)),
            refusal=message.get("refusal"),
        )

    @property
    def stats(self) -> dict[str, Any]:
        """Requests sent and retries made by this provider's HTTP client."""
        return dict(self._client.stats)

    def close(self) -> None:
        self._client.close()


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

    def __init__(self, rules: Callable[[dict[str, Any]], Mapping[str, Any] | pydantic.BaseModel],
                 *, version: str, name: str = "local") -> None:
        self.rules, self.name, self.model = rules, name, version

    def complete(self, request: CompletionRequest) -> Completion:
        try:
            answer = self.rules(request.document)
        except Exception as exc:  # user code: one broken rule must not fail the batch
            raise ProviderError(f"{self.label}: the rules raised {type(exc).__name__} "
                                f"({str(exc)[:200]})") from None
        if isinstance(answer, pydantic.BaseModel):
            return Completion(answer.model_dump_json(), 0, 0)
        return Completion(canonical_json(answer), 0, 0)
