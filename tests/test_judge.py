"""Faithfulness by a judge, people's reviews, and pairwise (open) evaluation.

The logic is tested with the scripted fake backend; each feature also runs
once on the real embedded model, at a tiny budget.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from scipy.stats import binomtest

from synthloom.evaluate.faithfulness import (
    human_faithfulness,
    human_reviews,
    judge_agreement,
    judge_faithfulness,
    rubric_prompt,
    wilson_interval,
)
from synthloom.evaluate.judge import Judge, parse_verdict
from synthloom.evaluate.pairwise import compare_answers, length_controlled_win_rate, order_scores
from synthloom.llm import FakeBackend, FakeConfig, InvalidAnswer, LlamaCppConfig
from synthloom.records import Record

LABELS = {"spam": "advertising", "ham": "a personal message"}


def records(n: int = 40) -> list[Record]:
    out = []
    for i in range(n):
        label = "spam" if i % 2 else "ham"
        text = f"WIN a prize now, text {i} to 80080" if label == "spam" else f"see you at {i} o'clock, love"
        out.append(Record(id=f"r{i}", fields={"text": text}, label=label))
    return out


def truthful_judge(request) -> str:
    """Reads the text and the given label from the prompt; says which label fits (by the word WIN)."""
    prompt = request.messages[-1]["content"]
    best = "spam" if "WIN" in prompt else "ham"
    return json.dumps({"fluent": "yes", "on_task": "yes", "best_label": best, "factual": "yes"})


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_parse_verdict_reads_json_leniently_and_rejects_the_rest():
    keys = {"fluent": ["yes", "no"], "best_label": ["spam", "ham"]}
    assert parse_verdict('Sure! {"fluent": "Yes", "best_label": "spam"} hope it helps', keys) == {"fluent": "yes", "best_label": "spam"}
    with pytest.raises(InvalidAnswer):
        parse_verdict('{"fluent": "maybe", "best_label": "spam"}', keys)
    with pytest.raises(InvalidAnswer):
        parse_verdict("yes it is fine", keys)


def test_rubric_asks_which_label_fits_rather_than_whether_the_given_one_does():
    text, keys = rubric_prompt(records(2)[1], "SMS messages", LABELS, ["fluent", "label_correct"])
    assert "label given: spam" in text and "best_label" in text
    assert keys == {"fluent": ["yes", "no"], "best_label": ["spam", "ham"]}


def test_faithful_share_from_the_judge_with_planted_label_errors(tmp_path):
    data = records(40)
    for r in data[:10]:  # a quarter of the labels flipped
        r.label = "ham" if r.label == "spam" else "spam"
    backend = FakeBackend(FakeConfig(), responder=truthful_judge)
    judge = Judge(FakeConfig(), tmp_path / "cache.sqlite", backend=backend)
    out = judge_faithfulness(data, judge, task="SMS messages", labels=LABELS, sample=40)
    assert out["judged"] == 40 and out["population"] == 40
    assert out["faithful"]["share"] == pytest.approx(0.75)
    low, high = out["faithful"]["interval"]
    assert low < 0.75 < high
    assert out["criteria"]["label_correct"]["share"] == pytest.approx(0.75)
    assert out["criteria"]["fluent"]["share"] == 1.0
    wrong = {v["id"] for v in out["verdicts"] if not v["label_correct"]}
    assert wrong == {f"r{i}" for i in range(10)}
    # a rerun is answered from the cache: nothing paid twice
    again = judge_faithfulness(data, Judge(FakeConfig(), tmp_path / "cache.sqlite", backend=backend), task="SMS messages", labels=LABELS, sample=40)
    assert again["judge"]["model_calls"] == 0 and again["judge"]["served_from_cache"] == 40
    assert again["faithful"] == out["faithful"]


def test_a_sample_smaller_than_the_data_is_seeded():
    backend = FakeBackend(FakeConfig(), responder=truthful_judge)
    first = judge_faithfulness(records(40), Judge(FakeConfig(), backend=backend), task="t", labels=LABELS, sample=12, seed=3)
    second = judge_faithfulness(records(40), Judge(FakeConfig(), backend=backend), task="t", labels=LABELS, sample=12, seed=3)
    assert first["sampled"] == 12 and first["population"] == 40
    assert [v["id"] for v in first["verdicts"]] == [v["id"] for v in second["verdicts"]]


def write_reviews(path, rows):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE reviews (record_id TEXT, criterion TEXT, verdict TEXT, reviewer TEXT)")
    db.executemany("INSERT INTO reviews VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def test_reviews_from_sqlite_give_the_human_estimate_and_the_judges_agreement(tmp_path):
    path = tmp_path / "reviews.sqlite"
    write_reviews(path, [
        ("r1", "label_correct", "yes", "ann"), ("r1", "label_correct", "yes", "bob"),
        ("r2", "label_correct", "no", "ann"), ("r2", "label_correct", "no", "bob"),
        ("r3", "label_correct", "yes", "ann"), ("r3", "fluent", "true", "ann"),
        ("r4", "faithful", "reject", "ann"), ("r5", "label_correct", "skip", "ann"),
    ])
    reviews = human_reviews(path)
    assert len(reviews) == 8
    human = human_faithfulness(reviews, ["fluent", "label_correct"])
    assert human["faithful"]["n"] == 4  # r5's only review is neither yes nor no
    assert human["faithful"]["share"] == pytest.approx(2 / 4)  # r1, r3 faithful; r2 wrong label; r4 rejected
    wilson = binomtest(2, 3).proportion_ci(method="wilson")  # scipy's Wilson interval of 2 in 3, the reference
    assert human["criteria"]["label_correct"] == {
        "share": pytest.approx(2 / 3), "interval": pytest.approx([wilson.low, wilson.high], abs=1e-4), "n": 3}
    wilson = binomtest(2, 4).proportion_ci(method="wilson")
    assert human["faithful"]["interval"] == pytest.approx([wilson.low, wilson.high], abs=1e-4)
    judge_verdicts = [
        {"id": "r1", "fluent": True, "label_correct": True},
        {"id": "r2", "fluent": True, "label_correct": True},  # the judge misses r2's wrong label
        {"id": "r3", "fluent": True, "label_correct": True},
        {"id": "r4", "fluent": True, "label_correct": False},
    ]
    agreement = judge_agreement(judge_verdicts, reviews, ["fluent", "label_correct"])
    assert agreement["label_correct"]["n"] == 3 and agreement["label_correct"]["agreement"] == pytest.approx(2 / 3)
    assert agreement["fluent"] == {"n": 1, "agreement": 1.0, "kappa": 1.0}
    assert agreement["faithful"]["n"] == 1 and agreement["faithful"]["agreement"] == 1.0
    assert human_reviews(tmp_path / "none.sqlite") == []
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    assert human_reviews(empty) == []


def test_kappa_is_zero_for_a_judge_that_always_says_yes():
    reviews = [(f"r{i}", "fluent", "yes" if i % 2 else "no") for i in range(10)]
    verdicts = [{"id": f"r{i}", "fluent": True} for i in range(10)]
    out = judge_agreement(verdicts, reviews, ["fluent"])
    assert out["fluent"]["agreement"] == 0.5 and out["fluent"]["kappa"] == pytest.approx(0.0)


def pairwise_backend(rule):
    def answer(request):
        content = request.messages[-1]["content"]
        first = content.split("Answer 1:\n", 1)[1].split("\n\nAnswer 2:", 1)[0]
        second = content.split("Answer 2:\n", 1)[1].split("\n\nWhich answer", 1)[0]
        return json.dumps({"winner": rule(first, second)})
    return FakeBackend(FakeConfig(), responder=answer)


def test_pairwise_both_orders_ties_and_position_bias():
    prompts = [f"question {i}" for i in range(20)]
    good = [f"a careful, correct answer {i}" for i in range(20)]
    bad = [f"nope {i}" for i in range(20)]
    fair = pairwise_backend(lambda a, b: "1" if a.startswith("a careful") else "2")
    out = compare_answers(prompts, good, bad, Judge(FakeConfig(), backend=fair), resamples=200)
    assert out["win_rate"] == 1.0 and out["wins"] == 1.0 and out["position_consistency"] == 1.0
    assert out["judged"] == 20 and len(fair.calls) == 40
    biased = pairwise_backend(lambda a, b: "1")  # always the first position
    out = compare_answers(prompts, good, bad, Judge(FakeConfig(), backend=biased), resamples=200)
    assert out["win_rate"] == 0.5 and out["ties"] == 1.0 and out["position_consistency"] == 0.0
    tie = pairwise_backend(lambda a, b: "tie")
    out = compare_answers(prompts, good, bad, Judge(FakeConfig(), backend=tie), resamples=200)
    assert out["win_rate"] == 0.5 and out["position_consistency"] == 1.0


def test_length_controlled_win_rate_discounts_a_judge_that_likes_long_answers():
    # A wins 90% of the prompts where it is longer, 10% where it is shorter, half of those of equal
    # length; it is longer twice as often as shorter, which lifts its plain win rate to 0.6
    length_a = [50] * 20 + [10] * 10 + [30] * 10
    length_b = [10] * 20 + [50] * 10 + [30] * 10
    scores = [1.0] * 18 + [0.0] * 2 + [1.0] + [0.0] * 9 + [1.0] * 5 + [0.0] * 5
    assert sum(scores) / len(scores) == pytest.approx(0.6)
    assert length_controlled_win_rate(scores, length_a, length_b) == pytest.approx(0.5, abs=0.01)
    # no length difference at all: the plain win rate
    assert length_controlled_win_rate([1, 0, 1, 1], [5] * 4, [5] * 4) == 0.75


@pytest.mark.slow
def test_faithfulness_and_pairwise_on_the_embedded_model(tmp_path):
    config = LlamaCppConfig()
    data = records(6)
    out = judge_faithfulness(data, Judge(config, tmp_path / "cache.sqlite"), task="SMS messages", labels=LABELS, sample=3)
    assert out["sampled"] == 3 and out["judged"] + out["failed"] == 3
    assert out["judged"] == 3  # constrained JSON decoding gives parseable verdicts
    assert all(v["best_label"] in LABELS for v in out["verdicts"])
    again = judge_faithfulness(data, Judge(config, tmp_path / "cache.sqlite"), task="SMS messages", labels=LABELS, sample=3)
    assert again["judge"]["model_calls"] == 0
    pairs = compare_answers(["What is 2 + 2?"], ["2 + 2 is 4."], ["It is 5."], Judge(config, tmp_path / "cache.sqlite"), resamples=20)
    assert pairs["judged"] == 1
    row = pairs["judgements"][0]  # the verdicts with A shown first and with B shown first
    assert pairs["win_rate"] == row["score"] == order_scores(row["a_first"], row["b_first"])
    # The same two prompts with the answers' roles swapped: no new calls, and B wins what A won.
    swapped = compare_answers(["What is 2 + 2?"], ["It is 5."], ["2 + 2 is 4."], Judge(config, tmp_path / "cache.sqlite"), resamples=20)
    assert swapped["judge"]["model_calls"] == 0
    assert (swapped["judgements"][0]["a_first"], swapped["judgements"][0]["b_first"]) == (row["b_first"], row["a_first"])
    assert swapped["win_rate"] == 1 - pairs["win_rate"]


def test_pairwise_stage_matches_records_to_the_baseline_by_prompt(tmp_path):
    from synthloom.evaluate import EvaluationContext, evaluate
    from synthloom.recipe import DatasetSpec, PairwiseSpec

    (tmp_path / "baseline.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "a": f"base {i}"}) + "\n" for i in range(5)))
    ours = [Record(id=str(i), fields={"q": f"q{i}", "a": f"a much longer answer {i}"}) for i in range(8)]
    spec = PairwiseSpec(
        baseline=DatasetSpec.model_validate({"path": str(tmp_path / "baseline.jsonl"), "label_field": None}),
        prompt_field="q", answer_field="a", judge=FakeConfig(responses=['{"winner": "1"}']), bootstrap=50,
    )
    out = evaluate(ours, [spec], EvaluationContext(text_field="q", run_dir=tmp_path))["pairwise"]
    assert out["prompts"] == 5 and out["judged"] == 5  # q5-q7 have no baseline answer
    assert out["ties"] == 1.0 and out["position_consistency"] == 0.0  # a judge that always says "1"
    assert out["judge"]["model_calls"] == 10
    again = evaluate(ours, [spec], EvaluationContext(text_field="q", run_dir=tmp_path))["pairwise"]
    assert again["judge"]["model_calls"] == 0 and again["judge"]["served_from_cache"] == 10
