"""A coverage design: a whole run's condition cells laid out so that combinations get their share.

Drawing each condition independently leaves some combinations (label x
topic x tone) empty and others crowded, by chance. When the run has at
least one record per combination, each combination gets a quota in
proportion to the product of its values' weights (largest remainder, ties
broken in a seeded order). When it has fewer, every value of every
dimension still gets its exact share, and the dimensions are paired at
random, so that no combination repeats before it has to.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence

MAX_CELLS = 200_000


def _weighted(values: Sequence[str] | Mapping[str, float]) -> tuple[list[str], list[float]]:
    if isinstance(values, Mapping):
        names = list(values)
        return names, [float(values[n]) for n in names]
    names = list(values)
    return names, [1.0] * len(names)


def quotas(weights: Sequence[float], total: int, order: Sequence[int]) -> list[int]:
    """Largest-remainder counts summing to `total`; ties go to the earlier position in `order`."""
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [int(x) for x in exact]
    rank = {cell: position for position, cell in enumerate(order)}
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), rank[i]))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def coverage_design(
    dims: Mapping[str, Sequence[str] | Mapping[str, float]], total: int, seed: int
) -> list[dict[str, str]]:
    """`total` cells (dimension -> value) in a seeded order."""
    if not dims or total <= 0:
        return [{} for _ in range(max(0, total))]
    rng = random.Random(f"{seed}:coverage")
    names = list(dims)
    weighted = [_weighted(dims[name]) for name in names]
    n_cells = math.prod(len(values) for values, _ in weighted)
    if n_cells <= min(total, MAX_CELLS):
        cells = list(itertools.product(*[range(len(values)) for values, _ in weighted]))
        weights = [math.prod(weighted[d][1][i] for d, i in enumerate(cell)) for cell in cells]
        order = list(range(len(cells)))
        rng.shuffle(order)
        counts = quotas(weights, total, order)
        design = [
            {name: weighted[d][0][cell[d]] for d, name in enumerate(names)}
            for cell, n in zip(cells, counts)
            for _ in range(n)
        ]
    else:
        columns = []
        for values, weights in weighted:
            order = list(range(len(values)))
            rng.shuffle(order)
            counts = quotas(weights, total, order)
            column = [value for value, n in zip(values, counts) for _ in range(n)]
            rng.shuffle(column)
            columns.append(column)
        design = [{name: columns[d][i] for d, name in enumerate(names)} for i in range(total)]
    rng.shuffle(design)
    return design


__all__ = ["coverage_design", "quotas"]
