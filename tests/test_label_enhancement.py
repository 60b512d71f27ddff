"""Label enhancement and data valuation on data with planted label errors (real MiniLM embeddings)."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest

from synthloom.curate import DROP, KEEP, RELABEL, REWEIGHT, CurationContext, curate, influence_scores
from synthloom.llm import FakeBackend
from synthloom.recipe import (
    AuxConfidenceSpec,
    ConfidentLearningSpec,
    CrossPartitionSpec,
    InfluenceSpec,
    KnnShapleySpec,
    TeacherSpec,
)
from synthloom.records import Record

TOPICS = {
    "weather": (["Heavy rain", "A cold wind", "Thick fog", "Bright sunshine", "A thunderstorm", "Snowfall", "Hail"],
                ["is expected over the hills tonight", "will reach the coast by morning", "is forecast for the weekend",
                 "kept temperatures low all day", "is moving north from the sea", "will clear by the afternoon",
                 "is likely during the evening"]),
    "football": (["The striker", "Our goalkeeper", "The home side", "The referee", "The young midfielder",
                  "The away fans", "The coach"],
                 ["scored twice in the second half", "was sent off after the penalty", "celebrated the late winner",
                  "argued about the offside goal", "signed a new contract with the club", "missed the cup final",
                  "praised the defence after the match"]),
    "cooking": (["Slowly fry the onions", "Whisk the eggs", "Knead the dough", "Simmer the tomato sauce",
                 "Roast the vegetables", "Season the soup", "Grate the cheese"],
                ["before adding the garlic", "until it turns golden", "for ten minutes on low heat",
                 "with a pinch of salt", "in a large mixing bowl", "while the pasta boils", "and serve it warm"]),
}


def topic_records(errors: float = 0.1, seed: int = 0):
    rng = random.Random(seed)
    records, truth = [], []
    for label, (subjects, predicates) in TOPICS.items():
        for s, p in itertools.product(subjects, predicates):
            records.append(Record(f"{label}-{len(records)}", {"text": f"{s} {p}."}, label=label))
            truth.append(label)
    flipped = set(rng.sample(range(len(records)), int(errors * len(records))))
    for i in flipped:
        records[i].label = rng.choice([t for t in TOPICS if t != truth[i]])
    return records, truth, flipped


def context():
    return CurationContext(labels=list(TOPICS), description="short texts about weather, football or cooking")


def precision_recall(flagged: set[int], flipped: set[int]) -> tuple[float, float]:
    hit = len(flagged & flipped)
    return hit / max(1, len(flagged)), hit / len(flipped)


def test_cross_partition_relabels_the_planted_errors():
    records, truth, flipped = topic_records()
    result = curate(records, [CrossPartitionSpec(folds=5, relabel_confidence=0.4)], context())
    flagged = {i for i, r in enumerate(records) if r.flags["cross_partition"] != KEEP}
    precision, recall = precision_recall(flagged, flipped)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    relabelled = [i for i, r in enumerate(records) if r.flags["cross_partition"] == RELABEL]
    assert relabelled and all(records[i].label == truth[i] for i in relabelled if i in flipped)
    assert all("original_label" in records[i].meta for i in relabelled)
    step = result.funnel[0]
    assert step.relabelled == len(relabelled)
    assert any(e["flag"] == RELABEL and " -> " in e["reason"] for e in step.examples)


def test_cross_partition_can_drop_instead():
    records, _, flipped = topic_records(seed=1)
    result = curate(records, [CrossPartitionSpec(action="drop")], context())
    dropped = {int(r.id.split("-")[1]) for r in result.dropped}
    assert precision_recall(dropped, flipped)[1] >= 0.8
    # what it flags it drops, and it relabels nothing
    assert {r.id for r in records if r.flags["cross_partition"] == DROP} == {r.id for r in result.dropped}
    assert all(r.flags["cross_partition"] in (KEEP, DROP) and "original_label" not in r.meta for r in records)
    assert result.funnel[0].relabelled == 0


def test_confident_learning_finds_the_planted_errors():
    records, truth, flipped = topic_records(seed=2)
    curate(records, [ConfidentLearningSpec(action="relabel")], context())
    flagged = {i for i, r in enumerate(records) if r.flags["confident_learning"] == RELABEL}
    precision, recall = precision_recall(flagged, flipped)
    assert precision >= 0.7 and recall >= 0.7, (precision, recall)


def test_aux_confidence_is_low_for_wrong_labels():
    records, _, flipped = topic_records(seed=3)
    curate(records, [AuxConfidenceSpec(min_score=0.3)], context())
    scores = np.array([r.scores["aux_confidence"] for r in records])
    wrong = np.array([i in flipped for i in range(len(records))])
    assert scores[wrong].mean() < 0.3 < scores[~wrong].mean()
    assert sum(r.flags["aux_confidence"] == DROP for r in records) >= len(flipped) * 0.7


def test_teacher_reannotates_only_flagged_records():
    records, truth, flipped = topic_records(seed=4)
    answers = {r.text(): t for r, t in zip(records, truth)}
    backend = FakeBackend(responder=lambda req: answers[req.messages[-1]["content"][6:-7]])
    ctx = context()
    ctx.backend_factory = lambda config: backend
    curate(records, [AuxConfidenceSpec(), TeacherSpec(review=["aux_confidence"], below=0.4)], ctx)
    low = [i for i, r in enumerate(records) if r.scores["aux_confidence"] < 0.4]
    assert len(backend.calls) == len(low) > 0
    assert all(records[i].label == truth[i] for i in low)
    assert {i for i in low if records[i].flags["teacher"] == RELABEL} == set(low) & flipped
    assert all("teacher" not in r.reasons for i, r in enumerate(records) if i not in low)


def leave_one_out(X, y, Xv, yv, c):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    def val_loss(mask):
        model = LogisticRegression(C=c, solver="newton-cg", tol=1e-10, max_iter=1000).fit(X[mask], y[mask])
        return log_loss(yv, model.predict_proba(Xv), labels=model.classes_)

    everything = np.ones(len(y), dtype=bool)
    base = val_loss(everything)
    out = []
    for i in range(len(y)):
        mask = everything.copy()
        mask[i] = False
        out.append(val_loss(mask) - base)
    return np.array(out)


@pytest.mark.parametrize("classes", [2, 3])
def test_influence_matches_leave_one_out_retraining(classes):
    rng = np.random.default_rng(classes)
    centres = rng.normal(scale=1.5, size=(classes, 4))
    y = rng.integers(0, classes, 60)
    X = centres[y] + rng.normal(size=(60, 4))
    y[:5] = (y[:5] + 1) % classes  # some wrong labels
    yv = rng.integers(0, classes, 40)
    Xv = centres[yv] + rng.normal(size=(40, 4))
    predicted = influence_scores(X, y, Xv, yv, c=1.0)
    actual = leave_one_out(X, y, Xv, yv, 1.0)
    assert np.corrcoef(predicted, actual)[0, 1] > 0.95
    assert predicted[:5].mean() < 0  # the wrong labels hurt


def write_validation(tmp_path):
    rows = [{"text": t, "label": label} for label, t in [
        ("weather", "Strong winds will hit the coast tonight."), ("weather", "Expect light rain and clouds tomorrow."),
        ("football", "The captain scored a late penalty."), ("football", "The club lost the derby at home."),
        ("cooking", "Chop the carrots and add them to the pan."), ("cooking", "Bake the bread for forty minutes."),
    ]]
    path = tmp_path / "val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"path": str(path)}


@pytest.mark.parametrize("spec_class", [InfluenceSpec, KnnShapleySpec])
def test_valuation_stages_rank_wrong_labels_as_harmful(tmp_path, spec_class):
    from sklearn.metrics import roc_auc_score

    records, _, flipped = topic_records(seed=5)
    spec = spec_class(validation=write_validation(tmp_path), max_fraction=0.1)
    result = curate(records, [spec], context())
    scores = np.array([r.scores[spec.stage] for r in records])
    wrong = np.array([i in flipped for i in range(len(records))])
    assert roc_auc_score(wrong, -scores) > 0.8
    dropped = [r for r in records if r.flags[spec.stage] == DROP]
    assert 0 < len(dropped) <= int(0.1 * len(records)) and len(result.kept) == len(records) - len(dropped)
    assert all(r.scores[spec.stage] < 0 for r in dropped)


def test_valuation_can_down_weight_instead(tmp_path):
    records, _, _ = topic_records(seed=6)
    curate(records, [KnnShapleySpec(validation=write_validation(tmp_path), action="reweight")], context())
    reweighted = [r for r in records if r.flags["knn_shapley"] == REWEIGHT]
    assert reweighted and all(0 < r.weight < 1 for r in reweighted)
    assert all(r.weight == 1.0 for r in records if r.flags["knn_shapley"] == KEEP)


def test_a_label_stage_with_one_label_left_keeps_everything_and_says_why():
    """Earlier stages may leave a single label; cross-partition labelling then judges nothing, and the run goes on."""
    from synthloom.curate import KEEP, curate
    from synthloom.recipe import CrossPartitionSpec, LengthFilterSpec
    from synthloom.records import Record

    records = [Record(id=str(i), fields={"text": f"note number {i}"}, label="a") for i in range(6)]
    result = curate(records, [CrossPartitionSpec(folds=2), LengthFilterSpec(min_chars=1)])
    assert len(result.kept) == 6 and [step.stage for step in result.funnel] == ["cross_partition", "length_filter"]
    assert all(r.flags["cross_partition"] == KEEP and "not judged" in r.reasons["cross_partition"] for r in result.kept)
