"""Fidelity: how close synthetic data is to a real reference set.

- A classifier two-sample test: a logistic regression tries to tell
  synthetic from real embeddings (cross-validated); its ROC AUC is 0.5 when
  they cannot be told apart and 1.0 when they are trivially separable.
- Embedding-space precision and recall with k-NN manifolds (Kynkäänniemi et
  al., 2019): precision is the share of synthetic points inside the real
  manifold (realism), recall the share of real points inside the synthetic
  one (coverage). A manifold is the union of balls around each point with
  the radius of its k-th nearest neighbour in the same set.
- Divergence of the label distributions and of the length distributions
  (Jensen-Shannon, base 2: 0 equal, 1 disjoint) and the Kolmogorov-Smirnov
  statistic of the lengths.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np


def classifier_two_sample_auc(synthetic: np.ndarray, real: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of telling synthetic (1) from real (0) rows; the larger set is subsampled."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import roc_auc_score

    synthetic, real = _balanced(synthetic, real, seed)
    n = min(len(synthetic), len(real))
    if n < 2:
        raise ValueError("the two-sample test needs at least two synthetic and two real texts")
    x = np.vstack([synthetic, real])
    y = np.r_[np.ones(len(synthetic)), np.zeros(len(real))]
    splitter = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    scores = cross_val_predict(
        LogisticRegression(max_iter=1000, C=1.0), x, y, cv=splitter, method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(y, scores))


def _balanced(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    pick = lambda x: x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]  # noqa: E731
    return pick(a), pick(b)


def knn_precision_recall(synthetic: np.ndarray, real: np.ndarray, k: int = 5) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) over embeddings."""
    if len(synthetic) <= k or len(real) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} synthetic and {k} real texts")
    return {
        "precision": _share_inside(synthetic, real, k),
        "recall": _share_inside(real, synthetic, k),
    }


def _share_inside(points: np.ndarray, manifold: np.ndarray, k: int, block: int = 2048) -> float:
    """Share of `points` within the k-NN radius of some row of `manifold`."""
    manifold = np.asarray(manifold, dtype=np.float32)
    points = np.asarray(points, dtype=np.float32)
    sq_m = (manifold**2).sum(1)
    radii = np.empty(len(manifold), dtype=np.float32)
    for start in range(0, len(manifold), block):
        d = _sq_distances(manifold[start : start + block], manifold, sq_m)
        # the k-th nearest neighbour other than the point itself (index k after sorting; 0 is itself)
        radii[start : start + block] = np.partition(d, k, axis=1)[:, k]
    inside = 0
    for start in range(0, len(points), block):
        d = _sq_distances(points[start : start + block], manifold, sq_m)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(points)


def _sq_distances(a: np.ndarray, b: np.ndarray, sq_b: np.ndarray) -> np.ndarray:
    d = (a**2).sum(1)[:, None] + sq_b[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def jensen_shannon(p: Counter | Sequence[float], q: Counter | Sequence[float]) -> float:
    """Jensen-Shannon divergence (base 2) between two count distributions (Counters or aligned vectors)."""
    if isinstance(p, Counter) or isinstance(q, Counter):
        keys = sorted(set(p) | set(q), key=str)
        p, q = [p.get(k, 0) for k in keys], [q.get(k, 0) for k in keys]
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    if a.sum() == 0 or b.sum() == 0:
        return float("nan")
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float((x[mask] * np.log2(x[mask] / m[mask])).sum())

    return 0.5 * kl(a) + 0.5 * kl(b)


def length_divergence(synthetic: Sequence[int], real: Sequence[int], bins: int = 20) -> dict[str, float]:
    """JS divergence of word-count histograms on shared bins, and the KS statistic."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(synthetic, dtype=float), np.asarray(real, dtype=float)
    if not len(a) or not len(b):
        return {"length_js": float("nan"), "length_ks": float("nan")}
    edges = np.histogram_bin_edges(np.r_[a, b], bins=bins)
    return {
        "length_js": jensen_shannon(np.histogram(a, edges)[0], np.histogram(b, edges)[0]),
        "length_ks": float(ks_2samp(a, b).statistic),
    }


def fidelity_measures(
    synthetic_embeddings: np.ndarray,
    real_embeddings: np.ndarray,
    synthetic_labels: Sequence[str | None],
    real_labels: Sequence[str | None],
    synthetic_lengths: Sequence[int],
    real_lengths: Sequence[int],
    k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Every fidelity measure of one synthetic set against one real set."""
    out: dict[str, Any] = {"n_synthetic": len(synthetic_embeddings), "n_real": len(real_embeddings)}
    out["two_sample_auc"] = classifier_two_sample_auc(synthetic_embeddings, real_embeddings, seed=seed)
    out.update(knn_precision_recall(synthetic_embeddings, real_embeddings, k))
    labels_a = Counter(l for l in synthetic_labels if l is not None)
    labels_b = Counter(l for l in real_labels if l is not None)
    if labels_a and labels_b:
        out["label_js"] = jensen_shannon(labels_a, labels_b)
    out.update(length_divergence(synthetic_lengths, real_lengths))
    return out


__all__ = [
    "classifier_two_sample_auc",
    "fidelity_measures",
    "jensen_shannon",
    "knn_precision_recall",
    "length_divergence",
]
