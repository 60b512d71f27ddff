"""Evaluation: direct measures of the data and indirect ones (train, then test on real data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..embed import Embedder
from ..recipe import DiversitySpec, DownstreamSpec
from ..records import Record, load_dataset
from .diversity import distinct_n, distinct_ns, tokenize, vocabulary, vocabulary_size
from .downstream import TrainingError, fit_embedding_logreg, score_predictions, train_and_score


@dataclass
class EvaluationContext:
    text_field: str = "text"
    embedder: Embedder | None = None
    notes: list[str] = field(default_factory=list)

    def get_embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = Embedder.shared()
        return self.embedder


def _diversity(spec: DiversitySpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    tokens = [tokenize(r.text(spec.field or ctx.text_field)) for r in records]
    out: dict[str, Any] = {"records": len(tokens), "vocabulary": vocabulary(tokens)}
    for n, value in distinct_ns(tokens, spec.n).items():
        out[f"distinct_{n}"] = value
    return out


def _downstream(spec: DownstreamSpec, records: Sequence[Record], ctx: EvaluationContext) -> dict[str, Any]:
    if not spec.test.exists:
        note = f"downstream evaluation skipped: test data {spec.test.path} not found"
        ctx.notes.append(note)
        return {"skipped": note}
    test = load_dataset(spec.test)
    try:
        result = train_and_score(records, test, ctx.get_embedder(), spec.field or ctx.text_field, spec.seed)
    except TrainingError as exc:
        note = f"downstream evaluation not possible: {exc}"
        ctx.notes.append(note)
        return {"skipped": note}
    result["test_data"] = spec.test.path
    return result


EVALUATORS: dict[type, Callable[[Any, Sequence[Record], EvaluationContext], dict[str, Any]]] = {
    DiversitySpec: _diversity,
    DownstreamSpec: _downstream,
}


def evaluate(records: Sequence[Record], specs: Sequence[Any], context: EvaluationContext | None = None) -> dict[str, Any]:
    """Run each evaluation stage; results keyed by stage name (with an index when repeated)."""
    context = context or EvaluationContext()
    metrics: dict[str, Any] = {}
    for spec in specs:
        key = spec.stage if spec.stage not in metrics else f"{spec.stage}_{len(metrics)}"
        metrics[key] = EVALUATORS[type(spec)](spec, records, context)
    return metrics


__all__ = [
    "EvaluationContext",
    "TrainingError",
    "distinct_n",
    "evaluate",
    "fit_embedding_logreg",
    "score_predictions",
    "tokenize",
    "train_and_score",
    "vocabulary_size",
]
