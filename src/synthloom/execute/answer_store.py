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
from ..llm import Completion, CompletionCache, Request, cache_key
from ..llm.scheduler import next_attempt
from ..records import Record

class AnswerStore:
    """The run's completion cache, behind one Ray actor on the driver's node."""

    def __init__(self, path: str):
        self.cache = CompletionCache(path)
        # Looked at when the first shard starts, not here: by then the driver
        # has prepared, and a killed run's pending answers, which whoever
        # opens the cache first folds in, are in SQLite for this count.
        self.had_answers: bool | None = None
        self.attempts: collections.Counter[int] = collections.Counter()
        self.progress_by_shard: dict[int, tuple[int, int]] = {}
        self.saved = 0

    def begin(self, shard: int) -> bool:
        """Note a shard's start; True when the store may hold answers for it."""
        if self.had_answers is None:
            self.had_answers = len(self.cache) > 0
        self.attempts[shard] += 1
        self.progress_by_shard[shard] = (0, 0)
        return self.had_answers or self.attempts[shard] > 1

    def lookup(self, keys: list[str]) -> dict[str, str]:
        return self.cache.get_many(keys)

    def save(self, shard: int, rows: list[tuple[str, str]], done: int, failed: int) -> None:
        if rows:
            self.cache.put_many(rows)
            self.saved += len(rows)
        self.progress_by_shard[shard] = (done, failed)

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
        self._pending: list[tuple[str, str]] = []
        self._handle: asyncio.Handle | None = None
        self._soon = False
        self._last: Any = None

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

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._last = self.store.save.remote(self.shard, self._pending, self.done, self.failed)
        self._pending = []

    def close(self) -> None:
        """Send what is left and wait until the store has everything this shard sent."""
        self.flush()
        ray.get(self._last)


__all__ = ["AnswerStore", "StoreCache"]
