"""What a run will cost, before anything is sent: `synthloom plan RECIPE` (and the first lines of `run`).

For each stage that asks a model: the calls, the prompt and completion
tokens, and the money at the model's price (`llm/pricing.py`).

- Generation: every record's first request is planned exactly as the run
  plans it (a plan is a pure function of the seed and the index) and its
  prompt tokens are counted with the model's own tokenizer when it is at
  hand (`llm/tokens.py`); later steps of a chain and later dialogue turns
  see the earlier answers, so their prompts are the first prompt plus the
  answers before them: an estimate.
- Completion tokens: `max_tokens` per call (an upper bound) until the run
  directory holds answers; then their observed mean, which also carries the
  share of re-asked answers.
- Model-backed curation and evaluation stages: their calls from their
  settings, their prompts estimated from the records' expected length.

Nothing is sent: the only model touched is the tokenizer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._json import loads
from ..generate import Generator, load_support
from ..generate.annotate import Annotator
from ..generate.augment import Augmenter
from ..generate.sources import NeedsModel
from ..generate.steps import StepChain
from ..llm.pricing import Price, price_of
from ..llm.tokens import TokenCounter, counter_for
from ..llm.types import Completion, Usage
from ..recipe import Recipe, load_recipe
from .run import make_producer

# Curation stages that ask a model: calls per record.
_CURATION_CALLS = {"self_consistency": "samples", "label_logprob": 1, "llm_judge": 1, "teacher": 1, "tool_semantic": 1}


@dataclass
class StagePlan:
    stage: str
    calls: int
    prompt_tokens: int | None
    completion_tokens: int
    money: float | None
    prompt_counted: str  # "counted", "estimated" or why unknown
    completion_from: str  # "max_tokens" or "observed mean of N answers"
    notes: list[str] = field(default_factory=list)
    records: int | None = None  # generation: the records it makes (a multi-call kind makes fewer than its calls)


@dataclass
class Plan:
    recipe: str
    model: str
    tokenizer: str
    price: dict[str, Any] | None
    price_from: str
    currency: str
    stages: list[StagePlan]
    batch: bool = False  # model.mode: batch: the money is at the batch discount

    @property
    def total(self) -> StagePlan:
        known = [s.prompt_tokens for s in self.stages]
        money = [s.money for s in self.stages]
        return StagePlan(
            "total", sum(s.calls for s in self.stages),
            None if any(p is None for p in known) else sum(p for p in known if p is not None),
            sum(s.completion_tokens for s in self.stages),
            None if any(m is None for m in money) else round(sum(m for m in money if m is not None), 6),
            "", "",
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total"] = asdict(self.total)
        return data

    def lines(self) -> list[str]:
        """The plan as a plain table for a terminal."""
        out = [f"plan for {self.recipe}: model {self.model}; prompt tokens by {self.tokenizer}; "
               f"price {self._price_text()}", ""]
        header = f"{'stage':<28} {'calls':>8} {'prompt tokens':>15} {'completion tokens':>18} {'money':>12}"
        out += [header, "-" * len(header)]
        for s in [*self.stages, self.total]:
            prompt = "?" if s.prompt_tokens is None else f"{s.prompt_tokens:,}" + ("" if s.prompt_counted in ("counted", "") else "~")
            money = "?" if s.money is None else f"{s.money:.4f}"
            out.append(f"{s.stage:<28} {s.calls:>8,} {prompt:>15} {s.completion_tokens:>18,} {money:>12}")
        out.append("")
        out.append(f"~ estimated, not counted; completion tokens: {self.stages[0].completion_from if self.stages else '-'}; "
                   f"money in {self.currency}; nothing was sent")
        out += [f"note: {s.stage}: {n}" for s in self.stages for n in s.notes]
        return out

    def _price_text(self) -> str:
        if self.price is None:
            return "unknown (give model.price to see money)"
        text = f"{self.price['input_per_mtok']:g} / {self.price['output_per_mtok']:g} per million tokens in / out ({self.price_from})"
        if self.batch and self.price.get("batch_discount"):
            text += f", {self.price['batch_discount']:.0%} off in batch mode"
        return text


def _observed_completion(out: Path | None) -> tuple[float, int] | None:
    """The mean completion tokens of the answers already in a run directory's cache, and their number."""
    path = out / "cache.sqlite" if out is not None else None
    if path is None or not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT completion FROM completions").fetchall()
    tokens = [Completion.from_json(loads(row[0])).usage.completion_tokens for row in rows]
    return (sum(tokens) / len(tokens), len(tokens)) if tokens else None


def _batch_priced(price: Price | None, config: Any) -> Price | None:
    """The price a model's answers are paid at: less its batch discount in `mode: batch`."""
    if price is None or getattr(config, "mode", "online") != "batch" or not price.batch_discount:
        return price
    keep = 1 - price.batch_discount
    return price.model_copy(update={"input_per_mtok": price.input_per_mtok * keep,
                                    "output_per_mtok": price.output_per_mtok * keep, "batch_discount": 0.0})


def _money(price: Price | None, prompt: int | None, completion: int) -> float | None:
    if price is None or prompt is None:
        return None
    return round(price.cost(Usage(prompt, completion)), 6)


def _first_prompts(generator: Any, total: int, counter: TokenCounter, sample: int | None) -> tuple[int, bool]:
    """Prompt tokens of every record's first request (all of them, or `sample` evenly spaced ones,
    scaled to `total`), and whether every one was counted."""
    list(generator.iter_plans(0))  # conditions and demonstrations ready, no plan made
    if sample is None or sample >= total:
        return sum(counter.count(generator.plan_record(i).request.messages) for i in range(total)), True
    indices = sorted({i * total // sample for i in range(sample)})
    counted = sum(counter.count(generator.plan_record(i).request.messages) for i in indices)
    return round(counted * total / len(indices)), False


def _generation(recipe: Recipe, limit: int | None, counter: TokenCounter, observed: float | None, price: Price | None,
                sample: int | None = None) -> StagePlan:
    producer = make_producer(recipe, load_support(recipe))
    generator = producer if isinstance(producer, (Generator, Annotator, Augmenter)) else producer.generator
    notes: list[str] = []
    if isinstance(generator, (Annotator, Augmenter)):  # one request per input (per sample, per rewrite)
        inputs = generator.count(limit)
        samples = getattr(generator.chain.spec, "samples", 1)
        completion = observed if observed is not None else float(generator.chain.spec.max_tokens)
        calls = inputs * samples
        try:
            prompts, every = _first_prompts(generator, inputs, counter, sample)
            prompt_tokens, how = prompts * samples, "counted" if counter.exact and every else "estimated"
        except Exception as exc:  # noqa: BLE001 - planning offline may need what only a run builds
            prompt_tokens, how = None, f"unknown: {exc}"
        return StagePlan("generation", calls, prompt_tokens, round(calls * completion), _money(price, prompt_tokens, round(calls * completion)), how, "", notes,
                         records=inputs)
    chain = generator.chain
    completion = observed if observed is not None else float(recipe.generation.max_tokens)
    steps = len(chain.steps) if isinstance(chain, StepChain) else getattr(chain.spec, "turns", 1) if hasattr(chain, "spec") else 1
    if recipe.tools is not None:  # tool use: the query, the calls, the answer (the answer only when calls parse)
        steps = 3
        t = recipe.tools
        completion = observed if observed is not None else (t.query_max_tokens + t.calls_max_tokens + t.answer_max_tokens) / 3
        notes.append("tool use: 3 calls per record (query, calls, answer); the tools' runs cost no tokens")
    records = generator.count(limit)
    calls = records * steps
    try:
        first, every = _first_prompts(generator, records, counter, sample)
    except NeedsModel as exc:
        first, how = None, f"unknown: {exc}"
    else:
        how = "counted" if counter.exact and every and steps == 1 else "estimated"
    if first is not None:
        # step k (k = 0..steps-1) sees the first prompt and the k answers before it
        prompt_tokens: int | None = round(first * steps + records * completion * steps * (steps - 1) / 2)
    else:
        prompt_tokens = None
    if steps > 1:
        notes.append(f"{steps} calls per record; later calls' prompts estimated as the first plus the answers before them")
    if recipe.rounds is not None:
        notes.append(f"{recipe.rounds.count} rounds share the same budget of records")
    conditions_by_model = [k for k, spec in recipe.conditions.items() if type(spec).__name__ in ("ConceptTreeSpec", "PersonasSpec")]
    if conditions_by_model:
        notes.append(f"conditions built by the model ({', '.join(conditions_by_model)}) add a few calls, not counted")
    total_completion = round(calls * completion)
    return StagePlan("generation", calls, prompt_tokens, total_completion, _money(price, prompt_tokens, total_completion), how, "", notes,
                     records=records)


def _record_tokens(plan: StagePlan) -> float:
    """Tokens of one generated record's text: what a later stage shows a model."""
    return plan.completion_tokens / max(1, plan.calls)


def _model_stages(recipe: Recipe, records: int, record_tokens: float) -> list[StagePlan]:
    out = []
    for spec in recipe.curation:
        per = _CURATION_CALLS.get(spec.stage)
        if per is None:
            continue
        calls = records * (getattr(spec, "samples", 1) if per == "samples" else per)
        shots = getattr(spec, "shots", 0) * min(8, max(1, len(recipe.task.label_names)))
        prompt = round(calls * (60 + (shots + 1) * (record_tokens + 8)))
        completion = calls * spec.max_tokens
        price = _batch_priced(price_of(spec.model)[0], spec.model)
        out.append(StagePlan(f"curation.{spec.stage}", calls, prompt, completion, _money(price, prompt, completion),
                             "estimated", "max_tokens", ["every generated record; fewer if earlier stages drop some"]))
    for spec in recipe.evaluation:
        calls = 0
        if spec.stage == "faithfulness":
            calls = min(spec.sample, records)
        elif spec.stage == "answering":
            calls = spec.n * 2
        elif spec.stage == "pairwise":
            calls = 2 * (spec.sample or records)
        if not calls:
            continue
        model = getattr(spec, "judge", None) or getattr(spec, "model", None) or recipe.model
        price = _batch_priced(price_of(model)[0], model)
        prompt = round(calls * (150 + 2 * record_tokens))
        completion = calls * getattr(spec, "max_tokens", 96)
        out.append(StagePlan(f"evaluation.{spec.stage}", calls, prompt, completion, _money(price, prompt, completion),
                             "estimated", "max_tokens"))
    return out


def plan_run(recipe: Recipe | str | Path, limit: int | None = None, out: str | Path | None = None,
             sample: int | None = None) -> Plan:
    """The calls, tokens and money a run of `recipe` (into `out`, if it has answers already) will take.

    `sample`: count the prompts of that many evenly spaced records and scale (the estimate a run
    prints first, which must not plan a large run twice); None counts every record's."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    counter = counter_for(recipe.model)
    price, source = price_of(recipe.model)
    observed = _observed_completion(Path(out) if out is not None else None)
    completion_from = f"observed mean of {observed[1]} answers" if observed else "max_tokens (an upper bound)"
    generation = _generation(recipe, limit, counter, observed[0] if observed else None,
                             _batch_priced(price, recipe.model), sample)
    generation.completion_from = completion_from
    # Curation and evaluation see records, not calls: a multi-call kind (steps, turns, tool use) makes one record per chain.
    stages = [generation, *_model_stages(recipe, generation.records or generation.calls, _record_tokens(generation))]
    return Plan(recipe.name, str(getattr(recipe.model, "model", None) or recipe.model.backend), counter.name,
                price.model_dump(mode="json") if price is not None else None, source,
                price.currency if price is not None else "USD", stages,
                getattr(recipe.model, "mode", "online") == "batch")


__all__ = ["Plan", "StagePlan", "plan_run"]
