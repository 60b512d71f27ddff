"""Private: how curation stages ask a model, and the labelling prompt they share.

Every model-backed stage (self-consistency, label log-probability, the
judge, the teacher) sends its requests through the same `Scheduler` as
generation, with the run's `CompletionCache` when the context names one,
so a rerun of the same curation pays for nothing.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Callable, Sequence

from ..aio import run_async
from ..llm import BackendConfig, CompletionCache, InvalidAnswer, Outcome, Request, Scheduler, create_backend
from ..progress import RecordProgress
from .base import CurationContext


def ask_all(
    config: BackendConfig,
    requests: Sequence[Request],
    parse: Callable[[Any], Any] | None,
    context: CurationContext,
    description: str,
) -> list[Outcome]:
    """Answer every request (cached, retried, re-asked when `parse` raises InvalidAnswer)."""
    if not requests:
        return []
    factory = context.backend_factory or create_backend
    backend = factory(config)
    cache = CompletionCache(context.cache_path) if context.cache_path is not None else None
    scheduler = Scheduler(backend, cache)
    bar = RecordProgress(len(requests), description=description, enabled=context.progress)

    async def one(request: Request) -> Outcome:
        outcome = await scheduler.complete(request, parse)
        bar.advance(outcome.value if outcome.ok else None)
        return outcome

    async def main() -> list[Outcome]:
        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await backend.aclose()

    try:
        with bar:
            bar.watch(scheduler.stats)
            return run_async(main())
    finally:
        if cache is not None:
            cache.close()


def label_messages(text: str, labels: Sequence[str], context: CurationContext) -> tuple[dict[str, str], ...]:
    """A zero-shot labelling prompt: the task, the labels (with descriptions), the text."""
    lines = []
    for label in labels:
        description = context.label_descriptions.get(label)
        lines.append(f"- {label}: {description}" if description else f"- {label}")
    what = f" {context.description}" if context.description else " texts"
    system = (
        f"You label{what}. Possible labels:\n" + "\n".join(lines) + "\nAnswer with exactly one label and nothing else."
    )
    return (
        {"role": "system", "content": system},
        {"role": "user", "content": f"Text: {text}\nLabel:"},
    )


def _label_regex(labels: Sequence[str]) -> re.Pattern[str]:
    alternatives = sorted(
        (r"[\s_-]+".join(re.escape(p) for p in re.split(r"[\s_-]+", label) if p) for label in labels),
        key=len,
        reverse=True,
    )
    return re.compile(r"(?<![\w])(" + "|".join(alternatives) + r")(?![\w])", re.I)


class LabelParser:
    """Finds the first label named in an answer; no label at all is an unusable answer."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self._regex = _label_regex(self.labels)
        self._by_key = {self._key(label): label for label in self.labels}

    @staticmethod
    def _key(text: str) -> str:
        return " ".join(re.split(r"[\s_-]+", text.lower())).strip()

    def __call__(self, completion: Any) -> str:
        text = completion.text if hasattr(completion, "text") else str(completion)
        match = self._regex.search(text)
        if match is None:
            raise InvalidAnswer(f"no label in answer: {text[:60]!r}")
        return self._by_key[self._key(match.group(1))]
