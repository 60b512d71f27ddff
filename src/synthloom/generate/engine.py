"""Generation: D_gen <- M_p(T, D_sup), one request per record, planned before any call.

A record's plan (label, conditions, demonstrations, the rendered prompt, the
request and its seed) is a pure function of the recipe and the record's
index. Plans are made lazily as workers ask for them, so requests start at
once; running a plan only sends its request, through the scheduler and its
cache, and parses the answer.
Because the plan is deterministic, a rerun builds the same requests, finds
their answers in the cache and yields the same dataset.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from .._json import dumps
from ..llm import Outcome, Request, Scheduler
from ..recipe import Recipe
from ..records import DataError, Record, read_rows
from .conditions import draw_conditions, label_quota, record_rng
from .demonstrations import DemonstrationPool
from .parse import AnswerParser
from .prompt import PromptBuilder


@dataclass
class PlannedRecord:
    id: str
    index: int
    label: str | None
    conditions: dict[str, str]
    demonstrations: list[Record]
    request: Request


@dataclass
class GenerationResult:
    records: list[Record] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


def request_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{index}:request".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def load_support(recipe: Recipe) -> list[Record]:
    """The demonstration pool D_sup, with columns mapped onto the task's fields."""
    spec = recipe.demonstrations
    if spec is None or not spec.exists:
        return []
    rows = read_rows(spec.path, spec.format, spec.columns)
    fields = list(recipe.task.fields)
    single = len(fields) == 1
    support = []
    for i, row in enumerate(rows):
        if single:
            source = spec.text_field if spec.text_field in row else fields[0]
            values = {fields[0]: row.get(source)}
        else:
            values = {name: row.get(name) for name in fields}
        missing = [k for k, v in values.items() if v in (None, "")]
        if missing:
            raise DataError(f"{spec.path}: row {i + 1} has no value for {', '.join(missing)}")
        label = row.get(spec.label_field) if spec.label_field else None
        support.append(Record(id=str(row.get("id", f"demo-{i}")), fields=values, label=None if label is None else str(label)))
    if spec.limit:
        support = support[: spec.limit]
    return support


class Generator:
    """Plans and runs the generation of one recipe's records."""

    def __init__(self, recipe: Recipe, support: Sequence[Record] = ()):
        self.recipe = recipe
        self.pool = DemonstrationPool(support)
        self.prompts = PromptBuilder(recipe.task, recipe.generation.templates)
        self.parser = AnswerParser(list(recipe.task.fields), recipe.task.label_names)
        self.last_result = GenerationResult()

    def count(self, limit: int | None = None) -> int:
        total = self.recipe.generation.records
        return total if limit is None else min(limit, total)

    def plan(self, limit: int | None = None) -> list[PlannedRecord]:
        return list(self.iter_plans(limit))

    def iter_plans(self, limit: int | None = None) -> Iterator[PlannedRecord]:
        """Each record's plan, in order, made as it is asked for (requests start at once)."""
        recipe, gen = self.recipe, self.recipe.generation
        per_prompt = gen.samples_per_prompt
        prompts = -(-gen.records // per_prompt)
        labels = label_quota(recipe.task.label_names, recipe.task.label_weights, prompts, gen.seed)
        demo_spec = recipe.demonstrations
        k = demo_spec.k if demo_spec is not None else 0
        stop = tuple(gen.stop) if gen.stop else None
        for index in range(self.count(limit)):
            prompt_index, sample = divmod(index, per_prompt)
            label = labels[prompt_index] if labels else None
            conditions = draw_conditions(recipe.conditions, gen.seed, prompt_index)
            demos: list[Record] = []
            if k and len(self.pool):
                rng = record_rng(gen.seed, prompt_index, "demonstrations")
                demos = self.pool.random(k, rng, label if demo_spec.same_label else None)
            request = Request(
                messages=tuple(self.prompts.messages(label, conditions, demos)),
                temperature=gen.temperature,
                max_tokens=gen.max_tokens,
                top_p=gen.top_p,
                seed=request_seed(gen.seed, index),
                stop=stop,
                sample=sample,
            )
            yield PlannedRecord(f"{recipe.name}-{index:06d}", index, label, conditions, demos, request)

    def to_record(self, plan: PlannedRecord, outcome: Outcome) -> Record:
        completion = outcome.completion
        return Record(
            id=plan.id,
            fields=dict(outcome.value),
            label=plan.label,
            conditions=dict(plan.conditions),
            demonstrations=[d.id for d in plan.demonstrations],
            prompt=dumps(list(plan.request.messages)).decode("utf-8"),
            meta={
                "tries": outcome.tries,
                "finish_reason": completion.finish_reason if completion else None,
                "prompt_tokens": completion.usage.prompt_tokens if completion else 0,
                "completion_tokens": completion.usage.completion_tokens if completion else 0,
            },
        )

    async def run(
        self,
        scheduler: Scheduler,
        plans: Iterable[PlannedRecord],
        total: int,
        on_record: Callable[[Record | None], None] | None = None,
    ) -> GenerationResult:
        """Send every planned request; records come back in plan order."""
        results: list[Record | dict[str, str] | None] = [None] * total
        cursor = iter(plans)

        async def worker() -> None:
            for plan in cursor:
                outcome = await scheduler.complete(plan.request, self.parser)
                if outcome.ok:
                    record = self.to_record(plan, outcome)
                    results[plan.index] = record
                else:
                    record = None
                    error = outcome.error
                    results[plan.index] = {"id": plan.id, "kind": error.kind, "error": str(error)}
                if on_record is not None:
                    on_record(record)

        workers = [asyncio.ensure_future(worker()) for _ in range(scheduler.limiter.max_limit + 8)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            # Kept even when the run stops early, so the caller can save what finished.
            self.last_result = GenerationResult()
            for item in results:
                if isinstance(item, Record):
                    self.last_result.records.append(item)
                elif item is not None:
                    self.last_result.failures.append(item)
        return self.last_result
