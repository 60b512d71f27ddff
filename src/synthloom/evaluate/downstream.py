"""Indirect evaluation: train a small model on the data, score it on real labelled data.

Settings compare what the data is worth, all on the same test set:

- `majority`: always the commonest label of the training data at hand
  (the real training data, else the few real examples and the synthetic
  records together): the floor any classifier must clear (always
  measured: it costs nothing);
- `few_real`: the few real examples alone (what a user with a handful of
  examples has): the recipe's labelled demonstrations when it has them,
  else `few_per_class` per class drawn from the real training data;
- `synthetic`: the (curated) synthetic records alone;
- `few_real_plus_synthetic`: the same few plus the synthetic records (the
  reason people generate data); the headline when measured;
- `real`: all the real training data (the ceiling);
- `learning_curve`: the synthetic records subsampled to several sizes.

Every score comes with a bootstrap interval over the test set, and every
trainer chooses its regularisation by cross-validation on the training
data of that setting alone (`synthloom.train.selection`); the test set is
used once, to score. The errors
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

SETTINGS = ("synthetic", "majority", "few_real", "few_real_plus_synthetic", "real", "learning_curve")
# The order of the settings table: floor, what the user has, what synthloom adds, ceiling.
ORDER = ("majority", "few_real", "synthetic", "few_real_plus_synthetic", "real")


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
    result.update(n_train=len(train), n_test=len(test), trainer=trainer, selection=dict(model.selection))
    return result, predicted


def majority_baseline(
    train: Sequence[Record], test: Sequence[Record], seed: int = 0, resamples: int = 1000
) -> dict[str, Any]:
    """Always the commonest label of `train` (ties: the first in sorted order), scored on `test`."""
    from sklearn.dummy import DummyClassifier

    labels = [r.label for r in train if r.label is not None]
    truth = [r.label for r in test if r.label is not None]
    if not labels or not truth:
        raise TrainingError("the majority baseline needs labelled training and test rows")
    model = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(labels), 1)), labels)
    predicted = [str(p) for p in model.predict(np.zeros((len(truth), 1)))]
    result = score_predictions(truth, predicted)
    if resamples:
        result.update(bootstrap_intervals(truth, predicted, resamples, seed=seed))
    result.update(n_train=len(labels), n_test=len(truth), trainer="majority", label=predicted[0])
    return result


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
    records: Sequence[Record], trainer: str, fields: Sequence[str] | None, embedder: Embedder | None, folds: int = 5,
    seed: int = 0, C: float | None = None,
) -> list[str]:
    """Out-of-fold predictions for every record (each predicted by a model that never saw it).

    `C` fixes the linear trainers' regularisation (e.g. the one chosen on all the records),
    which saves a cross-validation inside each fold."""
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
        model = make_trainer(trainer, embedder, seed, C)
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
    support: Sequence[Record] | None = None,
    settings: Sequence[str] | None = None,
    few: int = 10,
    learning_curve: Sequence[int] | None = None,
    resamples: int = 1000,
    errors: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Every requested setting (None: every one the data allows); the top level holds `synthetic`'s scores.

    `support` is the few real examples the user has (e.g. a recipe's labelled
    demonstrations); without it, the few real are `few` per class of `real_train`.
    `headline` names the best-informed setting measured: few real + synthetic, else synthetic.
    """
    synthetic = [r for r in synthetic if r.label is not None]
    test = [r for r in test if r.label is not None]
    support = [r for r in support or () if r.label is not None]
    settings = available_settings(real_train, support) if settings is None else ["majority", *settings]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    if "real" in settings and not real_train:
        raise TrainingError("settings ['real'] need real training data (`train:`)")
    needs_few = {"few_real", "few_real_plus_synthetic"} & set(settings)
    if needs_few and not (support or real_train):
        raise TrainingError(f"settings {sorted(needs_few)} need real training data (`train:`) or labelled demonstrations")

    def run(train: Sequence[Record]) -> tuple[dict[str, Any], list[str]]:
        return fit_and_score(train, test, trainer, fields, embedder, seed, resamples)

    result, predicted = run(synthetic)
    measured: dict[str, dict[str, Any]] = {"synthetic": result}
    out: dict[str, Any] = dict(result)
    if "majority" in settings:
        source = real_train or [*support, *synthetic]
        measured["majority"] = majority_baseline(source, test, seed, resamples)
        measured["majority"]["source"] = (
            "real training data" if real_train else "few real + synthetic records" if support else "synthetic records"
        )
    if needs_few:
        few_real = support or few_per_class(real_train or [], few, seed)
        out["few_real_source"] = (
            f"the recipe's {len(support)} labelled demonstrations" if support else f"{few} per class drawn from the real training data"
        )
        if not support:
            out["few_per_class"] = few
        measured["few_real"] = run(few_real)[0]
        overlap = {r.text() for r in few_real} & {r.text() for r in test}
        if overlap:
            out["few_real_in_test"] = len(overlap)
        if "few_real_plus_synthetic" in settings:
            measured["few_real_plus_synthetic"] = run(list(few_real) + list(synthetic))[0]
    if "real" in settings:
        measured["real"] = run(real_train or [])[0]
    out["settings"] = {name: measured[name] for name in ORDER if name in measured}
    out["headline"] = "few_real_plus_synthetic" if "few_real_plus_synthetic" in measured else "synthetic"
    if "learning_curve" in settings:
        out["learning_curve"] = _learning_curve(synthetic, learning_curve, run, seed)
    if errors:
        out["errors"] = {"by_class": class_errors([r.label for r in test], predicted)}
        if any(r.conditions for r in synthetic) and len(synthetic) >= 4:
            cv_trainer = "embedding_logreg" if trainer == FinetuneMiniLM.name else trainer
            # The regularisation the synthetic setting chose; none for a fine-tune (its C is chosen once here)
            C = result["selection"].get("C") if cv_trainer == trainer else None
            cv = cross_validated_predictions(synthetic, cv_trainer, fields, embedder, seed=seed, C=C)
            out["errors"].update(condition_errors(synthetic, cv))
            out["errors"]["by_condition_trainer"] = cv_trainer
    return out


def available_settings(real_train: Sequence[Record] | None, support: Sequence[Record] | None) -> list[str]:
    """Every setting the data allows: the baseline and synthetic always, few real with support or
    real training data, all real with real training data."""
    out = ["synthetic", "majority"]
    if support or real_train:
        out += ["few_real", "few_real_plus_synthetic"]
    if real_train:
        out.append("real")
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
    "ORDER",
    "SETTINGS",
    "TrainingError",
    "available_settings",
    "bootstrap_intervals",
    "class_errors",
    "condition_errors",
    "cross_validated_predictions",
    "downstream_evaluation",
    "few_per_class",
    "fit_and_score",
    "inputs_of",
    "majority_baseline",
    "score_predictions",
    "train_and_score",
]
