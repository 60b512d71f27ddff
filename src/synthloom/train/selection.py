"""One rule for a trainer's regularisation: chosen by cross-validation on its own training data.

A classifier with a fixed, weak regularisation memorises the label noise of
synthetic records, and a fixed strong one underfits a clean real set: the
evaluation protocol, not the data, would then decide which setting wins.
So every linear trainer chooses its inverse regularisation strength C the
same way, whatever it is trained on (real, few real, synthetic, few real +
synthetic):

- the grid `C_GRID` (1e-2 ... 1e3, ten-fold steps);
- stratified k-fold on the training data, k = min(3, the smallest class's
  count), shuffled with the trainer's seed (3, not 5: six values of C over
  3 folds is already 18 fits per setting, on a 2-core laptop);
- scored by log loss (a proper scoring rule: smooth on small folds, no ties),
  with each record's sample weight in both the fits and the scores;
- the best C is refit on all the training data. Ties go to the smaller C.
- The fits run on one BLAS thread: these are small problems, and on a busy
  2-core machine threads fighting for the cores made each fit 3-10x slower.
- Fallback: when a class has fewer than 2 records no fold can hold it out,
  and C is `FALLBACK_C` (scikit-learn's default), with the reason recorded.

Only the training data given to `fit` is seen: the test set never reaches
the selection. What was chosen is the trainer's `selection` (the metrics
record it per setting).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from typing import Any, Iterator, Sequence

import numpy as np

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
MAX_FOLDS = 3
FALLBACK_C = 1.0
SCORING = "neg_log_loss"


def folds_for(labels: Sequence[str]) -> int:
    """The number of stratified folds the rule uses for these labels (0: too few for any)."""
    smallest = min(Counter(labels).values())
    return min(MAX_FOLDS, smallest) if smallest >= 2 else 0


def select_and_fit(
    make_estimator: Any,
    param: str,
    X: Any,
    labels: Sequence[str],
    weights: np.ndarray | None,
    seed: int = 0,
    grid: Sequence[float] = C_GRID,
    C: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit `make_estimator()` with `param` (a C) chosen by the rule above; returns it and what was chosen.

    `make_estimator(final_step)` builds the estimator around the given logistic
    regression, so the selection can ask that step for its sample weights.
    A given `C` is used as it is (no selection), e.g. to reuse a choice already made.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), labels_are_classes():
        return _select_and_fit(make_estimator, param, X, labels, weights, seed, grid, C)


@contextlib.contextmanager
def labels_are_classes() -> Iterator[None]:
    """Silence scikit-learn's guess that a target with many classes per row "could represent a regression problem".

    It fires on every small fit with more distinct labels than half its rows (a
    fold of 20 intents with 1-2 examples each); the labels here are class names,
    so it is noise in the output, printed once per fit."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%", category=UserWarning)
        yield


def _select_and_fit(
    make_estimator: Any, param: str, X: Any, labels: Sequence[str], weights: np.ndarray | None,
    seed: int, grid: Sequence[float], C: float | None,
) -> tuple[Any, dict[str, Any]]:
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    y = list(labels)
    folds = folds_for(y)
    fit_params = {} if weights is None else {"sample_weight": weights}
    if C is not None or folds < 2:
        smallest = min(Counter(y).values())
        estimator = make_estimator(LogisticRegression(max_iter=2000, C=C or FALLBACK_C, random_state=seed))
        _fit_weighted(estimator, X, y, weights)
        reason = "given" if C is not None else (
            f"not cross-validated: a class has {smallest} record(s), fewer than 2; scikit-learn's default C"
        )
        return estimator, {"C": float(C or FALLBACK_C), "folds": 0, "reason": reason}
    with sklearn.config_context(enable_metadata_routing=True):
        final = LogisticRegression(max_iter=2000, random_state=seed).set_fit_request(sample_weight=True)
        scorer = get_scorer(SCORING).set_score_request(sample_weight=True)
        search = GridSearchCV(
            make_estimator(final), {param: list(grid)}, scoring=scorer,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed), refit=True, n_jobs=1,
        )
        search.fit(X, y, **fit_params)
    scores = search.cv_results_["mean_test_score"]
    best = float(search.best_params_[param])
    return search.best_estimator_, {
        "C": best,
        "at_grid_edge": best in (min(grid), max(grid)),  # the best might lie beyond the grid
        "folds": folds,
        "scoring": SCORING,
        "cv_scores": {str(c): round(float(s), 4) for c, s in zip(grid, scores)},
    }


def _fit_weighted(estimator: Any, X: Any, y: list[str], weights: np.ndarray | None) -> None:
    from sklearn.pipeline import Pipeline

    if weights is None:
        estimator.fit(X, y)
    elif isinstance(estimator, Pipeline):
        estimator.fit(X, y, **{f"{estimator.steps[-1][0]}__sample_weight": weights})
    else:
        estimator.fit(X, y, sample_weight=weights)


__all__ = ["C_GRID", "FALLBACK_C", "MAX_FOLDS", "SCORING", "folds_for", "labels_are_classes", "select_and_fit"]
