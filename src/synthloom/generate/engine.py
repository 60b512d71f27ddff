"""Generation: D_gen <- M_p(T, D_sup), planned record by record, run through the scheduler.

A record's plan (label, conditions, demonstrations, the rendered prompt of
its first call and that call's seed) is a pure function of the recipe and
the record's index. Plans are made lazily as workers ask for them, so
requests start at once; running a plan sends its calls (one, or one per
step or dialogue turn) through the scheduler and its cache, and parses the
answers. Because the plan is deterministic, a rerun builds the same
requests, finds their answers in the cache and yields the same dataset.

`prepare()` comes first: it resolves conditions the model builds (concept
trees, personas) and embeds the support set when a selector needs it.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

from .._json import dumps
from ..llm import Request, Scheduler
from ..recipe import Recipe
from ..records import DataError, Record, read_rows
from .conditions import ConditionSampler, multilabel, record_rng
from .demonstrations import DemonstrationPool, DemonstrationSelector
from .dialogue import DialogueChain
from .chat import chat_messages
from .evolve import OPERATIONS, evolve_messages
from .sources import ResolvedConditions, resolve_conditions, resolve_offline
from .steps import Finished, StepChain, step_seed
from .vectors import VectorCache


@dataclass
class PlannedRecord:
    id: str
    index: int
    label: str | None
    conditions: dict[str, str]
    demonstrations: list[Record]
    request: Request
    sample: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class AnswerCounts:
    """How many records came right the first time, were repaired, or needed more tries."""

    def __init__(self) -> None:
        self.records = 0
        self.first_try = 0
        self.retried = 0
        self.repaired = 0
        self.repairs: collections.Counter[str] = collections.Counter()

    def count(self, done: Finished) -> None:
        self.records += 1
        if done.repairs:
            self.repaired += 1
            self.repairs.update(done.repairs)
        if done.tries > done.calls:
            self.retried += 1
        elif done.ok and not done.repairs:
            self.first_try += 1

    def add_json(self, counts: Mapping[str, Any]) -> None:
        """Add counts given as `to_json()` wrote them (e.g. a Ray shard's)."""
        self.records += counts.get("records", 0)
        self.first_try += counts.get("first_try", 0)
        self.repaired += counts.get("repaired", 0)
        self.retried += counts.get("retried", 0)
        self.repairs.update(counts.get("repairs_by_kind", {}))

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "first_try": self.first_try,
            "repaired": self.repaired,
            "retried": self.retried,
            "repairs_by_kind": dict(sorted(self.repairs.items())),
        }


@dataclass
class GenerationResult:
    records: list[Record] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def extend(self, other: GenerationResult) -> None:
        self.records.extend(other.records)
        self.failures.extend(other.failures)


# Runs one batch of plans: (scheduler, plans, how many, on_record) -> the records in plan order and the
# failures. A producer's own `run` does it in this process; the Ray executor passes one that shards the
# plans over a cluster.
PlanRunner = Callable[
    [Scheduler, Iterable[PlannedRecord], int, Callable[[Record | None], None] | None], Awaitable[GenerationResult]
]


async def run_chain(
    chain: Any,
    scheduler: Scheduler,
    plans: Iterable[PlannedRecord],
    total: int,
    to_record: Callable[[PlannedRecord, Finished], Record],
    result: GenerationResult,
    answers: AnswerCounts,
    on_record: Callable[[Record | None], None] | None = None,
) -> None:
    """Run `chain.complete` over the plans with as many workers as the scheduler lets run.

    `result` receives the records in plan order and the failures, also when
    the run stops early, so the caller can save what finished.
    """
    slots: list[Record | dict[str, str] | None] = [None] * total
    cursor = enumerate(plans)

    async def worker() -> None:
        for position, plan in cursor:
            done = await chain.complete(plan, scheduler)
            answers.count(done)
            if done.ok:
                record = to_record(plan, done)
                slots[position] = record
            else:
                record = None
                error = done.error
                failure = {"id": plan.id, "kind": error.kind, "error": str(error)}  # type: ignore[union-attr]
                if done.failed_step and len(getattr(chain, "steps", ())) != 1:
                    failure["step"] = done.failed_step
                slots[position] = failure
            if on_record is not None:
                on_record(record)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(total, scheduler.limiter.max_limit + 8) or 1)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        for item in slots:
            if isinstance(item, Record):
                result.records.append(item)
            elif item is not None:
                result.failures.append(item)


def request_seed(seed: int, index: int) -> int:
    return step_seed(seed, index, 0)


def rows_to_records(rows: Sequence[dict[str, Any]], fields: Sequence[str], text_field: str,
                    label_field: str | None, source: str) -> list[Record]:
    """Rows of a data file as records with the task's fields (a single field may come from `text_field`)."""
    single = len(fields) == 1
    out = []
    for i, row in enumerate(rows):
        if single:
            name = text_field if text_field in row else fields[0]
            values = {fields[0]: row.get(name)}
        else:
            values = {name: row.get(name) for name in fields}
        missing = [k for k, v in values.items() if v in (None, "")]
        label = row.get(label_field) if label_field else None
        if missing:
            raise DataError(f"{source}: row {i + 1} has no value for {', '.join(missing)}")
        out.append(Record(id=str(row.get("id", f"demo-{i}")), fields=values, label=None if label in (None, "") else str(label)))
    return out


def load_support(recipe: Recipe) -> list[Record]:
    """The demonstration pool D_sup, with columns mapped onto the task's fields."""
    spec = recipe.demonstrations
    if spec is None or not spec.exists:
        return []
    rows = read_rows(spec.path, spec.format, spec.columns)
    fields = list(recipe.task.fields)
    if recipe.steps and rows:  # support may lack fields (a chain of thought); it serves the steps it can
        fields = [f for f in fields if f in rows[0]] or fields
    support = rows_to_records(rows, fields, spec.text_field, spec.label_field, spec.path)
    if spec.limit:
        support = support[: spec.limit]
    return support


class Generator:
    """Plans and runs the generation of one recipe's records."""

    def __init__(self, recipe: Recipe, support: Sequence[Record] = (), *, vectors: VectorCache | None = None):
        self.recipe = recipe
        self.support = list(support)
        self.vectors = vectors
        task = recipe.task
        dialogue = task.kind == "dialogue" or (task.kind == "chat" and recipe.dialogue is not None)
        self.chain: StepChain | DialogueChain = DialogueChain(recipe) if dialogue else StepChain(recipe)
        self.first = self.chain.steps[0].prompts if isinstance(self.chain, StepChain) else None
        # Support rows always have every field of a one-step recipe (load_support checks);
        # with steps, a row may serve only the steps whose fields it has.
        self._check_demos = bool(recipe.steps)
        self._stop = tuple(recipe.generation.stop) if recipe.generation.stop else None
        self.conditions: ResolvedConditions | None = None
        self.sampler: ConditionSampler | None = None
        self.selector: DemonstrationSelector | None = None
        self.last_result = GenerationResult()
        self.answers = AnswerCounts()

    # -- preparation -------------------------------------------------------------

    async def prepare(self, scheduler: Scheduler, out: Path | None = None) -> None:
        """Build what planning needs: model-built conditions, embeddings of the support set."""
        if self.vectors is None and out is not None:
            self.vectors = VectorCache(out / "embeddings.npz")
        self._setup(await resolve_conditions(self.recipe, scheduler, out))
        if self.selector is not None and self.selector.needs_vectors:
            self.selector.pool.matrix()
            self.save_vectors()

    def save_vectors(self) -> None:
        if self.vectors is not None:
            self.vectors.save()

    def _ready(self) -> None:
        if self.sampler is None:
            self._setup(resolve_offline(self.recipe))

    def _setup(self, conditions: ResolvedConditions) -> None:
        recipe, task, gen = self.recipe, self.recipe.task, self.recipe.generation
        self.conditions = conditions
        label_of = None
        if task.kind == "multilabel":
            labels, most, sep = task.label_names, task.max_labels, task.label_separator
            label_of = lambda primary, rng: multilabel(primary, labels, most, sep, rng)  # noqa: E731
        writes_label = isinstance(self.chain, StepChain) and any(task.label_field in s.fields for s in self.chain.steps)
        self.sampler = ConditionSampler(
            conditions.draws, [] if writes_label else task.label_names, task.label_weights,
            -(-gen.records // gen.samples_per_prompt), gen.seed, gen.condition_sampling, label_of,
        )  # drawn per prompt: the samples of one prompt share its label and conditions
        descriptions = {label: task.label_description(label) for label in task.label_names}
        self.selector = DemonstrationSelector(recipe.demonstrations, self.pool(self.support), descriptions)

    def pool(self, records: Sequence[Record]) -> DemonstrationPool:
        """A demonstration pool over `records`, embedded through this run's vector cache."""
        spec = self.recipe.demonstrations
        if spec is None or spec.selection not in ("nearest", "mmr"):
            return DemonstrationPool(records)
        if self.vectors is None:
            self.vectors = VectorCache()
        # Compared with the record's conditions: the examples' main text; with a field: that field.
        field = None if spec.query == "conditions" else spec.query
        return DemonstrationPool(records, self.vectors.encode, field)

    # -- planning ----------------------------------------------------------------

    def count(self, limit: int | None = None) -> int:
        total = self.recipe.generation.records
        return total if limit is None else min(limit, total)

    def plan(self, limit: int | None = None) -> list[PlannedRecord]:
        return list(self.iter_plans(limit))

    def iter_plans(self, limit: int | None = None) -> Iterator[PlannedRecord]:
        """Each record's plan, in order, made as it is asked for (requests start at once)."""
        self._ready()
        for index in range(self.count(limit)):
            yield self.plan_record(index)

    def plan_record(
        self,
        index: int,
        *,
        fixed: Mapping[str, str] | None = None,
        synthetic: tuple[DemonstrationPool, int] | None = None,
        parent: Record | None = None,
        operation: str | None = None,
    ) -> PlannedRecord:
        """Record `index`'s plan; rounds may pin its cell, add synthetic demonstrations, or evolve a parent."""
        self._ready()
        recipe, gen = self.recipe, self.recipe.generation
        prompt_index, sample = divmod(index, gen.samples_per_prompt)
        meta: dict[str, Any] = {}
        if parent is not None:
            label, conditions = parent.label, dict(parent.conditions)
            demos: list[Record] = []
            operation = operation or "deepen"  # what the elimination step (curate/evolution.py) reads:
            meta.update(parent=parent.id, evolution=operation, evolution_request=OPERATIONS[operation],
                        parent_fields={k: v for k, v in parent.fields.items() if isinstance(v, str)})
        else:
            label, conditions = self.sampler.draw(prompt_index, prompt_index, fixed)  # type: ignore[union-attr]
            demos = self._demonstrations(prompt_index, label, conditions, synthetic)
        plan = PlannedRecord(f"{recipe.name}-{index:06d}", index, label, conditions, demos, None, sample, meta)  # type: ignore[arg-type]
        if self.first is None:  # a dialogue: its first turn
            plan.request = self.chain.request(0, plan, [])  # type: ignore[arg-type]
            return plan
        prompts = self.first
        if parent is not None:
            messages = evolve_messages(prompts, parent, operation)  # type: ignore[arg-type]
        else:
            shown = [d for d in demos if prompts.usable(d)] if self._check_demos else demos
            messages = prompts.messages(label, conditions, shown)
        step = self.chain.steps[0]  # type: ignore[union-attr]
        plan.request = Request(
            messages=tuple(messages),
            temperature=step.temperature,
            max_tokens=step.max_tokens,
            top_p=gen.top_p,
            seed=request_seed(gen.seed, index),
            stop=self._stop,
            json_schema=step.schema,
            sample=sample,
        )
        return plan

    def _demonstrations(
        self, prompt_index: int, label: str | None, conditions: dict[str, str],
        synthetic: tuple[DemonstrationPool, int] | None,
    ) -> list[Record]:
        selector = self.selector
        if selector is None or not selector.k:
            return []
        rng = record_rng(self.recipe.generation.seed, prompt_index, "demonstrations")
        if synthetic is None or not synthetic[1] or not len(synthetic[0]):
            return selector.select(rng, label, conditions)
        pool, n = synthetic
        n = min(n, selector.k)
        real = selector.select(rng, label, conditions, k=selector.k - n)
        made = pool.random(n, record_rng(self.recipe.generation.seed, prompt_index, "synthetic"), label)
        return real + made

    # -- running -----------------------------------------------------------------

    def to_record(self, plan: PlannedRecord, done: Finished) -> Record:
        meta: dict[str, Any] = {
            "tries": done.tries,
            "finish_reason": done.finish_reason,
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
        }
        if done.repairs:
            meta["repairs"] = done.repairs
        if plan.meta:
            meta.update(plan.meta)
        meta.update(done.extra)
        if self.recipe.task.kind == "chat" and done.fields:  # the conversation in messages form, beside the fields
            done.fields["messages"] = chat_messages(self.recipe, done.fields, done.label, plan.conditions)
        return Record(
            id=plan.id,
            fields=done.fields,
            label=done.label,
            conditions=dict(plan.conditions),
            demonstrations=[d.id for d in plan.demonstrations],
            prompt=dumps(list(plan.request.messages)).decode("utf-8"),
            meta=meta,
        )

    async def run(
        self,
        scheduler: Scheduler,
        plans: Iterable[PlannedRecord],
        total: int,
        on_record: Callable[[Record | None], None] | None = None,
    ) -> GenerationResult:
        """Send every planned record's calls; records come back in plan order."""
        self.last_result = GenerationResult()
        await run_chain(self.chain, scheduler, plans, total, self.to_record, self.last_result, self.answers, on_record)
        return self.last_result

    async def produce(
        self, scheduler: Scheduler, limit: int | None = None, on_record: Callable[[Record | None], None] | None = None,
        out: Path | None = None, runner: PlanRunner | None = None,
    ) -> GenerationResult:
        """Prepare, then generate every record of the recipe (or the first `limit`); `runner`
        (default: `run`, in this process) sends the plans."""
        await self.prepare(scheduler, out)
        self.last_result = await (runner or self.run)(scheduler, self.iter_plans(limit), self.count(limit), on_record)
        return self.last_result

    def summary(self) -> dict[str, Any]:
        """What the manifest says about generation: answers repaired and retried, conditions built."""
        out: dict[str, Any] = {"answers": self.answers.to_json()}
        if self.conditions is not None:
            out["conditions"] = {"values": dict(self.conditions.sizes), "files": dict(self.conditions.files)}
        return out


__all__ = [
    "AnswerCounts",
    "GenerationResult",
    "Generator",
    "PlanRunner",
    "PlannedRecord",
    "load_support",
    "request_seed",
    "rows_to_records",
    "run_chain",
]
