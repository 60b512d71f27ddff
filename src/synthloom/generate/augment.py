"""Augmentation mode: the model rewrites each real labelled example; the rewrite keeps the example's label.

With a few real examples per class, new text that stays close to them
(AugGPT-style paraphrase) carries their labels more surely than text made
from a label description alone. Each example (`augmentation.input`, by
default the recipe's demonstrations; `per_label` caps how many per label)
is rewritten `per_example` times, each under one drawn value of every
condition (style, persona, length by default). The record keeps the
example's label and says where it came from: `meta["origin"] = "augment"`,
`meta["source_id"]`, `meta["source_text"]`.

Whether a rewrite is still the example (a near-copy) or no longer means
the same (a change of meaning) is the `augment_check` curation stage's job
(curate/real_data.py). The output is the same run directory as generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..llm import Request, Scheduler
from ..recipe import FieldSpec, Recipe
from ..records import Record, load_dataset
from ..templating import render
from .conditions import record_rng
from .engine import AnswerCounts, GenerationResult, PlannedRecord, PlanRunner, run_chain
from .steps import Finished, make_parser, step_seed

DEFAULT_SYSTEM = """\
{% if task.role %}You are {{ task.role }}. {% endif %}You rewrite {{ task.description }}: the same meaning in new words."""
DEFAULT_INSTRUCTION = """\
Rewrite this {{ field }} so that it still means the same thing{% if label %} (it is {{ label }}{% if description %}: {{ description }}{% endif %}){% endif %}.
{% for name, value in conditions.items() %}{{ name | capitalize }}: {{ value }}.
{% endfor %}
Do not copy it word for word. Answer with the rewritten {{ field }} only.

{{ text }}"""


class AugmentChain:
    """One call per rewrite: the example, the drawn conditions, the answer's text."""

    def __init__(self, recipe: Recipe):
        spec = recipe.augmentation
        assert spec is not None
        task = recipe.task
        self.spec = spec
        self.field = recipe.text_field
        self.parser = make_parser({self.field: FieldSpec(description="the rewrite")}, "text", [])
        task_vars = {"description": task.description, "role": task.role}
        self.system = render(DEFAULT_SYSTEM, task=task_vars)
        self.template = spec.instruction or DEFAULT_INSTRUCTION
        self.descriptions = {label: task.label_description(label) for label in task.label_names}
        described = task.fields[self.field]
        self.field_name = described if isinstance(described, str) else described.description

    def messages(self, source: Record, conditions: dict[str, str]) -> tuple[dict[str, str], ...]:
        text = render(self.template, field=self.field_name, text=source.text(self.field), label=source.label,
                      description=self.descriptions.get(source.label or ""), conditions=conditions)
        return ({"role": "system", "content": self.system}, {"role": "user", "content": text})

    async def complete(self, plan: PlannedRecord, scheduler: Scheduler) -> Finished:
        done = Finished()
        outcome = await scheduler.complete(plan.request, self.parser)
        done.add(outcome)
        if outcome.ok:
            done.fields = {self.field: outcome.value[self.field]}
            done.label = plan.label
        else:  # an unusable answer after every try: a failure of this record, not an empty one
            done.error = outcome.error
        return done


class Augmenter:
    """Rewrites the recipe's real labelled examples; the same interface as Generator for run()."""

    def __init__(self, recipe: Recipe, support: Sequence[Record] = ()):
        self.recipe = recipe
        self.support = [r for r in support if r.label is not None]
        self.chain = AugmentChain(recipe)
        self.last_result = GenerationResult()
        self.answers = AnswerCounts()
        self._sources: list[Record] | None = None

    def sources(self) -> list[Record]:
        """The examples to rewrite: the input file's labelled rows (or the support), `per_label` of each label."""
        if self._sources is None:
            spec = self.recipe.augmentation
            assert spec is not None
            rows = [r for r in load_dataset(spec.input) if r.label is not None] if spec.input is not None else self.support
            taken: dict[str, int] = {}
            out = []
            for record in rows:
                if spec.per_label is not None and taken.get(record.label, 0) >= spec.per_label:  # type: ignore[arg-type]
                    continue
                taken[record.label] = taken.get(record.label, 0) + 1  # type: ignore[index]
                out.append(record)
            self._sources = out
        return self._sources

    def count(self, limit: int | None = None) -> int:
        total = len(self.sources()) * self.recipe.augmentation.per_example  # type: ignore[union-attr]
        return total if limit is None else min(limit, total)

    def plan_record(self, index: int) -> PlannedRecord:
        spec, seed = self.recipe.augmentation, self.recipe.generation.seed
        assert spec is not None
        source = self.sources()[index // spec.per_example]
        rng = record_rng(seed, index, "conditions")
        conditions = {name: rng.choice(values) for name, values in spec.conditions.items()}
        request = Request(messages=self.chain.messages(source, conditions), temperature=spec.temperature,
                          max_tokens=spec.max_tokens, seed=step_seed(seed, index, 0))
        return PlannedRecord(f"{self.recipe.name}-{index:06d}", index, source.label, conditions, [], request,
                             meta={"source_id": source.id, "source_text": source.text(self.chain.field)})

    def iter_plans(self, limit: int | None = None) -> Iterable[PlannedRecord]:
        for index in range(self.count(limit)):
            yield self.plan_record(index)

    def to_record(self, plan: PlannedRecord, done: Finished) -> Record:
        from .._json import dumps

        return Record(
            id=plan.id, fields=done.fields, label=plan.label, conditions=dict(plan.conditions),
            prompt=dumps(list(plan.request.messages)).decode("utf-8"),
            meta={"origin": "augment", "source_id": plan.meta["source_id"], "source_text": plan.meta["source_text"],
                  "tries": done.tries},
        )

    async def run(self, scheduler: Scheduler, plans: Iterable[PlannedRecord], total: int,
                  on_record: Callable[[Record | None], None] | None = None) -> GenerationResult:
        self.last_result = GenerationResult()
        await run_chain(self.chain, scheduler, plans, total, self.to_record, self.last_result, self.answers, on_record)
        return self.last_result

    async def produce(self, scheduler: Scheduler, limit: int | None = None,
                      on_record: Callable[[Record | None], None] | None = None, out: Path | None = None,
                      runner: PlanRunner | None = None) -> GenerationResult:
        self.last_result = await (runner or self.run)(scheduler, self.iter_plans(limit), self.count(limit), on_record)
        return self.last_result

    def summary(self) -> dict[str, Any]:
        return {"answers": self.answers.to_json(), "sources": len(self.sources()), "rewrites": len(self.last_result.records)}


__all__ = ["AugmentChain", "Augmenter"]
