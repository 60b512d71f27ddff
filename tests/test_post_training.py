"""Chat (SFT) data: the `chat` task kind in `messages` form, Evol-Instruct's operations and its elimination step."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.curate import curate
from synthloom.generate.evolve import IN_BREADTH, IN_DEPTH, OPERATIONS
from synthloom.recipe import EvolEliminationSpec, RecipeError, recipe_from_dict
from synthloom.records import Record

from scripted_model import scripted_answer, scripted_backend

CHAT = {
    "name": "chat", "model": {"backend": "fake"},
    "task": {"kind": "chat", "description": "requests to a cooking assistant",
             "system_prompt": "You are a cooking assistant for {{ conditions.persona }}.",
             "fields": {"instruction": "a request", "response": "a helpful answer"}},
    "conditions": {"persona": ["a student", "a chef"], "topic": ["bread", "soup"]},
    "steps": [{"name": "ask", "fields": ["instruction"]}, {"name": "answer", "fields": ["response"]}],
    "generation": {"records": 6}, "evaluation": [{"stage": "diversity"}],
}


def run(data, tmp_path, backend=None):
    recipe = recipe_from_dict(data, base_dir=tmp_path)
    return synthloom.run(recipe, tmp_path / "out", progress=False, backend=backend or scripted_backend())


def test_chat_records_carry_messages_with_the_system_prompt(tmp_path):
    result = run(CHAT, tmp_path)
    rows = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    assert len(rows) == 6
    for row in rows:
        messages = row["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert messages[0]["content"] == f"You are a cooking assistant for {row['conditions']['persona']}."
        assert messages[1]["content"] == row["instruction"] and messages[2]["content"] == row["response"]
    assert result.manifest["counts"]["curated"] == 6


def test_chat_dialogue_is_multi_turn_without_a_system_prompt(tmp_path):
    data = {**CHAT, "task": {"kind": "chat", "description": "support chats", "fields": {
        "conversation": "the conversation"}}, "dialogue": {"turns": 4}}
    data.pop("steps")
    run(data, tmp_path)
    rows = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    assert rows and all([m["role"] for m in r["messages"]] == ["user", "assistant"] * 2 for r in rows)
    assert all(r["messages"][0]["content"] in r["conversation"] for r in rows)


def test_chat_dialogue_assistant_answers_under_the_saved_system_prompt(tmp_path):
    data = {**CHAT, "task": {"kind": "chat", "description": "support chats", "system_prompt": "Be kind, {{ conditions.persona }}.",
                             "fields": {"conversation": "the conversation"}}, "dialogue": {"turns": 2}}
    data.pop("steps")
    backend = scripted_backend()
    run(data, tmp_path, backend)
    rows = pq.read_table(tmp_path / "out" / "curated.parquet").to_pylist()
    systems = {r["messages"][0]["content"] for r in rows}
    assert systems and systems <= {"Be kind, a student.", "Be kind, a chef."}
    assistant_calls = [c for c in backend.calls if c.messages[-1]["role"] == "user" and c.messages[0]["content"].startswith("Be kind")]
    assert len(assistant_calls) == len(rows)  # one assistant turn per conversation, under the saved system prompt


def test_chat_recipe_errors():
    with pytest.raises(RecipeError, match="system_prompt needs kind: chat"):
        recipe_from_dict({**CHAT, "task": {"description": "d", "system_prompt": "x", "labels": ["a", "b"]}})
    with pytest.raises(RecipeError, match="two fields"):
        recipe_from_dict({**CHAT, "task": {"kind": "chat", "description": "d", "fields": {"only": "x"}}, "steps": None})
    with pytest.raises(RecipeError, match="cannot be combined with steps"):
        recipe_from_dict({**CHAT, "dialogue": {"turns": 2}})
    with pytest.raises(RecipeError, match="unknown value|Input should be"):
        recipe_from_dict({**CHAT, "rounds": {"strategy": "evol_instruct", "operations": ["shorten"], "cells": ["topic"]}})


def test_the_papers_operations_are_all_there():
    assert set(IN_DEPTH) == {"add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input"}
    assert set(IN_BREADTH) == {"broaden"} and set(OPERATIONS) == set(IN_DEPTH) | set(IN_BREADTH)
    recipe = recipe_from_dict({**CHAT, "rounds": {"strategy": "evol_instruct", "cells": ["topic"]}})
    assert sorted(recipe.rounds.operations) == sorted(OPERATIONS)
    assert [s.stage for s in recipe.rounds.curation] == ["exact_dedup", "evol_elimination"]


def evolved(instruction, response, parent="How do I bake bread?", operation="add_constraints", i=0):
    return Record(f"r{i}", {"instruction": instruction, "response": response}, meta={
        "parent": "p", "evolution": operation, "evolution_request": OPERATIONS[operation],
        "parent_fields": {"instruction": parent, "response": "Mix flour, water and yeast, then bake."}})


@pytest.mark.parametrize("instruction, response, operation, reason", [
    ("How do I bake bread?", "Mix flour and water, knead, rise, then bake for forty minutes.", "deepen", "no_new_information"),
    ("How do I bake bread? bread", "Mix flour and water, knead, rise, then bake for forty minutes.", "concretize", "no_new_information"),
    ("How do I bake rye bread without yeast in under two hours?", "I'm sorry, I cannot help with that.", "add_constraints", "cannot_answer"),
    ("How do I bake rye bread without yeast in under two hours?", "Yes.", "add_constraints", "response_too_short"),
    ("How do I bake rye bread without yeast in under two hours?", "How do I bake rye bread without yeast in under two hours?", "add_constraints", "response_copies_instruction"),
    ("#Rewritten Prompt#: How do I bake rye bread quickly?", "Use a sourdough starter and a hot oven for rye.", "add_constraints", "copies_request"),
    ("Rewrite this example with one more constraint: bread", "Use a sourdough starter and a hot oven for rye.", "add_constraints", "copies_request"),
    ("How do I bake rye bread without yeast in under two hours?", "Use baking soda and buttermilk; bake at 200 C for 45 minutes.", "add_constraints", None),
    ("How do I bake bread?", "Mix flour and water, knead, rise, then bake for forty minutes.", "broaden", None),
])
def test_elimination_rules(instruction, response, operation, reason):
    record = evolved(instruction, response, operation=operation)
    result = curate([record, Record("seed", {"instruction": "Plain seed", "response": "An answer here."})],
                    [EvolEliminationSpec(field="instruction")])
    seed = next(r for r in result.kept if r.id == "seed")
    assert seed.reasons["evol_elimination"] == "not evolved"
    if reason is None:
        assert record in result.kept
    else:
        assert result.dropped == [record] and record.reasons["evol_elimination"] == reason
    assert result.funnel[0].dropped == (0 if reason is None else 1)


def test_evol_rounds_count_eliminations_in_the_manifest(tmp_path):
    # Evolution requests: add_constraints is answered with the "#Rewritten Prompt#" copy, the others
    # with a new request; every other call gets the scripted answer ("Answer N to: ...").
    data = {**CHAT, "generation": {"records": 16},
            "rounds": {"count": 2, "strategy": "evol_instruct", "evolve_share": 1.0, "cells": ["topic"]}}

    def answer(request):
        text = request.messages[-1]["content"]
        if OPERATIONS["add_constraints"] in text:
            return f"#Rewritten Prompt#: a request {request.seed}"
        if any(OPERATIONS[op] in text for op in OPERATIONS):
            return f"Plan a week of meals on a budget of {request.seed % 97} euros"
        return scripted_answer(request)

    result = run(data, tmp_path, scripted_backend(answer))
    evolution = result.manifest["generation"]["rounds"]["evolution"]
    rows = pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()
    metas = [json.loads(r["meta"]) for r in rows]
    copies = [m for m in metas if m.get("eliminated") == "copies_request"]
    assert evolution["evolved"] == sum(1 for m in metas if "evolution" in m) > 0
    assert copies and evolution["eliminated"]["copies_request"] == len(copies)
    assert all(m["evolution"] == "add_constraints" for m in copies)
    assert len(copies) == sum(1 for m in metas if m.get("evolution") == "add_constraints")
    assert set(evolution["eliminated"]) == {"copies_request"}  # the other evolutions pass every rule
    log = result.manifest["generation"]["rounds"]["log"]
    assert sum(e["eliminated"].get("copies_request", 0) for e in log) == len(copies)


def test_an_equality_judge_drops_evolutions_that_add_nothing(tmp_path):
    from synthloom.curate import CurationContext

    def judge(request):
        text = request.messages[-1]["content"]
        child = text.split("Second instruction:\n")[1].split("\n\n")[0]
        if "garbled" in child:
            return "no idea"
        return json.dumps({"equal": "yes" if "please" in child else "no"})

    backend = scripted_backend(judge)
    context = CurationContext(text_field="instruction", cache_path=tmp_path / "cache.sqlite",
                              backend_factory=lambda config: backend)
    records = [evolved("How do I bake bread, please?", "Mix flour and water, knead, rise, bake.", i=0),
               evolved("How do I bake rye bread without yeast in under two hours?", "Use soda bread methods.", i=1),
               evolved("How do I bake garbled bread in under two hours?", "Use soda bread methods.", i=2),
               evolved("Plan a picnic for six people.", "Pack sandwiches and fruit.", operation="broaden", i=3)]
    spec = EvolEliminationSpec(field="instruction", judge={"backend": "fake"})
    result = curate(records, [spec], context)
    assert [r.id for r in result.dropped] == ["r0"] and records[0].reasons["evol_elimination"] == "no_new_information (judge)"
    assert records[2].reasons["evol_elimination"].startswith("kept: the judge gave no usable answer")
    assert len(backend.calls) >= 3 and not any("picnic" in c.messages[-1]["content"] for c in backend.calls)  # breadth: not judged
