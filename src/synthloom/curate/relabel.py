"""Label enhancement: find records whose label is wrong, then relabel or drop them.

- `cross_partition`: split the records into K parts, train the auxiliary
  model (embeddings + logistic regression) on the others, predict the
  held-out part. A record is flagged when the held-out prediction is another
  label and beats the record's own label by at least `margin` in
  probability. A margin, rather than "the prediction is above 0.5", is what
  works with many labels: with 77 intents the best label rarely gets half
  the mass, yet it can be far ahead of a wrong one. Flagged records are
  relabelled when the new label's probability reaches `relabel_confidence`
  and dropped otherwise (or always dropped, with `action: drop`).
- `confident_learning`: cleanlab's `find_label_issues` on the same held-out
  probabilities; flagged records are dropped or relabelled to the prediction.
- `teacher`: a second, stronger model re-annotates only what other stages
  flagged (relabelled, or scored below `below`): its label wins.

A relabelled record keeps its first label in `meta["original_label"]`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..llm import Request
from ..recipe import ConfidentLearningSpec, CrossPartitionSpec, TeacherSpec
from ..records import Record
from ._llm import LabelParser, LabelPrompt, ask_all
from .auxiliary import held_out_probabilities, labelled_matrix
from .base import DROP, KEEP, RELABEL, SpecStage, mark_unlabelled, stage_for

__all__ = ["ConfidentLearning", "CrossPartition", "Teacher", "disagreements", "relabel"]


def relabel(record: Record, stage: str, label: str, score: float | None, reason: str) -> None:
    """Give a record a new label, remembering the first one."""
    record.meta.setdefault("original_label", record.label)
    record.label = label
    record.decide(stage, RELABEL, score, reason)


def disagreements(P: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
    """Rows whose most probable class is not their label and leads it by at least `margin`."""
    rows = np.arange(len(y))
    best = P.argmax(axis=1)
    return (best != y) & (P[rows, best] - P[rows, y] >= margin)


class _AuxiliaryRelabel(SpecStage):
    def flagged(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def relabel_ok(self, confidence: float) -> bool:
        return self.spec.action == "relabel"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        data = labelled_matrix(records, self.context, self.field)
        P = held_out_probabilities(data.X, data.y, len(data.labels), s.folds, s.c, s.seed, getattr(s, "repeats", 1))
        flagged = self.flagged(P, data.y)
        for i, record in enumerate(data.records):
            given = float(P[i, data.y[i]])
            if not flagged[i]:
                record.decide(self.name, KEEP, given)
                continue
            best = int(P[i].argmax())
            new, confidence = data.labels[best], float(P[i, best])
            why = f"held-out model: {new} {confidence:.2f} vs {record.label} {given:.2f}"
            if self.relabel_ok(confidence):
                relabel(record, self.name, new, given, f"{record.label} -> {new} ({why})")
            else:
                record.decide(self.name, DROP, given, f"label looks wrong ({why})")
        mark_unlabelled(records, self.name)
        return records


@stage_for(CrossPartitionSpec)
class CrossPartition(_AuxiliaryRelabel):
    """Relabels (or drops) records whose held-out prediction confidently disagrees with their label."""

    name = "cross_partition"

    def flagged(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        return disagreements(P, y, self.spec.margin)

    def relabel_ok(self, confidence: float) -> bool:
        return self.spec.action == "relabel" and confidence >= self.spec.relabel_confidence


@stage_for(ConfidentLearningSpec)
class ConfidentLearning(_AuxiliaryRelabel):
    """cleanlab's confident learning on the auxiliary model's held-out probabilities."""

    name = "confident_learning"

    def flagged(self, P: np.ndarray, y: np.ndarray) -> np.ndarray:
        try:
            from cleanlab.filter import find_label_issues
        except ImportError:
            raise ImportError("the confident_learning stage needs cleanlab: pip install 'synthloom[curation]'") from None
        # cleanlab wants a column for every label index present; drop labels nobody carries.
        present = np.unique(y)
        remap = np.full(P.shape[1], -1)
        remap[present] = np.arange(len(present))
        Q = P[:, present]
        Q = Q / np.clip(Q.sum(axis=1, keepdims=True), 1e-12, None)
        return find_label_issues(remap[y], Q, filter_by=self.spec.filter_by)


@stage_for(TeacherSpec)
class Teacher(SpecStage):
    """A stronger model re-annotates the records other stages flagged; its label wins."""

    name = "teacher"

    def _selected(self, record: Record) -> str:
        for stage in self.spec.review:
            if record.flags.get(stage) == RELABEL:
                return f"{stage} relabelled it"
            score = record.scores.get(stage)
            if self.spec.below is not None and score is not None and score < self.spec.below:
                return f"{stage} scored it {score:.2f}"
        return ""

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        labels = self.context.label_set(records)
        chosen = [(r, why) for r in records if r.label is not None and (why := self._selected(r))]
        under_review = {id(r) for r, _ in chosen}
        prompt = LabelPrompt([r for r in records if id(r) not in under_review], labels, self.context, self.field, s.shots, s.seed)
        requests = [
            Request(
                messages=prompt.messages(r),
                temperature=s.temperature,
                max_tokens=s.max_tokens,
                seed=s.seed,
            )
            for r, _ in chosen
        ]
        outcomes = ask_all(s.model, requests, LabelParser(labels), self.context, self.name)
        for (record, why), outcome in zip(chosen, outcomes):
            if not outcome.ok:
                record.decide(self.name, KEEP, None, f"{why}; the teacher gave no usable label")
            elif outcome.value == record.label:
                record.decide(self.name, KEEP, 1.0, f"{why}; the teacher agrees: {record.label}")
            else:
                relabel(record, self.name, outcome.value, 0.0, f"{why}; the teacher says {outcome.value}, not {record.label}")
        for record in records:
            record.flags.setdefault(self.name, KEEP)
        return records
