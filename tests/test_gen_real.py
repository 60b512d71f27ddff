"""Generation features on real models: the embedded SmolLM2 and a real llama.cpp server."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.generate import read_personas, read_tree
from synthloom.recipe import recipe_from_dict

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")

EMBEDDED = {"backend": "llamacpp", "n_threads": 1}


def test_concept_tree_and_personas_built_by_the_embedded_model(tmp_path):
    recipe = recipe_from_dict({
        "name": "built", "model": EMBEDDED,
        "task": {"description": "short questions people ask about cooking"},
        "conditions": {
            "topic": {"source": "concept_tree", "root": "cooking", "depth": 1, "breadth": 3, "path": "tree.yaml"},
            "persona": {"source": "personas", "generate": 2, "about": "cook at home"},
        },
        "generation": {"records": 2, "max_tokens": 40}, "evaluation": [{"stage": "diversity"}],
    }, base_dir=tmp_path)
    result = synthloom.run(recipe, tmp_path / "out", progress=False)
    tree = read_tree(tmp_path / "tree.yaml")
    assert tree.name == "cooking" and 2 <= len(tree.children) <= 3
    personas = read_personas(tmp_path / "out" / "conditions" / "persona.yaml")
    assert 1 <= len(personas) <= 2 and all(len(p) > 12 for p in personas)
    for record in result.curated:
        assert record.conditions["topic"] in tree.paths() and record.conditions["persona"] in personas


def test_quota_rounds_on_the_embedded_model(tmp_path):
    (tmp_path / "seeds.jsonl").write_text(
        '{"text": "WIN a free phone! Text WIN to 80086 now", "label": "spam"}\n'
        '{"text": "Are you coming to dinner tonight?", "label": "ham"}\n')
    recipe = recipe_from_dict({
        "name": "quota", "model": EMBEDDED,
        "task": {"description": "SMS text messages", "labels": {"spam": "an advert", "ham": "a personal message"}},
        "demonstrations": {"path": "seeds.jsonl", "k": 1},
        "rounds": {"count": 2},
        "generation": {"records": 4, "max_tokens": 40, "seed": 1}, "evaluation": [{"stage": "diversity"}],
    }, base_dir=tmp_path)
    result = synthloom.run(recipe, tmp_path / "out", progress=False)
    rounds = result.manifest["generation"]["rounds"]
    # round 1 asks one record per label; round 2 the rest of the budget, for the labels under quota
    assert [entry["asked"] for entry in rounds["log"]] == [2, 2]
    assert set(rounds["cells"]) == {"label=spam", "label=ham"}
    rows = pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()
    assert {json.loads(r["meta"])["round"] for r in rows} <= {1, 2}


def test_annotation_through_a_real_server_with_logprobs(tmp_path, llama_server):
    (tmp_path / "in.jsonl").write_text(
        '{"text": "FREE entry to win a holiday, text WIN to 80082"}\n{"text": "see you at the station at 6"}\n')
    (tmp_path / "seeds.jsonl").write_text(
        '{"text": "Claim your cash prize now, call 09061", "label": "spam"}\n'
        '{"text": "running late, start without me", "label": "ham"}\n')
    recipe = recipe_from_dict({
        "name": "ann", "model": {"backend": "openai", "base_url": llama_server, "model": "smollm2", "concurrency": 2},
        "task": {"description": "SMS messages", "labels": {"spam": "an advert", "ham": "a personal message"}},
        "demonstrations": {"path": "seeds.jsonl", "k": 2, "selection": "stratified"},
        "annotation": {"input": {"path": "in.jsonl"}, "samples": 3},
        "evaluation": [{"stage": "diversity"}],
    }, base_dir=tmp_path)
    result = synthloom.run(recipe, tmp_path / "out", progress=False)
    assert result.manifest["generation"]["annotated"] == 2
    for record in result.curated:
        assert record.label in ("spam", "ham")
        assert 0 < record.scores["self_consistency"] <= 1
        assert 0 < record.scores["label_logprob"] <= 1
        assert sum(record.meta["votes"].values()) >= 2
