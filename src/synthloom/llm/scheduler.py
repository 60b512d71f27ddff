"""The scheduler every backend runs under: concurrency, rate limits, retries, cache.

One `Scheduler.complete()` call turns a request into an `Outcome`: it asks
the cache, then the backend under a concurrency limit, retries what can be
retried, checks the answer with the caller's parser, and re-asks (a fresh
draw, `attempt + 1`) when the answer is unusable. Errors of every kind and
unusable answers share one budget of `max_attempts` tries per request;
429s do not spend it (they mean "slower", not "wrong") but are capped too.

When most requests fail (a wrong URL, a dead server, a model that never
follows the format) the scheduler stops the run early with a message that
says what went wrong, instead of burning through the whole budget: when
more than half of the finished requests failed, or when a long unbroken run
of tries (at least the concurrency limit, and 20) failed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Protocol, TypeVar

from .cache import CompletionCache, cache_key
from .registry import Backend
from .types import (
    Completion,
    FatalModelError,
    InvalidAnswer,
    ModelError,
    RateLimited,
    Request,
    Usage,
)

T = TypeVar("T")


class Spend(Protocol):
    """Where a scheduler charges the answers it gets and asks before paying for one (see spend.py)."""

    def charge(self, usage: Usage, cached: bool, batch: bool = False) -> None: ...

    def check(self) -> None: ...


class RunAborted(RuntimeError):
    """Raised by every pending request once the scheduler has stopped the run."""

    fixable = False  # True: a setting the user can change is at fault (the command exits with 2)


class SettingRefused(RunAborted):
    """The provider refused what a setting of the recipe asks (e.g. `mode: batch` where there is no Batch API)."""

    fixable = True


@dataclass
class RetryPolicy:
    """How long to wait before trying a failed request again.

    The first retry comes soon (50 ms, with jitter): one failed request among
    many good ones is most often a blip, and every long wait at the end of a
    run lengthens the run. A request that fails again waits twice as long
    each time (0.05, 0.1, 0.2, 0.4 s..., capped at `max_delay`). A server
    that is really down is not waited out request by request: when nearly
    everything fails the run stops early with a message, and a rerun
    resumes it.
    """

    base_delay: float = 0.05
    growth: float = 2.0
    max_delay: float = 20.0
    max_rate_limit_waits: int = 50
    abort_min_requests: int = 20
    abort_failure_share: float = 0.5

    def delay(self, tries: int) -> float:
        """Exponential back-off with jitter: about base * growth^(tries-1), capped."""
        return min(self.max_delay, self.base_delay * self.growth ** (tries - 1)) * random.uniform(0.5, 1.5)

    def rate_limit_delay(self, retry_after: float | None, waits: int) -> float:
        """After a 429: the wait the server asked for (spread a little), else back-off.

        The server knows best when it has room again; load is shed by the
        adaptive limit, not by waiting longer than asked.
        """
        if retry_after is not None:
            return max(retry_after, 0.005) * random.uniform(1.0, 1.25)
        return self.delay(waits)


@dataclass
class SchedulerStats:
    """Counts for the manifest: what was paid for, replayed, retried and lost."""

    calls: int = 0
    cache_hits: int = 0
    succeeded: int = 0
    failed: int = 0
    tries_failed: collections.Counter = field(default_factory=collections.Counter)
    requests_failed: collections.Counter = field(default_factory=collections.Counter)
    usage: Usage = field(default_factory=Usage)
    cached_usage: Usage = field(default_factory=Usage)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_calls": self.calls,
            "served_from_cache": self.cache_hits,
            "requests_succeeded": self.succeeded,
            "requests_failed": self.failed,
            "failed_tries_by_kind": dict(sorted(self.tries_failed.items())),
            "failed_requests_by_kind": dict(sorted(self.requests_failed.items())),
            "tokens": {
                "prompt": self.usage.prompt_tokens,
                "prompt_cached_by_provider": self.usage.cached_tokens,
                "completion": self.usage.completion_tokens,
                "prompt_from_cache": self.cached_usage.prompt_tokens,
                "completion_from_cache": self.cached_usage.completion_tokens,
            },
        }


@dataclass
class Outcome(Generic[T]):
    """What became of one request: a parsed value, or the error that ended it."""

    request: Request
    completion: Completion | None = None
    value: T | None = None
    error: ModelError | None = None
    tries: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class AdaptiveLimiter:
    """A concurrency limit that halves when many answers are 429 and grows back.

    A few scattered 429s only delay the requests that got them (honouring
    Retry-After); a window in which more than `shed_share` of the answers
    are 429 halves the limit, and a window with at most half that share
    raises it again. A window is at least 50 answers, so chance alone rarely
    crosses the line. (Growing back only after a window with no 429 at all
    would let a server that refuses a steady few per cent drag the limit
    down for good: such windows are rare.)
    """

    def __init__(self, limit: int, requests_per_minute: float | None = None, shed_share: float = 0.1):
        self.max_limit = limit
        self.limit = limit
        self.in_flight = 0
        self.shed_share = shed_share
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_start = 0.0
        self._window = 0
        self._window_429 = 0

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.release()  # we were handed a slot but will not use it
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        if self._interval:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
            if start > now:
                await asyncio.sleep(start - now)

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def record(self, rate_limited: bool) -> None:
        self._window += 1
        self._window_429 += rate_limited
        if self._window < max(50, self.limit):
            return
        share = self._window_429 / self._window
        self._window = self._window_429 = 0
        if share > self.shed_share:
            self.limit = max(1, self.limit // 2)
        elif share <= self.shed_share / 2 and self.limit < self.max_limit:
            self.limit = min(self.max_limit, self.limit + max(1, self.limit // 4))
            self._wake()


Parser = Callable[[Completion], Any]


class Scheduler:
    """Runs requests against one backend with a shared cache, limit and budget."""

    def __init__(
        self,
        backend: Backend,
        cache: CompletionCache | None = None,
        *,
        concurrency: int | None = None,
        max_attempts: int | None = None,
        policy: RetryPolicy | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        spend: Spend | None = None,
    ):
        config = backend.config
        self.backend = backend
        self.cache = cache
        self.max_attempts = max_attempts or config.max_attempts
        self.policy = policy or RetryPolicy()
        self.limiter = AdaptiveLimiter(
            concurrency or config.concurrency, getattr(config, "requests_per_minute", None)
        )
        self.stats = SchedulerStats()
        self.on_outcome = on_outcome
        self.spend = spend
        self._identity: dict[str, Any] | None = None
        self._aborted: RunAborted | None = None
        self._stopping = 0
        self._examples: dict[str, str] = {}
        self._streak = 0
        self._streak_kinds: collections.Counter[str] = collections.Counter()

    @property
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = self.backend.identity()
        return self._identity

    def abort(self, message: str | RunAborted) -> None:
        """Stop the run: this and every later request raise the same RunAborted (or subclass)."""
        if self._aborted is None:
            self._aborted = message if isinstance(message, RunAborted) else RunAborted(message)
        raise self._aborted

    async def complete(self, request: Request, parse: Parser | None = None) -> Outcome:
        """Answer `request`, parsed by `parse` (which raises InvalidAnswer to re-ask)."""
        stats = self.stats
        tries = 0
        rate_waits = 0
        current = request
        while True:
            if self._aborted is not None:
                await self._halt(holding=False)
            key = cache_key(self.identity, current) if self.cache is not None else None
            completion = self.cache.get(key) if key is not None else None
            if completion is not None:
                stats.cache_hits += 1
                stats.cached_usage.add(completion.usage)
                if self.spend is not None:
                    self.spend.charge(completion.usage, cached=True, batch=completion.batch)
            else:
                try:
                    completion = await self._call(current)
                except RateLimited as exc:
                    stats.tries_failed[exc.kind] += 1
                    self._remember(exc)
                    rate_waits += 1
                    if rate_waits > self.policy.max_rate_limit_waits:
                        return self._finish(Outcome(current, error=exc, tries=tries + 1))
                    await asyncio.sleep(self.policy.rate_limit_delay(exc.retry_after, rate_waits))
                    continue
                except ModelError as exc:
                    stats.tries_failed[exc.kind] += 1
                    self._remember(exc)
                    if isinstance(exc, FatalModelError):
                        self.abort(SettingRefused(str(exc)) if getattr(exc, "fixable", False) else f"stopping: {exc}")
                    tries += 1
                    if not exc.retryable or tries >= self.max_attempts:
                        return self._finish(Outcome(current, error=exc, tries=tries))
                    await asyncio.sleep(self.policy.delay(tries))
                    continue
                stats.calls += 1
                stats.usage.add(completion.usage)
                if self.spend is not None:
                    self.spend.charge(completion.usage, cached=False, batch=completion.batch)
                if key is not None:
                    self.cache.put(key, completion)
            if parse is None:
                return self._finish(Outcome(current, completion, completion.text, tries=tries + 1))
            try:
                value = parse(completion)
            except InvalidAnswer as exc:
                stats.tries_failed[exc.kind] += 1
                self._remember(exc)
                tries += 1
                if tries >= self.max_attempts:
                    return self._finish(Outcome(current, completion, error=exc, tries=tries))
                current = next_attempt(current)
                continue
            return self._finish(Outcome(current, completion, value, tries=tries + 1))

    async def _call(self, request: Request) -> Completion:
        limiter = self.limiter
        await limiter.acquire()
        try:
            if self._aborted is not None:
                await self._halt(holding=True)
            if self.spend is not None:
                try:
                    self.spend.check()
                except RunAborted as exc:
                    if self._aborted is None:
                        self._aborted = exc
                    await self._halt(holding=True)
            completion = await self.backend.complete(request)
        except RateLimited:
            limiter.record(True)
            raise
        finally:
            limiter.release()
        limiter.record(False)
        return completion

    async def _halt(self, holding: bool) -> None:
        """Raise the run's RunAborted. A graceful one (a budget's cap) first lets the requests
        already sent finish, since their answers are paid for and get saved; `holding`: this
        request holds a slot of the limiter itself."""
        exc = self._aborted
        assert exc is not None
        if getattr(exc, "graceful", False):
            self._stopping += holding
            try:
                while self.limiter.in_flight > self._stopping:
                    await asyncio.sleep(0.01)
            finally:
                self._stopping -= holding  # our slot is released right after, in the same step
        raise exc

    def _remember(self, exc: ModelError) -> None:
        """Note a failed try; a long unbroken run of them means nothing is working."""
        self._examples.setdefault(exc.kind, str(exc))
        if isinstance(exc, RateLimited):
            return
        self._streak += 1
        self._streak_kinds[exc.kind] += 1
        if self._streak >= max(self.policy.abort_min_requests, self.limiter.max_limit):
            kind, count = self._streak_kinds.most_common(1)[0]
            self.abort(
                f"stopping early: the last {self._streak} tries all failed "
                f"(most often {kind}, {count} times), e.g. {self._examples[kind]}"
            )

    def _finish(self, outcome: Outcome) -> Outcome:
        stats = self.stats
        if outcome.error is None:
            stats.succeeded += 1
            self._streak = 0
            self._streak_kinds.clear()
        else:
            stats.failed += 1
            stats.requests_failed[outcome.error.kind] += 1
            finished = stats.succeeded + stats.failed
            if (
                finished >= self.policy.abort_min_requests
                and stats.failed > self.policy.abort_failure_share * finished
            ):
                kind, count = stats.requests_failed.most_common(1)[0]
                self.abort(
                    f"stopping early: {stats.failed} of {finished} requests failed "
                    f"(most often {kind}, {count} times), e.g. {self._examples.get(kind, '')}"
                )
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def failure_examples(self) -> dict[str, str]:
        return dict(self._examples)


def next_attempt(request: Request) -> Request:
    """The same prompt asked again for a fresh draw: attempt + 1 and a derived seed."""
    attempt = request.attempt + 1
    seed = None if request.seed is None else (request.seed + 1_000_003 * attempt) % 2**31
    return dataclasses.replace(request, attempt=attempt, seed=seed)
