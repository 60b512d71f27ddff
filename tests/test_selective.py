"""Selective annotation: the choice of records for people, the model's confidence, the directory it writes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthloom.llm import Completion, FakeBackend, TokenLogprob
from synthloom.records import Record, read_records
from synthloom.review import (
    ModelLabel,
    ModelLabeller,
    ReviewSet,
    ReviewStore,
    View,
    budget_records,
    calibrated_label,
    label_distribution,
    label_probability,
    select_for_humans,
    select_random,
)
from synthloom.review.annotate import selective_annotation

from conftest import run_cli


def labels_with(confidences):
    return [ModelLabel(f"r{i}", "a", c) for i, c in enumerate(confidences)]


def test_least_confident_first_without_embeddings():
    selection = select_for_humans(labels_with([0.9, 0.2, 0.6, 0.1, 0.95]), 2)
    assert selection.human == ["r3", "r1"]
    assert selection.model == ["r0", "r2", "r4"]
    # people right, the model right with its confidence on the rest
    assert selection.expected_accuracy == pytest.approx((2 + 0.9 + 0.6 + 0.95) / 5)
    assert selection.expected_accuracy_model_only == pytest.approx(np.mean([0.9, 0.2, 0.6, 0.1, 0.95]))
    assert selection.expected_accuracy > selection.expected_accuracy_random
    assert selection.expected_cost == 2.0


def test_diversity_keeps_the_budget_off_near_duplicates():
    # Three near-identical hard records and two distinct, slightly less hard ones.
    vectors = np.array([[1, 0, 0], [0.999, 0.04, 0], [0.998, 0, 0.06], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = labels_with([0.10, 0.11, 0.12, 0.30, 0.35])
    plain = select_for_humans(labels, 3)
    assert plain.human == ["r0", "r1", "r2"]
    diverse = select_for_humans(labels, 3, vectors)
    assert diverse.human == ["r0", "r3", "r4"]
    assert "similarity to earlier picks" in diverse.reasons["r3"]
    # with nothing else left, duplicates are taken after all
    assert len(select_for_humans(labels, 5, vectors).human) == 5


def test_budget_in_records_shares_and_cost():
    assert budget_records(50, 1000) == 50
    assert budget_records("10%", 1000) == 100
    assert budget_records(0.05, 1000) == 50
    assert budget_records("cost:30", 1000, human_cost=0.25) == 120
    assert budget_records(5000, 1000) == 1000
    with pytest.raises(ValueError):
        budget_records(-1, 10)


def test_random_baseline_has_the_same_size_and_is_seeded():
    labels = labels_with([0.5] * 20)
    assert len(select_random(labels, 7)) == 7
    assert select_random(labels, 7, seed=3) == select_random(labels, 7, seed=3)


def test_label_probability_renormalises_over_labels():
    text = '{"label": "ham"}'
    tokens = [
        TokenLogprob('{"', -0.1), TokenLogprob("label", -0.01), TokenLogprob('":', -0.01), TokenLogprob(' "', -0.1),
        # the model wanted "Hello" most; among label spellings, ham:spam is 3:1
        TokenLogprob("ham", np.log(0.3), [("Hello", np.log(0.6)), ("ham", np.log(0.3)), ("sp", np.log(0.1))]),
        TokenLogprob('"}', -0.01, [('"}', -0.01)]),
    ]
    assert label_probability(tokens, text, ["spam", "ham"]) == pytest.approx(0.75, abs=0.01)
    # a label spelled over two tokens multiplies their shares; "spock" is no label, so "am" is certain
    two = tokens[:4] + [
        TokenLogprob("sp", np.log(0.5), [("sp", np.log(0.5)), ("h", np.log(0.5))]),
        TokenLogprob("am", np.log(0.9), [("am", np.log(0.9)), ("ock", np.log(0.1))]),
        TokenLogprob('"}', -0.01),
    ]
    assert label_probability(two, '{"label": "spam"}', ["spam", "ham"]) == pytest.approx(0.5 * 1.0 * 0.99, abs=0.001)
    assert label_probability(tokens, "not json", ["spam", "ham"]) is None


def test_contextual_calibration_removes_a_leaning_towards_one_label():
    def answer(spam, ham):
        top = [("sp", np.log(spam)), ("ham", np.log(ham)), ("Hello", np.log(1 - spam - ham))]
        chosen = "sp" if spam >= ham else "ham"
        tokens = [TokenLogprob('{"label": "', -0.01), TokenLogprob(chosen, dict(top)[chosen], top)]
        tokens += [TokenLogprob("am", -0.01)] if chosen == "sp" else []
        return tokens + [TokenLogprob('"}', -0.01)], '{"label": "%s"}' % ("spam" if chosen == "sp" else "ham")

    labels = ["spam", "ham"]
    prior = label_distribution(*answer(0.6, 0.2), labels)  # an empty input: the model leans 3:1 to spam
    assert prior == pytest.approx({"spam": 0.75, "ham": 0.25})
    leaning = label_distribution(*answer(0.5, 0.3), labels)  # greedy says spam, but less than its usual lean
    label, probability = calibrated_label(leaning, prior, "spam")
    assert label == "ham" and probability == pytest.approx((0.3 / 0.25) / (0.3 / 0.25 + 0.5 / 0.75))
    assert calibrated_label(leaning, None, "spam") is None


def _texts(n):
    return [Record(id=f"t{i}", fields={"text": f"message number {i}"}) for i in range(n)]


def test_votes_from_sampled_answers_with_a_scripted_model():
    def answer(request):
        i = int(request.messages[-1]["content"].split()[-1])
        # t0: always a; t1: a, b, a, b, a; t2: garbage first, then b
        if i == 0:
            return '{"label": "a"}'
        if i == 1:
            return '{"label": "%s"}' % ("a" if request.sample % 2 == 0 else "b")
        return "no idea" if request.attempt == 0 else '{"label": "b"}'

    labeller = ModelLabeller(FakeBackend(responder=answer), ["a", "b"], method="votes", samples=5)
    results = {r.record_id: r for r in labeller.label(_texts(3))}
    assert (results["t0"].label, results["t0"].confidence) == ("a", 1.0)
    assert (results["t1"].label, results["t1"].confidence) == ("a", 0.6)
    assert results["t1"].reason == "3 of 5 samples agree"
    assert results["t2"].label == "b"  # the unusable answers were asked again


def test_prompt_lists_labels_and_shows_demonstrations_as_turns():
    demos = [Record(id="d", fields={"text": "win cash now"}, label="spam")]
    labeller = ModelLabeller(FakeBackend(), ["spam", "ham"], label_descriptions={"spam": "adverts"},
                             description="SMS messages", demonstrations=demos)
    messages = labeller.messages(_texts(1)[0])
    assert "- spam: adverts" in messages[0]["content"] and "SMS messages" in messages[0]["content"]
    assert messages[1] == {"role": "user", "content": "win cash now"}
    assert json.loads(messages[2]["content"]) == {"label": "spam"}
    assert messages[-1]["content"] == "message number 0"


def test_selective_directory_opens_in_the_review_queue(tmp_path):
    """The directory select writes: model labels, confidences, and the chosen records as the app's queue."""
    confidences = {0: 0.9, 1: 0.2, 2: 0.7, 3: 0.05, 4: 0.6, 5: 0.99}

    def answer(request):
        i = int(request.messages[-1]["content"].split()[-1])
        label = "a" if confidences[i] > 0.5 else "b"
        text = '{"label": "%s"}' % label
        # log-probabilities that give the label its confidence among the two labels
        p = confidences[i]
        top = [(label, float(np.log(p))), ("b" if label == "a" else "a", float(np.log(1 - p)))]
        logprobs = [TokenLogprob('{"label": "', -0.01), TokenLogprob(label, float(np.log(p)), top), TokenLogprob('"}', -0.01)]
        return Completion(text=text, finish_reason="stop", logprobs=logprobs)

    result = selective_annotation(_texts(6), ["a", "b"], tmp_path / "sel", 2,
                                  backend=FakeBackend(responder=answer), calibrate=False, embeddings=False, progress=False)
    assert result.selection.human == ["t3", "t1"]
    records = {r.id: r for r in read_records(tmp_path / "sel" / "curated.parquet")}
    assert records["t3"].scores["model_confidence"] == pytest.approx(0.05, abs=0.01)
    assert records["t0"].label == "a" and records["t1"].label == "b"
    review_set = ReviewSet.load(tmp_path / "sel")
    assert review_set.labels == ["a", "b"]
    with ReviewStore(review_set.store_path) as store:
        assigned = store.assignments()
        assert assigned == ["t3", "t1"]
        assert View(order="assigned", assigned_only=True).apply(review_set.records, assigned) == ["t3", "t1"]
    manifest = json.loads((tmp_path / "sel" / "manifest.json").read_text())
    assert manifest["selective"]["human"] == 2 and manifest["selective"]["expected_accuracy"] > 0.8
    assert manifest["versions"]["synthloom"] and "python" in manifest["versions"]


@pytest.mark.slow
def test_select_command_with_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp")
    inputs = tmp_path / "inputs.jsonl"
    texts = ["WINNER!! Claim your free prize now, call 09061701461", "Are you coming to dinner tonight?",
             "URGENT! You have won a 1 week FREE membership", "Ok, see you at the station at 6",
             "Free entry to win FA Cup tickets, text FA to 87121", "Sorry, I'll call you later"]
    inputs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    demos = tmp_path / "demos.jsonl"
    demos.write_text(json.dumps({"text": "Text WIN to 80086 for a free phone", "label": "spam"}) + "\n"
                     + json.dumps({"text": "I'm home, do you want tea?", "label": "ham"}) + "\n")
    out = tmp_path / "sel"
    done = run_cli("select", str(inputs), "--labels", "spam,ham", "--budget", "2", "--out", str(out),
                   "--demonstrations", str(demos), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "2 records for people, 4 labelled by the model" in done.stdout
    table = pq.read_table(out / "curated.parquet").to_pylist()
    assert {row["label"] for row in table} <= {"spam", "ham"}
    confidences = [row["model_confidence_score"] for row in table]
    assert all(0 <= c <= 1 for c in confidences) and len(set(confidences)) > 1
    with ReviewStore(out / "reviews.sqlite") as store:
        chosen = store.assignments()
    # the chosen ones are among the least confident
    ranked = sorted(table, key=lambda row: row["model_confidence_score"])
    assert set(chosen) <= {row["id"] for row in ranked[:4]}
    # a rerun is answered from the cache and chooses the same records
    again = run_cli("select", str(inputs), "--labels", "spam,ham", "--budget", "2", "--out", str(out),
                    "--demonstrations", str(demos), "--no-progress")
    assert again.returncode == 0, again.stderr
    with ReviewStore(out / "reviews.sqlite") as store:
        assert store.assignments() == chosen
