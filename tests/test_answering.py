"""Answering a QA / generative benchmark with the records as worked examples, against zero-shot.

The logic runs on the scripted fake backend; the HTTP path on the repo's
loopback server; the whole stage once on the embedded model through a run.
"""

from __future__ import annotations

import json

import pytest

import synthloom
from synthloom.evaluate import BENCHMARKS, EvaluationContext, answer_benchmark, evaluate, load_benchmark
from synthloom.evaluate.faithfulness import wilson_interval
from synthloom.evaluate.judge import Judge
from synthloom.llm import FakeBackend, FakeConfig, OpenAIConfig
from synthloom.recipe import RecipeError, recipe_from_dict
from synthloom.recipe.evaluation import ANSWERED_BENCHMARKS, AnsweringSpec
from synthloom.records import DataError, Record
from synthloom.report.card import answering_scores

from conftest import run_cli

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]


def synthetic(n: int = 5) -> list[Record]:
    return [
        Record(id=f"s{i}", fields={"context": f"Tom keeps a {c} ball in the garden.", "question": "What colour is Tom's ball?", "answer": c})
        for i, c in enumerate(COLOURS[:n])
    ]


def questions(n: int = 6) -> list[Record]:
    return [
        Record(id=f"t{i}", fields={"context": f"Ana keeps a {c} kite in the shed.", "question": "What colour is Ana's kite?"},
               meta={"references": [c, f"a {c} kite"]})
        for i, c in enumerate(COLOURS[:n])
    ]


def the_colour(prompt: str) -> str:
    return prompt.split("keeps a ", 1)[1].split(" ", 1)[0]


def reader(request) -> str:
    """Answers right only when shown worked examples (more than the system and the question)."""
    return the_colour(request.messages[-1]["content"]) if len(request.messages) > 2 else "I am not sure"


def test_prompts_hold_the_shots_and_the_test_input():
    backend = FakeBackend(FakeConfig(), responder=reader)
    records = synthetic()
    out = answer_benchmark(records, questions(), benchmark="adversarial_qa", backend=backend, shots=2, n=4, seed=1)
    assert len(backend.calls) == 8  # 4 questions, with examples and zero-shot
    answers = {r.fields["answer"] for r in records}
    with_shots = [c for c in backend.calls if len(c.messages) > 2]
    zero = [c for c in backend.calls if len(c.messages) <= 2]
    assert len(with_shots) == 4 and len(zero) == 4
    for call in with_shots:
        roles = [m["role"] for m in call.messages]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
        shown = [m["content"] for m in call.messages if m["role"] == "assistant"]
        assert len(set(shown)) == 2 and set(shown) <= answers  # two distinct synthetic answers
        assert "Tom keeps a" in call.messages[1]["content"] and "Question: What colour is Tom's ball?" in call.messages[1]["content"]
        assert "Ana keeps a" in call.messages[-1]["content"] and "Question: What colour is Ana's kite?" in call.messages[-1]["content"]
        assert call.temperature == 0.0
    for call in zero:
        assert [m["role"] for m in call.messages] == ["system", "user"] and "Ana keeps a" in call.messages[-1]["content"]
    # a seed per item; the same item has the same seed in both settings
    assert len({c.seed for c in with_shots}) == 4 and {c.seed for c in with_shots} == {c.seed for c in zero}
    # the examples are a function of the seed: the same run again chooses the same ones, another seed others
    again = FakeBackend(FakeConfig(), responder=reader)
    answer_benchmark(records, questions(), benchmark="adversarial_qa", backend=again, shots=2, n=4, seed=1)
    assert [c.messages for c in again.calls] == [c.messages for c in backend.calls]
    other = FakeBackend(FakeConfig(), responder=reader)
    answer_benchmark(records, questions(), benchmark="adversarial_qa", backend=other, shots=2, n=4, seed=2)
    assert [c.messages for c in other.calls] != [c.messages for c in backend.calls]
    assert out["settings"]["synthetic_shots"]["exact_match"] == 1.0 and out["settings"]["zero_shot"]["exact_match"] == 0.0
    assert out["exact_match_gain"] == 1.0


def test_exact_match_token_f1_and_intervals():
    def half_right(request) -> str:
        colour = the_colour(request.messages[-1]["content"])
        if len(request.messages) <= 2:
            return "It is hard to say."
        return colour if COLOURS.index(colour) % 2 == 0 else f"the {colour} one, probably"  # partial credit

    out = answer_benchmark(synthetic(), questions(6), benchmark="adversarial_qa",
                           backend=FakeBackend(FakeConfig(), responder=half_right), shots=1, n=6)
    s = out["settings"]["synthetic_shots"]
    assert s["n"] == 6 and s["failed"] == 0
    assert s["exact_match"] == pytest.approx(0.5)
    assert s["exact_match_ci"] == pytest.approx([round(x, 4) for x in wilson_interval(3, 6)])
    # "the red one probably" vs "red": precision 1/3 (articles dropped), recall 1 -> F1 0.5
    assert s["token_f1"] == pytest.approx((3 * 1.0 + 3 * 0.5) / 6)
    z = out["settings"]["zero_shot"]
    assert z["exact_match"] == 0.0 and z["token_f1"] == 0.0
    assert out["token_f1_gain"] == pytest.approx(0.75)
    assert len(out["examples"]) == 6 and out["examples"][0]["references"] == ["red", "a red kite"]
    assert set(out["examples"][0]["answers"]) == {"synthetic_shots", "zero_shot"}
    # The line the CLI prints and the dataset card shows.
    low, high = s["exact_match_ci"]
    assert answering_scores(out) == (
        f"with the examples (n=6): exact match 50.0% [{low:.1%}, {high:.1%}], token F1 0.750; "
        f"zero-shot (n=6): exact match 0.0% [{z['exact_match_ci'][0]:.1%}, {z['exact_match_ci'][1]:.1%}], token F1 0.000"
    )


def test_math_is_scored_on_the_boxed_answer_and_zero_shot_can_be_left_out():
    records = [Record(id="m", fields={"problem": "What is 1 + 1?", "answer": "1 + 1 = \\boxed{2}"})]
    test = [Record(id="p", fields={"problem": "What is 2 + 2?"}, meta={"references": ["We add: 2 + 2 = \\boxed{4}."]})]
    backend = FakeBackend(FakeConfig(responses=["Adding, we get \\boxed{4}"]))
    out = answer_benchmark(records, test, benchmark="math", backend=backend, zero_shot=False, n=5)
    assert list(out["settings"]) == ["synthetic_shots"] and out["settings"]["synthetic_shots"]["exact_match"] == 1.0
    assert "\\boxed{}" in backend.calls[0].messages[0]["content"] and backend.calls[0].max_tokens == 256
    plain = answer_benchmark(records, test, backend=FakeBackend(FakeConfig(responses=["Adding, we get \\boxed{4}"])),
                             input_fields=["problem"], zero_shot=False, boxed=False)
    assert plain["settings"]["synthetic_shots"]["exact_match"] == 0.0


def grader(request) -> str:
    """A judge that calls an answer correct when it names the test item's colour."""
    prompt = request.messages[-1]["content"]
    colour = the_colour(prompt)
    answer = prompt.split("The answer to grade:\n", 1)[1].split("\n", 1)[0]
    return json.dumps({"correct": "yes" if colour in answer else "no"})


def test_judge_scoring_with_references_and_without():
    judge_backend = FakeBackend(FakeConfig(), responder=grader)
    test = [Record(id=r.id, fields={"question": f"{r.fields['context']} What colour?"}, meta=r.meta) for r in questions(4)]
    records = [Record(id=r.id, fields={"question": f"{r.fields['context']} What colour?", "answer": r.fields["answer"]}) for r in synthetic()]
    out = answer_benchmark(records, test, benchmark="truthful_qa", backend=FakeBackend(FakeConfig(), responder=reader),
                           judge=Judge(FakeConfig(), backend=judge_backend), shots=1)
    assert out["scoring"] == "judge"  # truthful_qa's registry metric
    for name, expected in [("synthetic_shots", 1.0), ("zero_shot", 0.0)]:
        s = out["settings"][name]
        assert "exact_match" not in s and s["judge_correct"]["share"] == expected and s["judge_correct"]["n"] == 4
    assert out["judge_correct_gain"] == 1.0
    assert "with the examples (n=4): judge: 100.0% correct" in answering_scores(out) and "zero-shot (n=4): judge: 0.0% correct" in answering_scores(out)
    assert len(judge_backend.calls) == 8
    first = judge_backend.calls[0]
    assert first.json_schema["properties"]["correct"]["enum"] == ["yes", "no"] and first.temperature == 0.0
    assert "Reference answers" in first.messages[-1]["content"] and "- a red kite" in first.messages[-1]["content"]
    assert out["examples"][0]["judge_correct"] == {"synthetic_shots": True, "zero_shot": False}
    both = answer_benchmark(records, test, input_fields=["question"], scoring="both",
                            backend=FakeBackend(FakeConfig(), responder=reader), judge=Judge(FakeConfig(), backend=FakeBackend(FakeConfig(), responder=grader)))
    assert both["settings"]["synthetic_shots"]["exact_match"] == 1.0 and both["settings"]["synthetic_shots"]["judge_correct"]["share"] == 1.0

    # toolbench has no references: the judge sees the query, and exact match is refused
    plans = [Record(id="q", fields={"query": "Find Ana's kite colour", "api_list": "colours.get"})]
    shots = [Record(id="s", fields={"query": "Find Tom's ball", "api_list": "balls.find", "answer": "call balls.find"})]
    seen = FakeBackend(FakeConfig(responses=['{"correct": "yes"}']))
    out = answer_benchmark(shots, plans, benchmark="toolbench", backend=FakeBackend(FakeConfig(responses=["call colours.get"])),
                           judge=Judge(FakeConfig(), backend=seen))
    assert out["settings"]["synthetic_shots"]["judge_correct"]["share"] == 1.0
    prompt = seen.calls[0].messages[-1]["content"]
    assert "Reference answers" not in prompt and "Find Ana's kite colour" in prompt and "call colours.get" in prompt
    with pytest.raises(DataError, match="no reference answers; use scoring: judge"):
        answer_benchmark(shots, plans, benchmark="toolbench", scoring="exact_match", backend=FakeBackend(FakeConfig()))


def test_a_record_without_an_input_field_is_a_one_line_error():
    records = [Record(id="s0", fields={"context": "c", "answer": "a"})]
    with pytest.raises(DataError) as err:
        answer_benchmark(records, questions(), benchmark="adversarial_qa", backend=FakeBackend(FakeConfig()))
    message = str(err.value)
    assert "\n" not in message and "'question'" in message and "context, answer" in message
    with pytest.raises(DataError, match="no field 'response'"):
        answer_benchmark(synthetic(), questions(), benchmark="adversarial_qa", answer_field="response", backend=FakeBackend(FakeConfig()))


def test_nearest_examples_are_the_most_similar_records():
    vocabulary = COLOURS

    def encode(texts):
        import numpy as np

        vectors = np.array([[1.0 if word in t else 0.0 for word in vocabulary] + [0.1] for t in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    backend = FakeBackend(FakeConfig(), responder=reader)
    answer_benchmark(synthetic(6), questions(6), benchmark="adversarial_qa", backend=backend, shots=1, n=6,
                     selection="nearest", encode=encode, zero_shot=False)
    for call in backend.calls:  # the example shown has the test item's colour
        assert call.messages[2]["content"] == the_colour(call.messages[-1]["content"])


def test_the_recipe_takes_only_answerable_benchmarks(tmp_path):
    assert set(ANSWERED_BENCHMARKS) == {name for name, b in BENCHMARKS.items() if b.kind in ("qa", "generative")}
    base = {"name": "qa", "task": {"kind": "qa", "description": "reading exercises"}}
    with pytest.raises(RecipeError) as err:
        recipe_from_dict({**base, "evaluation": [{"stage": "answering", "benchmark": {"name": "rte"}}]}, base_dir=tmp_path)
    assert "rte is a classification benchmark" in str(err.value) and "stage: downstream" in str(err.value)
    with pytest.raises(RecipeError, match="shot"):
        recipe_from_dict({**base, "evaluation": [{"stage": "answering", "benchmark": {"name": "math"}, "shotz": 2}]}, base_dir=tmp_path)
    recipe = recipe_from_dict({**base, "evaluation": [{"stage": "answering", "benchmark": {"name": "math"}, "shots": 2,
                                                        "judge": {"backend": "fake"}}]}, base_dir=tmp_path)
    spec = recipe.evaluation[0]
    assert isinstance(spec, AnsweringSpec) and spec.shots == 2 and spec.n == 50 and spec.scoring is None


def write_adversarial_qa(folder) -> None:
    """Six rows in the format the registry reads from the hub's AdversarialQA (a folder with test.jsonl)."""
    folder.mkdir()
    rows = [
        {"id": f"aqa{i}", "title": "kites", "context": f"Ana keeps a {c} kite in the shed. It is old.",
         "question": "What colour is Ana's kite?", "answers": {"text": [c], "answer_start": [12]}}
        for i, c in enumerate(COLOURS)
    ]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_stage_through_a_real_http_server(tmp_path, fake_server):
    write_adversarial_qa(tmp_path / "aqa")
    assert load_benchmark("adversarial_qa", "test", tmp_path / "aqa")[0].meta["references"] == ["red"]

    def server_reader(body) -> str:
        messages = body["messages"]
        return the_colour(messages[-1]["content"]) if len(messages) > 2 else "I am not sure"

    server = fake_server(responder=server_reader)
    spec = AnsweringSpec.model_validate({"benchmark": {"name": "adversarial_qa", "path": str(tmp_path / "aqa")}, "shots": 2, "n": 4})
    context = lambda: EvaluationContext(text_field="context", model=OpenAIConfig(base_url=server.url, model="fake"), run_dir=tmp_path)  # noqa: E731
    out = evaluate(synthetic(), [spec], context())["answering"]
    assert out["settings"]["synthetic_shots"]["exact_match"] == 1.0 and out["settings"]["zero_shot"]["exact_match"] == 0.0
    assert out["sampled"] == 4 and out["population"] == 6 and out["model"]["model_calls"] == 8
    assert server.stats()["answered"] == 8
    assert out["test_data"].startswith("adversarial_qa (")
    # a rerun is answered from the run's cache
    again = evaluate(synthetic(), [spec], context())["answering"]
    assert again["model"]["model_calls"] == 0 and again["model"]["served_from_cache"] == 8
    assert again["settings"] == out["settings"] and server.stats()["answered"] == 8


def test_the_cli_refuses_a_bad_benchmark_in_one_line(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r.fields) + "\n" for r in synthetic()))
    done = run_cli("evaluate", str(data), "--benchmark", "squad", "--no-progress", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "unknown benchmark 'squad'" in done.stderr and "adversarial_qa" in done.stderr
    assert not (tmp_path / "qa-evaluation").exists()


def test_the_cli_refuses_a_classification_benchmark_and_a_missing_path(tmp_path, capsys):
    from synthloom.cli import main

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r.fields) + "\n" for r in synthetic()))
    for args, message in [
        (["--benchmark", "rte"], "rte is a classification benchmark"),
        (["--benchmark", "math", "--benchmark-path", str(tmp_path / "nowhere")], "nowhere: file not found"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", str(data), "--no-progress", *args])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0


@pytest.mark.slow
def test_the_stage_runs_on_the_embedded_model_and_shows_in_the_report(tmp_path):
    pytest.importorskip("llama_cpp")
    write_adversarial_qa(tmp_path / "aqa")
    recipe = recipe_from_dict({
        "name": "qa-answering",
        "model": {"backend": "llamacpp", "n_threads": 1},
        "task": {"kind": "qa", "description": "one-sentence reading exercises about where people keep things",
                 "fields": {"context": "one sentence", "question": "a question the sentence answers", "answer": "one word"}},
        "generation": {"records": 2, "max_tokens": 80, "seed": 1},
        "curation": [],
        "evaluation": [{"stage": "answering", "benchmark": {"name": "adversarial_qa", "path": "aqa"},
                        "n": 3, "shots": 1, "max_tokens": 16}],
    }, base_dir=tmp_path)
    result = synthloom.run(recipe, tmp_path / "out", progress=False)
    assert result.curated, "the embedded model wrote no record"
    out = result.metrics["answering"]
    assert set(out["settings"]) == {"synthetic_shots", "zero_shot"} and out["sampled"] == 3
    for s in out["settings"].values():
        assert s["n"] + s["failed"] == 3 and 0.0 <= s["exact_match"] <= 1.0 and 0.0 <= s["token_f1"] <= 1.0
        low, high = s["exact_match_ci"]
        assert low <= s["exact_match"] <= high
    answers = [e["answers"]["synthetic_shots"] for e in out["examples"]]
    assert len(answers) == 3 and any(answers)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Answering adversarial_qa: the records as worked examples (1 per question), against zero-shot" in html
    assert "What colour is Ana&#39;s kite?" in html and "zero-shot" in html
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| answering adversarial_qa (synthetic records as worked examples, 1 per question) |" in card
