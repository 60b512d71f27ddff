"""Prices and budgets as a recipe gives them under `model:` (`price`, `budget`).

Without `price`, a small built-in table of well-known models is used
(`KNOWN_PRICES`, dated; a recipe's `price` always wins), and a local model
(the embedded one) costs nothing but tokens. The ledger that counts a run's
spend against its budget is `spend.py`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .types import Usage

CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CNY", "CHF", "CAD", "AUD", "INR", "KRW", "SEK", "SGD")


class Price(BaseModel):
    """Money per million tokens, and the discount a provider's batch API gives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(..., ge=0, description="money per million prompt tokens")
    output_per_mtok: float = Field(..., ge=0, description="money per million completion tokens")
    batch_discount: float = Field(0.0, ge=0, lt=1, description="share taken off in batch mode, e.g. 0.5")
    currency: str = Field("USD", description=f"one of {', '.join(CURRENCIES)}")

    @model_validator(mode="after")
    def _currency(self) -> Price:
        if self.currency not in CURRENCIES:
            raise ValueError(f"unknown currency {self.currency!r}; use one of {', '.join(CURRENCIES)}")
        return self

    def cost(self, usage: Usage, batch: bool = False) -> float:
        money = (usage.prompt_tokens * self.input_per_mtok + usage.completion_tokens * self.output_per_mtok) / 1e6
        return money * (1 - self.batch_discount) if batch else money


class Cap(BaseModel):
    """A limit in money (the price's currency), in tokens (prompt + completion), or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    money: float | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _something(self) -> Cap:
        if self.money is None and self.tokens is None:
            raise ValueError("give money, tokens or both")
        return self


class Budget(Cap):
    """A cap for the whole run, and caps for single stages (`generation`, `curation.judge`, ...)."""

    money: float | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0)
    stages: dict[str, Cap] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Budget:
        if self.money is None and self.tokens is None and not self.stages:
            raise ValueError("give money, tokens, or caps per stage under stages")
        for name in self.stages:
            head = name.split(".", 1)[0]
            if head not in ("generation", "curation", "evaluation") or (head != "generation" and "." not in name):
                raise ValueError(f"stages: {name!r} is not a stage name; use generation, curation.<stage> or evaluation.<stage>")
        return self


# Well-known hosted models, money per million tokens (USD), as published by
# their providers in 2025. Prices change: a recipe's `model.price` wins.
KNOWN_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.60, batch_discount=0.5),
    "gpt-4o": Price(input_per_mtok=2.50, output_per_mtok=10.00, batch_discount=0.5),
    "gpt-4.1": Price(input_per_mtok=2.00, output_per_mtok=8.00, batch_discount=0.5),
    "gpt-4.1-mini": Price(input_per_mtok=0.40, output_per_mtok=1.60, batch_discount=0.5),
    "gpt-4.1-nano": Price(input_per_mtok=0.10, output_per_mtok=0.40, batch_discount=0.5),
}

FREE = Price(input_per_mtok=0.0, output_per_mtok=0.0)


def price_of(config: Any) -> tuple[Price | None, str]:
    """The price of a backend's model and where it comes from (recipe, table, local, unknown)."""
    given = getattr(config, "price", None)
    if given is not None:
        return given, "recipe"
    if getattr(config, "backend", None) in ("llamacpp", "fake"):
        return FREE, "local model"
    model = str(getattr(config, "model", "") or "")
    name = model.rsplit("/", 1)[-1]
    for known in sorted(KNOWN_PRICES, key=len, reverse=True):
        if name == known or name.startswith(known + "-20"):  # dated snapshots: gpt-4o-mini-2024-07-18
            return KNOWN_PRICES[known], "built-in table"
    return None, "unknown"


def currency_of(config: Any) -> str:
    """The currency a backend's budget is counted in: its price's."""
    price, _ = price_of(config)
    return price.currency if price is not None else "USD"


__all__ = ["Budget", "CURRENCIES", "Cap", "FREE", "KNOWN_PRICES", "Price", "currency_of", "price_of"]
