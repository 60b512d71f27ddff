"""The evaluation stages of a recipe: each `stage:` setting mapped to the code that measures it.

`evaluate(records, specs, context)` runs them in order and returns the
metrics (what `metrics.json` holds); the context collects notes for the
manifest and the data of the report's plots (`plots.json`): word counts,
the 2-D embedding map, synthetic against real where a stage loaded real
data.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..embed import Embedder, EmbeddingUnavailable
from ..llm import BackendConfig, LlamaCppConfig, spend
from ..recipe import AnsweringSpec, DiversitySpec, DownstreamSpec, FaithfulnessSpec, FidelitySpec, FinetuneSpec, PairwiseSpec, TaskSpec
from ..records import Record, load_dataset, read_rows
from .answering import answer_benchmark
from .benchmarks import load_benchmark, restrict_labels
from .diversity import condition_coverage, lexical_measures_of_tokens, semantic_measures, tokenize
from .downstream import TrainingError, downstream_evaluation
from .faithfulness import human_faithfulness, human_reviews, judge_agreement, judge_faithfulness
from .fidelity import fidelity_measures
from .finetune import finetune_classification, finetune_instructions, work_dir
from .finetune_answers import Check, checkable_items, finetune_answers
from .judge import Judge
from .pairwise import compare_answers
from .projection import embedding_map


@dataclass
class EvaluationContext:
    """What stages may need beyond their settings; stages add notes, plot data and real data seen."""

    text_field: str = "text"
    embedder: Embedder | None = None
    notes: list[str] = field(default_factory=list)
    task: TaskSpec | None = None
    conditions: Mapping[str, Any] | None = None
    model: BackendConfig | None = None
    run_dir: Path | None = None
    progress: bool = False
    plots: dict[str, Any] = field(default_factory=dict)
    reference: list[Record] | None = None
    reference_source: str | None = None
    support: list[Record] | None = None  # the few real examples the user has (labelled demonstrations)
    answer_check: Check | None = None  # the verifiers (math, code) as the finetune stage's check; execute/ gives them

    def get_embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = Embedder.shared()
        return self.embedder

    def condition_space(self) -> dict[str, list[str]] | None:
        """The grid of categorical conditions (lists or weighted values); sources such as
        personas, concept trees and knowledge graphs are not a grid and are left out."""
        space = {
            k: [str(x) for x in v] for k, v in (self.conditions or {}).items()
            if isinstance(v, (list, tuple, Mapping))
        }
        return space or None

    def judge(self, config: BackendConfig | None) -> Judge:
        """A judge on `config` (default: the run's model), caching in the run directory."""
        cache = self.run_dir / "cache.sqlite" if self.run_dir is not None else None
        return Judge(config or self.model or LlamaCppConfig(), cache, progress=self.progress)

    def labels(self, records: Sequence[Record]) -> dict[str, str | None]:
        if self.task is not None and self.task.labels:
            return {name: self.task.label_description(name) for name in self.task.label_names}
        return {label: None for label in sorted({r.label for r in records if r.label is not None})}


def _texts(records: Sequence[Record], name: str | None) -> list[str]:
    return [r.text(name) if name in r.fields else r.text() for r in records]


def _profile(records: Sequence[Record], tokens: Sequence[list[str]]) -> dict[str, Any]:
    """Lengths and label balance: the direct measures every dataset has."""
    words = [len(t) for t in tokens]
    labels = Counter(r.label for r in records if r.label is not None)
    total = sum(labels.values())
    out: dict[str, Any] = {
        "words_mean": float(np.mean(words)) if words else 0.0,
        "words_median": float(np.median(words)) if words else 0.0,
    }
    if total:
        out["label_shares"] = {label: round(n / total, 4) for label, n in sorted(labels.items())}
    return out


def _measures(spec: DiversitySpec, records: Sequence[Record], texts: list[str], ctx: EvaluationContext) -> tuple[dict[str, Any], Any]:
    tokens = [tokenize(t) for t in texts]
    out: dict[str, Any] = lexical_measures_of_tokens(texts, tokens, spec.n, spec.self_bleu_sample, spec.seed)
    out.update(_profile(records, tokens))
    vectors = None
    if spec.embeddings and texts:
        try:
            vectors = ctx.get_embedder().encode(texts)
            out.update(semantic_measures(vectors))
        except EmbeddingUnavailable as exc:
            ctx.notes.append(f"embedding diversity skipped: {exc}")
    return out, (tokens, vectors)


def _diversity(spec: DiversitySpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    texts = _texts(records, spec.field or ctx.text_field)
    out, (tokens, vectors) = _measures(spec, records, texts, ctx)
    if spec.per_label:
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            if r.label is not None:
                groups.setdefault(r.label, []).append(i)
        if len(groups) > 1:
            out["by_label"] = {}
            for label in sorted(groups):
                idx = groups[label]
                part = lexical_measures_of_tokens(
                    [texts[i] for i in idx], [tokens[i] for i in idx],
                    spec.n, min(spec.self_bleu_sample, 200), spec.seed,
                )
                if vectors is not None:
                    part.update(semantic_measures(vectors[idx]))
                out["by_label"][label] = part
    coverage = condition_coverage([r.conditions for r in records], ctx.condition_space())
    if coverage["conditions"]:
        out["coverage"] = coverage
    return out


def reference_measures(spec: DiversitySpec, n: int, ctx: EvaluationContext) -> dict[str, Any] | None:
    """The diversity stage's measures of the real reference, on a seeded sample of the same size as
    the synthetic set (distinct-n, vocabulary and self-BLEU all depend on how many texts there are)."""
    real = ctx.reference or []
    if not real or not n:
        return None
    if len(real) > n:
        rng = np.random.default_rng(spec.seed)
        real = [real[i] for i in sorted(rng.choice(len(real), n, replace=False))]
    out, _ = _measures(spec, real, _texts(real, None), ctx)
    out["source"] = ctx.reference_source or "real data"
    return out


def _load_or_skip(spec: Any, what: str, ctx: EvaluationContext) -> list[Record] | None:
    if not spec.exists:
        ctx.notes.append(f"{what} skipped: {spec.path} not found")
        return None
    return load_dataset(spec)


def _fidelity(spec: FidelitySpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    reference = _load_or_skip(spec.reference, "fidelity", ctx)
    if reference is None:
        return {"skipped": ctx.notes[-1]}
    rng = np.random.default_rng(spec.seed)
    cap = lambda rs: rs if len(rs) <= spec.max_records else [rs[i] for i in sorted(rng.choice(len(rs), spec.max_records, replace=False))]  # noqa: E731
    synthetic, real = cap(list(records)), cap(reference)
    ctx.reference = ctx.reference or real
    ctx.reference_source = ctx.reference_source or spec.reference.path
    name = spec.field or ctx.text_field
    syn_texts, real_texts = _texts(synthetic, name), _texts(real, None)
    embedder = ctx.get_embedder()
    try:
        out = fidelity_measures(
            embedder.encode(syn_texts), embedder.encode(real_texts),
            [r.label for r in synthetic], [r.label for r in real],
            [len(tokenize(t)) for t in syn_texts], [len(tokenize(t)) for t in real_texts],
            k=spec.k, seed=spec.seed,
        )
    except ValueError as exc:
        ctx.notes.append(f"fidelity not possible: {exc}")
        return {"skipped": str(exc)}
    out["reference"] = spec.reference.path
    return out


def _downstream(spec: DownstreamSpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    real_train: list[Record] | None = None
    if spec.benchmark is not None:
        ref = spec.benchmark
        test = load_benchmark(ref.name, ref.split, ref.path, ref.config, seed=spec.seed)
        if ref.labels or spec.settings is None or {"real", "few_real", "few_real_plus_synthetic"} & set(spec.settings):
            real_train = load_benchmark(ref.name, "train", ref.path, ref.config, seed=spec.seed)
        if ref.labels:
            real_train, kept = restrict_labels(real_train, ref.labels)
            test = [r for r in test if r.label in set(kept)]
        source = f"{ref.name} ({ref.path or 'hub'}, {ref.split})"
    else:
        assert spec.test is not None
        loaded = _load_or_skip(spec.test, "downstream evaluation", ctx)
        if loaded is None:
            return {"skipped": ctx.notes[-1]}
        test, source = loaded, spec.test.path
    if spec.train is not None:
        real_train = load_dataset(spec.train)
    fields = [spec.field] if spec.field else (list(ctx.task.fields) if ctx.task else None)
    try:
        result = downstream_evaluation(
            records, test, trainer=spec.trainer, fields=fields, embedder=ctx.get_embedder(),
            real_train=real_train, support=ctx.support, settings=spec.settings, few=spec.few_per_class,
            learning_curve=spec.learning_curve, resamples=spec.bootstrap, errors=spec.errors, seed=spec.seed,
        )
    except TrainingError as exc:
        note = f"downstream evaluation not possible: {exc}"
        ctx.notes.append(note)
        return {"skipped": note}
    result["test_data"] = source
    if result.get("few_real_in_test"):
        ctx.notes.append(f"downstream: {result['few_real_in_test']} of the few real examples are also in the test set")
    ctx.reference = ctx.reference or test
    ctx.reference_source = ctx.reference_source or source
    return result


def _faithfulness(spec: FaithfulnessSpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    judge = ctx.judge(spec.judge)
    out = judge_faithfulness(
        records, judge, task=ctx.task.description if ctx.task else "labelled text examples",
        labels=ctx.labels(records), criteria=spec.criteria, sample=spec.sample, seed=spec.seed,
        level=spec.level, max_tokens=spec.max_tokens,
    )
    reviews_path = spec.reviews or (ctx.run_dir / "reviews.sqlite" if ctx.run_dir else None)
    reviews = human_reviews(reviews_path) if reviews_path else []
    if reviews:
        out["human"] = human_faithfulness(reviews, spec.criteria, spec.level)
        out["agreement"] = judge_agreement(out["verdicts"], reviews, spec.criteria)
    return out


def _pairwise(spec: PairwiseSpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    rows = read_rows(spec.baseline.path, spec.baseline.format, spec.baseline.columns)
    missing = [c for c in (spec.prompt_field, spec.answer_field) if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{spec.baseline.path}: no column(s) {missing}")
    baseline = {str(row[spec.prompt_field]): str(row[spec.answer_field]) for row in rows}
    pairs = [
        (str(r.fields[spec.prompt_field]), str(r.fields.get(spec.answer_field, "")))
        for r in records if str(r.fields.get(spec.prompt_field)) in baseline
    ]
    if spec.sample is not None:
        pairs = pairs[: spec.sample]
    if not pairs:
        note = f"pairwise evaluation skipped: no record's {spec.prompt_field!r} is in {spec.baseline.path}"
        ctx.notes.append(note)
        return {"skipped": note}
    out = compare_answers(
        [p for p, _ in pairs], [a for _, a in pairs], [baseline[p] for p, _ in pairs],
        ctx.judge(spec.judge), resamples=spec.bootstrap, seed=spec.seed,
    )
    out["baseline"] = spec.baseline.path
    return out


def _answering(spec: AnsweringSpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    ref = spec.benchmark
    if not records:
        note = "answering evaluation skipped: no records to use as worked examples"
        ctx.notes.append(note)
        return {"skipped": note}
    test = load_benchmark(ref.name, ref.split, ref.path, ref.config, seed=spec.seed)
    out = answer_benchmark(
        records, test, benchmark=ref.name,
        model=spec.model or ctx.model or LlamaCppConfig(),
        judge=ctx.judge(spec.judge),
        shots=spec.shots, selection=spec.selection,
        encode=ctx.get_embedder().encode if spec.selection == "nearest" else None,
        input_fields=spec.input_fields, answer_field=spec.answer_field, scoring=spec.scoring,
        zero_shot=spec.zero_shot, instruction=spec.instruction, n=spec.n, seed=spec.seed,
        max_tokens=spec.max_tokens, cache_path=ctx.run_dir / "cache.sqlite" if ctx.run_dir is not None else None,
        progress=ctx.progress,
    )
    out["test_data"] = f"{ref.name} ({ref.path or 'hub'}, {ref.split})"
    failed = sum(s["failed"] for s in out["settings"].values())
    if failed:
        ctx.notes.append(f"answering {ref.name}: {failed} answers failed and are left out of the scores")
    return out


def _finetune(spec: FinetuneSpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    from ..train.lm_models import LMError

    # A model that cannot load, rows no trainer can use, too little data: LMError, a user's error (exit 2).
    out = work_dir(ctx.run_dir)
    log = (lambda message: print(message, file=sys.stderr)) if ctx.progress else (lambda _: None)
    # Named on the model card without a path of this machine: the model lies inside the run's folder.
    data = f"run {ctx.run_dir.resolve().name} (the run folder this model lies in)" if ctx.run_dir is not None else "the records"
    try:
        scoring = spec.answer_scoring()
        if scoring is not None:
            items, source = checkable_items(spec, scoring)
            result = finetune_answers(records, items, spec, out, scoring, ctx.answer_check, progress=ctx.progress, log=log, data=data)
            result["test_data"] = source
            return result
        if spec.prompts is not None:
            rows = read_rows(spec.prompts.path, spec.prompts.format, spec.prompts.columns)
            if rows and spec.prompt_field not in rows[0]:
                raise LMError(f"{spec.prompts.path}: no column {spec.prompt_field!r} (columns: {', '.join(rows[0])})")
            result = finetune_instructions(records, [str(r[spec.prompt_field]) for r in rows], spec, out, ctx.judge(spec.judge),
                                           progress=ctx.progress, log=log, data=data)
            result["test_data"] = spec.prompts.path
            return result
        real_train: list[Record] | None = load_dataset(spec.train) if spec.train is not None and spec.train.exists else None
        if spec.benchmark is not None:
            ref = spec.benchmark
            test = load_benchmark(ref.name, ref.split, ref.path, ref.config, seed=spec.seed)
            source = f"{ref.name} ({ref.path or 'hub'}, {ref.split})"
            if ref.labels:
                bench_train = load_benchmark(ref.name, "train", ref.path, ref.config, seed=spec.seed)
                bench_train, kept = restrict_labels(bench_train, ref.labels)
                test = [r for r in test if r.label in set(kept)]
                real_train = real_train or bench_train
        else:
            assert spec.test is not None
            loaded = _load_or_skip(spec.test, "finetune evaluation", ctx)
            if loaded is None:
                return {"skipped": ctx.notes[-1]}
            test, source = loaded, spec.test.path
        fields = list(ctx.task.fields) if ctx.task else None
        result = finetune_classification(
            records, test, spec, out, labels=ctx.labels(records), task=ctx.task.description if ctx.task else None,
            fields=fields, real_train=real_train, embedder=ctx.embedder if spec.minilm else None, progress=ctx.progress, log=log, data=data,
        )
    except FileNotFoundError as exc:
        note = f"finetune evaluation skipped: {exc}"
        ctx.notes.append(note)
        return {"skipped": note}
    result["test_data"] = source
    return result


EVALUATORS: dict[type, Callable[[Any, Sequence[Record], EvaluationContext], dict[str, Any]]] = {
    DiversitySpec: _diversity,
    FidelitySpec: _fidelity,
    DownstreamSpec: _downstream,
    FaithfulnessSpec: _faithfulness,
    PairwiseSpec: _pairwise,
    AnsweringSpec: _answering,
    FinetuneSpec: _finetune,
}


def plot_data(records: Sequence[Record], ctx: EvaluationContext, seed: int = 0) -> dict[str, Any]:
    """Word counts and the 2-D embedding map of the records (and of the real data a stage used)."""
    texts = _texts(records, ctx.text_field)
    real = ctx.reference or []
    real_texts = _texts(real, None)
    out: dict[str, Any] = {
        "lengths": {"synthetic": [len(tokenize(t)) for t in texts], "real": [len(tokenize(t)) for t in real_texts]}
    }
    if len(texts) >= 3 and ctx.embedder is None:
        # The map reuses what an evaluation stage embedded; it never loads the model for itself
        # (on 2,000 records that alone costs more CPU than every request of the run).
        ctx.notes.append("no embedding map in the report: no evaluation stage embedded the texts")
    elif len(texts) >= 3:
        try:
            embedder = ctx.get_embedder()
            out["map"] = embedding_map(
                embedder.encode(texts), [r.label for r in records],
                embedder.encode(real_texts) if real_texts else None, [r.label for r in real], seed=seed,
            )
        except EmbeddingUnavailable as exc:
            ctx.notes.append(f"embedding map skipped: {exc}")
    return out


def evaluate(records: Sequence[Record], specs: Sequence[Any], context: EvaluationContext | None = None,
             metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run each evaluation stage; results keyed by stage name (with an index when repeated).

    The data of the report's plots is left in `context.plots`. `metrics`: the
    dict the results go in, each as its stage finishes, so a caller keeps the
    finished stages' figures when a later stage stops the run (e.g. at the budget).
    """
    context = context or EvaluationContext()
    metrics = {} if metrics is None else metrics
    for spec in specs:
        key = spec.stage if spec.stage not in metrics else f"{spec.stage}_{len(metrics)}"
        with spend.stage(f"evaluation.{spec.stage}"):
            metrics[key] = EVALUATORS[type(spec)](spec, records, context)
    for key, spec in zip(list(metrics), specs):
        # Direct measures beside the same measures of the real data a later stage loaded
        if isinstance(spec, DiversitySpec) and context.reference:
            real = reference_measures(spec, metrics[key].get("records", 0), context)
            if real:
                metrics[key]["real"] = real
    context.plots = plot_data(records, context)
    return metrics


__all__ = ["EVALUATORS", "EvaluationContext", "evaluate", "plot_data"]
