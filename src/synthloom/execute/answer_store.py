"""The answers of a run on a Ray cluster: one store on the driver, a cache-like view in each shard.

`AnswerStore` is a Ray actor pinned to the driver's node that owns the run's
`cache.sqlite` (the very file a local run writes), so no storage is shared
between nodes, a killed worker's shard reruns without paying again, and a
Ray run and a local run resume each other. `StoreCache` is what a shard's
scheduler sees as its cache: the answers the store already holds, fetched
in one message, and new answers sent to the store as soon as the shard's
event loop has a moment.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Iterable

import ray

from .._json import dumps, loads
from ..llm import Completion, CompletionCache, Request, Usage, cache_key
from ..llm.pricing import Budget, Price
from ..llm.scheduler import next_attempt
from ..llm.spend import BudgetExceeded, Ledger, StageSpend
from ..records import Record

class AnswerStore:
    """The run's completion cache, behind one Ray actor on the driver's node.

    With a budget it also keeps the shards' spend: each shard's charges come
    with its answers, and a save answers with the stop once a cap is reached
    (counting the driver's own spend, sent with each batch of shards), so
    every shard stops sending within one message of it."""

    def __init__(self, path: str, budget: Budget | None = None, currency: str = "USD"):
        self.cache = CompletionCache(path)
        self.spend = Ledger(budget, currency)  # the shards' answers only
        self.outside: dict[str, StageSpend] = {}  # the driver's spend when the current batch began
        self.stop: dict[str, str] | None = None
        # Looked at when the first shard starts, not here: by then the driver
        # has prepared, and a killed run's pending answers, which whoever
        # opens the cache first folds in, are in SQLite for this count.
        self.had_answers: bool | None = None
        self.attempts: collections.Counter[int] = collections.Counter()
        self.progress_by_shard: dict[int, tuple[int, int]] = {}
        self.saved = 0

    def begin(self, shard: int, stage: str = "generation") -> tuple[bool, dict[str, str] | None]:
        """Note a shard's start: whether the store may hold answers for it, and the budget's stop if reached."""
        if self.had_answers is None:
            self.had_answers = len(self.cache) > 0
        self.attempts[shard] += 1
        self.progress_by_shard[shard] = (0, 0)
        return self.had_answers or self.attempts[shard] > 1, self._check(stage)

    def spent_outside(self, stages: dict[str, StageSpend]) -> None:
        """The driver's own spend so far (model-built conditions, earlier rounds' curation), for the caps."""
        self.outside = stages

    def _check(self, stage: str) -> dict[str, str] | None:
        if self.stop is None and self.spend.budget is not None:
            run = Ledger(self.spend.budget, self.spend.currency)
            run.absorb(self.outside)
            run.absorb(self.spend.stages)
            try:
                run.check(stage)
            except BudgetExceeded as exc:
                self.stop = {"message": str(exc), "stage": exc.stage, "cap": exc.cap, "reason": run.stopped["reason"]}  # type: ignore[index]
        return self.stop

    def lookup(self, keys: list[str]) -> dict[str, str]:
        return self.cache.get_many(keys)

    def save(self, shard: int, rows: list[tuple[str, str]], done: int, failed: int,
             charges: list[tuple[str, Usage, bool, Price | None, bool]] = ()) -> dict[str, str] | None:
        """Commit a shard's answers and count their spend; the budget's stop once a cap is reached."""
        if rows:
            self.cache.put_many(rows)
            self.saved += len(rows)
        self.progress_by_shard[shard] = (done, failed)
        for stage, usage, cached, price, batch in charges:
            self.spend.charge(stage, usage, cached, price, batch)
        return self._check(charges[-1][0]) if charges else self.stop

    def spent(self) -> tuple[dict[str, StageSpend], dict[str, str] | None]:
        """The shards' spend by stage since the last call, and the stop (None: no cap was reached).

        The driver adds it to the run's ledger after each batch, and sends that ledger back as
        the spend outside the next batch, so nothing is counted twice."""
        taken = self.spend.snapshot()
        self.spend.stages.clear()
        return taken, self.stop

    def progress(self) -> tuple[int, int]:
        done = sum(d for d, _ in self.progress_by_shard.values())
        failed = sum(f for _, f in self.progress_by_shard.values())
        return done, failed

    def summary(self) -> dict[str, Any]:
        return {
            "answers_saved": self.saved,
            "shard_attempts": sum(self.attempts.values()),
            "shards_rerun": sorted(s for s, n in self.attempts.items() if n > 1),
        }

    def close(self) -> None:
        self.cache.close()


class StoreCache:
    """What a shard's scheduler sees as its cache: answers known to the store, and new ones sent to it."""

    def __init__(self, store: Any, shard: int):
        self.store = store
        self.shard = shard
        self.known: dict[str, str] = {}
        self.asked: set[str] | None = None  # keys already asked of the store; None: it holds nothing for us
        self.done = 0
        self.failed = 0
        self.stop: dict[str, str] | None = None  # the budget's stop, as the store said
        self._pending: list[tuple[str, str]] = []
        self._charges: list[tuple[str, Usage, bool, Price | None, bool]] = []
        self._handle: asyncio.Handle | None = None
        self._soon = False
        self._last: Any = None
        self._unread: list[Any] = []  # saves whose answer (the stop, or None) is not read yet

    def prefetch(self, identity: dict[str, Any], requests: Iterable[Request], attempts: int) -> None:
        """Fetch the stored answers of these requests (and their re-asks) in one message.

        Afterwards a request not fetched here (a later step, whose prompt
        depends on earlier answers) is asked of the store when it comes."""
        keys = []
        for request in requests:
            for _ in range(attempts):
                keys.append(cache_key(identity, request))
                request = next_attempt(request)
        self.known = ray.get(self.store.lookup.remote(keys))
        self.asked = set(keys)

    def get(self, key: str) -> Completion | None:
        raw = self.known.get(key)
        if raw is None and self.asked is not None and key not in self.asked:
            self.asked.add(key)
            raw = ray.get(self.store.lookup.remote([key])).get(key)
        return None if raw is None else Completion.from_json(loads(raw), cached=True)

    def put(self, key: str, completion: Completion) -> None:
        raw = dumps(completion.to_json()).decode("utf-8")
        self.known[key] = raw  # as in a local cache: the same request again is answered from it
        self._pending.append((key, raw))
        self._schedule(soon=True)

    def count(self, record: Record | None) -> None:
        if record is None:
            self.failed += 1
        else:
            self.done += 1
        self._schedule(soon=False)

    def _schedule(self, soon: bool) -> None:
        if self._handle is not None:
            if self._soon or not soon:
                return
            self._handle.cancel()
        loop = asyncio.get_running_loop()
        self._soon = soon
        self._handle = loop.call_soon(self.flush) if soon else loop.call_later(0.25, self.flush)

    def charge(self, stage: str, usage: Usage, cached: bool, price: Price | None, batch: bool) -> None:
        """Count an answer's spend; it goes to the store with the next answers sent."""
        self._charges.append((stage, usage, cached, price, batch))
        self._schedule(soon=True)

    def stopped(self) -> dict[str, str] | None:
        """The budget's stop, if a save the store has answered said so (never waits)."""
        if self.stop is None and self._unread:
            ready, self._unread = ray.wait(self._unread, num_returns=len(self._unread), timeout=0)
            for ref in ready:
                self.stop = self.stop or ray.get(ref)
        return self.stop

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._last = self.store.save.remote(self.shard, self._pending, self.done, self.failed, self._charges)
        self._unread.append(self._last)
        self._pending, self._charges = [], []

    def close(self) -> None:
        """Send what is left and wait until the store has everything this shard sent."""
        self.flush()
        ray.get(self._last)



class StoreLedger:
    """A shard's view of the run's ledger: charges go to the answer store, and its stop comes back.

    It has the two methods a stage's `Account` calls (`spending(StoreLedger(cache), "generation")`
    around the shard's session). The check never waits for the store: it reads the answers of saves
    already made, so a cap is seen within one message and the overshoot stays the requests in flight."""

    def __init__(self, cache: StoreCache):
        self.cache = cache

    def charge(self, stage: str, usage: Usage, cached: bool, price: Price | None, batch: bool = False) -> None:
        self.cache.charge(stage, usage, cached, price, batch)

    def check(self, stage: str) -> None:
        stop = self.cache.stopped()
        if stop is not None:
            raise BudgetExceeded(stop["message"], stop["stage"], stop["cap"])


__all__ = ["AnswerStore", "StoreCache", "StoreLedger"]
