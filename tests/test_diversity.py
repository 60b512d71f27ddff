"""Diversity measures against their definitions and against reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthloom.evaluate.diversity import (
    compression_ratio,
    condition_coverage,
    distinct_n,
    lexical_measures,
    mean_pairwise_cosine,
    ngram_entropy,
    self_bleu,
    tokenize,
    vendi_score,
)

TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the cat sat on the mat",
    "my bank card has not arrived yet",
    "where is my new card ?",
    "hi",
    "",
]


def test_distinct_and_entropy_by_hand():
    assert distinct_n(["a a a a"], 1) == 0.25
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([""], 2) == 0.0
    tokens = [tokenize("a b c d")]
    assert ngram_entropy(tokens, 1) == pytest.approx(2.0)  # four equally likely tokens
    assert ngram_entropy([tokenize("a a a")], 1) == 0.0


def test_compression_ratio_is_higher_for_repetitive_text():
    varied = [f"message number {i} about {w}" for i, w in enumerate("apples trains money rain music cats".split())]
    repetitive = ["call now to win a prize"] * 6
    assert compression_ratio(repetitive) > compression_ratio(varied) > 0


@pytest.mark.parametrize("vocabulary, longest", [(17, 12), (3, 25)])  # the second: n-grams repeated within texts, ties
def test_self_bleu_equals_nltk_sentence_bleu_against_all_other_texts(vocabulary, longest):
    nltk = pytest.importorskip("nltk.translate.bleu_score")
    rng = np.random.default_rng(3)
    words = "a b c d e f g h the cat dog sat ran on in mat park".split()[:vocabulary]
    texts = [[str(w) for w in rng.choice(words, rng.integers(1, longest))] for _ in range(60)] + TEXTS
    token_lists = [tokenize(" ".join(t)) if isinstance(t, list) else tokenize(t) for t in texts]
    mine = self_bleu(token_lists, sample=40, seed=5)
    chosen = sorted(np.random.default_rng(5).choice(len(token_lists), size=40, replace=False).tolist())
    smooth = nltk.SmoothingFunction().method1
    reference = [
        nltk.sentence_bleu([t for j, t in enumerate(token_lists) if j != i], token_lists[i], smoothing_function=smooth)
        for i in chosen if token_lists[i]
    ]
    assert mine == pytest.approx(float(np.mean(reference)), abs=1e-12)


def test_self_bleu_of_copies_is_one_and_of_disjoint_texts_is_low():
    copies = [tokenize("the very same words here")] * 5
    assert self_bleu(copies) == pytest.approx(1.0)
    disjoint = [tokenize(f"w{i}a w{i}b w{i}c w{i}d w{i}e") for i in range(10)]
    assert self_bleu(disjoint) == 0.0


def test_mean_pairwise_cosine_matches_brute_force():
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    brute = (sims.sum() - np.trace(sims)) / (50 * 49)
    assert mean_pairwise_cosine(x) == pytest.approx(brute, abs=1e-5)


def test_vendi_dual_form_equals_the_package_and_counts_distinct_items():
    vendi = pytest.importorskip("vendi_score.vendi")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 16))  # more texts than dimensions: the dual form
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    reference = vendi.score_K(unit @ unit.T)
    assert vendi_score(x) == pytest.approx(reference, rel=1e-6)
    few = x[:10]  # fewer texts than dimensions: the primal form
    unit = few / np.linalg.norm(few, axis=1, keepdims=True)
    assert vendi_score(few) == pytest.approx(vendi.score_K(unit @ unit.T), rel=1e-6)
    basis = np.eye(4)
    assert vendi_score(np.repeat(basis, 3, axis=0)) == pytest.approx(4.0)  # 4 distinct items, each 3 times


def test_condition_coverage_against_the_recipe_space():
    conditions = [{"topic": "a", "tone": "x"}, {"topic": "a", "tone": "x"}, {"topic": "b", "tone": "y"}]
    out = condition_coverage(conditions, {"topic": ["a", "b", "c"], "tone": ["x", "y"]})
    assert out["combinations"] == 6 and out["covered"] == 2
    assert out["coverage"] == pytest.approx(2 / 6)
    assert out["coverage_by_condition"] == {"topic": pytest.approx(2 / 3), "tone": 1.0}
    assert out["cells"] == {"topic=a|tone=x": 2, "topic=b|tone=y": 1}
    assert condition_coverage([{}, {}])["coverage"] is None


def test_lexical_measures_has_every_measure():
    out = lexical_measures(TEXTS, ns=(1, 2), self_bleu_sample=5)
    assert set(out) == {"records", "vocabulary", "distinct_1", "distinct_2", "entropy_1", "entropy_2", "compression_ratio", "self_bleu"}
    assert out["records"] == len(TEXTS)
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())
