"""Selective annotation: which records go to people, and which the model labels.

Given unlabelled inputs, a model and a human budget of B records (or of a
cost), `ModelLabeller` labels every input with the model and says how sure
it is, and `select_for_humans` picks the B records people should label:
least confident first, with diversity, so that the budget is not spent on
near-duplicates of one hard case. The model's labels stand for the rest.

Confidence (`method`):
- `logprob`: one greedy answer; the probability of its label from the
  label tokens' log-probabilities, renormalised at each token over the
  continuations that still spell a label (the answer is constrained to
  the labels by a JSON schema);
- `votes`: self-consistency, the share of `samples` sampled answers that
  agree with the majority label;
- `both`: the mean of the two.

With `calibrate=True` (logprob and both), the labels' probabilities at the
first token of the answer are divided by those the model gives an empty
input ("N/A"), which removes a small model's leaning towards one label
(contextual calibration, Zhao et al. 2021); the label is then the most
probable calibrated one.

Selection is greedy: each step takes the record with the highest
`(1 - confidence) - diversity * similarity to the records already chosen`
(cosine similarity of sentence embeddings), and a record closer than
`duplicate_similarity` to one already chosen is taken only when nothing
else is left. The expected accuracy of the mix counts people as
`human_accuracy` right and the model as right with its confidence, so it
is as good as the model's calibration (the benchmark prints both).

It is long (over 400 lines) because labelling, the confidence measures that
read the labeller's answers, and the selection that uses them are one
method; split, each part would be read only beside the others.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..llm import Backend, InvalidAnswer, Request, Scheduler, Session, TokenLogprob
from ..llm.session import CacheLike
from ..records import Record

Method = Literal["logprob", "votes", "both"]
Demonstrations = Callable[[Record], Sequence[Record]]


@dataclass
class ModelLabel:
    """The model's label for one record and how sure it is (0-1)."""

    record_id: str
    label: str | None
    confidence: float
    votes: dict[str, int] = field(default_factory=dict)
    reason: str = ""


class ModelLabeller:
    """Labels texts with a chat model through the scheduler and its cache."""

    def __init__(
        self,
        backend: Backend,
        labels: Sequence[str],
        *,
        label_descriptions: dict[str, str] | None = None,
        description: str | None = None,
        demonstrations: Sequence[Record] | Demonstrations = (),
        method: Method = "logprob",
        samples: int = 5,
        temperature: float = 0.8,
        max_tokens: int = 48,
        seed: int = 0,
        calibrate: bool = False,
        cache: CacheLike = None,
        on_record: Callable[[Any], None] | None = None,
    ):
        self.backend = backend
        self.labels = list(labels)
        self.label_descriptions = label_descriptions or {}
        self.description = description
        self.demonstrations = demonstrations
        self.method = method
        self.samples = samples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.calibrate = calibrate
        self.cache = cache
        self.on_record = on_record
        self._prior: dict[str, float] | None = None

    # -- prompts ---------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": self.labels}},
            "required": ["label"],
        }

    def _system(self) -> str:
        lines = []
        if self.description:
            lines.append(f"The texts are {self.description}.")
        lines.append("Classify each text into exactly one of these labels:")
        for label in self.labels:
            note = self.label_descriptions.get(label)
            lines.append(f"- {label}: {note}" if note else f"- {label}")
        lines.append('Answer with JSON only: {"label": "<one of the labels>"}.')
        return "\n".join(lines)

    def messages(self, record: Record) -> tuple[dict[str, str], ...]:
        demos = self.demonstrations(record) if callable(self.demonstrations) else self.demonstrations
        out = [{"role": "system", "content": self._system()}]
        for demo in demos:
            out.append({"role": "user", "content": demo.text()})
            out.append({"role": "assistant", "content": json.dumps({"label": demo.label})})
        out.append({"role": "user", "content": record.text()})
        return tuple(out)

    def _parse(self, completion: Any) -> str:
        try:
            label = json.loads(completion.text)["label"]
        except (ValueError, KeyError, TypeError):
            raise InvalidAnswer(f"not a label answer: {completion.text[:60]!r}") from None
        if label not in self.labels:
            raise InvalidAnswer(f"unknown label {label!r}")
        return label

    # -- labelling -------------------------------------------------------------------

    def label(self, records: Sequence[Record]) -> list[ModelLabel]:
        """Label every record, through a session over the labeller's backend and cache."""
        return Session(self.backend, self.cache).run(lambda scheduler: self.alabel(scheduler, records))

    async def alabel(self, scheduler: Scheduler, records: Sequence[Record]) -> list[ModelLabel]:
        if self.calibrate and self.method != "votes":
            self._prior = await self._content_free(scheduler)
        return list(await asyncio.gather(*(self._one(scheduler, r) for r in records)))

    def _greedy_request(self, record: Record) -> Request:
        return Request(messages=self.messages(record), temperature=0.0, max_tokens=self.max_tokens, seed=self.seed,
                       json_schema=self.schema(), logprobs=True, top_logprobs=20)

    async def _content_free(self, scheduler: Scheduler) -> dict[str, float] | None:
        """The model's leaning among the labels for an empty input ("N/A"): its bias to divide out."""
        outcome = await scheduler.complete(self._greedy_request(Record(id="", fields={"text": "N/A"})), self._parse)
        if not outcome.ok:
            return None
        return label_distribution(outcome.completion.logprobs or [], outcome.completion.text, self.labels)

    async def _one(self, scheduler: Scheduler, record: Record) -> ModelLabel:
        messages = self.messages(record)
        schema = self.schema()
        greedy_label, logprob_conf, votes = None, None, Counter()
        if self.method in ("logprob", "both"):
            outcome = await scheduler.complete(self._greedy_request(record), self._parse)
            if outcome.ok:
                tokens, text = outcome.completion.logprobs or [], outcome.completion.text
                greedy_label = outcome.value
                logprob_conf = label_probability(tokens, text, self.labels)
                calibrated = calibrated_label(label_distribution(tokens, text, self.labels), self._prior, greedy_label)
                if calibrated is not None:
                    greedy_label, logprob_conf = calibrated
        if self.method in ("votes", "both"):
            requests = [
                Request(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                        seed=self.seed + i, json_schema=schema, sample=i)
                for i in range(self.samples)
            ]
            outcomes = await asyncio.gather(*(scheduler.complete(r, self._parse) for r in requests))
            votes = Counter(o.value for o in outcomes if o.ok)
        result = _combine(record.id, greedy_label, logprob_conf, votes, self.method)
        if self.on_record is not None:
            self.on_record(result)
        return result


def _combine(record_id: str, greedy: str | None, logprob_conf: float | None, votes: Counter, method: str) -> ModelLabel:
    total = sum(votes.values())
    vote_label, vote_count = votes.most_common(1)[0] if votes else (None, 0)
    vote_conf = vote_count / total if total else None
    if method == "votes":
        return ModelLabel(record_id, vote_label, vote_conf or 0.0, dict(votes), f"{vote_count} of {total} samples agree")
    if method == "logprob" or vote_conf is None:
        conf = logprob_conf if logprob_conf is not None else 0.0
        return ModelLabel(record_id, greedy, conf, dict(votes), f"label probability {conf:.2f}")
    label = greedy or vote_label
    agreeing = votes.get(label, 0) / total if total else 0.0
    conf = ((logprob_conf or 0.0) + agreeing) / 2
    return ModelLabel(record_id, label, conf, dict(votes),
                      f"label probability {logprob_conf or 0:.2f}, {votes.get(label, 0)} of {total} samples agree")


def label_probability(tokens: Sequence[TokenLogprob], text: str, labels: Sequence[str]) -> float | None:
    """P(label) of a constrained JSON answer, from its label tokens' log-probabilities.

    At each token of the label value, the token's probability is divided by
    the mass that could still spell one of the labels: the top alternatives
    that do, plus the mass outside the top list (which might). Tokens the
    model wanted but the schema forbade do not count, so this is the
    model's belief in the label among the labels; their product over the
    value's tokens is the label's probability. None when the tokens do not
    cover the value.
    """
    try:
        value = json.loads(text)["label"]
    except (ValueError, KeyError, TypeError):
        return None
    quoted = json.dumps(value)
    start = text.find(quoted)
    if start < 0:
        return None
    start += 1  # past the opening quote
    end = start + len(quoted) - 2
    position, prefix, probability = 0, "", 1.0
    for token in tokens:
        token_start, position = position, position + len(token.token)
        if position <= start or token_start > end:
            continue
        offset = max(0, start - token_start)
        alternatives = dict(token.top)
        alternatives[token.token] = token.logprob
        unseen = max(0.0, 1.0 - sum(math.exp(lp) for lp in alternatives.values()))
        valid = unseen
        for alt, logprob in alternatives.items():
            if alt == token.token or _spells_label(prefix, alt, offset, token.token, labels):
                valid += math.exp(logprob)
        probability *= math.exp(token.logprob) / valid
        piece = token.token[offset:]
        prefix += piece.split('"', 1)[0]
        if '"' in piece:
            break
    return min(1.0, probability) if prefix == value else None


def label_distribution(tokens: Sequence[TokenLogprob], text: str, labels: Sequence[str]) -> dict[str, float] | None:
    """Every label's probability from the first token of a constrained answer's label value.

    Each alternative at that token shares its probability equally among the
    labels it can begin; the result is normalised over the labels. It sees
    only the first token, so labels that begin alike split their mass.
    None when the answer or its tokens do not show the value.
    """
    try:
        value = json.loads(text)["label"]
    except (ValueError, KeyError, TypeError):
        return None
    start = text.find(json.dumps(value))
    if start < 0:
        return None
    start += 1
    position = 0
    for token in tokens:
        token_start, position = position, position + len(token.token)
        if position <= start:
            continue
        offset = max(0, start - token_start)
        alternatives = dict(token.top)
        alternatives[token.token] = token.logprob
        mass = dict.fromkeys(labels, 0.0)
        for alt, logprob in alternatives.items():
            if not alt.startswith(token.token[:offset]):
                continue
            piece = alt[offset:]
            head = piece.split('"', 1)[0]
            if not head:
                continue
            fits = [l for l in labels if (l == head if '"' in piece else l.startswith(head))]
            for label in fits:
                mass[label] += math.exp(logprob) / len(fits)
        total = sum(mass.values())
        return {l: m / total for l, m in mass.items()} if total > 0 else None
    return None


def calibrated_label(
    distribution: dict[str, float] | None, prior: dict[str, float] | None, greedy: str | None, floor: float = 1e-3
) -> tuple[str, float] | None:
    """Contextual calibration: the label distribution divided by the content-free one, renormalised.

    Returns (label, its calibrated probability); ties go to the greedy
    answer. None when either distribution is missing.
    """
    if not distribution or not prior:
        return None
    scores = {l: p / max(prior.get(l, 0.0), floor) for l, p in distribution.items()}
    total = sum(scores.values())
    if total <= 0:
        return None
    best = max(scores, key=lambda l: (scores[l], l == greedy))
    return best, scores[best] / total


def _spells_label(prefix: str, alt: str, offset: int, chosen: str, labels: Sequence[str]) -> bool:
    """Whether the alternative token `alt` keeps the value on the way to one of the labels."""
    if not alt.startswith(chosen[:offset]):
        return False
    piece = alt[offset:]
    candidate = prefix + piece.split('"', 1)[0]
    if '"' in piece:
        return candidate in labels
    return any(label.startswith(candidate) for label in labels)


# -- choosing what people label ------------------------------------------------------------


@dataclass
class Selection:
    """The records chosen for people, best first, and what the mix is expected to give."""

    human: list[str]
    model: list[str]
    reasons: dict[str, str]
    expected_accuracy: float
    expected_accuracy_model_only: float
    expected_accuracy_random: float
    expected_cost: float

    def to_json(self) -> dict[str, Any]:
        return {
            "human": len(self.human),
            "model": len(self.model),
            "expected_accuracy": round(self.expected_accuracy, 4),
            "expected_accuracy_model_only": round(self.expected_accuracy_model_only, 4),
            "expected_accuracy_random": round(self.expected_accuracy_random, 4),
            "expected_cost": round(self.expected_cost, 4),
        }


def budget_records(budget: float | str, total: int, human_cost: float = 1.0) -> int:
    """B as a number of records from `50`, `0.1`, `"10%"` or a cost (`"cost:25"`, with human_cost)."""
    if isinstance(budget, str):
        text = budget.strip()
        if text.endswith("%"):
            return min(total, round(total * float(text[:-1]) / 100))
        if text.startswith("cost:"):
            return min(total, int(float(text[5:]) // human_cost))
        budget = float(text)
    if budget < 0:
        raise ValueError(f"budget {budget} is negative")
    if 0 < budget < 1:
        return min(total, round(total * budget))
    return min(total, int(budget))


def select_for_humans(
    labels: Sequence[ModelLabel],
    budget: int,
    embeddings: np.ndarray | None = None,
    *,
    diversity: float = 0.2,
    duplicate_similarity: float = 0.95,
    human_accuracy: float = 1.0,
    human_cost: float = 1.0,
    model_cost: float = 0.0,
) -> Selection:
    """Choose `budget` records for people: least confident first, spread out in embedding space."""
    n = len(labels)
    budget = max(0, min(budget, n))
    confidence = np.array([min(1.0, max(0.0, l.confidence)) for l in labels], dtype=np.float64)
    uncertainty = 1.0 - confidence
    if embeddings is not None and len(embeddings) != n:
        raise ValueError(f"{len(embeddings)} embeddings for {n} records")
    closest = np.zeros(n)  # similarity to the nearest record chosen so far
    available = np.ones(n, dtype=bool)
    chosen: list[int] = []
    reasons: dict[str, str] = {}
    for rank in range(budget):
        gain = uncertainty - (diversity * np.maximum(closest, 0.0) if embeddings is not None else 0.0)
        fresh = available & (closest < duplicate_similarity)
        pool = fresh if fresh.any() else available
        i = int(np.flatnonzero(pool)[np.argmax(gain[pool])])
        chosen.append(i)
        available[i] = False
        reasons[labels[i].record_id] = (
            f"rank {rank + 1}: confidence {confidence[i]:.2f}"
            + (f", similarity to earlier picks {closest[i]:.2f}" if embeddings is not None else "")
        )
        if embeddings is not None:
            closest = np.maximum(closest, embeddings @ embeddings[i])
    rest = [i for i in range(n) if available[i]]
    mean_conf = float(confidence.mean()) if n else 0.0
    return Selection(
        human=[labels[i].record_id for i in chosen],
        model=[labels[i].record_id for i in rest],
        reasons=reasons,
        expected_accuracy=(budget * human_accuracy + float(confidence[rest].sum())) / n if n else 0.0,
        expected_accuracy_model_only=mean_conf,
        expected_accuracy_random=(budget * human_accuracy + (n - budget) * mean_conf) / n if n else 0.0,
        expected_cost=budget * human_cost + (n - budget) * model_cost,
    )


def select_random(labels: Sequence[ModelLabel], budget: int, seed: int = 0) -> list[str]:
    """The same number of records drawn at random: the baseline selection is measured against."""
    ids = [l.record_id for l in labels]
    return random.Random(seed).sample(ids, max(0, min(budget, len(ids))))


__all__ = [
    "ModelLabel",
    "ModelLabeller",
    "Selection",
    "budget_records",
    "calibrated_label",
    "label_distribution",
    "label_probability",
    "select_for_humans",
    "select_random",
]
