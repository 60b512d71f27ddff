"""Influence and data valuation: which records help, and which hurt, a small real validation set.

`influence` (Koh and Liang, 2017, in closed form for the auxiliary model:
embeddings + multinomial logistic regression). The model minimises

    J(theta) = C * sum_i CE(x_i, y_i; theta) + 1/2 |W|^2

(scikit-learn's objective; theta = weights W and intercepts b). Removing
record i moves the optimum by about H^-1 C grad CE_i (H the Hessian of J),
so the validation loss L_val (mean cross-entropy on the validation set)
changes by about

    delta_i = C * grad L_val^T H^-1 grad CE_i.

`s = H^-1 grad L_val` is solved once by conjugate gradients with exact
Hessian-vector products, never forming H; then every delta_i is one row-wise
product. The score is delta_i: positive when removing the record would raise
the validation loss (it helps), negative when removing it would lower the
loss (it hurts).

`knn_shapley` (Jia et al., 2019): the exact Shapley value of each record
for a k-nearest-neighbour classifier's accuracy on the validation set, by
their recursion over each validation point's neighbours sorted by distance,
averaged over the validation points. Cheaper, model-free, noisier.

Both then act on the most harmful records (negative scores, the lowest
first), at most `max_fraction` of them: `drop` them, `reweight` them (weight
0.5, or lower for worse scores: w = 1 / (1 + score / median harm)), or
`score` only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..recipe import InfluenceSpec, KnnShapleySpec
from ..records import Record, load_dataset
from .auxiliary import fit_logreg, labelled_matrix
from .base import DROP, KEEP, REWEIGHT, SpecStage, mark_unlabelled, stage_for

__all__ = ["Influence", "KnnShapley", "influence_scores", "knn_shapley_values"]


def influence_scores(
    X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, c: float = 10.0,
    cg_iterations: int = 100, tolerance: float = 1e-6, seed: int = 0,
) -> np.ndarray:
    """delta_i: the change in mean validation cross-entropy if training record i were removed."""
    model = fit_logreg(X, y, c, seed)
    classes = model.classes_
    k = len(classes)
    column = {cls: j for j, cls in enumerate(classes)}
    Xa = np.hstack([X, np.ones((len(X), 1))])
    Va = np.hstack([X_val, np.ones((len(X_val), 1))])
    P = model.predict_proba(X)
    Y = np.zeros_like(P)
    Y[np.arange(len(y)), [column[v] for v in y]] = 1.0
    if k == 2:
        # scikit-learn fits one logit for two classes; write it as the two-column softmax with
        # the second column free and the first fixed at zero: only the second column moves.
        return _binary_influence(Xa, P[:, 1], Y[:, 1], Va, model, y_val, classes, c, cg_iterations, tolerance)
    P_val = model.predict_proba(X_val)
    Y_val = np.zeros_like(P_val)
    known = np.array([v in column for v in y_val])
    Y_val[np.flatnonzero(known), [column[v] for v in y_val[known]]] = 1.0
    grad_val = (P_val - Y_val).T @ Va / len(Va)  # (k, d+1)
    ridge = np.ones(Xa.shape[1])
    ridge[-1] = 1e-6  # the intercept is not penalised; a little damping keeps H invertible

    def hessian_times(V: np.ndarray) -> np.ndarray:
        Z = Xa @ V.T
        R = P * Z - P * (P * Z).sum(axis=1, keepdims=True)
        return c * (R.T @ Xa) + V * ridge

    S = _conjugate_gradients(hessian_times, grad_val, cg_iterations, tolerance)
    return c * ((P - Y) * (Xa @ S.T)).sum(axis=1)


def _binary_influence(Xa, p, t, Va, model, y_val, classes, c, iterations, tolerance) -> np.ndarray:
    p_val = model.predict_proba(Va[:, :-1])[:, 1]
    t_val = np.array([v == classes[1] for v in y_val], dtype=float)
    grad_val = (p_val - t_val) @ Va / len(Va)
    ridge = np.ones(Xa.shape[1])
    ridge[-1] = 1e-6
    w = p * (1 - p)

    def hessian_times(v: np.ndarray) -> np.ndarray:
        return c * (Xa.T @ (w * (Xa @ v))) + v * ridge

    s = _conjugate_gradients(hessian_times, grad_val, iterations, tolerance)
    return c * (p - t) * (Xa @ s)


def _conjugate_gradients(apply, b: np.ndarray, iterations: int, tolerance: float) -> np.ndarray:
    x = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rs = float((r * r).sum())
    stop = tolerance**2 * max(rs, 1e-300)
    for _ in range(iterations):
        if rs <= stop:
            break
        Ad = apply(d)
        alpha = rs / float((d * Ad).sum())
        x += alpha * d
        r -= alpha * Ad
        new = float((r * r).sum())
        d = r + (new / rs) * d
        rs = new
    return x


def knn_shapley_values(
    X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, k: int = 10, block: int = 256
) -> np.ndarray:
    """Exact k-NN Shapley values (Jia et al., 2019) for L2-normalised rows, averaged over validation points."""
    n = len(X)
    values = np.zeros(n)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    factor = np.minimum(k, ranks) / ranks  # min(k, i) / i for the i-th nearest (1-based)
    for start in range(0, len(X_val), block):
        sims = X_val[start : start + block] @ X.T
        order = np.argsort(-sims, axis=1, kind="stable")
        match = (y[order] == y_val[start : start + block, None]).astype(np.float64)
        s = np.empty_like(match)
        s[:, -1] = match[:, -1] / n
        # s_i = s_{i+1} + (match_i - match_{i+1}) / k * min(k, i) / i, from the farthest inwards.
        steps = (match[:, :-1] - match[:, 1:]) / k * factor[:-1]
        s[:, :-1] = s[:, -1:] + np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]
        np.add.at(values, order.ravel(), s.ravel())
    return values / max(1, len(X_val))


class _Valuation(SpecStage):
    def values(self, X, y, X_val, y_val) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        s = self.spec
        data = labelled_matrix(records, self.context, self.field)
        validation = [r for r in load_dataset(s.validation) if r.label is not None]
        X_val = self.context.get_embedder().encode([r.text() for r in validation])
        index = {label: i for i, label in enumerate(data.labels)}
        y_val = np.array([index.get(r.label, -1) for r in validation])
        values = self.values(data.X, data.y, X_val, y_val)
        harmful = np.flatnonzero(values < 0)
        harmful = harmful[np.argsort(values[harmful], kind="stable")][: int(s.max_fraction * len(values))]
        acted = set(harmful.tolist())
        median_harm = float(np.median(-values[harmful])) if len(harmful) else 1.0
        for i, record in enumerate(data.records):
            value = float(values[i])
            if i not in acted or s.action == "score":
                record.decide(self.name, KEEP, value, "")
            elif s.action == "drop":
                record.decide(self.name, DROP, value, f"among the most harmful for the validation set ({value:.3g})")
            else:
                record.weight *= 1.0 / (1.0 + (-value) / median_harm)
                record.decide(self.name, REWEIGHT, value, f"harmful ({value:.3g}): weight {record.weight:.2f}")
        mark_unlabelled(records, self.name)
        return records


@stage_for(InfluenceSpec)
class Influence(_Valuation):
    """Closed-form influence of each record on the validation loss."""

    name = "influence"

    def values(self, X, y, X_val, y_val) -> np.ndarray:
        return influence_scores(X, y, X_val[y_val >= 0], y_val[y_val >= 0], self.spec.c)


@stage_for(KnnShapleySpec)
class KnnShapley(_Valuation):
    """k-NN Shapley value of each record for the validation set."""

    name = "knn_shapley"

    def values(self, X, y, X_val, y_val) -> np.ndarray:
        return knn_shapley_values(X, y, X_val, y_val, self.spec.k)
