"""The 2-D map of the report: synthetic and real embeddings projected onto the same plane.

PCA (scikit-learn) fit on both sets together, so distances on the map mean
the same for both; each set is subsampled (seeded) to keep the report small.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def embedding_map(
    synthetic: np.ndarray,
    synthetic_labels: Sequence[str | None],
    real: np.ndarray | None = None,
    real_labels: Sequence[str | None] | None = None,
    max_points: int = 1500,
    seed: int = 0,
) -> dict[str, Any]:
    """Points `[x, y, label]` per set, with the share of variance the two axes explain."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)

    def pick(n: int) -> np.ndarray:
        return np.arange(n) if n <= max_points else np.sort(rng.choice(n, max_points, replace=False))

    sets = {"synthetic": (np.asarray(synthetic), list(synthetic_labels))}
    if real is not None and len(real):
        sets["real"] = (np.asarray(real), list(real_labels or [None] * len(real)))
    chosen = {name: pick(len(x)) for name, (x, _) in sets.items()}
    stacked = np.vstack([sets[name][0][idx] for name, idx in chosen.items()])
    if len(stacked) < 3:
        return {}
    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(stacked)
    out: dict[str, Any] = {"method": "PCA", "explained_variance": [round(float(v), 4) for v in pca.explained_variance_ratio_]}
    start = 0
    for name, idx in chosen.items():
        labels = sets[name][1]
        xy = coords[start : start + len(idx)]
        out[name] = [[round(float(x), 4), round(float(y), 4), labels[i]] for (x, y), i in zip(xy, idx)]
        start += len(idx)
    return out


__all__ = ["embedding_map"]
