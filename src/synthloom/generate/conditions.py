"""Conditions e_condition: the key-value pairs drawn for each record.

Draws are a pure function of (seed, record index), so a record's
conditions never depend on which other records were drawn first: a resumed
or sharded run draws the same ones. Labels are assigned by quota (exact
shares of the whole run, then shuffled) rather than drawn independently, so
a 200-record run with two equal labels has 100 of each.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

ConditionValues = Sequence[str] | Mapping[str, float]


def record_rng(seed: int, index: int, purpose: str) -> random.Random:
    """A random generator for one record and one purpose, independent of all others."""
    return random.Random(f"{seed}:{index}:{purpose}")


def draw_condition(values: ConditionValues, rng: random.Random) -> str:
    if isinstance(values, Mapping):
        names = list(values)
        return str(rng.choices(names, weights=[float(values[n]) for n in names])[0])
    return str(rng.choice(list(values)))


def draw_conditions(conditions: Mapping[str, ConditionValues], seed: int, index: int) -> dict[str, str]:
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
