"""Indirect evaluation: train a small model on the data, score it on real labelled data.

Settings compare what the data is worth:

- `synthetic`: the (curated) synthetic records alone;
- `real`: the real training data alone (the ceiling);
- `few_real`: `few_per_class` real examples per class alone (what a user
  with a handful of examples has), and `few_real_plus_synthetic`: the same
  few plus the synthetic records (the reason people generate data);
- `learning_curve`: the synthetic records subsampled to several sizes.

Every score comes with a bootstrap interval over the test set. The errors
of the synthetic-trained model are broken down per class (on the real test
set) and per condition (cross-validated on the synthetic records) so that a
next generation round can give its budget to what went wrong; the shape is
documented in docs/evaluation.md ("Closing the loop").
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any, Sequence

import numpy as np

from ..embed import Embedder
from ..records import Record
from ..train import FinetuneMiniLM, Inputs, TrainingError, make_trainer

SETTINGS = ("synthetic", "real", "few_real_plus_synthetic", "learning_curve")


def inputs_of(records: Sequence[Record], fields: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """Each record's input texts: the named fields when it has them all, else its first ones by position."""
    width = len(fields) if fields else 1
    out = []
    for r in records:
        if fields and all(f in r.fields for f in fields):
            out.append(tuple("" if r.fields[f] is None else str(r.fields[f]) for f in fields))
        else:
            values = list(r.fields.values())[:width]
            out.append(tuple("" if v is None else str(v) for v in values))
    return out


def score_predictions(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(set(truth) | set(predicted))
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)),
        "f1_by_label": {label: float(f) for label, f in zip(labels, per_class)},
    }


def bootstrap_intervals(
    truth: Sequence[str], predicted: Sequence[str], resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1 (test rows resampled with replacement)."""
    labels = sorted(set(truth))
    index = {l: i for i, l in enumerate(labels)}
    k = len(labels)
    t = np.array([index[x] for x in truth])
    p = np.array([index.get(x, k) for x in predicted])  # k: a label the test set does not have
    rng = np.random.default_rng(seed)
    n = len(t)
    acc, f1 = np.empty(resamples), np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, n, n)
        tb, pb = t[idx], p[idx]
        acc[b] = (tb == pb).mean()
        tp = np.bincount(tb[tb == pb], minlength=k)[:k]
        support = np.bincount(tb, minlength=k)[:k]
        predicted_n = np.bincount(pb, minlength=k + 1)[:k]
        denom = support + predicted_n
        f1[b] = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean()
    tail = (1 - level) / 2 * 100
    return {
        "accuracy_ci": np.percentile(acc, [tail, 100 - tail]).round(4).tolist(),
        "macro_f1_ci": np.percentile(f1, [tail, 100 - tail]).round(4).tolist(),
    }


def few_per_class(records: Sequence[Record], k: int, seed: int = 0) -> list[Record]:
    """k records of each label, drawn with a fixed seed (all of a label that has fewer)."""
    by_label: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.label is not None:
            by_label[r.label].append(r)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        pool = by_label[label]
        out.extend(rng.sample(pool, min(k, len(pool))))
    return out


def fit_and_score(
    train: Sequence[Record],
    test: Sequence[Record],
    trainer: str = "embedding_logreg",
    fields: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
    resamples: int = 1000,
) -> tuple[dict[str, Any], list[str]]:
    """Fit `trainer` on `train` (honouring weights), score on `test`; returns scores and predictions."""
    train = [r for r in train if r.label is not None]
    test = [r for r in test if r.label is not None]
    if not test:
        raise TrainingError("the test data has no labelled rows")
    model = make_trainer(trainer, embedder, seed)
    model.fit(inputs_of(train, fields), [r.label for r in train], [r.weight for r in train])
    predicted = model.predict(inputs_of(test, fields))
    truth = [r.label for r in test]
    result = score_predictions(truth, predicted)
    if resamples:
        result.update(bootstrap_intervals(truth, predicted, resamples, seed=seed))
    result.update(n_train=len(train), n_test=len(test), trainer=trainer)
    return result, predicted


def train_and_score(
    train: Sequence[Record], test: Sequence[Record], embedder: Embedder, field: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Accuracy and macro-F1 on `test` of the embedding + logistic-regression model fit on `train`."""
    return fit_and_score(train, test, "embedding_logreg", [field] if field else None, embedder, seed)[0]


def class_errors(truth: Sequence[str], predicted: Sequence[str], top: int = 3) -> dict[str, Any]:
    """Per true class: support, errors, error rate, and the labels it was most often mistaken for."""
    confused: dict[str, Counter] = defaultdict(Counter)
    support = Counter(truth)
    for t, p in zip(truth, predicted):
        if t != p:
            confused[t][p] += 1
    return {
        label: {
            "n": support[label],
            "errors": sum(confused[label].values()),
            "error_rate": sum(confused[label].values()) / support[label],
            "confused_with": dict(confused[label].most_common(top)),
        }
        for label in sorted(support)
    }


def condition_errors(records: Sequence[Record], predicted: Sequence[str]) -> dict[str, Any]:
    """Errors grouped by each condition value and by each (label, conditions) cell."""
    by_condition: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r, p in zip(records, predicted):
        wrong = int(p != r.label)
        for key, value in r.conditions.items():
            by_condition[key][value][0] += 1
            by_condition[key][value][1] += wrong
        cell = (r.label, tuple(sorted(r.conditions.items())))
        cells[cell][0] += 1
        cells[cell][1] += wrong
    return {
        "by_condition": {
            key: {v: {"n": n, "errors": e, "error_rate": e / n} for v, (n, e) in sorted(values.items())}
            for key, values in sorted(by_condition.items())
        },
        "by_cell": [
            {"label": label, "conditions": dict(conds), "n": n, "errors": e, "error_rate": e / n}
            for (label, conds), (n, e) in sorted(cells.items(), key=lambda kv: (-kv[1][1] / kv[1][0], str(kv[0])))
        ],
    }


def cross_validated_predictions(
    records: Sequence[Record], trainer: str, fields: Sequence[str] | None, embedder: Embedder | None, folds: int = 5, seed: int = 0
) -> list[str]:
    """Out-of-fold predictions for every record (each predicted by a model that never saw it)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    labels = [r.label for r in records]
    smallest = min(Counter(labels).values())
    folds = min(folds, len(records))
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed) if smallest >= folds else KFold(folds, shuffle=True, random_state=seed)
    )
    inputs: Inputs = inputs_of(records, fields)
    out = [""] * len(records)
    for fit_idx, held_idx in splitter.split(np.zeros(len(records)), labels):
        fit_labels = [labels[i] for i in fit_idx]
        if len(set(fit_labels)) < 2:
            continue
        model = make_trainer(trainer, embedder, seed)
        model.fit([inputs[i] for i in fit_idx], fit_labels, [records[i].weight for i in fit_idx])
        for i, p in zip(held_idx, model.predict([inputs[i] for i in held_idx])):
            out[i] = p
    return out


def downstream_evaluation(
    synthetic: Sequence[Record],
    test: Sequence[Record],
    *,
    trainer: str = "embedding_logreg",
    fields: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    real_train: Sequence[Record] | None = None,
    settings: Sequence[str] = ("synthetic",),
    few: int = 10,
    learning_curve: Sequence[int] | None = None,
    resamples: int = 1000,
    errors: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Every requested setting; the top level holds the `synthetic` setting's scores."""
    synthetic = [r for r in synthetic if r.label is not None]
    test = [r for r in test if r.label is not None]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    needs_real = {"real", "few_real_plus_synthetic"} & set(settings)
    if needs_real and not real_train:
        raise TrainingError(f"settings {sorted(needs_real)} need real training data (`train:`)")

    def run(train: Sequence[Record]) -> tuple[dict[str, Any], list[str]]:
        return fit_and_score(train, test, trainer, fields, embedder, seed, resamples)

    result, predicted = run(synthetic)
    out: dict[str, Any] = dict(result)
    out["settings"] = {"synthetic": result}
    if "real" in settings:
        out["settings"]["real"] = run(real_train)[0]
    if "few_real_plus_synthetic" in settings:
        support = few_per_class(real_train, few, seed)
        out["settings"]["few_real"] = run(support)[0]
        out["settings"]["few_real_plus_synthetic"] = run(list(support) + list(synthetic))[0]
        out["few_per_class"] = few
    if "learning_curve" in settings:
        out["learning_curve"] = _learning_curve(synthetic, learning_curve, run, seed)
    if errors:
        out["errors"] = {"by_class": class_errors([r.label for r in test], predicted)}
        if any(r.conditions for r in synthetic) and len(synthetic) >= 4:
            cv_trainer = "embedding_logreg" if trainer == FinetuneMiniLM.name else trainer
            cv = cross_validated_predictions(synthetic, cv_trainer, fields, embedder, seed=seed)
            out["errors"].update(condition_errors(synthetic, cv))
            out["errors"]["by_condition_trainer"] = cv_trainer
    return out


def _learning_curve(records: list[Record], sizes: Sequence[int] | None, run: Any, seed: int) -> list[dict[str, Any]]:
    n = len(records)
    if not sizes:
        sizes = sorted({max(2, round(n * f)) for f in (0.1, 0.25, 0.5, 1.0)})
    order = list(range(n))
    random.Random(seed).shuffle(order)
    points = []
    for size in sorted(set(min(s, n) for s in sizes)):
        subset = [records[i] for i in order[:size]]
        if len({r.label for r in subset}) < 2:
            continue
        scores = run(subset)[0]
        points.append({k: scores[k] for k in ("n_train", "accuracy", "macro_f1", "accuracy_ci", "macro_f1_ci") if k in scores})
    return points


__all__ = [
    "SETTINGS",
    "TrainingError",
    "bootstrap_intervals",
    "class_errors",
    "condition_errors",
    "cross_validated_predictions",
    "downstream_evaluation",
    "few_per_class",
    "fit_and_score",
    "inputs_of",
    "score_predictions",
    "train_and_score",
]
