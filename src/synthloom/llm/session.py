"""One way to ask a model: a backend, the run's cache, the scheduler and a progress bar, closed cleanly.

Everything in synthloom that asks a model (generation, curation stages, the
judge, selective annotation, a Ray shard) goes through a `Session`:

    session = Session(recipe.model, cache="runs/x/cache.sqlite", progress=True)
    outcomes = session.ask_all(requests, parse)          # one batch, in order

    # or several steps on one event loop, the scheduler shared between them
    result = session.run(lambda scheduler: producer.produce(scheduler, ...))

A session builds the backend (from a config, with `create_backend` or a
factory) or takes one it is given, opens the completion cache (a path, or
any object with the cache's `get`/`put`), makes the scheduler, lets a
progress bar watch it, runs the work on an event loop, and then closes the
backend on that loop (its connections belong to it) and the cache it opened,
however the work ended. This is the one place where what every request
costs passes by, so spend control, batch APIs and batched local decoding
each have one place to go: a backend whose config says `mode: batch` is
wrapped here in a `BatchingBackend` (batch.py), its ledger of batches
beside the cache. A session opened inside `spend.spending(ledger,
stage)` charges every answer to that stage of the run's ledger and stops
at its budget.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable, Protocol, Sequence, TypeVar, Union

from ..aio import run_async
from ..progress import RecordProgress
from .batch import BatchingBackend, batching
from .cache import CompletionCache
from .registry import Backend, BackendConfig, create_backend
from .scheduler import Outcome, Parser, Scheduler, SchedulerStats
from .spend import account_for
from .types import Completion, Request

T = TypeVar("T")
BATCH_WIDTH = 1_000_000  # requests that may wait for a provider batch at once


class AnswerCache(Protocol):
    """What the scheduler needs of a cache: `CompletionCache`, or a shard's view of a remote store."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, completion: Completion) -> None: ...


BackendFactory = Callable[[BackendConfig], Backend]
CacheLike = Union[str, Path, AnswerCache, None]


class Session:
    """Asks one backend many requests through one scheduler and cache; see the module docstring.

    `backend`: a `BackendConfig` (the session builds the backend with
    `factory`, default `create_backend`) or a ready `Backend`. `cache`: a
    path (opened here, closed at the end of `run`), a cache object (left
    open: its owner closes it) or None. `bar`: a progress bar to follow the
    scheduler's retries and cache hits; or `progress=True` and a
    `description` for a bar of the session's own in `ask_all`.
    """

    def __init__(
        self,
        backend: Backend | BackendConfig,
        cache: CacheLike = None,
        *,
        factory: BackendFactory | None = None,
        bar: RecordProgress | None = None,
        progress: bool = False,
        description: str = "asking",
    ):
        self.backend = backend
        self.cache = cache
        self.factory = factory
        self.bar = bar
        self.progress = progress
        self.description = description
        self.scheduler: Scheduler | None = None

    @property
    def stats(self) -> SchedulerStats:
        """The scheduler's counts (calls paid, answers from the cache, failures, tokens)."""
        return self.scheduler.stats if self.scheduler is not None else SchedulerStats()

    def failure_examples(self) -> dict[str, str]:
        return self.scheduler.failure_examples() if self.scheduler is not None else {}

    def run(self, work: Callable[[Scheduler], Awaitable[T]]) -> T:
        """Run `work(scheduler)` to the end on an event loop, then close what the session opened."""
        return run_async(self.arun(work))

    async def arun(self, work: Callable[[Scheduler], Awaitable[T]]) -> T:
        """`run` for callers already on an event loop."""
        backend = self._backend()
        cache, opened = self._cache()
        path = getattr(cache, "path", None)
        backend = batching(backend, Path(path) if path is not None else None, self.bar)
        # In batch mode every request waits in a collection, not in the concurrency limit.
        width = BATCH_WIDTH if isinstance(backend, BatchingBackend) else None
        self.scheduler = Scheduler(backend, cache, concurrency=width, spend=account_for(backend.config))  # type: ignore[arg-type]
        if self.bar is not None:
            self.bar.watch(self.scheduler.stats)
        try:
            return await work(self.scheduler)
        finally:
            try:
                await backend.aclose()
            finally:
                if opened is not None:
                    opened.close()

    async def ask(self, scheduler: Scheduler, requests: Sequence[Request], parse: Parser | None = None,
                  on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Answer every request at once under the scheduler's limits; the outcomes in request order."""

        async def one(request: Request) -> Outcome:
            outcome = await scheduler.complete(request, parse)
            if on_outcome is not None:
                on_outcome(outcome)
            if self.bar is not None:
                self.bar.advance(outcome.value if outcome.ok else None)
            return outcome

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def ask_all(self, requests: Sequence[Request], parse: Parser | None = None, description: str | None = None) -> list[Outcome]:
        """Answer every request (cached, retried, re-asked when `parse` raises InvalidAnswer), in order.

        Shows a progress bar of its own when the session was made with
        `progress=True` (and no bar of the caller's)."""
        if not requests:
            return []
        own_bar = self.bar is None
        if own_bar:
            self.bar = RecordProgress(len(requests), description or self.description, enabled=self.progress)
        assert self.bar is not None
        try:
            with self.bar:
                return self.run(lambda scheduler: self.ask(scheduler, requests, parse))
        finally:
            if own_bar:
                self.bar = None

    def _backend(self) -> Backend:
        if isinstance(self.backend, BackendConfig):
            return (self.factory or create_backend)(self.backend)
        return self.backend

    def _cache(self) -> tuple[AnswerCache | None, CompletionCache | None]:
        """The cache the scheduler uses, and the one the session opened (and so closes)."""
        if self.cache is None:
            return None, None
        if isinstance(self.cache, (str, Path)):
            opened = CompletionCache(self.cache)
            return opened, opened
        return self.cache, None


__all__ = ["AnswerCache", "BackendFactory", "Session"]
