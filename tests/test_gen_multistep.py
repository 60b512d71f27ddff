"""Multi-step generation: steps and chain of thought, dialogue turns, rounds and their strategies."""

from __future__ import annotations

import collections
import importlib
import json

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.generate import CellStats, allocate, cell_quotas
from synthloom.generate.evolve import OPERATIONS
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
    # each record's first answer was either refused (asked again) or cut off (repaired), never both
    assert answers["records"] == 5 and answers["retried"] + answers["repaired"] == 5
    assert answers["retried"] >= 1 and answers["repaired"] >= 1
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
        assert ("a lost card" in system) != ("a fee" in system)  # the one label of its record
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
        prompt = json.loads(row["prompt"])[-1]["content"]
        assert parent["text"] in prompt and OPERATIONS[meta["evolution"]] in prompt
        assert meta["evolution_request"] == OPERATIONS[meta["evolution"]] and meta["parent_fields"] == {"text": parent["text"]}
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


FRUIT = [("a", "apple"), ("b", "banana"), ("c", "cherry")]


def fruit_texts(request):  # c's synthetic records look like a's and b's; real c messages are about cherries
    prompt = request.messages[-1]["content"]
    word = next(w for lab, w in [("a", "apple"), ("b", "banana"), ("c", "apple banana")] if f"that is {lab}" in prompt)
    return f"{word} note {request.seed}"


def fruit_files(folder, seeds_per_label=3):
    """Seeds, a validation file and a test file whose every record carries the mark TESTMARK."""
    (folder / "seeds.jsonl").write_text("".join(
        json.dumps({"text": f"{lab} seed {i}", "label": lab}) + "\n" for lab in "abc" for i in range(seeds_per_label)))
    for name, mark in [("dev", "dev"), ("test", "TESTMARK")]:
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps({"text": f"{word} {mark} {i}", "label": lab}) + "\n" for lab, word in FRUIT for i in range(4)))


def fruit_recipe(folder, errors_weight=1.0, **rounds):
    return {
        **ROUNDS, "task": {"description": "notes", "labels": ["a", "b", "c"]},
        "generation": {"records": 30},
        "rounds": {"count": 3, "target": 30, "weights": {"rejection": 0, "repetition": 0, "errors": errors_weight}, **rounds},
        "evaluation": [{"stage": "downstream", "trainer": "tfidf_linear", "test": {"path": str(folder / "test.jsonl")}}],
    }


@pytest.fixture
def trainer_inputs(monkeypatch):
    """Every text the downstream trainer is fit on or predicts, by phase: `loop` until the final evaluation starts."""
    from synthloom.train import TfidfLinear

    run_module = importlib.import_module("synthloom.execute.run")  # the module; the package exports run()

    seen = {"phase": "loop", "loop": {"fit": [], "predict": []}, "final": {"fit": [], "predict": []}}
    fit, predict, evaluate = TfidfLinear.fit, TfidfLinear.predict, run_module.evaluate

    def spy_fit(self, inputs, labels, weights=None):
        seen[seen["phase"]]["fit"].append([x[0] for x in inputs])
        return fit(self, inputs, labels, weights)

    def spy_predict(self, inputs):
        seen[seen["phase"]]["predict"].append([x[0] for x in inputs])
        return predict(self, inputs)

    def final(*args, **kw):
        seen["phase"] = "final"
        return evaluate(*args, **kw)

    monkeypatch.setattr(TfidfLinear, "fit", spy_fit)
    monkeypatch.setattr(TfidfLinear, "predict", spy_predict)
    monkeypatch.setattr(run_module, "evaluate", final)
    return seen


def test_downstream_errors_on_validation_data_steer_the_next_round(tmp_path, trainer_inputs):
    """Closing the loop: the class the model gets wrong on validation data gets more of the next round."""
    fruit_files(tmp_path)

    def second_round(errors_weight):
        out = tmp_path / f"w{errors_weight}"
        out.mkdir()
        data = fruit_recipe(tmp_path, errors_weight, validation={"path": str(tmp_path / "dev.jsonl")})
        (out / "seeds.jsonl").write_text((tmp_path / "seeds.jsonl").read_text())
        result = run(data, out, scripted_backend(fruit_texts))
        trainer_inputs["phase"] = "loop"
        return result

    steered = second_round(1.0)
    loop = steered.manifest["generation"]["rounds"]["loop"]
    assert loop["on"] and loop["n_validation"] == 12 and loop["validation"].endswith("dev.jsonl")
    plain = second_round(0.0)
    assert plain.manifest["generation"]["rounds"]["loop"] == {"on": False, "reason": "closed loop off: rounds.weights.errors is 0"}
    cells = [r.manifest["generation"]["rounds"]["log"][1]["cells"] for r in (steered, plain)]
    assert cells[0]["label=c"]["asked"] > cells[1]["label=c"]["asked"]
    assert cells[0]["label=c"]["asked"] > cells[0]["label=a"]["asked"]
    # the loop's model was fit and scored after each of the 3 rounds of the steered run, on the validation file only
    loop_seen = trainer_inputs["loop"]
    assert len(loop_seen["fit"]) == 3 and len(loop_seen["predict"]) == 3
    dev = {json.loads(line)["text"] for line in (tmp_path / "dev.jsonl").read_text().splitlines()}
    assert all(set(texts) == dev for texts in loop_seen["predict"])
    # no test record reached the loop's trainer; the final evaluation scored every one of them
    assert not [t for texts in loop_seen["fit"] + loop_seen["predict"] for t in texts if "TESTMARK" in t]
    final_scored = {t for texts in trainer_inputs["final"]["predict"] for t in texts}
    assert sum("TESTMARK" in t for t in final_scored) == 12
    assert steered.metrics["downstream"]["n_test"] == 12


def test_without_validation_data_the_loop_holds_out_demonstrations(tmp_path, trainer_inputs):
    """No `rounds.validation`: a seeded, stratified share of the seeds is held out, scored, and never shown."""
    fruit_files(tmp_path, seeds_per_label=5)
    backend = scripted_backend(fruit_texts)
    result = run(fruit_recipe(tmp_path), tmp_path, backend)
    loop = result.manifest["generation"]["rounds"]["loop"]
    assert loop["on"] and loop["n_validation"] == 3 and loop["labels"] == 3  # round(0.2 * 5) = 1 of each label
    scored = trainer_inputs["loop"]["predict"]
    assert len(scored) == 3 and scored[0] == scored[1] == scored[2]  # the same records every round
    held = set(scored[0])
    assert {t.split()[0] for t in held} == {"a", "b", "c"} and all(" seed " in t for t in held)
    prompts = [m["content"] for request in backend.calls for m in request.messages]
    assert not [t for t in held if any(t in p for p in prompts)]  # never shown as a demonstration
    shown = {t for p in prompts for t in (f"{lab} seed {i}" for lab in "abc" for i in range(5)) if t in p}
    assert len(shown) == 12  # every other seed was
    assert not [t for texts in trainer_inputs["loop"]["fit"] + scored for t in texts if "TESTMARK" in t]


def test_without_validation_data_the_loop_is_off_and_says_why(tmp_path, trainer_inputs):
    fruit_files(tmp_path)
    data = {k: v for k, v in fruit_recipe(tmp_path).items() if k != "demonstrations"}
    result = run(data, tmp_path, scripted_backend(fruit_texts))
    assert result.manifest["generation"]["rounds"]["loop"]["on"] is False
    assert [n for n in result.manifest["notes"] if n.startswith("closed loop off: no validation data")]
    assert trainer_inputs["loop"] == {"fit": [], "predict": []}
    assert sum("TESTMARK" in t for texts in trainer_inputs["final"]["predict"] for t in texts) == 12


def test_the_test_data_cannot_be_the_loop_validation(tmp_path):
    fruit_files(tmp_path)
    same = fruit_recipe(tmp_path, validation={"path": str(tmp_path / "test.jsonl")})
    with pytest.raises(RecipeError, match="is the downstream stage's test data"):
        recipe_from_dict(same, base_dir=tmp_path)
    split = {"test_fraction": 0.5, "seed": 1}
    parts = fruit_recipe(tmp_path, validation={"path": str(tmp_path / "test.jsonl"), "split": {**split, "part": "train"}})
    parts["evaluation"][0]["test"]["split"] = {**split, "part": "test"}
    assert recipe_from_dict(parts, base_dir=tmp_path).rounds.validation.split.part == "train"  # the other part of one split
    parts["rounds"]["validation"]["split"]["seed"] = 2  # another split of the same file may share rows
    with pytest.raises(RecipeError, match="is the downstream stage's test data"):
        recipe_from_dict(parts, base_dir=tmp_path)


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
