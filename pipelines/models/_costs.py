"""What model calls cost: a price table per provider and model, and a run's budget.

Prices are per 1,000 tokens, input and output apart, in whatever currency the budget is
in. The budget is shared by the worker threads of one run: a paid call first reserves
its worst case (the prompt's estimated tokens in, the step's output limit out), and
settles to what the response's ``usage`` says it cost, so concurrent calls cannot
together spend past the limit.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from connectors import ConfigurationError


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
    """A run's spending limit (``None``: unlimited), safe to share between threads."""

    def __init__(self, limit: float | None) -> None:
        if limit is not None and limit < 0:
            raise ConfigurationError(f"a budget must not be negative, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._spent = 0.0
        self._reserved = 0.0
        self._refused = 0

    def reserve(self, amount: float) -> bool:
        """Set ``amount`` aside for a call; False (and counted) if it does not fit."""
        with self._lock:
            if self.limit is not None and self._spent + self._reserved + amount > self.limit:
                self._refused += 1
                return False
            self._reserved += amount
            return True

    def settle(self, reserved: float, actual: float) -> None:
        """Replace a reservation by what the call actually cost (0 if it failed unpaid)."""
        with self._lock:
            self._reserved -= reserved
            self._spent += actual

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def refused(self) -> int:
        """Paid calls not made because they would have passed the limit."""
        with self._lock:
            return self._refused
