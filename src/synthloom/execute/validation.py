"""Where the closed loop measures its errors: real labelled data that is never the test set.

Rounds can steer the next round's budget towards the classes a downstream
model gets wrong (`rounds.weights.errors`). Measuring those errors on the
test split would tune the data on the set its final score is read from, so
the loop scores on, in this order:

1. `rounds.validation`: labelled data the recipe names for it (the recipe
   refuses the downstream stage's test data there);
2. a stratified share (`rounds.holdout`) of each label's labelled
   demonstrations, drawn with `generation.seed` (the same records every
   round and every resume). Held-out records are not shown as
   demonstrations, so the data the loop scores on never reached a prompt.

With neither (or no `downstream` stage to name the trainer, or no `label`
cell), the loop is off and `reason` says why; the run writes it into the
manifest's notes. The `downstream` stage's test data is read once, by the
final evaluation.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from ..recipe import DownstreamSpec, Recipe
from ..records import Record, load_dataset


@dataclass
class LoopData:
    """What the closed loop scores on, and the support set left for demonstrations."""

    validation: list[Record] = field(default_factory=list)
    demonstrations: list[Record] = field(default_factory=list)
    spec: DownstreamSpec | None = None  # the trainer and fields of the loop's model
    source: str = ""  # where `validation` came from, for the manifest
    reason: str | None = None  # why the loop is off; None when it is on

    @property
    def on(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, object]:
        if not self.on:
            return {"on": False, "reason": self.reason}
        return {"on": True, "validation": self.source, "n_validation": len(self.validation),
                "labels": len({r.label for r in self.validation})}


def hold_out(support: Sequence[Record], share: float, seed: int) -> tuple[list[Record], list[Record]]:
    """A stratified, seeded split of the labelled records: (held out, the rest, in their order).

    Each label with at least two records gives round(share * n) of them, at
    least one and never all; a label with one record keeps it.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(support):
        if record.label is not None:
            by_label[record.label].append(i)
    rng = random.Random(f"{seed}:loop-validation")
    held: set[int] = set()
    for label in sorted(by_label):
        index = by_label[label]
        if len(index) < 2 or share <= 0:
            continue
        n = min(len(index) - 1, max(1, round(share * len(index))))
        held.update(rng.sample(index, n))
    return ([r for i, r in enumerate(support) if i in held],
            [r for i, r in enumerate(support) if i not in held])


def loop_data(recipe: Recipe, support: Sequence[Record]) -> LoopData:
    """The closed loop's validation records and the demonstrations left, or why the loop is off."""
    rounds, support = recipe.rounds, list(support)
    off = lambda reason: LoopData(demonstrations=support, reason=f"closed loop off: {reason}")  # noqa: E731
    if rounds is None:
        return off("no rounds")
    if not rounds.weights.errors:
        return off("rounds.weights.errors is 0")
    if "label" not in rounds.cells:
        return off("rounds.cells has no `label`")
    spec = next((s for s in recipe.evaluation if isinstance(s, DownstreamSpec)), None)
    if spec is None:
        return off("no `downstream` evaluation stage names the loop's trainer")
    if rounds.validation is not None:
        if not rounds.validation.exists:
            return off(f"rounds.validation: {rounds.validation.path} not found")
        validation = [r for r in load_dataset(rounds.validation) if r.label is not None]
        if not validation:
            return off(f"rounds.validation: {rounds.validation.path} has no labelled rows")
        return LoopData(validation, support, spec, f"rounds.validation: {rounds.validation.path}")
    held, rest = hold_out(support, rounds.holdout, recipe.generation.seed)
    if not held:
        return off("no validation data: give rounds.validation, or labelled demonstrations with two or more "
                   "records of a label and rounds.holdout above 0 (the test data is never used)")
    source = f"{len(held)} of {len(support)} demonstrations held out (rounds.holdout {rounds.holdout}, seed {recipe.generation.seed})"
    return LoopData(held, rest, spec, source)


__all__ = ["LoopData", "hold_out", "loop_data"]
