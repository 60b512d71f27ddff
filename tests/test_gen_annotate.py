"""Annotation mode: majority labels, self-consistency and label-token confidence, same run directory."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.generate.annotate import label_probability
from synthloom.llm import Completion, TokenLogprob
from synthloom.recipe import RecipeError, recipe_from_dict

from scripted_model import scripted_backend

LABELS = {"spam": "adverts and prizes", "ham": "ordinary messages"}


def write_inputs(tmp_path):
    (tmp_path / "inputs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in [
        "WIN a free prize now", "see you at the pub", "claim your cash reward", "running late, sorry"]))
    (tmp_path / "labelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "free ringtones text TONES", "label": "spam"}, {"text": "dinner at 7?", "label": "ham"}]))


def recipe(tmp_path, **annotation):
    return recipe_from_dict({
        "name": "ann", "model": {"backend": "fake"},
        "task": {"description": "SMS messages", "labels": LABELS},
        "demonstrations": {"path": "labelled.jsonl", "k": 2, "selection": "stratified"},
        "annotation": {"input": {"path": "inputs.jsonl"}, "samples": 3, **annotation},
        "evaluation": [{"stage": "diversity"}],
    }, base_dir=tmp_path)


def voter(request):
    """Spam for texts with prize/cash, except the third sample, which always says ham."""
    text = request.messages[-1]["content"].lower()
    label = "spam" if ("prize" in text or "cash" in text) and request.sample != 2 else "ham"
    return json.dumps({"label": label}) if request.json_schema else label


def test_majority_label_and_self_consistency(tmp_path):
    write_inputs(tmp_path)
    backend = scripted_backend(voter)
    result = synthloom.run(recipe(tmp_path), tmp_path / "out", progress=False, backend=backend)
    assert len(backend.calls) == 12
    greedy = [r for r in backend.calls if r.sample == 0]
    assert all(r.temperature == 0 and r.logprobs for r in greedy)
    assert all(r.temperature == 0.7 and not r.logprobs for r in backend.calls if r.sample)
    rows = {r["text"]: r for r in pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()}
    assert rows["WIN a free prize now"]["label"] == "spam"
    assert rows["WIN a free prize now"]["self_consistency_score"] == pytest.approx(2 / 3)
    assert rows["see you at the pub"]["label"] == "ham"
    assert rows["see you at the pub"]["self_consistency_score"] == 1.0
    assert json.loads(rows["see you at the pub"]["meta"])["votes"] == {"ham": 3}
    manifest = result.manifest
    assert manifest["generation"]["annotated"] == 4
    assert manifest["counts"]["generated"] == 4
    for name in ["manifest.json", "generated.parquet", "curated.parquet", "metrics.json", "report.html"]:
        assert (tmp_path / "out" / name).exists()
    # labelled examples are shown as earlier turns, one per label
    first = greedy[0].messages
    assert [m["role"] for m in first[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert {json.loads(first[2]["content"])["label"], json.loads(first[4]["content"])["label"]} == {"spam", "ham"}
    assert "spam: adverts and prizes" in first[0]["content"]


def test_label_token_probability():
    tokens = [TokenLogprob('{"', -0.01), TokenLogprob("label", -0.02), TokenLogprob('":', -0.01),
              TokenLogprob(' "', -0.05), TokenLogprob("sp", math.log(0.8), [("sp", math.log(0.8)), ("ham", math.log(0.15))]),
              TokenLogprob("am", math.log(0.9)), TokenLogprob('"}', -0.01)]
    completion = Completion('{"label": "spam"}', "stop", logprobs=tokens)
    probability, split = label_probability(completion, "spam", ["spam", "ham"])
    assert probability == pytest.approx(0.72)
    assert split == {"spam": pytest.approx(0.8421, abs=1e-3), "ham": pytest.approx(0.1579, abs=1e-3)}
    assert label_probability(Completion("spam"), "spam", ["spam"]) == (None, {})


def test_label_logprob_score_is_written(tmp_path):
    write_inputs(tmp_path)

    def with_logprobs(request):
        label = voter(request)
        if not request.logprobs:
            return label
        text = label
        return Completion(text, "stop", logprobs=[TokenLogprob(text, math.log(0.6), [(text, math.log(0.6))])])

    synthloom.run(recipe(tmp_path, samples=1), tmp_path / "out", progress=False, backend=scripted_backend(with_logprobs))
    rows = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    assert all(r["label_logprob_score"] == pytest.approx(0.6) for r in rows)


def test_annotation_recipe_errors(write_recipe):
    (write_recipe("{}", "in.jsonl"))
    text = "name: a\ntask: {description: d}\nannotation:\n  input: {path: in.jsonl}\n"
    with pytest.raises(RecipeError, match="single-label task with labels") as info:
        synthloom.load_recipe(write_recipe(text))
    assert info.value.line == 3
