"""What a run costs: prices, budgets, and the ledger that stops a run at its cap.

A recipe may give the model's prices and a budget:

    model:
      backend: openai
      model: gpt-4o-mini
      price: {input_per_mtok: 0.15, output_per_mtok: 0.60, currency: USD}
      budget: {money: 2.00, stages: {curation.judge: {tokens: 200000}}}

Prices and budgets are settings (`pricing.py`); this module keeps the count.

The `Ledger` counts, per stage, the tokens of every answer a run's data
rests on: answers paid for now and answers replayed from the cache (paid
for by an earlier invocation), so the budget caps the cost of the run
directory's data, whatever number of invocations it took. Before each paid
call the scheduler asks the ledger; once a cap is reached no new request
is sent, the requests already in flight finish (so the overshoot is at
most their cost), and the run stops with `BudgetExceeded`. Everything
answered is in the cache: a rerun with a raised budget replays it for free
and goes on.

Stage names: `generation`, `curation.<stage>`, `evaluation.<stage>`.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from .pricing import Budget, Cap, Price, price_of
from .scheduler import RunAborted
from .types import Usage

class BudgetExceeded(RunAborted):
    """The run reached a cap: nothing more is asked; a rerun with a raised budget resumes."""

    graceful = True  # the requests already sent finish and are saved before the run stops

    def __init__(self, message: str, stage: str, cap: str):
        super().__init__(message)
        self.stage = stage
        self.cap = cap

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole, e.g. out of a Ray task
        return (type(self), (str(self), self.stage, self.cap))


@dataclass
class StageSpend:
    """Tokens and money of one stage: paid now, and replayed from the cache (money None: no price known)."""

    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cached_calls: int = 0
    cached_usage: Usage = field(default_factory=Usage)
    money_now: float | None = 0.0
    money_replayed: float | None = 0.0
    batch_calls: int = 0  # answers (paid now or replayed) that came through a batch API

    @property
    def money(self) -> float | None:
        if self.money_now is None or self.money_replayed is None:
            return None
        return self.money_now + self.money_replayed

    @property
    def tokens(self) -> int:
        return (self.usage.prompt_tokens + self.usage.completion_tokens
                + self.cached_usage.prompt_tokens + self.cached_usage.completion_tokens)

    def add(self, other: StageSpend) -> None:
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        self.batch_calls += other.batch_calls
        self.usage.add(other.usage)
        self.cached_usage.add(other.cached_usage)
        self.money_now = _plus(self.money_now, other.money_now)
        self.money_replayed = _plus(self.money_replayed, other.money_replayed)


class Ledger:
    """A run's spend by stage, and its budget; shared by every session of the run (thread-safe)."""

    def __init__(self, budget: Budget | None = None, currency: str = "USD"):
        self.budget = budget
        self.currency = currency
        self.stages: dict[str, StageSpend] = {}
        self.stopped: dict[str, str] | None = None
        self._lock = threading.Lock()

    def _total(self) -> StageSpend:
        total = StageSpend()
        for spend in self.stages.values():
            total.add(spend)
        return total

    def charge(self, stage: str, usage: Usage, cached: bool, price: Price | None, batch: bool = False) -> None:
        """Count one answer of `stage` (paid now, or replayed from the cache) at `price` (None: unknown).

        `batch`: answered through a provider's batch API, at the price's `batch_discount`."""
        money = price.cost(usage, batch) if price is not None else None
        with self._lock:
            spend = self.stages.setdefault(stage, StageSpend())
            if cached:
                spend.cached_calls += 1
                spend.cached_usage.add(usage)
                spend.money_replayed = _plus(spend.money_replayed, money)
            else:
                spend.calls += 1
                spend.usage.add(usage)
                spend.money_now = _plus(spend.money_now, money)
            if batch:
                spend.batch_calls += 1

    def check(self, stage: str) -> None:
        """Raise BudgetExceeded when the run's or the stage's cap is reached."""
        if self.budget is None:
            return
        with self._lock:
            reached = self._reached(stage)
        if reached is not None:
            where, cap = reached
            self.stopped = {"stage": stage, "cap": where, "reason": cap}
            raise BudgetExceeded(
                f"budget reached: {cap} ({where}); everything answered is saved: "
                f"raise model.budget and rerun the same command to go on", stage, where)

    def _reached(self, stage: str) -> tuple[str, str] | None:
        assert self.budget is not None
        checks: list[tuple[str, Cap, StageSpend]] = [("the run", self.budget, self._total())]
        if stage in self.budget.stages:
            checks.append((f"stage {stage}", self.budget.stages[stage], self.stages.get(stage, StageSpend())))
        for where, cap, spend in checks:
            if cap.tokens is not None and spend.tokens >= cap.tokens:
                return f"model.budget{'' if where == 'the run' else '.stages.' + stage}.tokens", f"{spend.tokens:,} of {cap.tokens:,} tokens"
            money = spend.money
            if cap.money is not None and money is not None and money >= cap.money:
                return (f"model.budget{'' if where == 'the run' else '.stages.' + stage}.money",
                        f"{money:.4f} of {cap.money:g} {self.currency}")
        return None

    def snapshot(self) -> dict[str, StageSpend]:
        """A copy of the spend by stage (e.g. to send to where other processes' spend is counted)."""
        with self._lock:
            return copy.deepcopy(self.stages)

    def absorb(self, stages: dict[str, StageSpend]) -> None:
        """Add spend counted elsewhere (another process's answers) to this ledger's stages."""
        with self._lock:
            for name, more in stages.items():
                self.stages.setdefault(name, StageSpend()).add(more)

    def progress_text(self, done: int, total: int) -> str:
        """For the progress bar: money (or tokens) so far, and at this rate at the end."""
        with self._lock:
            spend = self._total()
        money = spend.money
        if money is not None and money > 0:
            finish = f", ~{money * total / done:.4f} at the end" if 0 < done < total else ""
            return f"{money:.4f} {self.currency}{finish}"
        tokens = spend.tokens
        finish = f", ~{tokens * total // done:,} at the end" if 0 < done < total else ""
        return f"{tokens:,} tokens{finish}"

    def to_json(self) -> dict[str, Any]:
        """What the manifest says: per stage and in all, tokens and money (paid now, and replayed)."""

        def row(spend: StageSpend) -> dict[str, Any]:
            out: dict[str, Any] = {
                "calls_paid": spend.calls,
                "calls_replayed": spend.cached_calls,
                "prompt_tokens": spend.usage.prompt_tokens + spend.cached_usage.prompt_tokens,
                "completion_tokens": spend.usage.completion_tokens + spend.cached_usage.completion_tokens,
            }
            prompt = out["prompt_tokens"]
            cached = spend.usage.cached_tokens + spend.cached_usage.cached_tokens
            out["cached_prompt_tokens"] = cached  # read from the provider's prompt cache, as it reported
            out["cached_prompt_share"] = round(cached / prompt, 4) if prompt else 0.0
            if spend.batch_calls:
                out["batch_calls"] = spend.batch_calls
            out["money"] = None if spend.money is None else round(spend.money, 6)
            out["money_paid_now"] = None if spend.money_now is None else round(spend.money_now, 6)
            return out

        with self._lock:
            data: dict[str, Any] = {"stages": {name: row(s) for name, s in self.stages.items()}, "total": row(self._total())}
        data["currency"] = self.currency
        if self.budget is not None:
            data["budget"] = self.budget.model_dump(mode="json", exclude_none=True)
        if self.stopped is not None:
            data["stopped"] = self.stopped
        return data


@dataclass
class Account:
    """One stage's view of the ledger, at one model's price: what a scheduler charges and asks."""

    ledger: Ledger
    stage: str
    price: Price | None

    def charge(self, usage: Usage, cached: bool, batch: bool = False) -> None:
        self.ledger.charge(self.stage, usage, cached, self.price, batch)

    def check(self) -> None:
        self.ledger.check(self.stage)


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


_CURRENT: contextvars.ContextVar[tuple[Ledger, str] | None] = contextvars.ContextVar("synthloom_ledger", default=None)


@contextlib.contextmanager
def spending(ledger: Ledger, stage: str) -> Iterator[Ledger]:
    """Charge every session opened inside this block to `ledger`, as `stage`."""
    token = _CURRENT.set((ledger, stage))
    try:
        yield ledger
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Inside a run's ledger, charge the sessions opened in this block to stage `name`; elsewhere nothing."""
    active = _CURRENT.get()
    if active is None:
        yield
        return
    token = _CURRENT.set((active[0], name))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def active() -> tuple[Ledger, str] | None:
    """The ledger and stage that sessions opened here charge to (None: no run's ledger)."""
    return _CURRENT.get()


def account_for(config: Any) -> Account | None:
    """The account a session for `config` charges to here: the active ledger and stage, at the model's price."""
    active = _CURRENT.get()
    if active is None:
        return None
    ledger, stage = active
    return Account(ledger, stage, price_of(config)[0])


__all__ = ["Account", "BudgetExceeded", "Ledger", "StageSpend", "account_for", "active", "spending", "stage"]
