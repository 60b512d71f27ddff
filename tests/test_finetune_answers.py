"""The finetune stage on checkable answers: exact match, math by sympy, code by its tests (in the sandbox).

The slow test fine-tunes the bundled SmolLM2-135M-Instruct for two LoRA
steps and checks both models' answers with the real math verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloom.evaluate.finetune_answers import exact_match, mean_interval, paired_score_difference
from synthloom.execute.answer_checks import check_answers
from synthloom.records import Record
from synthloom.train.lm_models import LMError


P = {"path": "not-read.jsonl", "if_missing": "skip"}  # a prompts file the test does not read


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_THREADS", "1")


def test_exact_match_normalises_and_takes_any_reference():
    items = [{"references": ["Paris", "the city of Paris"]}, {"references": ["4"]}, {"references": ["blue"]}]
    verdicts = exact_match(["The city of Paris.", " 4 ", "green"], items)
    assert [ok for ok, _ in verdicts] == [True, True, False]
    assert "'green' is not one of ['blue']" in verdicts[2][1]


def test_intervals_over_items_and_the_paired_difference():
    same = paired_score_difference([1, 0, 1, 0], [1, 0, 1, 0], resamples=200)
    assert same["score"] == 0 and same["score_ci"] == [0.0, 0.0]
    better = paired_score_difference([1] * 30, [0] * 20 + [1] * 10, resamples=200)
    assert better["score"] == pytest.approx(20 / 30, abs=1e-4) and better["score_ci"][0] > 0.4
    one = mean_interval([1, 1, 0, 0], resamples=200)
    assert one["score"] == 0.5 and one["score_ci"][0] < 0.5 < one["score_ci"][1] and one["n"] == 4


def test_the_verifiers_check_math_and_code_answers_in_the_sandbox():
    math = check_answers("math", ["half of it: \\boxed{\\frac{1}{2}}", "so the answer is 7", "no idea"],
                         [{"references": ["0.5"]}, {"references": ["8"]}, {"references": ["1"]}])
    assert [ok for ok, _ in math] == [True, False, False]
    assert "answer '7' vs reference '8'" in math[1][1] and "no final answer" in math[2][1]
    code = check_answers("code", ["```python\ndef add(a, b):\n    return a + b\n```", "def add(a, b):\n    return a - b"],
                         [{"tests": "assert add(2, 3) == 5"}] * 2)
    assert [ok for ok, _ in code] == [True, False]
    assert "assert add(2, 3) == 5 -> AssertionError" in code[1][1]


def test_scoring_settings_are_checked():
    from pydantic import ValidationError

    from synthloom.recipe import FinetuneSpec

    assert FinetuneSpec(benchmark={"name": "math"}).answer_scoring() == "math"
    assert FinetuneSpec(benchmark={"name": "adversarial_qa"}).answer_scoring() == "exact_match"
    assert FinetuneSpec(prompts=P, scoring="code").answer_scoring() == "code"
    assert FinetuneSpec(prompts=P).answer_scoring() is None  # judged pairwise
    with pytest.raises(ValidationError, match="no answers to check"):
        FinetuneSpec(benchmark={"name": "toolbench"})
    with pytest.raises(ValidationError, match="`scoring` says how answers to `prompts`"):
        FinetuneSpec(test=P, scoring="math")
    with pytest.raises(ValidationError, match="method dpo needs `prompts` judged pairwise"):
        FinetuneSpec(prompts=P, scoring="exact_match", method="dpo")


def test_a_prompts_file_without_the_column_scoring_reads_is_one_line(tmp_path):
    from synthloom.evaluate.finetune_answers import checkable_items
    from synthloom.recipe import FinetuneSpec

    path = tmp_path / "held.jsonl"
    path.write_text(json.dumps({"prompt": "Write add(a, b).", "answer": "def add(a, b): return a + b"}) + "\n")
    spec = FinetuneSpec(prompts={"path": str(path)}, scoring="code")
    with pytest.raises(LMError, match="no column 'tests', which scoring code reads"):
        checkable_items(spec, "code")
    items, source = checkable_items(FinetuneSpec(prompts={"path": str(path)}, scoring="exact_match"), "exact_match")
    assert items == [{"prompt": "Write add(a, b).", "references": ["def add(a, b): return a + b"], "tests": None}]


def test_math_and_code_need_the_verifiers():
    from synthloom.evaluate.finetune_answers import finetune_answers
    from synthloom.recipe import FinetuneSpec

    spec = FinetuneSpec(prompts=P, scoring="math")
    with pytest.raises(LMError, match="scoring math needs the verifiers"):
        finetune_answers([], [], spec, None, "math", None)


SUMS = [(a, b) for a in range(2, 7) for b in range(3, 6)]


@pytest.mark.slow
def test_base_and_finetuned_answers_are_checked_by_the_math_verifier(tmp_path):
    from synthloom.evaluate import EvaluationContext, evaluate
    from synthloom.recipe import FinetuneSpec

    records = [Record(id=f"m{i}", fields={"question": f"What is {a} + {b}?", "answer": f"The answer is {a + b}."})
               for i, (a, b) in enumerate(SUMS[:8])]
    held = [{"prompt": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in SUMS[10:13]]
    prompts = tmp_path / "held_out.jsonl"
    prompts.write_text("".join(json.dumps(h) + "\n" for h in held))
    spec = FinetuneSpec(prompts={"path": str(prompts)}, scoring="math", max_steps=2, batch_size=4, max_length=64,
                        learning_rate=1e-3, learning_curve=None, max_new_tokens=12, bootstrap=50)
    context = EvaluationContext(run_dir=tmp_path / "run", answer_check=check_answers)
    result = evaluate(records, [spec], context)["finetune"]
    assert result["task"] == "answers" and result["scoring"] == "math" and result["n_test"] == 3
    assert result["test_data"] == str(prompts)
    arms, examples = result["arms"], result["examples"]
    assert [e["prompt"] for e in examples] == [h["prompt"] for h in held]
    items = [{"references": [h["answer"]]} for h in held]
    for arm, key in (("base", "base"), ("finetuned", "finetuned")):
        # each arm's score is the share of its own answers the verifier passes, checked again here
        verdicts = check_answers("math", [e[key] for e in examples], items)
        assert [e[f"{key}_ok"] for e in examples] == [ok for ok, _ in verdicts]
        assert arms[arm]["score"] == pytest.approx(sum(ok for ok, _ in verdicts) / 3, abs=1e-4)
        assert len(arms[arm]["score_ci"]) == 2
    assert result["differences"]["finetuned_vs_base"]["score"] == pytest.approx(
        arms["finetuned"]["score"] - arms["base"]["score"], abs=1e-4)
    assert arms["finetuned"]["steps"] == 2 and arms["finetuned"]["loss"][1] < arms["finetuned"]["loss"][0]
    assert any(e["finetuned"] != e["base"] for e in examples)  # two steps at 1e-3 change what the model says
    card = (tmp_path / "run" / "finetune" / "synthetic" / "model" / "README.md").read_text()
    assert "run run (the run folder this model lies in)" in card  # the card names the data run
    assert str(tmp_path) not in card and str(Path.home()) not in card  # and no path of this machine


def test_the_report_shows_both_models_scores_and_the_paired_difference(tmp_path):
    from synthloom.report import build_report

    arm = lambda s, lo, hi: {"score": s, "score_ci": [lo, hi], "n": 40}  # noqa: E731
    metrics = {"finetune": {
        "task": "answers", "scoring": "math", "method": "sft", "lora": True, "model": "smollm2 (embedded)", "n_test": 40,
        "arms": {"base": arm(0.125, 0.05, 0.225), "finetuned": arm(0.35, 0.2, 0.5) | {"n_train": 120}},
        "differences": {"finetuned_vs_base": {"score": 0.225, "score_ci": [0.075, 0.375], "n": 40}},
        "learning_curve": [{"share": 0.5, "records": 60, **arm(0.2, 0.1, 0.3)}, {"share": 1.0, "records": 120, **arm(0.35, 0.2, 0.5)}],
        "model_dir": "runs/x/finetune/synthetic/model", "test_data": "held_out_math.jsonl"}}
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "math_sft", "counts": {}}))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(tmp_path).read_text()
    section = html[html.index('<section id="finetune">'):].split("</section>")[0]
    assert "final answer correct (sympy)" in section and "held_out_math.jsonl" in section
    assert "0.125" in section and "0.35" in section and "finetuned − base (paired)" in section and "0.225" in section
    assert section.count("<svg") == 2  # the arms with their intervals, and the learning curve
