"""Multi-step generation: steps and chain of thought, dialogue turns, rounds and their strategies."""

from __future__ import annotations

import collections
import json

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.generate import CellStats, allocate, cell_quotas
from synthloom.recipe import RecipeError, recipe_from_dict

from scripted_model import scripted_answer, scripted_backend

QA = {
    "name": "qa", "model": {"backend": "fake"},
    "task": {"kind": "qa", "description": "reading exercises", "fields": {
        "context": "a passage", "question": "a question", "reasoning": "the reasoning", "answer": "the answer"}},
    "steps": [
        {"name": "ask", "fields": ["context", "question"]},
        {"name": "think", "fields": ["reasoning"], "keep": False},
        {"name": "answer", "fields": ["answer"]},
    ],
    "generation": {"records": 5}, "evaluation": [{"stage": "diversity"}],
}


def run(data, tmp_path, backend=None, name="out", **kw):
    recipe = recipe_from_dict(data, base_dir=tmp_path)
    return synthloom.run(recipe, tmp_path / name, progress=False, backend=backend or scripted_backend(), **kw)


def test_steps_see_earlier_fields_and_chain_of_thought_is_dropped(tmp_path):
    backend = scripted_backend()
    result = run(QA, tmp_path, backend)
    assert result.manifest["counts"]["generated"] == 5
    assert len(backend.calls) == 15
    record = result.curated[0]
    assert list(record.fields) == ["context", "question", "answer"]
    assert "reasoning" in record.meta["dropped"]
    # the answer step saw the passage, the question and the (dropped) reasoning
    answer_prompts = [r for r in backend.calls if "Now write the answer" in r.messages[-1]["content"]]
    assert len(answer_prompts) == 5
    last = answer_prompts[0].messages[-1]["content"]
    assert "Context: " in last and "Question: " in last and "Reasoning: " in last
    # the first step asks for JSON with a schema; single-field steps for plain text
    first = [r for r in backend.calls if r.json_schema is not None]
    assert len(first) == 5 and first[0].json_schema["required"] == ["context", "question"]


def test_steps_resume_from_the_cache(tmp_path):
    run(QA, tmp_path)
    first = pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()
    again = run(QA, tmp_path)
    assert again.manifest["model_calls"]["model_calls"] == 0
    assert again.manifest["model_calls"]["served_from_cache"] == 15
    assert pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist() == first


def test_a_step_that_writes_the_label(tmp_path):
    data = {
        "name": "tl", "model": {"backend": "fake"},
        "task": {"description": "reviews", "fields": {"text": "a review", "rationale": "why"},
                 "labels": {"pos": "liked it", "neg": "did not"}},
        "steps": [{"name": "write", "fields": ["text"]}, {"name": "judge", "fields": ["label"]},
                  {"name": "explain", "fields": ["rationale"]}],
        "generation": {"records": 6}, "evaluation": [{"stage": "diversity"}],
    }
    backend = scripted_backend()
    result = run(data, tmp_path, backend)
    assert {r.label for r in result.curated} <= {"pos", "neg"}
    judge = [r for r in backend.calls if r.json_schema and "label" in r.json_schema["properties"]]
    assert len(judge) == 6 and judge[0].json_schema["properties"]["label"]["enum"] == ["pos", "neg"]
    # the label was not planned: the writing step does not name one
    write = backend.calls[0].messages[-1]["content"]
    assert "that is pos" not in write and "that is neg" not in write


def test_invalid_step_answers_are_retried_and_counted(tmp_path):
    def flaky(request):
        if request.json_schema and request.attempt == 0 and request.seed % 2:
            return "I cannot do that"
        if request.json_schema and request.attempt == 0:
            return '{"context": "A passage.", "question": "Why?"'  # cut off: repaired
        return scripted_answer(request)

    result = run(QA, tmp_path, scripted_backend(flaky))
    answers = result.manifest["generation"]["answers"]
    assert answers["records"] == 5 and answers["retried"] >= 1 and answers["repaired"] >= 1
    assert answers["repairs_by_kind"]["unclosed_json"] == answers["repaired"]
    assert result.manifest["model_calls"]["failed_tries_by_kind"]["invalid_answer"] == answers["retried"]


def test_step_recipe_errors(write_recipe):
    base = "name: s\ntask: {kind: qa, description: d}\nsteps:\n"
    with pytest.raises(RecipeError, match=r"no step writes field\(s\) \['answer'\]"):
        synthloom.load_recipe(write_recipe(base + "  - {name: a, fields: [context, question]}\n"))
    with pytest.raises(RecipeError, match="unknown field"):
        synthloom.load_recipe(write_recipe(base + "  - {name: a, fields: [context, question, answer, nope]}\n"))


def test_dialogue_turns_alternate_and_see_the_history(tmp_path):
    data = {
        "name": "d", "model": {"backend": "fake"},
        "task": {"kind": "dialogue", "description": "bank support chats", "labels": {"lost_card": "a lost card", "fees": "a fee"}},
        "conditions": {"persona": {"source": "personas", "values": ["a student", "a retired nurse"]}},
        "dialogue": {"turns": 5}, "generation": {"records": 4}, "evaluation": [{"stage": "diversity"}],
    }
    backend = scripted_backend()
    result = run(data, tmp_path, backend)
    assert len(backend.calls) == 20
    record = result.curated[0]
    roles = [t["role"] for t in record.fields["turns"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert record.fields["dialogue"].startswith("User: ") and "\nAssistant: " in record.fields["dialogue"]
    # the user role plays the persona and wants help with the record's label
    user_calls = [r for r in backend.calls if "helpful assistant" not in r.messages[0]["content"]]
    assert len(user_calls) == 12
    for request in user_calls:
        system = request.messages[0]["content"]
        assert system.startswith(("You are a student", "You are a retired nurse"))
        assert "a lost card" in system or "a fee" in system
    # the assistant's call carries the conversation as chat turns; the user's as a transcript
    assistant_calls = [r for r in backend.calls if r not in user_calls]
    assert all([m["role"] for m in r.messages[1:]][-1] == "user" and len(r.messages) in (2, 4) for r in assistant_calls)
    later_user = [r for r in user_calls if r.messages[-1]["content"].startswith("The conversation so far")]
    assert len(later_user) == 8 and "User: " in later_user[0].messages[-1]["content"]


# -- rounds ------------------------------------------------------------------------


def test_allocation_goes_to_cells_under_quota_rejected_or_repetitive():
    a, b, c = (("label", "a"),), (("label", "b"),), (("label", "c"),)
    stats = [
        CellStats(a, quota=10, accepted=10),
        CellStats(b, quota=10, accepted=5, rejection_share=0.0, diversity=0.9),
        CellStats(c, quota=10, accepted=5, rejection_share=0.8, diversity=0.3),
    ]
    got = allocate(stats, 12)
    assert a not in got and sum(got.values()) == 12 and got[c] > got[b]
    stats[2].error_rate = None
    assert allocate([CellStats(a, quota=3, accepted=3)], 10) == {}
    with_errors = allocate([CellStats(a, 5, 0, error_rate=0.9), CellStats(b, 5, 0, error_rate=0.0)], 10)
    assert with_errors[a] > with_errors[b]


def test_cell_quotas_follow_weights():
    quotas = cell_quotas({"label": {"a": 3, "b": 1}, "tone": ["x", "y"]}, 40)
    assert quotas[(("label", "a"), ("tone", "x"))] == 15 and sum(quotas.values()) == 40


ROUNDS = {
    "name": "r", "model": {"backend": "fake"},
    "task": {"description": "notes", "labels": ["a", "b"]},
    "conditions": {"topic": ["x", "y"]},
    "demonstrations": {"path": "seeds.jsonl", "k": 2},
    "generation": {"records": 24},
    "curation": [{"stage": "exact_dedup"}],
    "evaluation": [{"stage": "diversity"}],
}


def seeds(tmp_path):
    (tmp_path / "seeds.jsonl").write_text("".join(
        json.dumps({"text": f"{lab} seed {i}", "label": lab}) + "\n" for lab in "ab" for i in range(3)))


def test_rounds_move_the_budget_to_the_cells_that_are_rejected(tmp_path):
    seeds(tmp_path)

    def repetitive_b(request):  # label b's records are all the same text: dedup rejects them
        if "that is b" in request.messages[-1]["content"]:
            return "the same note"
        return scripted_answer(request)

    data = {**ROUNDS, "rounds": {"count": 3, "target": 12}}
    result = run(data, tmp_path, scripted_backend(repetitive_b))
    log = result.manifest["generation"]["rounds"]["log"]
    assert log[0]["cells"] == {"label=a": {"asked": 4, "accepted": 4}, "label=b": {"asked": 4, "accepted": 1}}
    # round 2: a needs 2 more, b needs 5 and was mostly rejected: b gets most of the 8
    assert log[1]["asked"] == 8 and log[1]["cells"]["label=b"]["asked"] >= 3 * log[1]["cells"]["label=a"]["asked"]
    cells = result.manifest["generation"]["rounds"]["cells"]
    assert cells["label=a"]["accepted"] >= cells["label=a"]["quota"]
    assert cells["label=b"]["rejection_share"] > 0.5
    assert result.manifest["counts"]["generated"] == 24
    rounds = collections.Counter(r.meta["round"] for r in result.curated)
    assert set(rounds) <= {1, 2, 3}


def test_rounds_stop_when_every_cell_is_full(tmp_path):
    seeds(tmp_path)
    data = {**ROUNDS, "rounds": {"count": 4, "target": 8, "cells": ["label", "topic"]}}
    backend = scripted_backend()
    result = run(data, tmp_path, backend)
    cells = result.manifest["generation"]["rounds"]["cells"]
    assert len(cells) == 4 and all(c["accepted"] >= c["quota"] == 2 for c in cells.values())
    assert len(backend.calls) < 24  # the budget was not spent: the target was met


def test_self_instruct_puts_accepted_records_into_the_pool(tmp_path):
    seeds(tmp_path)
    data = {**ROUNDS, "rounds": {"count": 3, "strategy": "self_instruct", "synthetic_demos": 1}}
    backend = scripted_backend()
    result = run(data, tmp_path, backend)
    by_round = collections.defaultdict(list)
    generated = {r.id for r in result.curated}
    for record in pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist():
        meta = json.loads(record["meta"])
        by_round[meta["round"]].append(record["demonstrations"])
    assert all(not (set(d) & generated) for d in by_round[1])
    later = [d for r in (2, 3) for d in by_round[r]]
    assert later and all(len(set(d) & generated) == 1 and len(d) == 2 for d in later)


def test_evol_instruct_rewrites_accepted_records(tmp_path):
    seeds(tmp_path)
    data = {**ROUNDS, "rounds": {"count": 2, "strategy": "evol_instruct", "evolve_share": 1.0}}
    backend = scripted_backend()
    result = run(data, tmp_path, backend)
    evolved = [r for r in pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist() if "evolution" in (r["meta"] or "")]
    assert len(evolved) == 12
    ids = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()}
    for row in evolved:
        meta = json.loads(row["meta"])
        parent = ids[meta["parent"]]
        assert json.loads(parent["meta"])["round"] == 1 and parent["label"] == row["label"]
        assert meta["evolution"] in ("deepen", "broaden")
        prompt = json.loads(row["prompt"])[-1]["content"]
        assert parent["text"] in prompt and ("more specific" in prompt or "different, less common topic" in prompt)
    assert result.manifest["generation"]["rounds"]["strategy"] == "evol_instruct"


def test_rounds_recipe_errors(write_recipe):
    text = "name: r\ntask: {description: d, labels: [a, b]}\nrounds:\n  cells: [label, mood]\n"
    with pytest.raises(RecipeError, match="mood") as info:
        synthloom.load_recipe(write_recipe(text))
    assert info.value.line == 3
    text = "name: r\ntask: {description: d, labels: [a, b]}\nrounds:\n  curation: [{stage: nope}]\n"
    with pytest.raises(RecipeError, match="unknown value 'nope'") as info:
        synthloom.load_recipe(write_recipe(text))
    assert info.value.line == 4


def test_downstream_errors_steer_the_next_round(tmp_path):
    """Closing the loop: the class the downstream model gets wrong on real data gets more of the next round."""
    (tmp_path / "seeds.jsonl").write_text("".join(
        json.dumps({"text": f"{lab} seed {i}", "label": lab}) + "\n" for lab in "abc" for i in range(3)))
    (tmp_path / "test.jsonl").write_text("".join(
        json.dumps({"text": f"{word} test {i}", "label": lab}) + "\n"
        for lab, word in [("a", "apple"), ("b", "banana"), ("c", "cherry")] for i in range(4)))

    def texts(request):  # c's synthetic records look like a's and b's; real c messages are about cherries
        prompt = request.messages[-1]["content"]
        word = next(w for lab, w in [("a", "apple"), ("b", "banana"), ("c", "apple banana")] if f"that is {lab}" in prompt)
        return f"{word} note {request.seed}"

    def second_round(errors_weight):
        out = tmp_path / f"w{errors_weight}"
        out.mkdir()
        data = {
            **ROUNDS, "task": {"description": "notes", "labels": ["a", "b", "c"]},
            "generation": {"records": 30},
            "rounds": {"count": 3, "target": 30, "weights": {"rejection": 0, "repetition": 0, "errors": errors_weight}},
            "evaluation": [{"stage": "downstream", "trainer": "tfidf_linear", "test": {"path": str(tmp_path / "test.jsonl")}}],
        }
        (out / "seeds.jsonl").write_text((tmp_path / "seeds.jsonl").read_text())
        result = run(data, out, scripted_backend(texts))
        return result.manifest["generation"]["rounds"]["log"][1]["cells"]

    steered, plain = second_round(1.0), second_round(0.0)
    assert steered["label=c"]["asked"] > plain["label=c"]["asked"]
    assert steered["label=c"]["asked"] > steered["label=a"]["asked"]


def test_self_instruct_rejects_near_copies_by_rouge_l(tmp_path):
    """Self-Instruct's novelty rule is on by default: rephrasings of accepted records are not accepted."""
    seeds(tmp_path)
    near_copies = lambda request: f"please send me the weekly report by friday number {request.seed}"  # noqa: E731
    spec = recipe_from_dict({**ROUNDS, "rounds": {"strategy": "self_instruct"}}, base_dir=tmp_path).rounds
    assert [s.stage for s in spec.curation] == ["exact_dedup", "novelty"]
    data = {**ROUNDS, "rounds": {"count": 2, "strategy": "self_instruct"}}
    log = run(data, tmp_path, scripted_backend(near_copies)).manifest["generation"]["rounds"]["log"]
    assert log[0]["accepted"] <= 2  # every text after the first of each label is a near copy
    quota = {**ROUNDS, "rounds": {"count": 2, "strategy": "quota"}}
    assert run(quota, tmp_path, scripted_backend(near_copies), name="quota").manifest["generation"]["rounds"]["log"][0]["accepted"] == 12
