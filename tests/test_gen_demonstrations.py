"""Demonstration selectors: random, nearest, MMR, stratified, zero-shot; cached vectors."""

from __future__ import annotations

import random

import numpy as np
import pytest

from synthloom.generate import DemonstrationPool, DemonstrationSelector, Generator, VectorCache, load_support
from synthloom.recipe import DemonstrationsSpec, recipe_from_dict
from synthloom.records import Record

WORDS = ["prize", "cash", "win", "dinner", "pub", "train", "football", "match", "goal"]


def bag_of_words(texts):
    """A deterministic stand-in for sentence embeddings: normalised word counts."""
    out = np.zeros((len(texts), len(WORDS)), dtype=np.float32)
    for i, text in enumerate(texts):
        for j, word in enumerate(WORDS):
            out[i, j] = text.lower().split().count(word)
        out[i] /= max(np.linalg.norm(out[i]), 1e-9)
    return out


POOL = [
    Record("s1", {"text": "win a cash prize"}, "spam"),
    Record("s2", {"text": "cash cash prize"}, "spam"),
    Record("s3", {"text": "win win win"}, "spam"),
    Record("h1", {"text": "dinner at the pub"}, "ham"),
    Record("h2", {"text": "train to the football match"}, "ham"),
    Record("h3", {"text": "what a goal in the match"}, "ham"),
]


def spec(**kw):
    return DemonstrationsSpec.model_validate({"path": ".", **kw})


def test_random_is_seeded_and_same_label():
    pool = DemonstrationPool(POOL)
    got = pool.random(2, random.Random(1), "ham")
    assert got == pool.random(2, random.Random(1), "ham")
    assert {r.label for r in got} == {"ham"} and len({r.id for r in got}) == 2
    assert len(pool.random(10, random.Random(1), "nope")) == 6  # unknown label: the whole pool


def test_nearest_to_conditions_and_to_a_field():
    pool = DemonstrationPool(POOL, bag_of_words)
    near = DemonstrationSelector(spec(selection="nearest", k=2, same_label=False), pool)
    got = near.select(random.Random(0), "ham", {"topic": "football match"})
    assert [r.id for r in got] == ["h2", "h3"]
    by_field = DemonstrationSelector(spec(selection="nearest", k=1, same_label=False, query="text"), pool)
    assert by_field.select(random.Random(0), None, {}, {"text": "dinner at the pub tonight"})[0].id == "h1"
    same = DemonstrationSelector(spec(selection="nearest", k=1), pool)
    assert same.select(random.Random(0), "spam", {"topic": "football"})[0].label == "spam"


@pytest.mark.parametrize("selection", ["nearest", "mmr", "random", "stratified"])
def test_an_input_is_never_its_own_demonstration(selection):
    """Annotating a text that is in the support (e.g. to see how the model labels the support): the
    example itself is left out and the next one takes its place; other inputs see the same picks as before."""
    pool = DemonstrationPool(POOL, bag_of_words, "text")
    sel = DemonstrationSelector(spec(selection=selection, k=2, same_label=False, query="text"), pool)
    for record in POOL:
        got = sel.select(random.Random(0), None, {}, {"text": record.text()})
        assert len(got) == 2 and record.id not in {r.id for r in got}
    if selection == "nearest":  # a text that is not in the support: its nearest, itself included, as before
        assert sel.select(random.Random(0), None, {}, {"text": "dinner at the pub tonight"})[0].id == "h1"


def test_nearest_with_candidates_varies_among_the_closest():
    pool = DemonstrationPool(POOL, bag_of_words)
    sel = DemonstrationSelector(spec(selection="nearest", k=1, same_label=False, candidates=2), pool)
    picks = {sel.select(random.Random(i), None, {"topic": "match"})[0].id for i in range(20)}
    assert picks == {"h2", "h3"}


def test_mmr_trades_relevance_for_diversity():
    pool = DemonstrationPool(POOL, bag_of_words)
    relevant = DemonstrationSelector(spec(selection="mmr", k=2, same_label=False, mmr_lambda=1.0), pool)
    diverse = DemonstrationSelector(spec(selection="mmr", k=2, same_label=False, mmr_lambda=0.3), pool)
    query = {"topic": "cash prize"}
    assert [r.id for r in relevant.select(random.Random(0), None, query)] == ["s2", "s1"]
    got = diverse.select(random.Random(0), None, query)
    assert got[0].id == "s2" and got[1].id != "s1"  # not the near-duplicate of the first


def test_stratified_spreads_over_labels():
    pool = DemonstrationPool(POOL)
    sel = DemonstrationSelector(spec(selection="stratified", k=4, same_label=False), pool)
    got = sel.select(random.Random(3), "spam", {})
    assert sorted(r.label for r in got) == ["ham", "ham", "spam", "spam"]


def test_zero_shot(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    recipe = recipe_from_dict({
        "name": "z", "model": {"backend": "fake"}, "task": {"description": "d", "labels": ["x", "y"]},
        "demonstrations": {"path": "s.jsonl", "k": 0}, "generation": {"records": 3},
    }, base_dir=tmp_path)
    plans = Generator(recipe, load_support(recipe)).plan()
    assert all(len(p.request.messages) == 2 and not p.demonstrations for p in plans)


def test_vector_cache_persists(tmp_path):
    calls = []

    class CountingEmbedder:
        def encode(self, texts):
            calls.append(list(texts))
            return bag_of_words(texts)

    cache = VectorCache(tmp_path / "v.npz", CountingEmbedder())
    first = cache.encode(["win cash", "dinner"])
    cache.save()
    again = VectorCache(tmp_path / "v.npz", CountingEmbedder())
    second = again.encode(["dinner", "win cash"])
    assert calls == [["win cash", "dinner"]]
    assert np.allclose(second, first[::-1])
    again.encode(["a new goal"])
    assert calls[-1] == ["a new goal"]


@pytest.mark.slow
def test_nearest_with_the_bundled_minilm(tmp_path):
    """Real sentence embeddings: a query about football gets the football examples."""
    pool = DemonstrationPool(POOL, VectorCache(tmp_path / "v.npz").encode)
    sel = DemonstrationSelector(spec(selection="nearest", k=2, same_label=False), pool)
    got = sel.select(random.Random(0), None, {"topic": "a soccer game last night"})
    assert {r.id for r in got} == {"h2", "h3"}
