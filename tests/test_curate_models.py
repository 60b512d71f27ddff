"""Model-backed curation stages against the real embedded model (SmolLM2-135M), tiny budgets."""

from __future__ import annotations

import re

import pytest

from synthloom.curate import DROP, KEEP, RELABEL, CurationContext, curate
from synthloom.llm import LlamaCppBackend, LlamaCppConfig
from synthloom.recipe import JudgeSpec, LabelLogprobSpec, SelfConsistencySpec, TeacherSpec
from synthloom.records import Record

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


class CountingBackend(LlamaCppBackend):
    calls = 0

    async def complete(self, request):
        CountingBackend.calls += 1
        return await super().complete(request)


@pytest.fixture(scope="module")
def backend():
    return CountingBackend(LlamaCppConfig())


@pytest.fixture
def context(tmp_path, backend):
    return CurationContext(
        labels=["spam", "ham"],
        label_descriptions={"spam": "an advert or a prize offer", "ham": "a normal personal message"},
        description="SMS text messages",
        cache_path=tmp_path / "cache.sqlite",
        backend_factory=lambda config: backend,
    )


def sms():
    return [
        Record("a", {"text": "WINNER! You have won a 1000 pound prize. Call 09061701461 to claim now"}, label="spam"),
        Record("b", {"text": "Hi mum, I will be home for dinner at 7, love you"}, label="ham"),
        Record("c", {"text": "Are we still on for the cinema tonight?"}, label="spam"),
    ]


def test_self_consistency_with_the_embedded_model_and_a_free_rerun(context):
    spec = SelfConsistencySpec(samples=3, max_tokens=4)
    records = sms()
    curate(records, [spec], context)
    for record in records:
        # every record got answers (they are constrained to the labels), and its score is the share that agree
        agree, answered = map(int, re.match(r"(\d) of (\d) answers agree", record.reasons["self_consistency"]).groups())
        assert answered == 3 and record.scores["self_consistency"] == pytest.approx(agree / answered)
        assert record.flags["self_consistency"] == KEEP  # no min_score: scored and kept
    before = CountingBackend.calls
    again = sms()
    curate(again, [SelfConsistencySpec(samples=3, max_tokens=4, min_score=0.5)], context)
    assert CountingBackend.calls == before  # all answers from the cache
    assert [r.scores["self_consistency"] for r in again] == [r.scores["self_consistency"] for r in records]
    # with a threshold, the records the model mostly disagrees with are dropped, the others kept
    assert [r.flags["self_consistency"] for r in again] == [DROP if r.scores["self_consistency"] < 0.5 else KEEP for r in records]


def test_label_logprob_with_the_embedded_model(context):
    records = sms()
    curate(records, [LabelLogprobSpec(top_logprobs=10)], context)
    scored = [r for r in records if "label_logprob" in r.scores]
    assert scored, [r.reasons for r in records]
    assert all(0.0 <= r.scores["label_logprob"] <= 1.0 for r in scored)
    assert all(r.reasons["label_logprob"].startswith("most likely label ") for r in scored)


def test_judge_with_the_embedded_model(context):
    records = sms()[:2]
    curate(records, [JudgeSpec(max_tokens=48)], context)
    for record in records:
        # schema-constrained JSON: every record is judged; the 1-5 score in the reason is the stored (score - 1) / 4
        points = int(re.match(r"([1-5])/5: ", record.reasons["llm_judge"]).group(1))
        assert record.scores["llm_judge"] == (points - 1) / 4
        assert record.flags["llm_judge"] == KEEP  # no min_score
    strict = sms()[:2]
    curate(strict, [JudgeSpec(max_tokens=48, min_score=0.5)], context)  # the same answers, from the cache
    assert [r.scores["llm_judge"] for r in strict] == [r.scores["llm_judge"] for r in records]
    assert [r.flags["llm_judge"] for r in strict] == [DROP if r.scores["llm_judge"] < 0.5 else KEEP for r in records]


def test_teacher_reviews_only_flagged_records_with_the_embedded_model(context):
    records = sms()
    records[2].scores["cross_partition"] = 0.1  # as if an earlier stage doubted it
    records[2].flags["cross_partition"] = RELABEL
    before = CountingBackend.calls
    curate(records, [TeacherSpec(review=["cross_partition"], max_tokens=4)], context)
    assert CountingBackend.calls - before <= 4  # one record, at most max_attempts tries
    assert "teacher" not in records[0].reasons and "teacher" not in records[1].reasons
    assert records[2].reasons["teacher"].startswith("cross_partition relabelled it")
    assert records[2].label in ("spam", "ham")
