"""Private: how curation stages ask a model, and the labelling prompt they share.

Every model-backed stage (self-consistency, label log-probability, the
judge, the teacher) sends its requests through the same `Scheduler` as
generation, with the run's `CompletionCache` when the context names one,
so a rerun of the same curation pays for nothing.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, Sequence

from ..llm import BackendConfig, InvalidAnswer, Outcome, Request, Session
from .base import CurationContext


def ask_all(
    config: BackendConfig,
    requests: Sequence[Request],
    parse: Callable[[Any], Any] | None,
    context: CurationContext,
    description: str,
) -> list[Outcome]:
    """Answer every request (cached, retried, re-asked when `parse` raises InvalidAnswer), in order."""
    session = Session(config, context.cache_path, factory=context.backend_factory, progress=context.progress)
    return session.ask_all(requests, parse, description)


class LabelPrompt:
    """A labelling prompt: the task and its labels, a few records of other labels as
    demonstration turns, then the text to label.

    Small models answer in the shown format far more often than in a described
    one, so each prompt shows `shots` records per label (for at most
    `MAX_DEMO_LABELS` labels), drawn from the records being curated, never the
    record itself, in an order drawn per record and sample.
    """

    MAX_DEMO_LABELS = 8

    def __init__(
        self,
        records: Sequence[Any],
        labels: Sequence[str],
        context: CurationContext,
        field: str | None,
        shots: int = 1,
        seed: int = 0,
    ):
        self.labels = list(labels)
        self.context = context
        self.field = field
        self.shots = shots
        self.seed = seed
        self.by_label: dict[str, list[Any]] = {label: [] for label in self.labels}
        for record in records:
            if record.label in self.by_label:
                self.by_label[record.label].append(record)

    def _system(self) -> str:
        described = [
            f"{label} ({self.context.label_descriptions[label]})" if self.context.label_descriptions.get(label) else label
            for label in self.labels
        ]
        what = self.context.description or "texts"
        return f"You label {what}. The labels are: {', '.join(described)}. Answer with the label only."

    def messages(self, record: Any, sample: int = 0) -> tuple[dict[str, str], ...]:
        rng = random.Random(f"{self.seed}:{record.id}:{sample}")
        out = [{"role": "system", "content": self._system()}]
        if self.shots:
            labels = [label for label in self.labels if self.by_label[label]]
            rng.shuffle(labels)
            turns = []
            for label in labels[: self.MAX_DEMO_LABELS]:
                others = [r for r in self.by_label[label] if r.id != record.id]
                for demo in rng.sample(others, min(self.shots, len(others))):
                    turns.append((demo.text(self.field), label))
            rng.shuffle(turns)
            for text, label in turns:
                out.append({"role": "user", "content": f"Text: {text}\nLabel?"})
                out.append({"role": "assistant", "content": label})
        out.append({"role": "user", "content": f"Text: {record.text(self.field)}\nLabel?"})
        return tuple(out)


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
