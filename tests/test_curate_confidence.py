"""Confidence stages and re-weighting: the logic, with a scripted model (FakeBackend).

The same stages run against the real embedded model in test_curate_models.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthloom.curate import DROP, KEEP, REWEIGHT, CurationContext, confidence_weights, curate
from synthloom.llm import Completion, FakeBackend, TokenLogprob
from synthloom.recipe import JudgeSpec, LabelLogprobSpec, ReweightSpec, SelfConsistencySpec
from synthloom.records import Record


def context_with(responder, tmp_path=None):
    backends = []

    def factory(config):
        backend = FakeBackend(responder=responder)
        backends.append(backend)
        return backend

    ctx = CurationContext(
        labels=["spam", "ham"],
        label_descriptions={"spam": "adverts and prizes", "ham": "a personal message"},
        description="SMS messages",
        cache_path=tmp_path / "cache.sqlite" if tmp_path else None,
        backend_factory=factory,
    )
    return ctx, backends


def text_of(request):
    return request.messages[-1]["content"].removeprefix("Text: ").removesuffix("\nLabel?")


def sms():
    return [
        Record("a", {"text": "You won a prize! Call now"}, label="spam"),
        Record("b", {"text": "See you at dinner"}, label="ham"),
        Record("c", {"text": "Claim your free prize today"}, label="ham"),  # wrong label
    ]


def test_self_consistency_scores_agreement_and_caches(tmp_path):
    def responder(request):
        spammy = "prize" in text_of(request)
        if request.sample == 4:
            return "I think this is ham."  # a dissenting draw
        return "Spam" if spammy else "ham"

    ctx, backends = context_with(responder, tmp_path)
    records = sms()
    curate(records, [SelfConsistencySpec(samples=5, min_score=0.5)], ctx)
    assert [r.scores["self_consistency"] for r in records] == [0.8, 1.0, 0.2]
    assert [r.flags["self_consistency"] for r in records] == [KEEP, KEEP, DROP]
    assert "1 of 5 answers agree; others: spam" in records[2].reasons["self_consistency"]
    prompt = next(c.messages for c in backends[0].calls if text_of(c) == "See you at dinner")
    assert prompt[0]["content"].startswith("You label SMS messages. The labels are: spam (adverts and prizes), ham")
    # one demonstration per label, drawn from the other records, as earlier turns
    turns = [(q["content"], a["content"]) for q, a in zip(prompt[1:-1:2], prompt[2:-1:2])]
    assert sorted(turns) == [("Text: Claim your free prize today\nLabel?", "ham"), ("Text: You won a prize! Call now\nLabel?", "spam")]
    assert len(backends[0].calls) == 15
    again = sms()
    curate(again, [SelfConsistencySpec(samples=5, min_score=0.5)], ctx)
    assert len(backends[1].calls) == 0  # every answer came from the cache
    assert [r.scores["self_consistency"] for r in again] == [0.8, 1.0, 0.2]


def test_unusable_answers_are_reasked_then_reported():
    ctx, backends = context_with(lambda request: "no idea")
    records = sms()[:1]
    curate(records, [SelfConsistencySpec(samples=2)], ctx)
    assert records[0].flags["self_consistency"] == KEEP
    assert "self_consistency" not in records[0].scores
    assert records[0].reasons["self_consistency"] == "no usable answer"
    assert len(backends[0].calls) == 2 * 4  # max_attempts tries per sample


def test_label_logprob_reads_label_token_probabilities():
    def responder(request):
        assert request.logprobs and request.top_logprobs == 20
        spammy = "prize" in text_of(request)
        top = [(" sp", np.log(0.9 if spammy else 0.2)), ("ham", np.log(0.1 if spammy else 0.7)), ("The", np.log(0.1))]
        return Completion(text=top[0][0], logprobs=[TokenLogprob(top[0][0], top[0][1], top)])

    ctx, _ = context_with(responder)
    records = sms()
    curate(records, [LabelLogprobSpec()], ctx)
    scores = [r.scores["label_logprob"] for r in records]
    assert scores == pytest.approx([0.9, 0.7 / 0.9, 0.1])
    assert records[2].reasons["label_logprob"] == "most likely label spam (0.90)"


def test_judge_scores_with_reason_and_drops_below_min_score():
    def responder(request):
        assert request.json_schema is not None
        good = "dinner" in request.messages[-1]["content"]
        return json.dumps({"score": 5 if good else 2, "reason": "realistic" if good else "  label looks   wrong "})

    ctx, _ = context_with(responder)
    records = sms()
    curate(records, [JudgeSpec(min_score=0.5)], ctx)
    assert [r.scores["llm_judge"] for r in records] == [0.25, 1.0, 0.25]
    assert [r.flags["llm_judge"] for r in records] == [DROP, KEEP, DROP]
    assert records[1].reasons["llm_judge"] == "5/5: realistic"
    assert records[0].reasons["llm_judge"] == "llm_judge 0.25 < 0.5: 2/5: label looks wrong"


def test_confidence_weights_formula():
    w = confidence_weights(np.array([1.0, 0.5, 0.0]), floor=0.2, power=2.0, normalise=False)
    assert w.tolist() == pytest.approx([1.0, 0.2 + 0.8 * 0.25, 0.2])
    assert confidence_weights(np.array([1.0, 0.0]), floor=0.5).tolist() == pytest.approx([4 / 3, 2 / 3])


def test_reweight_writes_the_weight_column_from_scores(tmp_path):
    records = sms()
    for record, scores in zip(records, [(1.0, 0.8), (1.0, 1.0), (0.0, 0.2)]):
        record.scores.update(self_consistency=scores[0], llm_judge=scores[1])
    curate(records, [ReweightSpec(sources=["self_consistency", "llm_judge"], floor=0.1, normalise=False)])
    assert [r.weight for r in records] == pytest.approx([0.1 + 0.9 * 0.9, 1.0, 0.1 + 0.9 * 0.1])
    assert [r.flags["reweight"] for r in records] == [REWEIGHT, KEEP, REWEIGHT]
    from synthloom.records import read_records, write_records

    write_records(tmp_path / "w.parquet", records)
    assert [r.weight for r in read_records(tmp_path / "w.parquet")] == pytest.approx([0.91, 1.0, 0.19])
