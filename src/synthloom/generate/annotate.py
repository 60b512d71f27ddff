"""Annotation mode: the model labels unlabelled inputs, with a confidence for each label.

Support data here is unlabelled inputs (`annotation.input`); labelled
examples, when given under `demonstrations`, are shown as earlier turns
(nearest to the input, or stratified over the labels). Each input is
asked `samples` times: the first answer greedy, with token
log-probabilities when `logprobs` is on; the rest sampled. The label is
the majority; two confidences are written on the record in the shape
curation stages use:

- `scores["self_consistency"]`: the majority's share of the answers;
- `scores["label_logprob"]`: the probability the model gave the tokens of
  the greedy answer's label (when the backend returns log-probabilities),
  with the first token's alternatives spread over the labels they begin
  in `meta["label_probs"]`.

The output is the same run directory as generation.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .._json import dumps
from ..llm import Completion, Request, Scheduler
from ..recipe import FieldSpec, Recipe
from ..records import Record, read_rows
from ..templating import render
from .conditions import record_rng
from .demonstrations import DemonstrationPool, DemonstrationSelector
from .engine import AnswerCounts, GenerationResult, PlannedRecord, PlanRunner, rows_to_records, run_chain
from .schema import output_schema
from .steps import Finished, make_parser, output_mode, step_seed
from .vectors import VectorCache

DEFAULT_SYSTEM = """\
{% if task.role %}You are {{ task.role }}. {% endif %}You label {{ task.description }}. The labels are:
{% for label in task.labels %}
- {{ label }}{{ (": " ~ descriptions[label]) if descriptions[label] else "" }}
{% endfor %}
Answer with the label only."""
DEFAULT_INSTRUCTION = """\
{% for name, value in fields.items() %}
{{ name | humanize | capitalize }}: {{ value }}
{% endfor %}
{% if output == 'json' %}Label (JSON, key "{{ task.label_field }}")?{% else %}Label?{% endif %}"""


def label_probability(completion: Completion, label: str, labels: Sequence[str]) -> tuple[float | None, dict[str, float]]:
    """P(the label's tokens) in a completion with log-probabilities, and the first token's split over labels."""
    tokens = completion.logprobs
    if not tokens:
        return None, {}
    text = "".join(t.token for t in tokens)
    start = text.casefold().find(label.casefold())
    if start < 0:
        return None, {}
    end = start + len(label)
    position, covering, first = 0, [], None
    for i, token in enumerate(tokens):
        left, position = position, position + len(token.token)
        if position > start and left < end:
            covering.append(token.logprob)
            first = i if first is None else first
    probability = math.exp(sum(covering))
    split: dict[str, float] = collections.defaultdict(float)
    for alternative, logprob in tokens[first].top if first is not None else []:
        piece = alternative.strip(" \"'").casefold()
        starts = [name for name in labels if piece and name.casefold().startswith(piece)]
        for name in starts:
            split[name] += math.exp(logprob) / len(starts)
    total = sum(split.values())
    return probability, {k: round(v / total, 4) for k, v in sorted(split.items(), key=lambda kv: -kv[1])[:5]} if total else {}


class AnnotationChain:
    """Asks for one input's label `samples` times and decides by majority."""

    def __init__(self, recipe: Recipe, field_names: Sequence[str]):
        spec = recipe.annotation
        assert spec is not None
        task, gen = recipe.task, recipe.generation
        self.recipe = recipe
        self.spec = spec
        self.labels = task.label_names
        fields = {task.label_field: FieldSpec(description="the label", enum=self.labels)}
        self.output = output_mode(gen.output, fields)
        self.parser = make_parser(fields, self.output, self.labels)
        self.schema = output_schema(fields) if self.output == "json" else None
        self.label_field = task.label_field
        self.field_names = list(field_names)
        self._task_vars = {
            "description": task.description, "role": task.role, "labels": self.labels, "label_field": task.label_field,
        }
        self._descriptions = {label: task.label_description(label) for label in self.labels}
        self._system = render(gen.templates.system or DEFAULT_SYSTEM, task=self._task_vars, descriptions=self._descriptions)
        self._instruction = spec.instruction or gen.templates.instruction or DEFAULT_INSTRUCTION

    def instruction(self, fields: dict[str, Any]) -> str:
        return render(self._instruction, task=self._task_vars, fields=fields, output=self.output)

    def answer(self, label: str | None) -> str:
        return dumps({self.label_field: label}).decode() if self.output == "json" else str(label)

    def messages(self, fields: dict[str, Any], demos: Sequence[Record]) -> tuple[dict[str, str], ...]:
        out = [{"role": "system", "content": self._system}]
        for demo in demos:
            out.append({"role": "user", "content": self.instruction({n: demo.fields.get(n) for n in self.field_names})})
            out.append({"role": "assistant", "content": self.answer(demo.label)})
        out.append({"role": "user", "content": self.instruction(fields)})
        return tuple(out)

    def request(self, plan: PlannedRecord, sample: int) -> Request:
        spec, seed = self.spec, self.recipe.generation.seed
        greedy = sample == 0
        return Request(
            messages=plan.request.messages,
            temperature=0.0 if greedy else spec.temperature,
            max_tokens=spec.max_tokens,
            seed=step_seed(seed, plan.index, sample),
            json_schema=plan.request.json_schema,
            logprobs=greedy and spec.logprobs,
            top_logprobs=spec.top_logprobs if greedy and spec.logprobs else 0,
            sample=sample,
        )

    async def complete(self, plan: PlannedRecord, scheduler: Scheduler) -> Finished:
        done = Finished()
        votes: collections.Counter[str] = collections.Counter()
        greedy: Any = None
        for sample in range(self.spec.samples):
            outcome = await scheduler.complete(plan.request if sample == 0 else self.request(plan, sample), self.parser)
            done.add(outcome)
            if outcome.ok:
                votes[outcome.value[self.label_field]] += 1
                if sample == 0:
                    greedy = outcome
            elif done.error is None:
                done.error = outcome.error
        if not votes:
            return done
        done.error = None
        top = max(votes.values())
        leaders = [label for label in self.labels if votes[label] == top]
        greedy_label = greedy.value[self.label_field] if greedy is not None else None
        label = greedy_label if greedy_label in leaders else leaders[0]
        done.label = label
        done.fields = dict(plan.meta["input"])
        done.extra = {"votes": dict(votes), "self_consistency": top / sum(votes.values())}
        if greedy is not None and greedy_label == label:
            probability, split = label_probability(greedy.completion, self._matched(greedy.completion, label), self.labels)
            if probability is not None:
                done.extra["label_logprob"] = probability
                done.extra["label_probs"] = split
        return done

    def _matched(self, completion: Completion, label: str) -> str:
        """The label as the answer wrote it (case may differ), for locating its tokens."""
        text = completion.text
        at = text.casefold().find(label.casefold())
        return text[at : at + len(label)] if at >= 0 else label


class Annotator:
    """Labels the recipe's unlabelled inputs; the same interface as Generator for run()."""

    def __init__(self, recipe: Recipe, support: Sequence[Record] = (), *, vectors: VectorCache | None = None):
        self.recipe = recipe
        self.support = list(support)
        self.vectors = vectors
        self.fields = list(recipe.task.fields)
        self.chain = AnnotationChain(recipe, self.fields)
        self.last_result = GenerationResult()
        self.answers = AnswerCounts()
        self._inputs: list[Record] | None = None
        self._selector: DemonstrationSelector | None = None

    def inputs(self) -> list[Record]:
        if self._inputs is None:
            spec = self.recipe.annotation.input  # type: ignore[union-attr]
            rows = read_rows(spec.path, spec.format, spec.columns)
            records = rows_to_records(rows, self.fields, spec.text_field, None, spec.path)
            self._inputs = records[: spec.limit] if spec.limit else records
        return self._inputs

    def count(self, limit: int | None = None) -> int:
        total = len(self.inputs())
        return total if limit is None else min(limit, total)

    def selector(self) -> DemonstrationSelector:
        """Labelled examples chosen for each input: compared with its text, never by its (unknown) label."""
        if self._selector is None:
            spec = self.recipe.demonstrations
            encode = None
            if spec is not None:
                query = self.fields[0] if spec.query == "conditions" else spec.query
                spec = spec.model_copy(update={"query": query, "same_label": False})
                if spec.selection in ("nearest", "mmr"):
                    self.vectors = self.vectors or VectorCache()
                    encode = self.vectors.encode
            pool = DemonstrationPool(self.support, encode, spec.query if spec is not None else None)
            self._selector = DemonstrationSelector(spec, pool)
        return self._selector

    def plan_record(self, index: int) -> PlannedRecord:
        record = self.inputs()[index]
        rng = record_rng(self.recipe.generation.seed, index, "demonstrations")
        selector = self.selector()
        demos = selector.select(rng, None, {}, record.fields) if selector.k else []
        request = Request(
            messages=self.chain.messages(record.fields, demos),
            temperature=0.0,
            max_tokens=self.chain.spec.max_tokens,
            seed=step_seed(self.recipe.generation.seed, index, 0),
            json_schema=self.chain.schema,
            logprobs=self.chain.spec.logprobs,
            top_logprobs=self.chain.spec.top_logprobs if self.chain.spec.logprobs else 0,
        )
        return PlannedRecord(f"{self.recipe.name}-{index:06d}", index, None, {}, demos, request,
                             meta={"input": dict(record.fields), "input_id": record.id})

    def iter_plans(self, limit: int | None = None):
        for index in range(self.count(limit)):
            yield self.plan_record(index)

    def to_record(self, plan: PlannedRecord, done: Finished) -> Record:
        extra = dict(done.extra)
        record = Record(
            id=plan.id,
            fields=done.fields,
            label=done.label,
            demonstrations=[d.id for d in plan.demonstrations],
            prompt=dumps(list(plan.request.messages)).decode("utf-8"),
            meta={"input_id": plan.meta["input_id"], "tries": done.tries, "votes": extra.pop("votes"), "origin": "pool"},
        )
        record.decide("self_consistency", "keep", extra.pop("self_consistency"))
        if "label_logprob" in extra:
            record.decide("label_logprob", "keep", extra.pop("label_logprob"))
        record.meta.update(extra)
        return record

    async def run(self, scheduler: Scheduler, plans: Iterable[PlannedRecord], total: int,
                  on_record: Callable[[Record | None], None] | None = None) -> GenerationResult:
        """Label the planned inputs; records come back in plan order (the same shape as `Generator.run`)."""
        self.last_result = GenerationResult()
        await run_chain(self.chain, scheduler, plans, total, self.to_record, self.last_result, self.answers, on_record)
        return self.last_result

    async def produce(self, scheduler: Scheduler, limit: int | None = None,
                      on_record: Callable[[Record | None], None] | None = None, out: Path | None = None,
                      runner: PlanRunner | None = None) -> GenerationResult:
        """Plan every input here; `runner` (default: `run`, in this process) labels them."""
        if out is not None and self.vectors is None:
            self.vectors = VectorCache(out / "embeddings.npz")
        self.last_result = await (runner or self.run)(scheduler, self.iter_plans(limit), self.count(limit), on_record)
        if self.vectors is not None:
            self.vectors.save()
        return self.last_result

    def summary(self) -> dict[str, Any]:
        records = self.last_result.records
        agreement = [r.scores["self_consistency"] for r in records]
        out: dict[str, Any] = {"answers": self.answers.to_json(), "annotated": len(records)}
        if agreement:
            out["mean_self_consistency"] = round(sum(agreement) / len(agreement), 4)
        logprob = [r.scores["label_logprob"] for r in records if "label_logprob" in r.scores]
        if logprob:
            out["mean_label_logprob"] = round(sum(logprob) / len(logprob), 4)
        return out


__all__ = ["AnnotationChain", "Annotator", "label_probability"]
