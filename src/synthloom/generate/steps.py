"""Sample-wise multi-step generation: a record as a chain of calls, each adding fields.

    D_i <- M_{p_i}(T_i, D_{0:i-1})

Each step is one call whose prompt shows the fields earlier steps wrote and
asks for its own (question -> reasoning -> answer; text -> label ->
rationale). A step with `keep: false` (chain of thought) feeds the later
steps and is then dropped from the record (it stays in `meta["dropped"]`
for inspection). A recipe without `steps` is a chain of one step that
writes every field.

Each step's request is a pure function of the plan and the answers of the
steps before it, so after a crash the cache replays the finished steps and
only the rest is paid for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..llm import Completion, ModelError, Request, Scheduler
from ..recipe import FieldSpec, Recipe, StepSpec
from .parse import AnswerParser
from .prompt import PromptBuilder
from .schema import JsonAnswerParser, TypedTextParser, output_schema
from .tasks import label_field_description

Parser = Callable[[Completion], Mapping[str, Any]]


@dataclass
class Finished:
    """What became of one record's calls: its fields and label, or the error that ended it.

    `calls` counts the steps (or turns) asked, `tries` every answer paid for
    or replayed, so `tries > calls` means some answer had to be asked again.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    calls: int = 0
    tries: int = 0
    repairs: list[str] = field(default_factory=list)
    error: ModelError | None = None
    failed_step: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def add(self, outcome: Any) -> None:
        """Count one call's outcome (its tries, tokens and repairs)."""
        self.calls += 1
        self.tries += outcome.tries
        completion = outcome.completion
        if completion is not None:
            self.prompt_tokens += completion.usage.prompt_tokens
            self.completion_tokens += completion.usage.completion_tokens
            self.finish_reason = completion.finish_reason
        self.repairs.extend(getattr(outcome.value, "repairs", ()))


def output_mode(mode: str, fields: Mapping[str, FieldSpec]) -> str:
    """`auto` is JSON for several fields or any typed one, plain text for a single text field."""
    if mode != "auto":
        return mode
    typed = any(spec.type != "string" or spec.enum is not None for spec in fields.values())
    return "json" if len(fields) > 1 or typed else "text"


def make_parser(fields: Mapping[str, FieldSpec], output: str, labels: list[str]) -> Parser:
    text = AnswerParser(list(fields), labels)
    if output == "json":
        return JsonAnswerParser(fields, fallback=text)
    if any(spec.type != "string" or spec.enum is not None for spec in fields.values()):
        return TypedTextParser(fields, text)
    return text


def step_seed(seed: int, index: int, step: int) -> int:
    """The first step keeps the single-call seed, so adding steps leaves step one's answers cached."""
    purpose = "request" if step == 0 else f"step{step}"
    digest = hashlib.sha256(f"{seed}:{index}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


@dataclass
class Step:
    name: str
    fields: list[str]
    keep: bool
    prompts: PromptBuilder
    parser: Parser
    schema: dict[str, Any] | None
    temperature: float
    max_tokens: int
    demonstrations: bool


def build_steps(recipe: Recipe) -> list[Step]:
    task, gen = recipe.task, recipe.generation
    specs = recipe.steps or [StepSpec(name="record", fields=list(task.fields))]
    field_specs = dict(task.field_specs)
    if task.labels:
        field_specs[task.label_field] = FieldSpec(
            description=label_field_description(task.label_names), enum=task.label_names
        )
    steps = []
    context: list[str] = []
    for spec in specs:
        fields = {name: field_specs[name] for name in spec.fields}
        output = output_mode(spec.output or gen.output, fields)
        prompts = PromptBuilder(
            task, gen.templates, output=output, step_fields=spec.fields,
            context_fields=[f for f in context if f != task.label_field],
            instruction=spec.instruction, step_name=spec.name,
            shared_first=gen.prompt_order == "shared_first",
        )
        steps.append(Step(
            name=spec.name,
            fields=list(spec.fields),
            keep=spec.keep,
            prompts=prompts,
            parser=make_parser(fields, output, task.label_names),
            schema=output_schema(fields) if output == "json" else None,
            temperature=gen.temperature if spec.temperature is None else spec.temperature,
            max_tokens=spec.max_tokens or gen.max_tokens,
            demonstrations=spec.demonstrations,
        ))
        context.extend(spec.fields)
    return steps


class StepChain:
    """Runs a record's steps in order through the scheduler."""

    def __init__(self, recipe: Recipe, steps: list[Step] | None = None):
        self.recipe = recipe
        self.steps = steps if steps is not None else build_steps(recipe)
        gen = recipe.generation
        self._stop = tuple(gen.stop) if gen.stop else None

    def request(self, step_index: int, plan: Any, fields: Mapping[str, Any], label: str | None) -> Request:
        step = self.steps[step_index]
        demos = [d for d in plan.demonstrations if step.prompts.usable(d)] if step.demonstrations else []
        messages = step.prompts.messages(label, plan.conditions, demos, fields)
        return Request(
            messages=tuple(messages),
            temperature=step.temperature,
            max_tokens=step.max_tokens,
            top_p=self.recipe.generation.top_p,
            seed=step_seed(self.recipe.generation.seed, plan.index, step_index),
            stop=self._stop,
            json_schema=step.schema,
            sample=plan.sample,
        )

    async def complete(self, plan: Any, scheduler: Scheduler) -> Finished:
        if len(self.steps) == 1:
            return await self._one(plan, scheduler)
        task = self.recipe.task
        done = Finished(label=plan.label)
        values: dict[str, Any] = {}
        dropped: dict[str, Any] = {}
        for i, step in enumerate(self.steps):
            request = plan.request if i == 0 else self.request(i, plan, values, done.label)
            outcome = await scheduler.complete(request, step.parser)
            done.add(outcome)
            if not outcome.ok:
                done.error, done.failed_step = outcome.error, step.name
                return done
            got = dict(outcome.value)
            if task.label_field in got:
                done.label = got.pop(task.label_field)
            values.update(got)
            if not step.keep:
                dropped.update(got)
        done.fields = {name: values[name] for name in task.fields if name in values and name not in dropped}
        if dropped:
            done.extra["dropped"] = dropped
        return done

    async def _one(self, plan: Any, scheduler: Scheduler) -> Finished:
        """The common case, kept lean: one call that writes the whole record."""
        outcome = await scheduler.complete(plan.request, self.steps[0].parser)
        done = Finished(label=plan.label)
        done.add(outcome)
        if not outcome.ok:
            done.error, done.failed_step = outcome.error, self.steps[0].name
            return done
        fields = dict(outcome.value)
        label = fields.pop(self.recipe.task.label_field, None)
        if label is not None:
            done.label = label
        done.fields = fields
        return done


__all__ = ["Finished", "Step", "StepChain", "build_steps", "make_parser", "output_mode", "step_seed"]
