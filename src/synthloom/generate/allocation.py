"""Dataset-wise steering: which condition cells the next round's budget goes to.

A cell is a combination of the values that matter for coverage (by default
the label). After each round the caller measures every cell — records
accepted so far, the share of the round's records curation rejected, the
diversity of what was accepted and, when a downstream model has been
scored, its error rate on the cell — and `allocate` hands the next budget
to the cells still under quota, more of it to those whose records are
mostly rejected, repetitive or misclassified. The inputs are plain numbers,
so any measurement can feed it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

from .coverage import quotas

Cell = tuple[tuple[str, str], ...]  # ((dimension, value), ...)


@dataclass
class CellStats:
    """What one cell looks like after a round."""

    cell: Cell
    quota: int
    accepted: int = 0
    rejection_share: float = 0.0  # of the last round's records in this cell (failures count)
    diversity: float | None = None  # 0..1, higher is more varied (e.g. distinct-2)
    error_rate: float | None = None  # 0..1, a downstream model's errors on this cell

    @property
    def deficit(self) -> int:
        return max(0, self.quota - self.accepted)

    def need(self, rejection: float = 1.0, repetition: float = 1.0, errors: float = 1.0) -> float:
        if not self.deficit:
            return 0.0
        need = float(self.deficit) * (1 + rejection * self.rejection_share)
        if self.diversity is not None:
            need *= 1 + repetition * (1 - min(1.0, max(0.0, self.diversity)))
        if self.error_rate is not None:
            need *= 1 + errors * self.error_rate
        return need


def cells_of(dims: Mapping[str, Sequence[str] | Mapping[str, float]]) -> list[tuple[Cell, float]]:
    """Every combination of the dimensions' values, with the product of their weights."""
    axes = []
    for name, values in dims.items():
        if isinstance(values, Mapping):
            axes.append([(name, v, float(w)) for v, w in values.items()])
        else:
            axes.append([(name, v, 1.0) for v in values])
    out = []
    for combo in itertools.product(*axes):
        weight = 1.0
        for _, _, w in combo:
            weight *= w
        if weight > 0:
            out.append((tuple((name, value) for name, value, _ in combo), weight))
    return out


def cell_quotas(dims: Mapping[str, Sequence[str] | Mapping[str, float]], target: int) -> dict[Cell, int]:
    """Each cell's share of `target` accepted records, in proportion to its weight."""
    cells = cells_of(dims)
    counts = quotas([w for _, w in cells], target, list(range(len(cells))))
    return {cell: n for (cell, _), n in zip(cells, counts)}


def allocate(stats: Sequence[CellStats], budget: int, rejection: float = 1.0,
             repetition: float = 1.0, errors: float = 1.0) -> dict[Cell, int]:
    """Records to generate per cell next round, `budget` in all; empty when every cell is full."""
    needs = [s.need(rejection, repetition, errors) for s in stats]
    if budget <= 0 or not any(needs):
        return {}
    counts = quotas(needs, budget, list(range(len(stats))))
    return {s.cell: n for s, n in zip(stats, counts) if n}


__all__ = ["Cell", "CellStats", "allocate", "cell_quotas", "cells_of"]
