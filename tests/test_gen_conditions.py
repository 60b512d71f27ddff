"""Condition samplers and sources: weights, coverage, label quotas, concept trees, graphs, personas."""

from __future__ import annotations

import asyncio
import collections
import json

import pytest

import synthloom
from synthloom.generate import (
    ConceptNode,
    ConditionSampler,
    FactSampler,
    Generator,
    NeedsModel,
    coverage_design,
    load_facts,
    read_tree,
    resolve_conditions,
    write_tree,
)
from synthloom.generate.conditions import record_rng
from synthloom.llm import CompletionCache, Scheduler
from synthloom.recipe import KnowledgeGraphSpec, RecipeError, load_recipe, recipe_from_dict

from scripted_model import scripted_backend


def test_coverage_balances_every_combination():
    design = coverage_design({"label": ["a", "b"], "topic": ["x", "y", "z"]}, 60, seed=1)
    combos = collections.Counter((c["label"], c["topic"]) for c in design)
    assert len(combos) == 6 and set(combos.values()) == {10}
    assert design == coverage_design({"label": ["a", "b"], "topic": ["x", "y", "z"]}, 60, seed=1)
    assert design != coverage_design({"label": ["a", "b"], "topic": ["x", "y", "z"]}, 60, seed=2)


def test_coverage_follows_weights():
    design = coverage_design({"tone": {"calm": 3, "loud": 1}, "topic": ["x", "y"]}, 80, seed=0)
    combos = collections.Counter((c["tone"], c["topic"]) for c in design)
    assert combos == {("calm", "x"): 30, ("calm", "y"): 30, ("loud", "x"): 10, ("loud", "y"): 10}


def test_coverage_with_fewer_records_than_cells_still_balances_each_value():
    dims = {"label": ["a", "b"], "topic": [f"t{i}" for i in range(10)], "tone": [f"s{i}" for i in range(10)]}
    design = coverage_design(dims, 40, seed=3)  # 200 cells, 40 records
    assert collections.Counter(c["label"] for c in design) == {"a": 20, "b": 20}
    assert set(collections.Counter(c["topic"] for c in design).values()) == {4}
    assert len({tuple(c.values()) for c in design}) >= 36  # combinations hardly repeat


def test_coverage_sampler_balances_labels_with_conditions():
    conditions = {"topic": ["x", "y", "z", "w"]}
    independent = ConditionSampler(conditions, ["a", "b"], None, 16, seed=0)
    coverage = ConditionSampler(conditions, ["a", "b"], None, 16, seed=0, mode="coverage")
    cells_cov = collections.Counter(coverage.draw(i)[0] + coverage.draw(i)[1]["topic"] for i in range(16))
    assert set(cells_cov.values()) == {2}
    labels = collections.Counter(independent.draw(i)[0] for i in range(16))
    assert labels == {"a": 8, "b": 8}  # labels always by quota


def test_fixed_cell_pins_label_and_condition():
    sampler = ConditionSampler({"topic": ["x", "y"], "tone": ["calm"]}, ["a", "b"], None, 10, seed=0)
    for i in range(10):
        label, conditions = sampler.draw(i, fixed={"label": "b", "topic": "y"})
        assert label == "b" and conditions == {"topic": "y", "tone": "calm"}


def test_multilabel_records_carry_one_to_max_labels(tmp_path):
    recipe = recipe_from_dict({
        "name": "ml", "model": {"backend": "fake"},
        "task": {"kind": "multilabel", "description": "news", "labels": ["sport", "money", "politics"], "max_labels": 2},
        "generation": {"records": 30},
    }, base_dir=tmp_path)
    plans = Generator(recipe).plan()
    sets = [p.label.split("|") for p in plans]
    assert all(1 <= len(s) <= 2 and len(set(s)) == len(s) for s in sets)
    assert any(len(s) == 2 for s in sets)
    primary = collections.Counter(label for s in sets for label in s)
    assert min(primary.values()) >= 10
    assert "all of: " in plans[next(i for i, s in enumerate(sets) if len(s) == 2)].request.messages[-1]["content"]


# -- concept trees -----------------------------------------------------------------


def test_concept_tree_file_round_trip(tmp_path):
    tree = ConceptNode("banking", [
        ConceptNode("cards", [ConceptNode("lost card"), ConceptNode("card delivery")]),
        ConceptNode("transfers"),
    ])
    path = tmp_path / "tree.yaml"
    write_tree(path, tree, "test tree")
    assert path.read_text().startswith("# test tree")
    again = read_tree(path)
    assert again.paths() == ["banking > cards > lost card", "banking > cards > card delivery", "banking > transfers"]
    assert again.paths(leaves_only=False)[0] == "banking > cards"


def test_concept_tree_is_expanded_saved_and_reused(tmp_path):
    data = {
        "name": "tree", "model": {"backend": "fake"},
        "task": {"description": "bank questions", "labels": ["a", "b"]},
        "conditions": {"subtopic": {"source": "concept_tree", "root": "banking", "depth": 2, "breadth": 3, "path": "tree.yaml"}},
        "generation": {"records": 12}, "evaluation": [{"stage": "diversity"}],
    }
    recipe = recipe_from_dict(data, base_dir=tmp_path)
    with pytest.raises(NeedsModel):
        Generator(recipe).plan()
    backend = scripted_backend()
    result = synthloom.run(recipe, tmp_path / "out", progress=False, backend=backend)
    expansion_calls = [r for r in backend.calls if r.json_schema and "subtopics" in r.json_schema["properties"]]
    assert len(expansion_calls) == 1 + 3  # the root, then its 3 children
    tree = read_tree(tmp_path / "tree.yaml")
    assert len(tree.paths()) == 9
    assert (tmp_path / "out" / "conditions" / "subtopic.yaml").exists()
    assert result.manifest["generation"]["conditions"]["values"]["subtopic"] == 9
    assert all(r.conditions["subtopic"] in tree.paths() for r in result.curated)
    # The user edits the file; the next run uses it and asks the model nothing for it.
    (tmp_path / "tree.yaml").write_text("banking:\n  - mortgages\n  - savings\n")
    plans = Generator(load_recipe_from(data, tmp_path)).plan()
    assert {p.conditions["subtopic"] for p in plans} == {"banking > mortgages", "banking > savings"}


def load_recipe_from(data, base):
    return recipe_from_dict(data, base_dir=base)


def test_concept_tree_recipe_errors_name_the_line(write_recipe):
    path = write_recipe("""\
name: t
task: {description: d}
conditions:
  subtopic:
    source: concept_tree
    root: banking
    depth: 9
""")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.line == 7 and info.value.key == "conditions.subtopic.depth"
    path = write_recipe("name: t\ntask: {description: d}\nconditions:\n  x: {source: wikipedia}\n")
    with pytest.raises(RecipeError, match="unknown source 'wikipedia'") as info:
        load_recipe(path)
    assert info.value.line == 4
    path = write_recipe("name: t\ntask: {description: d}\nconditions:\n  tone: {calm: 1, loud: lots}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.key == "conditions.tone.loud"


# -- knowledge graphs --------------------------------------------------------------

TRIPLES = """subject\trelation\tobject
Paris\tcapital_of\tFrance
France\tcurrency\teuro
Berlin\tcapital_of\tGermany
Germany\tcurrency\teuro
Tokyo\tcapital_of\tJapan
"""


def test_knowledge_graph_triples_and_connected_draws(tmp_path):
    (tmp_path / "kg.tsv").write_text(TRIPLES)
    spec = KnowledgeGraphSpec.model_validate({"path": "kg.tsv", "per_record": 2}, context={"base_dir": str(tmp_path)})
    facts = load_facts(spec)
    assert facts[0].text == "Paris capital of France"
    sampler = FactSampler(facts, 2, connected=True)
    for i in range(30):
        drawn = sampler(record_rng(0, i, "kg")).split("; ")
        assert len(drawn) == 2 and drawn[0] != drawn[1]
        if drawn[0] != "Tokyo capital of Japan":  # the one fact with no neighbour
            first, second = (set(next(f.entities for f in facts if f.text == d)) for d in drawn)
            assert first & second, drawn


def test_knowledge_graph_entities_jsonl_and_bad_columns(tmp_path):
    (tmp_path / "e.jsonl").write_text('{"entity": "Ada Lovelace", "description": "wrote the first program"}\n')
    spec = KnowledgeGraphSpec.model_validate({"path": "e.jsonl"}, context={"base_dir": str(tmp_path)})
    assert load_facts(spec)[0].text == "Ada Lovelace: wrote the first program"
    (tmp_path / "bad.tsv").write_text("a\tb\nx\ty\n")
    spec = KnowledgeGraphSpec.model_validate({"path": "bad.tsv"}, context={"base_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="bad.tsv: expected columns subject/relation/object"):
        load_facts(spec)


def test_knowledge_graph_facts_reach_the_prompt(tmp_path):
    (tmp_path / "kg.tsv").write_text(TRIPLES)
    recipe = recipe_from_dict({
        "name": "kg", "model": {"backend": "fake"}, "task": {"description": "quiz questions"},
        "conditions": {"facts": {"source": "knowledge_graph", "path": "kg.tsv"}},
        "generation": {"records": 10, "condition_sampling": "coverage"},
    }, base_dir=tmp_path)
    plans = Generator(recipe).plan()
    assert collections.Counter(p.conditions["facts"] for p in plans).most_common(1)[0][1] == 2
    assert f"Facts: {plans[0].conditions['facts']}" in plans[0].request.messages[-1]["content"]


# -- personas ----------------------------------------------------------------------


def test_personas_listed_or_generated_and_saved(tmp_path):
    data = {
        "name": "p", "model": {"backend": "fake"}, "task": {"description": "product reviews"},
        "conditions": {"persona": {"source": "personas", "generate": 5, "about": "shop online", "path": "people.yaml"}},
        "generation": {"records": 6},
    }
    recipe = recipe_from_dict(data, base_dir=tmp_path)
    backend = scripted_backend()
    scheduler = Scheduler(backend, CompletionCache(tmp_path / "c.sqlite"))
    resolved = asyncio.run(resolve_conditions(recipe, scheduler, tmp_path / "out"))
    personas = resolved.draws["persona"]
    assert len(personas) == 5 and len(set(personas)) == 5
    assert all("shop online" in r.messages[-1]["content"] for r in backend.calls)
    saved = (tmp_path / "people.yaml").read_text()
    assert all(p in saved for p in personas)
    listed = recipe_from_dict({**data, "conditions": {"persona": {"source": "personas", "values": ["a nurse", "a pilot"]}}}, base_dir=tmp_path)
    assert {p.conditions["persona"] for p in Generator(listed).plan()} == {"a nurse", "a pilot"}
    with pytest.raises(RecipeError, match="personas need values"):
        recipe_from_dict({**data, "conditions": {"persona": {"source": "personas"}}}, base_dir=tmp_path)


def test_conditions_are_stored_on_records(tmp_path):
    recipe = recipe_from_dict({
        "name": "c", "model": {"backend": "fake"}, "task": {"description": "notes", "labels": ["a", "b"]},
        "conditions": {"topic": ["x", "y"], "persona": {"source": "personas", "values": ["a nurse"]}},
        "generation": {"records": 4}, "evaluation": [{"stage": "diversity"}],
    }, base_dir=tmp_path)
    synthloom.run(recipe, tmp_path / "out", progress=False, backend=scripted_backend())
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()
    assert all(r["conditions"]["persona"] == "a nurse" and r["conditions"]["topic"] in "xy" for r in rows)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["generation"]["conditions"]["values"] == {"topic": 2, "persona": 1}


def test_independent_sampling_follows_condition_weights():
    from synthloom.generate.conditions import ConditionSampler

    sampler = ConditionSampler({"tone": {"casual": 3, "urgent": 1}, "topic": ["x", "y"]}, ["a", "b"], None, 4000, seed=5)
    draws = [sampler.draw(i)[1] for i in range(4000)]
    casual = sum(d["tone"] == "casual" for d in draws) / len(draws)
    x = sum(d["topic"] == "x" for d in draws) / len(draws)
    assert 0.72 < casual < 0.78 and 0.47 < x < 0.53
