"""The ROUGE-L novelty filter: decision by decision the same as the rouge-score reference loop."""

from __future__ import annotations

import random

import numpy as np
import pytest

from synthloom.curate import curate
from synthloom.curate.novelty import rouge_l, rouge_l_novelty, rouge_tokens
from synthloom.recipe import NoveltySpec
from synthloom.records import Record

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

WORDS = (
    "write a short poem about the sea explain how to cook rice give three tips for sleep "
    "list reasons why cats purr describe your favourite city translate this sentence into french "
    "summarise the article below classify the sentiment of the review"
).split()


def make_instructions(n: int, seed: int) -> list[str]:
    """Texts with many near-copies (word edits of earlier ones), punctuation, digits and non-ASCII."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.6:
            words = rng.choice(out).split()
            for _ in range(rng.randint(0, 4)):
                op = rng.random()
                if op < 0.4 and len(words) > 1:
                    del words[rng.randrange(len(words))]
                elif op < 0.8:
                    words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
                else:
                    words[rng.randrange(len(words))] = rng.choice(WORDS).upper() + rng.choice(["!", ",", "", "3"])
            text = " ".join(words)
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))
        if rng.random() < 0.05:
            text = rng.choice(["", "¿¡ ñandú", "日本語のテキスト", "C++ & Python-3.11: e.g. x_y"]) + " " + text
        out.append(text)
    return out


def reference(candidates, pool, threshold):
    """The Self-Instruct loop with rouge-score: score each new text against the whole pool."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept_texts = list(pool)
    keep, best = [], []
    for text in candidates:
        scores = [scorer.score(text, other)["rougeL"].fmeasure for other in kept_texts]
        top = max(scores, default=0.0)
        keep.append(top <= threshold)
        best.append(top)
        if top <= threshold:
            kept_texts.append(text)
    return keep, best


def test_tokens_and_pairs_match_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = make_instructions(300, seed=1) + ["İstanbul KELVIN \u212a test", "a a a b", "b a a a a"]
    from rouge_score import tokenize

    rng = random.Random(0)
    for text in texts:
        assert rouge_tokens(text) == tokenize.tokenize(text, None)
    for _ in range(2000):
        a, b = rng.choice(texts), rng.choice(texts)
        assert rouge_l(a, b) == scorer.score(a, b)["rougeL"].fmeasure


@pytest.mark.parametrize("threshold,seed", [(0.7, 0), (0.5, 1), (0.9, 2), (0.0, 3)])
def test_decisions_and_scores_equal_the_reference_loop(threshold, seed):
    texts = make_instructions(400, seed)
    pool, candidates = texts[:40], texts[40:]
    keep, best = reference(candidates, pool, threshold)
    result = rouge_l_novelty(candidates, pool, threshold)
    assert result.keep.tolist() == keep
    assert result.score.tolist() == best  # exactly, not approximately
    assert 0 < sum(keep) < len(keep)


def test_nearest_points_at_the_text_that_scored_highest():
    pool = ["give three tips for staying healthy"]
    result = rouge_l_novelty(["give three tips for staying healthy today", "write a poem about the sea"], pool)
    assert result.keep.tolist() == [False, True]
    assert result.nearest[0] == 0 and result.nearest[1] is None
    assert result.score[0] == pytest.approx(2 * 6 / 13)


def test_stage_drops_with_reason_and_uses_pool_file(tmp_path):
    (tmp_path / "seeds.jsonl").write_text('{"instruction": "Explain how to cook rice."}\n')
    records = [
        Record("r0", {"text": "Explain how to cook rice!"}),
        Record("r1", {"text": "Describe your favourite city."}),
        Record("r2", {"text": "Describe your favourite city please."}),
    ]
    spec = NoveltySpec(pool={"path": str(tmp_path / "seeds.jsonl"), "text_field": "instruction"})
    result = curate(records, [spec])
    assert [r.id for r in result.kept] == ["r1"]
    assert records[0].reasons["novelty"] == "ROUGE-L 1.000 > 0.7 with seeds-0"
    assert records[2].reasons["novelty"].endswith("with r1")
    assert records[1].scores["novelty"] == 0.0
    assert np.isclose(records[2].scores["novelty"], 2 * 4 / 9)
