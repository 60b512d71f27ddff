"""Fidelity measures on data whose answer is known."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from synthloom.evaluate.fidelity import (
    classifier_two_sample_auc,
    fidelity_measures,
    jensen_shannon,
    knn_precision_recall,
    length_divergence,
)


def test_two_sample_auc_is_chance_for_one_distribution_and_high_for_two():
    rng = np.random.default_rng(0)
    same = classifier_two_sample_auc(rng.normal(size=(300, 5)), rng.normal(size=(400, 5)))
    apart = classifier_two_sample_auc(rng.normal(size=(300, 5)) + 2.0, rng.normal(size=(300, 5)))
    assert 0.4 < same < 0.6
    assert apart > 0.95


def test_precision_recall_of_a_collapsed_generator():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 3))
    # synthetic points all near one real mode: realistic (high precision), but no coverage (low recall)
    collapsed = real[:5].mean(axis=0) + 0.05 * rng.normal(size=(400, 3))
    pr = knn_precision_recall(collapsed, real, k=5)
    assert pr["precision"] > 0.9
    assert pr["recall"] < 0.2
    same = knn_precision_recall(rng.normal(size=(400, 3)), real, k=5)
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    with pytest.raises(ValueError, match="needs more than 5"):
        knn_precision_recall(real[:3], real, k=5)


def test_jensen_shannon_values():
    assert jensen_shannon(Counter(a=5, b=5), Counter(a=1, b=1)) == pytest.approx(0.0)
    assert jensen_shannon(Counter(a=3), Counter(b=3)) == pytest.approx(1.0)
    assert 0 < jensen_shannon(Counter(a=3, b=1), Counter(a=1, b=3)) < 1


def test_length_divergence_and_all_measures_together():
    assert length_divergence([5] * 50, [5] * 50)["length_ks"] == 0.0
    far = length_divergence([3] * 50, [30] * 50)
    assert far["length_ks"] == 1.0 and far["length_js"] == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    out = fidelity_measures(
        rng.normal(size=(60, 4)), rng.normal(size=(80, 4)), ["a", "b"] * 30, ["a"] * 40 + ["b"] * 40,
        list(rng.integers(3, 20, 60)), list(rng.integers(3, 20, 80)),
    )
    assert set(out) >= {"two_sample_auc", "precision", "recall", "label_js", "length_js", "length_ks"}
    assert out["label_js"] == pytest.approx(0.0)
