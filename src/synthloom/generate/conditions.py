"""Conditions e_condition: the key-value pairs drawn for each record, and its label.

Draws are a pure function of (seed, record index), so a record's
conditions never depend on which other records were drawn first: a resumed
or sharded run draws the same ones. Labels are assigned by quota (exact
shares of the whole run, then shuffled) rather than drawn independently, so
a 200-record run with two equal labels has 100 of each.

Two samplers: `independent` draws each condition on its own (weighted);
`coverage` lays out the whole run first so that every combination of label
and condition values gets its share (see `coverage.py`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from .coverage import coverage_design

ConditionValues = Sequence[str] | Mapping[str, float]
# A condition drawn by a function of the record's random generator (e.g. several facts).
DrawFunction = Callable[[random.Random], str]
ConditionDraw = ConditionValues | DrawFunction


def record_rng(seed: int, index: int, purpose: str) -> random.Random:
    """A random generator for one record and one purpose, independent of all others."""
    return random.Random(f"{seed}:{index}:{purpose}")


def draw_condition(values: ConditionDraw, rng: random.Random) -> str:
    if callable(values):
        return values(rng)
    if isinstance(values, Mapping):
        names = list(values)
        return str(rng.choices(names, weights=[float(values[n]) for n in names])[0])
    return str(rng.choice(list(values)))


def draw_conditions(conditions: Mapping[str, ConditionDraw], seed: int, index: int) -> dict[str, str]:
    rng = record_rng(seed, index, "conditions")
    return {key: draw_condition(values, rng) for key, values in conditions.items()}


def label_quota(labels: Sequence[str], weights: Mapping[str, float] | None, total: int, seed: int) -> list[str]:
    """`total` labels in the requested shares (largest remainder), in a seeded order."""
    if not labels:
        return []
    w = [float((weights or {}).get(label, 1.0 if weights is None else 0.0)) for label in labels]
    scale = total / sum(w)
    exact = [x * scale for x in w]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(labels)), key=lambda i: (exact[i] - counts[i], -i), reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    sequence = [label for label, n in zip(labels, counts) for _ in range(n)]
    random.Random(f"{seed}:labels").shuffle(sequence)
    return sequence


def multilabel(primary: str, labels: Sequence[str], max_labels: int, separator: str, rng: random.Random) -> str:
    """A record's label set: its quota label plus up to `max_labels - 1` others, in label order."""
    extra = rng.randint(0, max(0, min(max_labels, len(labels)) - 1))
    chosen = {primary, *rng.sample([label for label in labels if label != primary], extra)}
    return separator.join(label for label in labels if label in chosen)


class ConditionSampler:
    """The label and conditions of record `index`, for a run of `total` records.

    `fixed` (used by dataset-wise rounds) pins the label and some conditions
    to a cell; the rest are drawn as usual.
    """

    def __init__(
        self,
        conditions: Mapping[str, ConditionDraw],
        labels: Sequence[str],
        label_weights: Mapping[str, float] | None,
        total: int,
        seed: int,
        mode: str = "independent",
        label_of: Callable[[str, random.Random], str] | None = None,
    ):
        self.conditions = dict(conditions)
        self.labels = list(labels)
        self.label_weights = label_weights
        self.total = total
        self.seed = seed
        self.mode = mode
        self.label_of = label_of
        self._quota: list[str] | None = None
        self._design: list[dict[str, str]] | None = None

    def _labels(self) -> list[str]:
        if self._quota is None:
            self._quota = label_quota(self.labels, self.label_weights, self.total, self.seed)
        return self._quota

    def _coverage(self) -> list[dict[str, str]]:
        if self._design is None:
            dims: dict[str, ConditionValues] = {}
            if self.labels:
                dims["\0label"] = dict(zip(self.labels, self._label_weights()))
            dims.update({k: v for k, v in self.conditions.items() if not callable(v)})
            self._design = coverage_design(dims, self.total, self.seed)
        return self._design

    def _label_weights(self) -> list[float]:
        weights = self.label_weights
        return [float((weights or {}).get(label, 1.0 if weights is None else 0.0)) for label in self.labels]

    def draw(self, index: int, prompt_index: int | None = None, fixed: Mapping[str, str] | None = None) -> tuple[str | None, dict[str, str]]:
        """(label, conditions); conditions are drawn per prompt (`prompt_index`), labels per record."""
        prompt_index = index if prompt_index is None else prompt_index
        if self.mode == "coverage" and fixed is None and index < self.total:
            cell = self._coverage()[index]
            label = cell.get("\0label")
            rng = record_rng(self.seed, prompt_index, "conditions")
            conditions = {
                key: cell[key] if key in cell else draw_condition(values, rng)
                for key, values in self.conditions.items()
            }
        else:
            quota = self._labels()
            label = quota[index % len(quota)] if quota else None
            conditions = draw_conditions(self.conditions, self.seed, prompt_index)
        if fixed:
            label = fixed.get("label", label)
            conditions.update({k: v for k, v in fixed.items() if k != "label"})
        if label is not None and self.label_of is not None:
            label = self.label_of(label, record_rng(self.seed, index, "labels"))
        return label, conditions


__all__ = [
    "ConditionSampler",
    "ConditionValues",
    "DrawFunction",
    "draw_condition",
    "draw_conditions",
    "label_quota",
    "multilabel",
    "record_rng",
]
