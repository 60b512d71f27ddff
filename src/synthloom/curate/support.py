"""Support-anchored curation: the few real labelled examples judge the synthetic records.

When a user has a small real support set (the recipe's demonstrations, or a
`reference:` file), a model trained on it knows something the generator
does not: what the labels mean on real text. Three stages use it, each
reading only the support set and the synthetic records handed to it (never
any test data):

- `support_filter`: relabel (or drop) a synthetic record when the support
  model predicts another label with a confidence at or above a threshold.
  The threshold is not fixed: it is the lowest confidence at which the
  model's held-out predictions on the support (cross-validation) were right
  at least `precision` of the time, so a support model that cannot be
  trusted flags nothing.
- `support_weight`: multiply each record's weight by
  `floor + (1 - floor) * p(label) ** power` (curate/weights.py), with p the
  support model's probability of the record's label.
- `support_mix`: scale every synthetic weight by the factor w (from a small
  grid) that scores best, by macro-F1, on held-out support folds when a
  classifier is trained on the other folds (weight 1) plus the synthetic
  records (weight x w).

The support model is sentence embeddings + logistic regression
(curate/auxiliary.py); its C is chosen by cross-validated log-loss on the
support unless the settings fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..recipe import SupportFilterSpec, SupportMixSpec, SupportWeightSpec
from ..records import Record, load_dataset
from .auxiliary import LabelledMatrix, fit_logreg, held_out_probabilities, labelled_matrix
from .base import DROP, KEEP, REWEIGHT, CurationContext, NotEnoughData, SpecStage, mark_unlabelled, stage_for
from .relabel import relabel
from .weights import confidence_weights

__all__ = [
    "SupportFilter", "SupportMix", "SupportModel", "SupportWeight", "fit_support_model", "load_support",
    "support_model_from_matrix",
]

C_GRID = (0.1, 1.0, 10.0, 100.0)
_MIN_TRUSTED = 3  # held-out support predictions needed above a threshold before it is believed


def load_support(spec: Any, context: CurationContext) -> list[Record]:
    """The labelled real support records: the stage's `reference`, else the recipe's demonstrations."""
    source = spec.reference if spec.reference is not None else context.support
    if source is None:
        raise ValueError(f"stage {spec.stage!r} needs `reference:` or the recipe's demonstrations (the support set)")
    records = [r for r in load_dataset(source) if r.label is not None]
    if len({r.label for r in records}) < 2:
        raise NotEnoughData(f"the support set {source.path} has fewer than two labels")
    return records


@dataclass
class SupportModel:
    """The support-trained classifier, how far its held-out predictions can be trusted, and its settings."""

    data: LabelledMatrix
    model: Any
    c: float
    held_out: np.ndarray  # cross-validated probabilities on the support
    index: dict[str, int]

    @property
    def labels(self) -> list[str]:
        return self.data.labels

    @property
    def cv_accuracy(self) -> float:
        return float((self.held_out.argmax(1) == self.data.y).mean())

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((len(X), len(self.labels)))
        out[:, self.model.classes_] = self.model.predict_proba(X)
        return out

    def threshold(self, precision: float) -> float | None:
        """The lowest confidence at which held-out support predictions are right >= `precision` of the time."""
        confidence = self.held_out.max(1)
        right = self.held_out.argmax(1) == self.data.y
        for t in np.unique(confidence):
            above = confidence >= t
            if above.sum() >= _MIN_TRUSTED and right[above].mean() >= precision:
                return float(t)
        return None


def _log_loss(P: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(P[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def _folds(y: np.ndarray, folds: int) -> int:
    return max(2, min(folds, int(np.bincount(y)[np.bincount(y) > 0].min())))


def fit_support_model(
    support: Sequence[Record], context: CurationContext, folds: int = 5, c: float | None = None, seed: int = 0
) -> SupportModel:
    """Embed the support, choose C by held-out log-loss (unless given), fit on all of it."""
    return support_model_from_matrix(labelled_matrix(support, context, None), folds, c, seed)


def support_model_from_matrix(data: LabelledMatrix, folds: int = 5, c: float | None = None, seed: int = 0) -> SupportModel:
    """The support model of already embedded support rows (e.g. the training part of a fold)."""
    from threadpoolctl import threadpool_limits

    # Small fits on one BLAS thread: on a busy 2-core machine threads fighting for the cores made
    # each fit 20-100x slower (measured: 0.04 s against 0.8-9 s for 200 rows, 20 labels).
    with threadpool_limits(limits=1, user_api="blas"):
        return _support_model(data, folds, c, seed)


def _support_model(data: LabelledMatrix, folds: int, c: float | None, seed: int) -> SupportModel:
    k = _folds(data.y, folds)
    n_classes = len(data.labels)
    candidates = {cc: held_out_probabilities(data.X, data.y, n_classes, k, cc, seed) for cc in ([c] if c else C_GRID)}
    chosen = min(candidates, key=lambda cc: (_log_loss(candidates[cc], data.y), cc))
    model = fit_logreg(data.X, data.y, chosen, seed)
    present = set(data.y.tolist())
    index = {label: i for i, label in enumerate(data.labels) if i in present}
    return SupportModel(data, model, chosen, candidates[chosen], index)


class _SupportStage(SpecStage):
    """Fits the support model and embeds the synthetic records that carry one of its labels."""

    def _prepare(self, records: Sequence[Record]) -> tuple[SupportModel, list[Record], np.ndarray]:
        s = self.spec
        support = fit_support_model(load_support(s, self.context), self.context, s.folds, s.c, s.seed)
        mark_unlabelled(records, self.name)
        judged = [r for r in records if r.label is not None and r.label in support.index]
        for r in records:
            if r.label is not None and r.label not in support.index:
                r.decide(self.name, KEEP, None, f"label {r.label!r} is not in the support set")
        if not judged:
            return support, judged, np.zeros((0, support.data.X.shape[1]))
        X = self.context.get_embedder().encode([r.text(self.field) for r in judged], progress=self.context.progress)
        return support, judged, np.asarray(X)

    def _about(self, support: SupportModel) -> str:
        return f"support model C={support.c:g}, {support.cv_accuracy:.0%} held-out accuracy on {len(support.data.y)} real"


@stage_for(SupportFilterSpec)
class SupportFilter(_SupportStage):
    """Relabels or drops records the support model confidently gives another label."""

    name = "support_filter"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        support, judged, X = self._prepare(records)
        threshold = support.threshold(s.precision)
        P = support.probabilities(X) if judged else np.zeros((0, len(support.labels)))
        for record, p in zip(judged, P):
            given = float(p[support.index[record.label]])
            best = int(p.argmax())
            if threshold is None or support.labels[best] == record.label or p[best] < threshold:
                why = "" if threshold is not None else f"not trusted: no confidence reaches {s.precision:.0%} held-out precision ({self._about(support)})"
                record.decide(self.name, KEEP, given, why)
                continue
            why = (
                f"support model says {support.labels[best]} (p={p[best]:.2f} >= {threshold:.2f}, the threshold of "
                f"{s.precision:.0%} held-out precision), not {record.label} (p={given:.2f}); {self._about(support)}"
            )
            if s.action == "relabel":
                relabel(record, self.name, support.labels[best], given, why)
            else:
                record.decide(self.name, DROP, given, why)
        return records


@stage_for(SupportWeightSpec)
class SupportWeight(_SupportStage):
    """Multiplies each record's weight by a function of the support model's probability of its label."""

    name = "support_weight"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        support, judged, X = self._prepare(records)
        if not judged:
            return records
        P = support.probabilities(X)
        given = np.array([P[i, support.index[r.label]] for i, r in enumerate(judged)])
        weights = confidence_weights(given, s.floor, s.power, s.normalise)
        for record, p, w in zip(judged, given, weights):
            record.weight *= float(w)
            record.decide(self.name, REWEIGHT, float(p), f"support model p({record.label})={p:.2f} -> weight x{w:.2f}")
        return records


def mix_scores(
    support: SupportModel, X_syn: np.ndarray, y_syn: np.ndarray, w_syn: np.ndarray, grid: Sequence[float], folds: int, seed: int
) -> dict[float, float]:
    """Held-out support macro-F1 for each factor: train on the other support folds + synthetic x factor.

    The factor 0 (support alone) is scored too, for comparison."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _mix_scores(support, X_syn, y_syn, w_syn, grid, folds, seed)


def _mix_scores(
    support: SupportModel, X_syn: np.ndarray, y_syn: np.ndarray, w_syn: np.ndarray, grid: Sequence[float], folds: int, seed: int
) -> dict[float, float]:
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    X, y = support.data.X, support.data.y
    splitter = StratifiedKFold(_folds(y, folds), shuffle=True, random_state=seed)
    splits = list(splitter.split(X, y))
    out: dict[float, float] = {}
    for factor in [0.0, *grid]:
        predicted = np.empty_like(y)
        for train, test in splits:
            Xt = np.vstack([X[train], X_syn]) if factor else X[train]
            yt = np.concatenate([y[train], y_syn]) if factor else y[train]
            wt = np.concatenate([np.ones(len(train)), w_syn * factor]) if factor else None
            predicted[test] = fit_logreg(Xt, yt, support.c, seed, wt).predict(X[test])
        out[factor] = float(f1_score(y, predicted, average="macro", zero_division=0))
    return out


@stage_for(SupportMixSpec)
class SupportMix(_SupportStage):
    """Scales synthetic weights by the factor that held-out support folds score best."""

    name = "support_mix"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        support, judged, X = self._prepare(records)
        if not judged:
            return records
        y_syn = np.array([support.index[r.label] for r in judged])
        w_syn = np.array([r.weight for r in judged], dtype=float)
        scores = mix_scores(support, X, y_syn, w_syn, s.grid, s.folds, s.seed)
        # Best held-out macro-F1; among equals the largest factor (the least change to the data).
        factor = max(s.grid, key=lambda f: (round(scores[f], 6), f))
        table = ", ".join(f"x{f:g} {scores[f]:.3f}" for f in s.grid)
        why = (
            f"synthetic weight x{factor:g} chosen by {_folds(support.data.y, s.folds)}-fold CV on the support "
            f"(held-out macro-F1 {table}; support alone {scores[0.0]:.3f}); C={support.c:g}"
        )
        for record in judged:
            record.weight *= factor
            record.decide(self.name, REWEIGHT if factor != 1.0 else KEEP, factor, why)
        return records
