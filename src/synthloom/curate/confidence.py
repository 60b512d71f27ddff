"""Confidence: how sure are we that a record is right? Four scores in [0, 1].

- `self_consistency`: ask a model for the record's label `samples` times at
  a temperature; the score is the share of usable answers that agree.
- `label_logprob`: ask once for the label with token log-probabilities; the
  score is the probability mass on the record's label among the labels
  (each label's mass is the probability of the tokens its name starts with;
  labels whose names start alike share it).
- `llm_judge`: a rubric (realistic? on task? label right?) answered as JSON
  `{"score": 1-5, "reason": "..."}`; stored as (score - 1) / 4, with the reason.
- `aux_confidence`: the auxiliary model's held-out probability of the label.

Each writes the score and keeps the record, unless `min_score` is set and
the score is below it. The `reweight` stage turns these scores into weights.
"""

from __future__ import annotations

import json
import math
import re
from typing import Sequence

from ..llm import Completion, InvalidAnswer, Request
from ..recipe import AuxConfidenceSpec, JudgeSpec, LabelLogprobSpec, SelfConsistencySpec
from ..records import Record
from ._llm import LabelParser, LabelPrompt, ask_all
from .auxiliary import held_out_probabilities, labelled_matrix
from .base import DROP, KEEP, SpecStage, mark_unlabelled, stage_for

__all__ = ["AuxConfidence", "DEFAULT_RUBRIC", "LabelLogprob", "LlmJudge", "SelfConsistency", "label_probabilities"]


def _decide(stage: str, record: Record, score: float | None, min_score: float | None, reason: str) -> None:
    if score is None:
        record.decide(stage, KEEP, None, reason or "no usable answer")
    elif min_score is not None and score < min_score:
        record.decide(stage, DROP, score, f"{stage} {score:.2f} < {min_score}: {reason}".rstrip(": "))
    else:
        record.decide(stage, KEEP, score, reason)


@stage_for(SelfConsistencySpec)
class SelfConsistency(SpecStage):
    """The share of sampled model labels that agree with the record's label."""

    name = "self_consistency"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        labels = self.context.label_set(records)
        todo = [r for r in records if r.label is not None]
        prompt = LabelPrompt(todo, labels, self.context, self.field, s.shots, s.seed)
        requests = [
            Request(
                messages=prompt.messages(r, k),
                temperature=s.temperature,
                max_tokens=s.max_tokens,
                seed=s.seed + k,
                sample=k,
            )
            for r in todo
            for k in range(s.samples)
        ]
        outcomes = ask_all(s.model, requests, LabelParser(labels), self.context, self.name)
        for i, record in enumerate(todo):
            answers = [o.value for o in outcomes[i * s.samples : (i + 1) * s.samples] if o.ok]
            if not answers:
                _decide(self.name, record, None, s.min_score, "no usable answer")
                continue
            agree = sum(a == record.label for a in answers)
            others = sorted({a for a in answers if a != record.label})
            reason = f"{agree} of {len(answers)} answers agree" + (f"; others: {', '.join(others)}" if others else "")
            _decide(self.name, record, agree / len(answers), s.min_score, reason)
        mark_unlabelled(records, self.name)
        return records


def label_probabilities(completion: Completion, labels: Sequence[str]) -> dict[str, float] | None:
    """Each label's share of the first answer token's probability (None: no label among the top tokens)."""
    if not completion.logprobs:
        return None
    first = completion.logprobs[0]
    candidates = first.top or [(first.token, first.logprob)]
    names = {label: " ".join(re.split(r"[\s_-]+", label.lower())) for label in labels}
    mass = {label: 0.0 for label in labels}
    for token, logprob in candidates:
        piece = token.strip().lower()
        if not piece:
            continue
        matching = [label for label, name in names.items() if name.startswith(piece)]
        for label in matching:
            mass[label] += math.exp(logprob) / len(matching)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {label: value / total for label, value in mass.items()}


@stage_for(LabelLogprobSpec)
class LabelLogprob(SpecStage):
    """The model's probability of the record's label, from its label-token log-probabilities."""

    name = "label_logprob"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        labels = self.context.label_set(records)
        todo = [r for r in records if r.label is not None]
        prompt = LabelPrompt(todo, labels, self.context, self.field, s.shots, s.seed)
        requests = [
            Request(
                messages=prompt.messages(r),
                temperature=0.0,
                max_tokens=s.max_tokens,
                seed=s.seed,
                logprobs=True,
                top_logprobs=s.top_logprobs,
            )
            for r in todo
        ]
        for record, outcome in zip(todo, ask_all(s.model, requests, None, self.context, self.name)):
            probabilities = label_probabilities(outcome.completion, labels) if outcome.ok else None
            if probabilities is None:
                _decide(self.name, record, None, s.min_score, "no label among the most likely tokens")
                continue
            best = max(probabilities, key=probabilities.get)
            reason = f"most likely label {best} ({probabilities[best]:.2f})"
            _decide(self.name, record, probabilities[record.label], s.min_score, reason)
        mark_unlabelled(records, self.name)
        return records


DEFAULT_RUBRIC = (
    "Is the example realistic (something a real person would write)? Is it on task? "
    "Is its label right? Score 5 when all three hold, 1 when none does."
)

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
}


def parse_judgement(completion: Completion) -> tuple[int, str]:
    """`{"score": 1-5, "reason": "..."}` from an answer (the first JSON object in it)."""
    text = completion.text
    match = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(match.group(0) if match else text)
        score = int(data["score"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidAnswer(f"judge answer is not {{score, reason}} JSON ({exc}): {text[:60]!r}") from None
    if not 1 <= score <= 5:
        raise InvalidAnswer(f"judge score {score} is not 1-5")
    return score, " ".join(str(data.get("reason", "")).split())[:200]


@stage_for(JudgeSpec)
class LlmJudge(SpecStage):
    """A rubric-driven judge: a 1-5 score (stored as 0-1) and a short reason per record."""

    name = "llm_judge"

    def _messages(self, record: Record) -> tuple[dict[str, str], ...]:
        task = self.context.description or "labelled examples"
        label = f"\nLabel: {record.label}" if record.label is not None else ""
        system = (
            f"You review synthetic data: {task}. {self.spec.rubric or DEFAULT_RUBRIC} "
            'Answer with JSON only: {"score": <1-5>, "reason": "<one short sentence>"}.'
        )
        return (
            {"role": "system", "content": system},
            {"role": "user", "content": f"Example: {record.text(self.field)}{label}"},
        )

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        requests = [
            Request(
                messages=self._messages(r),
                temperature=s.temperature,
                max_tokens=s.max_tokens,
                seed=s.seed,
                json_schema=JUDGE_SCHEMA,
            )
            for r in records
        ]
        for record, outcome in zip(records, ask_all(s.model, requests, parse_judgement, self.context, self.name)):
            if not outcome.ok:
                _decide(self.name, record, None, s.min_score, f"no usable judgement ({outcome.error.kind})")
                continue
            score, reason = outcome.value
            _decide(self.name, record, (score - 1) / 4, s.min_score, f"{score}/5: {reason}")
        return records


@stage_for(AuxConfidenceSpec)
class AuxConfidence(SpecStage):
    """The auxiliary model's held-out probability of each record's label."""

    name = "aux_confidence"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        data = labelled_matrix(records, self.context, self.field)
        P = held_out_probabilities(data.X, data.y, len(data.labels), s.folds, s.c, s.seed)
        for i, record in enumerate(data.records):
            best = int(P[i].argmax())
            reason = "" if best == data.y[i] else f"the auxiliary model prefers {data.labels[best]} ({P[i, best]:.2f})"
            _decide(self.name, record, float(P[i, data.y[i]]), s.min_score, reason)
        mark_unlabelled(records, self.name)
        return records
