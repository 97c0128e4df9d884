"""What model calls cost: a price table per provider and model, and a run's budget.

Prices are per 1,000 tokens, input and output apart, in whatever currency the budget is
in. The budget is shared by the worker threads of one run: a paid request first
reserves its worst case (:func:`worst_case_prompt_tokens` in, the step's output limit
out) and settles to what the response's ``usage`` says it cost, so concurrent requests
cannot together spend past the limit. The worst case is a true bound for byte-level
tokenizers (OpenAI's, Llama's): no token is shorter than a byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from connectors import ConfigurationError

# The chat template's own tokens: a few per message and a few per conversation.
_TEMPLATE_TOKENS_PER_MESSAGE = 16
_TEMPLATE_TOKENS = 16
_RECHECK_S = 0.1  # a waiting reservation looks again at least this often (for abort)


def worst_case_prompt_tokens(messages: list[dict], schema_bytes: int = 0) -> int:
    """The most prompt tokens ``messages`` (and a ``response_format`` schema of
    ``schema_bytes``) can be billed for: a token per byte, plus the chat template."""
    text = sum(len(str(m.get("content", "")).encode("utf-8")) for m in messages)
    return (text + schema_bytes + _TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
            + _TEMPLATE_TOKENS)


@dataclass(frozen=True)
class Price:
    """Cost per 1,000 input and per 1,000 output tokens."""

    input_per_1k: float
    output_per_1k: float

    def __post_init__(self) -> None:
        if self.input_per_1k < 0 or self.output_per_1k < 0:
            raise ConfigurationError("prices must not be negative")

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_1k + tokens_out * self.output_per_1k) / 1000


class PriceTable:
    """Prices by ``"provider/model"``; ``"provider/*"`` prices every model of a provider.

    Build one from configuration with plain numbers::

        PriceTable({"openai/gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006}})
    """

    def __init__(self, prices: Mapping[str, Price | Mapping[str, float]] | None = None) -> None:
        self._prices: dict[str, Price] = {}
        for key, price in (prices or {}).items():
            if "/" not in key:
                raise ConfigurationError(f"price key {key!r}: write it as provider/model "
                                         "or provider/*")
            self._prices[key] = price if isinstance(price, Price) else Price(**price)

    def price(self, provider: str, model: str) -> Price | None:
        """The price of ``model`` at ``provider``, exact first, then the wildcard."""
        return self._prices.get(f"{provider}/{model}") or self._prices.get(f"{provider}/*")

    def cost(self, provider: str, model: str, tokens_in: int, tokens_out: int) -> float:
        """What a call cost; 0 for a model without a price."""
        price = self.price(provider, model)
        return price.cost(tokens_in, tokens_out) if price else 0.0


class Budget:
    """A run's spending limit (``None``: unlimited), safe to share between threads;
    ``source`` says where the limit comes from in messages ("the run's budget")."""

    def __init__(self, limit: float | None, source: str = "the run's budget") -> None:
        if limit is not None and limit < 0:
            raise ConfigurationError(f"a budget must not be negative, got {limit}")
        self.limit, self.source = limit, source
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._spent = 0.0
        self._reserved = 0.0
        self._refused = 0

    def reserve(self, amount: float, wait_until: float | None = None,
                abort: threading.Event | None = None) -> bool:
        """Set ``amount`` aside for a request; False (and counted) if it does not fit.

        When it would fit once the requests in flight settle (their reservations are
        worst cases), wait for them until ``wait_until`` (``time.monotonic()``; None: do
        not wait) or ``abort``."""
        with self._settled:
            while True:
                if self.limit is None or self._spent + self._reserved + amount <= self.limit:
                    self._reserved += amount
                    return True
                left = (wait_until - time.monotonic()) if wait_until is not None else 0.0
                if (self._spent + amount > self.limit or left <= 0
                        or (abort is not None and abort.is_set())):
                    self._refused += 1
                    return False
                self._settled.wait(min(left, _RECHECK_S))

    def settle(self, reserved: float, actual: float) -> None:
        """Replace a reservation by what the request actually cost (0 if it failed unpaid)."""
        with self._settled:
            self._reserved -= reserved
            self._spent += actual
            self._settled.notify_all()

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def reserved(self) -> float:
        """Set aside for requests in flight."""
        with self._lock:
            return self._reserved

    @property
    def refused(self) -> int:
        """Paid calls not made because they would have passed the limit."""
        with self._lock:
            return self._refused
