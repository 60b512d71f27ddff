"""The auxiliary model: sentence embeddings + logistic regression, and its held-out probabilities.

Confidence, label enhancement and data valuation all ask one question of a
small model trained on the data itself: how likely is each record's label,
judged by a model that did not see the record? `held_out_probabilities`
answers it by cross-partition: split the records into K parts, train on
the others, predict the held-out part; `repeats` redraws the parts and
averages, which steadies the probabilities of small data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..records import Record
from .base import CurationContext, NotEnoughData

__all__ = ["LabelledMatrix", "fit_logreg", "held_out_probabilities", "labelled_matrix"]


@dataclass
class LabelledMatrix:
    """Embeddings of the labelled records, their label indices, and the label names."""

    records: list[Record]
    X: np.ndarray
    y: np.ndarray
    labels: list[str]


def labelled_matrix(records: Sequence[Record], context: CurationContext, field: str | None) -> LabelledMatrix:
    """The records that have a label, embedded; labels outside the task's set are added at the end."""
    labelled = [r for r in records if r.label is not None]
    labels = context.label_set(labelled)
    extra = sorted({r.label for r in labelled} - set(labels))
    labels = labels + extra
    index = {label: i for i, label in enumerate(labels)}
    X = context.get_embedder().encode([r.text(field) for r in labelled], progress=context.progress)
    y = np.array([index[r.label] for r in labelled], dtype=np.int64)
    return LabelledMatrix(labelled, X, y, labels)


def fit_logreg(X: np.ndarray, y: np.ndarray, c: float, seed: int = 0, weights: np.ndarray | None = None):
    from sklearn.linear_model import LogisticRegression

    from ..train.selection import labels_are_classes

    model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    with labels_are_classes():
        model.fit(X, y, sample_weight=weights)
    return model


def _full_probabilities(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Predicted probabilities with a column for every class, 0 for classes the model never saw."""
    out = np.zeros((len(X), n_classes))
    out[:, model.classes_] = model.predict_proba(X)
    return out


def held_out_probabilities(
    X: np.ndarray, y: np.ndarray, n_classes: int, folds: int = 5, c: float = 10.0, seed: int = 0, repeats: int = 1
) -> np.ndarray:
    """Each row's class probabilities from models that never saw it (K-fold, averaged over repeats)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(y)
    if n < 2 or len(np.unique(y)) < 2:
        raise NotEnoughData("the auxiliary model needs at least two labelled records of two labels")
    folds = min(folds, n)
    total = np.zeros((n, n_classes))
    for r in range(repeats):
        smallest = np.bincount(y).max() if n_classes == 1 else np.bincount(y)[np.bincount(y) > 0].min()
        splitter = (
            StratifiedKFold(folds, shuffle=True, random_state=seed + r)
            if smallest >= folds
            else KFold(folds, shuffle=True, random_state=seed + r)
        )
        for train, test in splitter.split(X, y):
            if len(np.unique(y[train])) < 2:
                total[test, y[train][0]] += 1.0
                continue
            model = fit_logreg(X[train], y[train], c, seed)
            total[test] += _full_probabilities(model, X[test], n_classes)
    return total / repeats
