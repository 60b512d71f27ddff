"""Indirect evaluation: train a small model on the data, score it on real labelled data.

The default trainer is logistic regression on the bundled MiniLM sentence
embeddings: fast on a laptop, and sensitive to the things synthetic data
gets wrong (off-task texts, wrong labels, no variety). Sample weights from
curation are honoured. scikit-learn is imported when a model is trained, not
when the command line starts.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..embed import Embedder
from ..records import Record


class TrainingError(ValueError):
    pass


def fit_embedding_logreg(
    texts: Sequence[str], labels: Sequence[str], weights: Sequence[float] | None, embedder: Embedder, seed: int = 0
) -> Any:
    from sklearn.linear_model import LogisticRegression

    if len(set(labels)) < 2:
        raise TrainingError(f"training needs at least two labels, found {sorted(set(labels))}")
    X = embedder.encode(list(texts))
    model = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
    model.fit(X, list(labels), sample_weight=None if weights is None else np.asarray(weights, dtype=float))
    return model


def score_predictions(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(set(truth) | set(predicted))
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)),
        "f1_by_label": {label: float(f) for label, f in zip(labels, per_class)},
    }


def train_and_score(
    train: Sequence[Record], test: Sequence[Record], embedder: Embedder, field: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Accuracy and macro-F1 on `test` of the embedding + logistic-regression model fit on `train`."""
    train = [r for r in train if r.label is not None]
    test = [r for r in test if r.label is not None]
    if not test:
        raise TrainingError("the test data has no labelled rows")
    model = fit_embedding_logreg(
        [r.text(field) for r in train], [r.label for r in train], [r.weight for r in train], embedder, seed
    )
    predicted = model.predict(embedder.encode([r.text(field) for r in test]))
    result = score_predictions([r.label for r in test], list(predicted))
    result.update({"n_train": len(train), "n_test": len(test), "trainer": "embedding_logreg"})
    return result
