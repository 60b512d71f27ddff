"""Support-anchored curation with the real MiniLM: a few real examples judge, weight and mix synthetic records."""

from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest

from synthloom.curate import KEEP, RELABEL, REWEIGHT, CurationContext, curate
from synthloom.embed import Embedder
from synthloom.recipe import (
    CurationFile,
    DatasetSpec,
    SupportFilterSpec,
    SupportMixSpec,
    SupportWeightSpec,
    recipe_from_dict,
)
from synthloom.records import Record

TOPICS = {
    "weather": (["Heavy rain", "A cold wind", "Thick fog", "Bright sunshine", "A thunderstorm", "Snowfall"],
                ["is expected over the hills tonight", "will reach the coast by morning", "is forecast for the weekend",
                 "kept temperatures low all day", "is moving north from the sea", "will clear by the afternoon"]),
    "cooking": (["Slowly fry the onions", "Whisk the eggs", "Knead the dough", "Simmer the tomato sauce",
                 "Roast the vegetables", "Season the soup"],
                ["before adding the garlic", "until it turns golden", "for ten minutes on low heat",
                 "with a pinch of salt", "in a large mixing bowl", "and serve it warm"]),
}


def texts(label: str) -> list[str]:
    subjects, predicates = TOPICS[label]
    return [f"{s} {p}." for s, p in itertools.product(subjects, predicates)]


def make_data(tmp_path, per_class: int = 8, planted: int = 3, seed: int = 0):
    """A support file (per_class real texts a label) and synthetic records, `planted` of them mislabelled."""
    rng = random.Random(seed)
    support_rows, synthetic, wrong = [], [], set()
    for label in TOPICS:
        pool = texts(label)
        rng.shuffle(pool)
        support_rows += [{"text": t, "label": label} for t in pool[:per_class]]
        synthetic += [Record(f"syn-{label}-{i}", {"text": t}, label=label) for i, t in enumerate(pool[per_class:])]
    for i in rng.sample(range(len(synthetic)), planted):
        synthetic[i].label = "cooking" if synthetic[i].label == "weather" else "weather"
        wrong.add(synthetic[i].id)
    path = tmp_path / "support.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in support_rows), encoding="utf-8")
    return path, support_rows, synthetic, wrong


def reference(path) -> DatasetSpec:
    return DatasetSpec(path=str(path))


class RecordingEmbedder:
    """The real MiniLM, remembering every text it was asked to embed."""

    def __init__(self):
        self.inner = Embedder.shared()
        self.seen: set[str] = set()

    def encode(self, texts, progress=False):
        self.seen.update(texts)
        return self.inner.encode(texts, progress=progress)


def test_support_filter_relabels_the_planted_errors_and_keeps_the_rest(tmp_path):
    path, _, synthetic, wrong = make_data(tmp_path)
    truth = {r.id: ("cooking" if r.label == "weather" else "weather") if r.id in wrong else r.label for r in synthetic}
    result = curate(synthetic, [SupportFilterSpec(reference=reference(path))], CurationContext())
    relabelled = {r.id for r in result.kept if r.flags["support_filter"] == RELABEL}
    assert relabelled == wrong
    assert all(r.label == truth[r.id] for r in result.kept)
    assert all(r.meta["original_label"] != r.label for r in result.kept if r.id in wrong)
    reason = next(r.reasons["support_filter"] for r in result.kept if r.id in wrong)
    assert "held-out precision" in reason and "support model says" in reason


def test_support_filter_drop_action_drops_them(tmp_path):
    path, _, synthetic, wrong = make_data(tmp_path, seed=1)
    result = curate(synthetic, [SupportFilterSpec(reference=reference(path), action="drop")], CurationContext())
    assert {r.id for r in result.dropped} == wrong
    assert result.funnel[0].dropped == len(wrong)


def test_support_filter_trusts_nothing_when_the_support_is_noise(tmp_path):
    """A support set whose labels are coin flips cannot reach 90% held-out precision: nothing is flagged."""
    path, rows, synthetic, _ = make_data(tmp_path, planted=0)
    rng = random.Random(3)
    for row in rows:
        row["label"] = rng.choice(list(TOPICS))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = curate(synthetic, [SupportFilterSpec(reference=reference(path), precision=0.95)], CurationContext())
    assert not result.dropped and all(r.flags["support_filter"] == KEEP for r in result.kept)
    assert all(r.reasons["support_filter"].startswith("not trusted: no confidence reaches 95%") for r in result.kept)


def test_support_weight_follows_the_label_probability(tmp_path):
    path, _, synthetic, wrong = make_data(tmp_path)
    result = curate(synthetic, [SupportWeightSpec(reference=reference(path), floor=0.1)], CurationContext())
    records = result.kept
    assert all(r.flags["support_weight"] == REWEIGHT for r in records)
    p = np.array([r.scores["support_weight"] for r in records])
    w = np.array([r.weight for r in records])
    assert np.all(np.diff(w[np.argsort(p)]) >= -1e-9)  # the weight rises with the probability
    assert w.mean() == pytest.approx(1.0)
    planted = [r.weight for r in records if r.id in wrong]
    clean = [r.weight for r in records if r.id not in wrong]
    assert max(planted) < min(clean)


def test_support_mix_records_the_chosen_factor(tmp_path):
    path, _, synthetic, _ = make_data(tmp_path, planted=10, seed=2)
    grid = [0.1, 0.5, 1.0]
    before = {r.id: r.weight for r in synthetic}
    result = curate(synthetic, [SupportMixSpec(reference=reference(path), grid=grid)], CurationContext())
    factors = {r.scores["support_mix"] for r in result.kept}
    assert len(factors) == 1
    factor = factors.pop()
    assert factor in grid
    assert all(r.weight == pytest.approx(before[r.id] * factor) for r in result.kept)
    reason = result.kept[0].reasons["support_mix"]
    assert f"synthetic weight x{factor:g} chosen by" in reason and "support alone" in reason
    assert all(f"x{g:g} " in reason for g in grid)


def test_the_stages_see_only_the_support_and_the_synthetic_records(tmp_path):
    path, rows, synthetic, _ = make_data(tmp_path)
    test_path = tmp_path / "test.jsonl"
    test_path.write_text(json.dumps({"text": "A secret test sentence about snow.", "label": "weather"}) + "\n")
    embedder = RecordingEmbedder()
    specs = [SupportFilterSpec(reference=reference(path)), SupportWeightSpec(reference=reference(path)),
             SupportMixSpec(reference=reference(path))]
    curate(synthetic, specs, CurationContext(embedder=embedder))
    allowed = {r["text"] for r in rows} | {r.text() for r in synthetic}
    assert embedder.seen and embedder.seen <= allowed
    assert {r["text"] for r in rows} <= embedder.seen


def test_recipe_demonstrations_are_the_default_support_and_never_the_test_set(tmp_path):
    path, *_ = make_data(tmp_path)
    base = {
        "name": "t",
        "task": {"kind": "classification", "description": "short texts", "fields": {"text": "a sentence"}, "labels": list(TOPICS)},
        "curation": [{"stage": "support_filter"}, {"stage": "support_mix"}],
    }
    with pytest.raises(Exception, match="needs `reference:` or the recipe's `demonstrations:`"):
        recipe_from_dict(base, base_dir=tmp_path)
    recipe = recipe_from_dict({**base, "demonstrations": {"path": str(path)}}, base_dir=tmp_path)
    assert recipe.curation[0].reference is None
    downstream = {"stage": "downstream", "test": {"path": str(path)}}
    with pytest.raises(Exception, match="is the downstream stage's test data"):
        recipe_from_dict({**base, "demonstrations": {"path": str(path)}, "evaluation": [downstream]}, base_dir=tmp_path)
    with pytest.raises(Exception, match="needs `reference:`"):
        CurationFile(curation=[SupportWeightSpec()])
