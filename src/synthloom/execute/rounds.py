"""Dataset-wise generation: rounds that generate, curate, measure and re-allocate.

    D_gen = D_1 ∪ D_2 ∪ ... ∪ D_k

Round 1 spreads its share of the budget over the condition cells (by
default: the labels) in proportion to their quotas. After each round the
round's records are curated against what is already accepted (the support
set and earlier rounds' accepted records) with the stages listed under
`rounds.curation`; each cell is measured (accepted so far, share rejected,
distinct-2 of what it accepted) and `generate.allocate` gives the next
round's share of the budget to the cells still under quota, more to those
mostly rejected or repetitive, and (the closed loop) to the labels a
downstream model trained on the records so far gets wrong on validation
data, never on the test data (`validation.py` says where it comes from).
Rounds stop when every cell is full or the budget (`generation.records`)
is spent.

Strategies: `quota` only re-allocates; `self_instruct` also puts accepted
records into the demonstration pool (`synthetic_demos` of each prompt's
demonstrations come from it), so later rounds build on earlier ones, with
the round's curation (e.g. a novelty filter) guarding against copies;
`evol_instruct` rewrites accepted records (Evol-Instruct's in-depth and
in-breadth operations) for a share of each later round, and its
elimination step (the `evol_elimination` stage in the round's curation)
drops the failed evolutions; each round's log counts them by reason.

This lives above `curate` and `evaluate` because it uses both; generation
itself only provides the planning and allocation primitives.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..curate import CurationContext, curate
from ..evaluate import TrainingError, class_errors, distinct_n, fit_and_score
from ..generate import CellStats, DemonstrationPool, GenerationResult, Generator, PlannedRecord, allocate, cell_quotas
from ..generate.allocation import Cell
from ..generate.engine import PlanRunner
from ..llm import Scheduler
from ..recipe import Recipe, RoundsSpec
from ..records import Record
from .validation import LoopData

ErrorRates = Callable[[Sequence[Record], Sequence[Cell]], Mapping[Cell, float]]  # (records so far, cells) -> rate


def downstream_error_rates(recipe: Recipe, loop: LoopData) -> ErrorRates | None:
    """Closing the loop: the downstream model's per-class error rates on validation data, per cell.

    The recipe's first `downstream` evaluation stage names the trainer and
    fields; `loop.validation` is what it is scored on (see `validation.py`:
    never the test data). After each round that model is trained on the
    records so far and scored; a cell gets the error rate of its label, so the
    next round's budget leans towards the classes the model gets wrong
    (`rounds.weights.errors`). None when the loop is off.
    """
    if not loop.on or loop.spec is None:
        return None
    spec, validation = loop.spec, loop.validation
    fields = [spec.field] if spec.field else list(recipe.task.fields)

    def rates(records: Sequence[Record], cells: Sequence[Cell]) -> Mapping[Cell, float]:
        labelled = [r for r in records if r.label is not None]
        if len({r.label for r in labelled}) < 2:
            return {}
        try:
            _, predicted = fit_and_score(labelled, validation, spec.trainer, fields, seed=spec.seed, resamples=0)
        except TrainingError:
            return {}
        truth = [r.label for r in validation]
        by_label = {label: info["error_rate"] for label, info in class_errors(truth, predicted).items()}
        return {cell: by_label[label] for cell in cells if (label := dict(cell).get("label")) in by_label}

    return rates


class Rounds:
    """Runs a recipe's `rounds` over a prepared Generator; the same interface as Generator for run().

    `produce(..., runner=...)` says what runs each round's plans (default:
    `generator.run`, in this process; the Ray executor shards them over a
    cluster). The round loop itself (allocation, each round's curation, the
    error rates, the Self-Instruct pool) runs where `produce` is called.
    """

    def __init__(self, recipe: Recipe, generator: Generator, error_rates: ErrorRates | None = None,
                 loop: LoopData | None = None):
        self.recipe = recipe
        self.generator = generator
        self.error_rates = error_rates
        self.loop = loop
        self.spec: RoundsSpec = recipe.rounds  # type: ignore[assignment]
        self.last_result = GenerationResult()
        self.log: list[dict[str, Any]] = []
        self.cells: dict[Cell, CellStats] = {}

    def count(self, limit: int | None = None) -> int:
        return self.generator.count(limit)

    def _dims(self) -> dict[str, Any]:
        draws = self.generator.conditions.draws  # type: ignore[union-attr]
        task = self.recipe.task
        dims: dict[str, Any] = {}
        for name in self.spec.cells:
            if name == "label":
                weights = task.label_weights
                dims["label"] = {lab: float((weights or {}).get(lab, 1.0 if weights is None else 0.0)) for lab in task.label_names}
            elif callable(draws[name]):
                raise ValueError(f"rounds.cells: condition {name!r} draws several facts per record; it cannot be a cell")
            else:
                dims[name] = draws[name]
        return dims

    def _cell_of(self, record: Record) -> Cell:
        return tuple((name, record.label if name == "label" else record.conditions.get(name)) for name in self.spec.cells)  # type: ignore[misc]

    def _plans(self, round_: int, offset: int, cells: list[Cell], accepted: dict[Cell, list[Record]],
               pool: DemonstrationPool | None) -> Iterator[PlannedRecord]:
        spec, seed = self.spec, self.recipe.generation.seed
        evolve = spec.strategy == "evol_instruct" and round_ > 0
        synthetic = (pool, spec.synthetic_demos) if pool is not None else None
        for j, cell in enumerate(cells):
            index = offset + j
            rng = random.Random(f"{seed}:{index}:evolve")
            if evolve and accepted.get(cell) and rng.random() < spec.evolve_share:
                parent = rng.choice(accepted[cell])
                yield self.generator.plan_record(index, parent=parent, operation=rng.choice(spec.operations))
            else:
                yield self.generator.plan_record(index, fixed=dict(cell), synthetic=synthetic)

    def _accept(self, new: Sequence[Record], reference: Sequence[Record]) -> tuple[set[str], dict[str, int]]:
        """Ids of the new records the round's curation keeps, judged against the reference records,
        and the evolutions eliminated, by reason (each such record's `meta.eliminated` says why)."""
        fresh = lambda r: dataclasses.replace(r, scores={}, flags={}, reasons={})  # noqa: E731
        context = CurationContext(self.recipe.text_field, self.recipe.task.label_field, support=self.recipe.demonstrations)
        result = curate([fresh(r) for r in reference] + [fresh(r) for r in new], self.spec.curation, context)
        by_id = {r.id: r for r in new}
        eliminated: dict[str, int] = defaultdict(int)
        for record in result.dropped:
            if record.id in by_id and record.flags.get("evol_elimination") == "drop":
                reason = record.reasons.get("evol_elimination", "")
                by_id[record.id].meta["eliminated"] = reason
                eliminated[reason] += 1
        return {r.id for r in result.kept if r.id in by_id}, dict(sorted(eliminated.items()))

    async def produce(self, scheduler: Scheduler, limit: int | None = None,
                      on_record: Callable[[Record | None], None] | None = None, out: Path | None = None,
                      runner: PlanRunner | None = None) -> GenerationResult:
        """Every round, each round's plans run by `runner` (default: `generator.run`)."""
        gen, spec, recipe = self.generator, self.spec, self.recipe
        run_plans = runner or gen.run
        await gen.prepare(scheduler, out)
        budget = gen.count(limit)
        target = spec.target or recipe.generation.records
        target = max(1, math.ceil(target * budget / recipe.generation.records))
        quotas = cell_quotas(self._dims(), target)
        self.cells = {cell: CellStats(cell, quota) for cell, quota in quotas.items()}
        accepted: dict[Cell, list[Record]] = defaultdict(list)
        self.last_result = GenerationResult()
        offset = 0
        for round_ in range(spec.count):
            remaining = budget - offset
            if remaining <= 0:
                break
            share = math.ceil(remaining / (spec.count - round_))
            if round_ == 0:
                allocation = {c: n for c, n in cell_quotas(self._dims(), share).items() if n}
            else:
                w = spec.weights
                allocation = allocate(list(self.cells.values()), share, w.rejection, w.repetition, w.errors)
            if not allocation:
                break
            cells = [cell for cell, n in allocation.items() for _ in range(n)]
            random.Random(f"{recipe.generation.seed}:round{round_}").shuffle(cells)
            all_accepted = [r for records in accepted.values() for r in records]
            pool = gen.pool(all_accepted) if spec.strategy == "self_instruct" and all_accepted else None
            result = await run_plans(scheduler, self._plans(round_, offset, cells, accepted, pool), len(cells), on_record)
            self.last_result.extend(result)
            kept, eliminated = self._accept(result.records, gen.support + all_accepted)
            self._measure(round_, cells, offset, result, kept, accepted)
            if spec.strategy == "evol_instruct":
                self.log[-1]["evolved"] = sum(1 for r in result.records if "evolution" in r.meta)
                self.log[-1]["eliminated"] = eliminated
            offset += len(cells)
        return self.last_result

    def _measure(self, round_: int, cells: list[Cell], offset: int, result: GenerationResult,
                 kept: set[str], accepted: dict[Cell, list[Record]]) -> None:
        name = self.recipe.name
        planned = {f"{name}-{offset + j:06d}": cell for j, cell in enumerate(cells)}
        asked: dict[Cell, int] = defaultdict(int)
        taken: dict[Cell, int] = defaultdict(int)
        for cell in planned.values():
            asked[cell] += 1
        for record in result.records:
            record.meta["round"] = round_ + 1
            record.meta["accepted_in_round"] = record.id in kept
            if record.id in kept:
                cell = self._cell_of(record)
                accepted[cell].append(record)
                taken[planned.get(record.id, cell)] += 1
        errors = self.error_rates(self.last_result.records, list(self.cells)) if self.error_rates else {}
        for cell, stats in self.cells.items():
            stats.accepted = len(accepted.get(cell, []))
            if asked.get(cell):
                stats.rejection_share = 1 - taken[cell] / asked[cell]
            texts = [r.text(self.recipe.text_field) for r in accepted.get(cell, [])]
            stats.diversity = distinct_n(texts, 2) if len(texts) > 1 else None
            stats.error_rate = errors.get(cell, stats.error_rate)
        self.log.append({
            "round": round_ + 1,
            "asked": len(cells),
            "generated": len(result.records),
            "accepted": len(kept),
            "cells": {_cell_name(c): {"asked": n, "accepted": taken[c]} for c, n in sorted(asked.items())},
        })

    def summary(self) -> dict[str, Any]:
        out = self.generator.summary()
        out["rounds"] = {
            "strategy": self.spec.strategy,
            "loop": self.loop.to_json() if self.loop is not None else {"on": self.error_rates is not None},
            "log": self.log,
            "cells": {
                _cell_name(c): {"quota": s.quota, "accepted": s.accepted, "rejection_share": round(s.rejection_share, 3),
                                "distinct_2": None if s.diversity is None else round(s.diversity, 3)}
                for c, s in self.cells.items()
            },
        }
        if self.spec.strategy == "evol_instruct":
            totals: dict[str, int] = defaultdict(int)
            for entry in self.log:
                for reason, n in entry.get("eliminated", {}).items():
                    totals[reason] += n
            out["rounds"]["evolution"] = {"evolved": sum(e.get("evolved", 0) for e in self.log),
                                          "eliminated": dict(sorted(totals.items()))}
        return out


def _cell_name(cell: Cell) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell) or "all"


__all__ = ["Rounds"]
